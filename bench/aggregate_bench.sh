#!/usr/bin/env bash
# `alloctrace run --aggregate` against a full trace and against heaptrack
# on Debian's sqlite3 building and indexing ROWS rows (preload_bench.sh's
# workload): wall time, CPU time (user + system of the whole process
# tree: the machine may be shared) and trace size, the three alternating,
# REPEATS rounds, medians, and the ratios to heaptrack's.  Run on
# purpose; never part of the tests.
#
#   bench/aggregate_bench.sh [ROWS [REPEATS]]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
rows=${1:-300000}
repeats=${2:-3}
bench_build tools/alloctrace
alloctrace="$build/tools/alloctrace"
for tool in sqlite3 heaptrack; do
  command -v "$tool" >/dev/null || { echo "aggregate_bench: $tool not found" >&2; exit 1; }
done
sqlite=$(command -v sqlite3)
sqlite_workload "$rows"

# One traced run by $1 (full, aggregate, heaptrack): appends wall seconds,
# CPU seconds and the trace's bytes to $out/$1.{wall,cpu,size}.
run_once() {
  local how=$1 file
  rm -rf "$out/db" "$out"/trace.db "$out"/ht.* && mkdir "$out/db"
  case $how in
    full) file="$out/trace.db"
      set -- "$alloctrace" run -q -o "$file" -- "$sqlite" "$out/db/test.db" ;;
    aggregate) file="$out/trace.db"
      set -- "$alloctrace" run -q --aggregate -o "$file" -- "$sqlite" "$out/db/test.db" ;;
    heaptrack) file="$out/ht.zst"
      set -- heaptrack -o "$out/ht" "$sqlite" "$out/db/test.db" ;;
  esac
  /usr/bin/time -f "%e %U %S" -o "$out/time" "$@" <"$out/workload.sql" >/dev/null 2>&1
  awk '{print $1}' "$out/time" >>"$out/$how.wall"
  awk '{printf "%.2f\n", $2 + $3}' "$out/time" >>"$out/$how.cpu"
  stat -c %s "$file" >>"$out/$how.size"
}

echo "sqlite3, $rows rows: median of $repeats (alternating)"
for _ in $(seq "$repeats"); do
  for how in full aggregate heaptrack; do run_once "$how"; done
done
ht_wall=$(median <"$out/heaptrack.wall")
ht_cpu=$(median <"$out/heaptrack.cpu")
for how in full aggregate heaptrack; do
  awk -v h="$how" -v w="$(median <"$out/$how.wall")" -v c="$(median <"$out/$how.cpu")" \
    -v s="$(median <"$out/$how.size")" -v hw="$ht_wall" -v hc="$ht_cpu" \
    'BEGIN {printf "%-10s wall %7.3f s (%.2fx heaptrack)  cpu %7.3f s (%.2fx)  trace %10d B\n",
            h, w, w / hw, c, c / hc, s}'
done
