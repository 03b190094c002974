#!/usr/bin/env bash
# The time a user waits for an answer: recording a run and reading its
# report, alloctrace (`alloctrace run`, then `alloctrace report`) against
# heaptrack (`heaptrack`, then `heaptrack_print`), on two workloads: sqlite3
# building and indexing ROWS rows (preload_bench.sh's), and keep_live
# holding BLOCKS blocks at once (live_bench.sh's).  Alternating, REPEATS
# times each; medians of the record, the report and their sum.  Run on
# purpose; never part of the tests.
#
#   bench/answer_bench.sh [ROWS [BLOCKS [REPEATS]]]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
rows=${1:-300000}
blocks=${2:-2000000}
repeats=${3:-3}
bench_build bench/keep_live tools/alloctrace
alloctrace="$build/tools/alloctrace"
keep_live="$build/bench/keep_live"
for tool in sqlite3 python3 heaptrack heaptrack_print; do
  command -v "$tool" >/dev/null || { echo "answer_bench: $tool not found" >&2; exit 1; }
done
sqlite=$(command -v sqlite3)
sqlite_workload "$rows"

lap() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.4f\n", b - a}'; }

# The workload's command line, by name.
workload() {
  case $1 in
    sqlite3) rm -rf "$out/db" && mkdir "$out/db" && echo "$sqlite $out/db/test.db" ;;
    keep_live) echo "$keep_live $blocks 32" ;;
  esac
}

# One record and one report of workload $1 by tool $2; appends the two
# times to $out/$1.$2.record and .report.
run_once() {
  local w=$1 tool=$2 t0 t1 t2 cmd
  cmd=$(workload "$w")
  rm -f "$out/trace.db" "$out"/ht.*
  t0=$(now)
  if [ "$tool" = alloctrace ]; then
    # shellcheck disable=SC2086
    "$alloctrace" run -q -o "$out/trace.db" --force -- $cmd <"$out/workload.sql" >/dev/null
    t1=$(now)
    "$alloctrace" report "$out/trace.db" >"$out/report.txt"
  else
    # shellcheck disable=SC2086
    heaptrack -o "$out/ht" $cmd <"$out/workload.sql" >/dev/null 2>&1
    t1=$(now)
    heaptrack_print "$out/ht.zst" >"$out/report.txt" 2>/dev/null
  fi
  t2=$(now)
  [ -s "$out/report.txt" ] || { echo "answer_bench: $tool gave no report for $w" >&2; exit 1; }
  lap "$t0" "$t1" >>"$out/$w.$tool.record"
  lap "$t1" "$t2" >>"$out/$w.$tool.report"
  lap "$t0" "$t2" >>"$out/$w.$tool.total"
}

echo "time to an answer: record + report, median of $repeats (alternating);"
echo "sqlite3 with $rows rows, keep_live with $blocks blocks"
for w in sqlite3 keep_live; do
  for i in $(seq "$repeats"); do
    for tool in alloctrace heaptrack; do
      run_once "$w" "$tool"
    done
  done
  for tool in alloctrace heaptrack; do
    printf '%-9s %-10s record %7.3f s  report %7.3f s  total %7.3f s\n' "$w" "$tool" \
      "$(median <"$out/$w.$tool.record")" "$(median <"$out/$w.$tool.report")" \
      "$(median <"$out/$w.$tool.total")"
  done
  awk -v a="$(median <"$out/$w.alloctrace.total")" -v h="$(median <"$out/$w.heaptrack.total")" \
    -v w="$w" 'BEGIN {printf "%-9s alloctrace/heaptrack, total: %.2f\n", w, a / h}'
done
