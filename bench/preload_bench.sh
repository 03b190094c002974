#!/usr/bin/env bash
# What tracing an unmodified program costs: sqlite3 building and indexing a
# table of ROWS rows (the workload of tests/real_programs_test.py), run
# untraced, under `alloctrace run` and under heaptrack, alternating, each
# REPEATS times; prints the median wall times and their ratios.  Run on
# purpose; never part of the tests.
#
#   bench/preload_bench.sh [ROWS [REPEATS]]
#
# Wall time of the whole command, as a user sees it: alloctrace's includes
# writing the SQLite trace and symbolizing it; heaptrack's includes its
# interpreter compressing the raw data to heaptrack.*.zst (not the analysis,
# `heaptrack --analyze`, which is a separate step).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
rows=${1:-300000}
repeats=${2:-5}
bench_build
alloctrace="$build/tools/alloctrace"

need() { command -v "$1" >/dev/null || { echo "preload_bench: $1 not found" >&2; exit 1; }; }
need sqlite3
need python3
if ! command -v heaptrack >/dev/null; then
  echo "preload_bench: installing heaptrack" >&2
  "$here/scripts/apt_install.sh" heaptrack
fi
sqlite=$(command -v sqlite3)

sqlite_workload "$rows"


# One timed run of MODE; the database is new each time, and the path has
# the same length in every mode (sqlite3 allocates it).
run_once() {
  local mode=$1 i=$2 t0 t1
  rm -rf "$out/db" && mkdir "$out/db"
  rm -f "$out"/trace.db "$out"/ht-data.*
  case $mode in
    untraced)
      t0=$(now)
      "$sqlite" "$out/db/test.db" <"$out/workload.sql" >"$out/$mode.out"
      t1=$(now) ;;
    alloctrace)
      t0=$(now)
      "$alloctrace" run -o "$out/trace.db" --force -- "$sqlite" "$out/db/test.db" \
        <"$out/workload.sql" >"$out/$mode.out" 2>"$out/$mode.err"
      t1=$(now)
      stat -c %s "$out/trace.db" >>"$out/$mode.size"
      # the program's own run under the tracer; the rest is `alloctrace run`
      # completing the trace after it exited
      "$sqlite" "$out/trace.db" "SELECT value / 1e6 FROM meta WHERE key = 'duration_us'" \
        >>"$out/$mode.traced" ;;
    heaptrack)
      t0=$(now)
      heaptrack -o "$out/ht-data.$i" "$sqlite" "$out/db/test.db" \
        <"$out/workload.sql" >"$out/$mode.out" 2>"$out/$mode.err"
      t1=$(now)
      stat -c %s "$out/ht-data.$i".zst >>"$out/$mode.size"
      # heaptrack's banner lines go to stdout with the program's own
      sed -i '/^heaptrack output will be written to/,/^starting application/d;
              /^Heaptrack finished/,$d' "$out/$mode.out" ;;
  esac
  cmp -s "$out/untraced.out" "$out/$mode.out" 2>/dev/null || [ "$mode" = untraced ] ||
    echo "preload_bench: $mode changed the output of sqlite3" >&2
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f\n", b - a}' >>"$out/$mode.times"
}

echo "sqlite3 inserting and indexing $rows rows, median of $repeats runs each (alternating)"
run_once untraced 0 && : >"$out/untraced.times" # warm-up: page cache, reference output
for i in $(seq "$repeats"); do
  for mode in untraced alloctrace heaptrack; do
    run_once "$mode" "$i"
  done
done

u=$(median <"$out/untraced.times")
a=$(median <"$out/alloctrace.times")
h=$(median <"$out/heaptrack.times")
asz=$(median <"$out/alloctrace.size")
ad=$(median <"$out/alloctrace.traced")
hsz=$(median <"$out/heaptrack.size")
calls=$(sed -n 's/.*allocation calls \([0-9]*\),.*/\1/p' "$out/alloctrace.err")
hcalls=$(sed -n 's/^[[:space:]]*allocations:[[:space:]]*\([0-9]*\).*/\1/p' "$out/heaptrack.err")
for mode in untraced alloctrace heaptrack; do
  printf '  %-10s runs (s): %s\n' "$mode" "$(tr '\n' ' ' <"$out/$mode.times")"
done
awk -v u="$u" -v a="$a" -v ad="$ad" -v h="$h" -v asz="$asz" -v hsz="$hsz" -v n="$calls" -v hn="$hcalls" 'BEGIN {
  printf "untraced    %8.3f s\n", u
  printf "alloctrace  %8.3f s  (x%.2f untraced; %s allocation calls, %.0f ns per call added; trace %.0f KiB)\n",
         a, a / u, n, (a - u) / n * 1e9, asz / 1024
  printf "            of which the program ran %.3f s under the tracer (x%.2f untraced)\n", ad, ad / u
  printf "heaptrack   %8.3f s  (x%.2f untraced; %s allocations counted; data %.0f KiB)\n",
         h, h / u, hn, hsz / 1024
  printf "ratios: alloctrace/untraced %.2f, heaptrack/untraced %.2f, alloctrace/heaptrack %.2f\n",
         a / u, h / u, a / h }'
