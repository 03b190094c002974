#!/usr/bin/env bash
# This build against another commit, side by side in one run: the tracer's
# cost per alloc+dealloc pair (tracer_bench, DWARF and frame pointers, one
# thread) and `alloctrace run` on Debian's sqlite3 (the preload_bench.sh
# workload), the two builds alternating, medians and the ratio this/base.
# Run on purpose; never part of the tests.
#
#   bench/compare.sh BASE_REV [PAIRS [REPEATS [ROWS]]]
#
# BASE_REV is checked out into a scratch worktree and built there (release,
# no tests); this tree's build is build-bench, as for the other scripts.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
base_rev=${1:?usage: bench/compare.sh BASE_REV [PAIRS [REPEATS [ROWS]]]}
pairs=${2:-1000000}
repeats=${3:-5}
rows=${4:-300000}
bench_build bench/tracer_bench

base_build "$base_rev"
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p"; }

sqlite_workload "$rows"
sqlite=$(command -v sqlite3)

# One run of each measurement with the build in $1, named $2.
run_once() {
  local tree=$1 name=$2 t0 t1
  for mode in dwarf fp; do
    rm -f "$out/t.db"
    local env=()
    [ "$mode" = fp ] && env=(BENCH_UNWIND=fp)
    env "${env[@]}" LD_LIBRARY_PATH="$tree/build-bench/lib" \
      "$tree/build-bench/bench/tracer_bench" traced 1 "$pairs" 20 "$out/t.db" \
      >>"$out/$name.$mode.lines"
  done
  rm -rf "$out/db" "$out/trace.db" && mkdir "$out/db"
  t0=$(now)
  "$tree/build-bench/tools/alloctrace" run -q -o "$out/trace.db" -- "$sqlite" "$out/db/test.db" \
    <"$out/workload.sql" >/dev/null
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f\n", b - a}' >>"$out/$name.run.times"
}

echo "base $(git -C "$base_tree" log -1 --format='%h %s' | cut -c1-70)"
echo "this $(git -C "$here" log -1 --format='%h %s' | cut -c1-70)$(git -C "$here" diff --quiet || echo ' (+ uncommitted changes)')"
echo "tracer_bench: $pairs pairs, depth 20, one thread; sqlite3: $rows rows; median of $repeats (alternating)"
for _ in $(seq "$repeats"); do
  run_once "$base_tree" base
  run_once "$here" this
done
for mode in dwarf fp; do
  for what in ns_per_pair cpu_ns_per_pair; do
    b=$(field "$what" <"$out/base.$mode.lines" | median)
    t=$(field "$what" <"$out/this.$mode.lines" | median)
    awk -v m="$mode" -v w="$what" -v b="$b" -v t="$t" \
      'BEGIN { printf "tracer_bench %-5s %-16s base %8.1f  this %8.1f  this/base %.3f\n", m, w, b, t, t / b }'
  done
done
b=$(median <"$out/base.run.times")
t=$(median <"$out/this.run.times")
awk -v b="$b" -v t="$t" \
  'BEGIN { printf "alloctrace run sqlite3     wall s   base %8.3f  this %8.3f  this/base %.3f\n", b, t, t / b }'
