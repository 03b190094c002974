# Shared by the bench/*.sh scripts, which source it (never run on its own):
# the project's root, the release build they measure, a scratch directory
# removed on exit, and the median of numbers read one per line.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$here/build-bench"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Configures and builds build-bench (release, no tests), then the ninja
# targets named, if any.
bench_build() {
  "$here/scripts/setup.sh" build-bench --buildtype=release -Dtests=false >/dev/null
  if [ $# -gt 0 ]; then ninja -C "$build" "$@" >/dev/null; fi
}

# The sqlite3 workload of ROWS rows, the SQL script tests/real_programs_test.py
# runs, into $out/workload.sql, so that the benchmarks and the test run the
# same thing.
sqlite_workload() {
  python3 - "$here/tests" "$1" >"$out/workload.sql" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import real_programs_test
sys.stdout.write(real_programs_test.sqlite_script(int(sys.argv[2])))
PY
}

now() { date +%s.%N; }

# Checks REV out into a scratch worktree, $base_tree (removed on exit with
# the scratch directory), and builds it there as build-bench (release, no
# tests), for the scripts that measure this tree against another commit.
base_build() {
  base_tree="$out/base"
  git -C "$here" worktree add -q --detach "$base_tree" "$1"
  trap 'git -C "$here" worktree remove --force "$base_tree"; rm -rf "$out"' EXIT
  cp -r "$here/viewer/node_modules" "$base_tree/viewer/"
  (cd "$base_tree" && meson setup build-bench --buildtype=release -Dtests=false >/dev/null &&
     ninja -C build-bench >/dev/null)
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
