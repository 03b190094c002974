#!/usr/bin/env bash
# The tracer's added cost per allocation+release pair, measured side by
# side in one run: untraced and traced (DWARF and frame-pointer
# backtraces), on one thread and on two, at stack depth 20, each
# configuration repeated and the median kept.  Also the trace size per
# allocation.  Run on purpose; never part of the tests.
#
#   bench/run.sh [PAIRS_PER_THREAD [REPEATS]]
#
# Two figures per traced configuration:
#   wall  ns per pair of the loop's wall time: what the program feels,
#         including waiting for the writer when it falls behind (it then
#         sets the pace: one SQLite row per lifetime);
#   cpu   ns per pair of the loop's CPU time: the hot path alone (the time
#         a thread sleeps waiting for the writer, or for a CPU on a busy
#         machine, is not counted).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
pairs=${1:-1000000}
repeats=${2:-5}
bench_build bench/tracer_bench
bench="$build/bench/tracer_bench"
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p"; }

echo "pairs per thread: $pairs, depth 20, median of $repeats runs (modes alternate)"
for threads in 1 2; do
  rm -f "$out"/*.lines
  for _ in $(seq "$repeats"); do
    "$bench" untraced "$threads" "$pairs" 20 >>"$out/untraced.lines"
    "$bench" traced "$threads" "$pairs" 20 "$out/t.db" >>"$out/dwarf.lines"
    rm -f "$out/t.db"
    BENCH_UNWIND=fp "$bench" traced "$threads" "$pairs" 20 "$out/t.db" >>"$out/fp.lines"
    rm -f "$out/t.db"
  done
  u=$(field cpu_ns_per_pair <"$out/untraced.lines" | median)
  for mode in dwarf fp; do
    w=$(field ns_per_pair <"$out/$mode.lines" | median)
    c=$(field cpu_ns_per_pair <"$out/$mode.lines" | median)
    b=$(field bytes_per_alloc <"$out/$mode.lines" | median)
    awk -v n="$threads" -v m="$mode" -v u="$u" -v w="$w" -v c="$c" -v b="$b" 'BEGIN {
      printf "threads=%d unwind=%-5s untraced=%.1f ns/pair  traced: wall=%.1f ns/pair (+%.1f)" \
             "  cpu=%.1f ns/pair (+%.1f)  trace=%.1f bytes/alloc\n",
             n, m, u, w, w - u, c, c - u, b }'
  done
done
