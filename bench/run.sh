#!/usr/bin/env bash
# The tracer's added cost per allocation+release pair, measured side by
# side in one run: untraced and traced, on one thread and on two, at stack
# depth 20, each configuration repeated and the median kept.  Also the
# trace size per allocation.  Run on purpose; never part of the tests.
#
#   bench/run.sh [PAIRS_PER_THREAD [REPEATS]]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pairs=${1:-1000000}
repeats=${2:-5}
build="$here/build-bench"
"$here/scripts/setup.sh" build-bench --buildtype=release -Dtests=false >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "pairs per thread: $pairs, depth 20, median of $repeats runs"
for threads in 1 2; do
  for mode in untraced traced traced-hotpath traced-fp-hotpath; do
    : >"$out/$mode"
    for _ in $(seq "$repeats"); do
      case $mode in
        untraced) line=$("$build/bench/tracer_bench" untraced "$threads" "$pairs" 20) ;;
        traced) line=$("$build/bench/tracer_bench" traced "$threads" "$pairs" 20 "$out/t.db") ;;
        # The writer never pushes back: the allocating threads' cost alone.
        traced-hotpath) line=$(BENCH_BUFFER_MB=4000 "$build/bench/tracer_bench" traced \
                                 "$threads" "$pairs" 20 "$out/t.db") ;;
        # The same with frame-pointer backtraces (the benchmark has them).
        traced-fp-hotpath) line=$(BENCH_UNWIND=fp BENCH_BUFFER_MB=4000 \
                                  "$build/bench/tracer_bench" traced "$threads" "$pairs" 20 "$out/t.db") ;;
      esac
      echo "$line" >>"$out/$mode.lines"
      echo "$line" | field ns_per_pair >>"$out/$mode"
    done
  done
  u=$(median <"$out/untraced"); t=$(median <"$out/traced"); h=$(median <"$out/traced-hotpath")
  f=$(median <"$out/traced-fp-hotpath")
  bpa=$(field bytes_per_alloc <"$out/traced.lines" | median)
  awk -v n="$threads" -v u="$u" -v t="$t" -v h="$h" -v f="$f" -v b="$bpa" 'BEGIN {
    printf "threads=%d untraced=%.1f ns/pair traced=%.1f ns/pair (x%.1f, +%.1f ns) " \
           "hot-path-only=%.1f ns/pair (+%.1f ns) hot-path-only-fp=%.1f ns/pair (+%.1f ns) " \
           "trace=%.1f bytes/alloc\n",
           n, u, t, t / u, t - u, h, h - u, f, f - u, b }'
  rm -f "$out"/*.lines
done
