#!/usr/bin/env bash
# The README's second command: install, build, and run the whole test
# suite three ways: a -Werror build, an AddressSanitizer+UBSan build, and
# the -Werror build again under valgrind.  Ends with "N passed, N failed".
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
# CI reads the closing line "N passed, N failed": whatever ends this script
# (a set-up that fails, an error, a signal such as a time limit's TERM),
# the line is printed once, as the last line, and the status says failure.
closed=0
close_line() { [ $closed -eq 1 ] || { closed=1; echo "0 passed, 1 failed"; }; }
trap close_line EXIT
trap 'exit 1' TERM INT HUP
setup_failed() { echo "setup failed: $*"; exit 1; }
scripts/setup.sh build-ci -Dwerror=true || setup_failed "-Werror build"
scripts/setup.sh build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false ||
  setup_failed "sanitizer build"

# Only this run's results are counted.
rm -f build-ci/meson-logs/testlog*.json build-asan/meson-logs/testlog*.json

status=0
run() { # name, meson test args...
  local name=$1; shift
  echo "== $name"
  meson test "$@" --print-errorlogs || status=1
}
run "tests (-Werror build)" -C build-ci --num-processes 2
run "tests (AddressSanitizer + UndefinedBehaviorSanitizer)" -C build-asan --setup asan --num-processes 2
run "tests (valgrind)" -C build-ci --setup valgrind --num-processes 2

python3 - build-ci/meson-logs/testlog.json build-asan/meson-logs/testlog-asan.json \
    build-ci/meson-logs/testlog-valgrind.json <<'PY'
import json, sys
passed = failed = 0
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        print(f"missing test log {path}")
        failed += 1
        continue
    for line in lines:
        try:
            r = json.loads(line)
        except ValueError:
            # a run cut short can leave half a line: count it, do not crash
            print(f"unreadable result line in {path}: {line[:80]!r}")
            failed += 1
            continue
        if r["result"] in ("OK", "EXPECTEDFAIL"):
            passed += 1
        else:
            failed += 1
            print(f"FAILED: {r['name']} ({r['result']}) in {path}")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
py=$?
# The count printed its line unless python3 itself failed (status above 1):
# then the EXIT trap prints one.
if [ $py -le 1 ]; then closed=1; fi
[ $status -eq 0 ] && [ $py -eq 0 ]
