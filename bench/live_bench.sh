#!/usr/bin/env bash
# What tracing costs a program that keeps many blocks live at once: the
# live table (in the traced program) and the reader's table of half
# lifetimes (in `alloctrace run`) hold every one of them.  Runs
# bench/keep_live untraced and under `alloctrace run`, alternating, and
# prints wall times and peak memory.  Run on purpose; never part of the
# tests.
#
#   bench/live_bench.sh [BLOCKS [REPEATS]]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
blocks=${1:-2000000}
repeats=${2:-3}
bench_build bench/keep_live tools/alloctrace
prog="$build/bench/keep_live"

# One run: "SECONDS MAXRSS_KB" of the whole command (GNU time is not
# always installed: python3 measures the children).
measure() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t0 = time.monotonic()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
t1 = time.monotonic()
print(f"{t1 - t0:.3f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
PY
}

for _ in $(seq "$repeats"); do
  measure "$prog" "$blocks" 24 >>"$out/untraced"
  rm -f "$out/t.db"
  measure "$build/tools/alloctrace" run -q -o "$out/t.db" -- "$prog" "$blocks" 24 >>"$out/traced"
done
u=$(cut -d' ' -f1 "$out/untraced" | median); t=$(cut -d' ' -f1 "$out/traced" | median)
um=$(cut -d' ' -f2 "$out/untraced" | median); tm=$(cut -d' ' -f2 "$out/traced" | median)
awk -v n="$blocks" -v u="$u" -v t="$t" -v um="$um" -v tm="$tm" 'BEGIN {
  printf "%d blocks of 24 bytes live at once, median of runs:\n", n
  printf "  untraced    %.3f s, peak RSS %d KiB\n", u, um
  printf "  alloctrace  %.3f s (x%.1f), largest process peak RSS %d KiB\n", t, t / u, tm }'
