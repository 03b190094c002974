#!/usr/bin/env bash
# What release stacks cost: the same build with and without them
# (`--no-release-stacks`, at_trace_options.no_release_stacks), side by side
# in one run, alternating, medians: tracer_bench's ns per alloc+dealloc
# pair (one thread, depth 20, DWARF and frame pointers; wall and CPU) and
# the trace's bytes per allocation, then `alloctrace run` on Debian's
# sqlite3 (the workload of tests/real_programs_test.py): wall time, CPU
# time (user + system, the program and alloctrace), how long the program
# ran under the tracer (meta.duration_us) and the trace's size.  On a busy
# machine the CPU figures are the ones to trust.  Run on purpose; never
# part of the tests.
#
#   bench/release_stacks.sh [PAIRS [REPEATS [ROWS]]]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
pairs=${1:-1000000}
repeats=${2:-5}
rows=${3:-300000}
bench_build
bench="$build/bench/tracer_bench"
alloctrace="$build/tools/alloctrace"
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p"; }
command -v sqlite3 >/dev/null || { echo "release_stacks: sqlite3 not found" >&2; exit 1; }
sqlite=$(command -v sqlite3)
sqlite_workload "$rows"

# One run of everything; $1 is `on` or `off`.
run_once() {
  local rs=$1 no=0 flag=() t0 t1
  [ "$rs" = off ] && no=1 && flag=(--no-release-stacks)
  for mode in dwarf fp; do
    rm -f "$out/t.db"
    local env=(BENCH_NO_RELEASE_STACKS=$no)
    [ "$mode" = fp ] && env+=(BENCH_UNWIND=fp)
    env "${env[@]}" "$bench" traced 1 "$pairs" 20 "$out/t.db" >>"$out/$rs.$mode.lines"
  done
  rm -rf "$out/db" "$out/trace.db" && mkdir "$out/db"
  local TIMEFORMAT='%U %S'
  t0=$(now)
  { time "$alloctrace" run -q "${flag[@]}" -o "$out/trace.db" -- "$sqlite" "$out/db/test.db" \
    <"$out/workload.sql" >/dev/null; } 2>"$out/cpu"
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f\n", b - a}' >>"$out/$rs.run.wall"
  tail -n 1 "$out/cpu" | awk '{printf "%.4f\n", $1 + $2}' >>"$out/$rs.run.cpu"
  "$sqlite" "$out/trace.db" "SELECT value / 1e6 FROM meta WHERE key = 'duration_us'" \
    >>"$out/$rs.run.program"
  stat -c %s "$out/trace.db" >>"$out/$rs.run.size"
}

echo "tracer_bench: $pairs pairs, depth 20, one thread; sqlite3: $rows rows; median of $repeats (alternating)"
for _ in $(seq "$repeats"); do
  run_once on
  run_once off
done
for mode in dwarf fp; do
  for what in ns_per_pair cpu_ns_per_pair bytes_per_alloc; do
    on=$(field "$what" <"$out/on.$mode.lines" | median)
    off=$(field "$what" <"$out/off.$mode.lines" | median)
    awk -v m="$mode" -v w="$what" -v a="$on" -v b="$off" 'BEGIN {
      printf "tracer_bench %-5s %-15s with %8.1f  without %8.1f  (+%.1f, x%.3f)\n", m, w, a, b, a - b, a / b }'
  done
done
for what in wall cpu program size; do
  on=$(median <"$out/on.run.$what")
  off=$(median <"$out/off.run.$what")
  awk -v w="$what" -v a="$on" -v b="$off" 'BEGIN {
    printf "sqlite3 run  %-15s with %10.4g  without %10.4g  (x%.3f)\n", w, a, b, a / b }'
done
