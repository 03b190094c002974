#!/usr/bin/env bash
# alloctrace against heaptrack on the six workloads of issue 16: Debian's
# sqlite3 building and indexing ROWS rows, python3 building and dumping a
# list of dicts, a malloc/free loop on one thread and on two (PAIRS pairs
# each, bench/churn), clang++ -fsyntax-only of bench/stl_heavy.cc, and
# BLOCKS blocks live at once (bench/keep_live).  Each workload runs
# untraced, under `alloctrace run` and under heaptrack, the three
# alternating, REPEATS rounds timed without sampling memory, then one
# round that samples the peak memory of the whole process tree (Pss,
# bench/treemem.py: its sampling slows the runs); prints medians of the
# wall time, the peaks, and the ratios alloctrace/heaptrack.  Run on purpose; never part of the tests.
#
#   bench/peers_bench.sh [REPEATS [ROWS [PAIRS [BLOCKS [WORKLOADS...]]]]]
#
# WORKLOADS: any of sqlite3 python3 churn1 churn2 clang keep_live (all by
# default).  ALLOCTRACE_ARGS adds arguments to `alloctrace run`
# (--aggregate, say).  BASE=DIR, a build directory of another commit (its
# tools/alloctrace), adds that build to the alternation, and its ratio to
# heaptrack's.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
repeats=${1:-3}
rows=${2:-300000}
pairs=${3:-2000000}
blocks=${4:-2000000}
shift $(($# < 4 ? $# : 4))
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(sqlite3 python3 churn1 churn2 clang keep_live)
bench_build bench/keep_live bench/churn tools/alloctrace
for tool in sqlite3 python3 clang++ heaptrack; do
  command -v "$tool" >/dev/null || { echo "peers_bench: $tool not found" >&2; exit 1; }
done
alloctrace="$build/tools/alloctrace"
base=${BASE:+$(cd "$BASE" && pwd)/tools/alloctrace}
tools=(untraced alloctrace ${base:+base} heaptrack)
sqlite_workload "$rows"
read -r -a extra <<<"${ALLOCTRACE_ARGS:-}"
cat >"$out/work.py" <<'PY'
import json
d = [{"k%d" % i: [i, str(i)] * 3} for i in range(300000)]
assert len(json.loads(json.dumps(d))) == 300000
PY

# The workload's command line, by name (sqlite3 reads $out/workload.sql).
workload() {
  case $1 in
    sqlite3) echo "$(command -v sqlite3) $out/db/test.db" ;;
    python3) echo "python3 $out/work.py" ;;
    churn1) echo "$build/bench/churn 1 $pairs" ;;
    churn2) echo "$build/bench/churn 2 $pairs" ;;
    clang) echo "$(command -v clang++) -std=c++17 -fsyntax-only $here/bench/stl_heavy.cc" ;;
    keep_live) echo "$build/bench/keep_live $blocks 32" ;;
  esac
}

# run_once WORKLOAD TOOL [--time-only]: appends "WALL KIB" to
# $out/WORKLOAD.TOOL (timed) or $out/WORKLOAD.TOOL.mem (sampled)
run_once() {
  local w=$1 tool=$2 mode=${3:-} cmd
  read -r -a cmd <<<"$(workload "$w")"
  rm -rf "$out/db" "$out/trace.db" "$out"/ht.* && mkdir "$out/db"
  case $tool in
    untraced) set -- "${cmd[@]}" ;;
    alloctrace) set -- "$alloctrace" run -q "${extra[@]}" -o "$out/trace.db" -- "${cmd[@]}" ;;
    base) set -- "$base" run -q "${extra[@]}" -o "$out/trace.db" -- "${cmd[@]}" ;;
    heaptrack) set -- heaptrack -o "$out/ht" "${cmd[@]}" ;;
  esac
  local to="$out/$w.$tool.mem"
  [ -n "$mode" ] && to="$out/$w.$tool"
  python3 "$here/bench/treemem.py" $mode "$to" "$@" <"$out/workload.sql" >/dev/null 2>"$out/err" ||
    { cat "$out/err" >&2; exit 1; }
}

echo "alloctrace $(git -C "$here" describe --always --dirty) ${extra[*]} against heaptrack${base:+ (base: $BASE)}; medians of $repeats"
printf '%-10s %9s %9s %9s %7s   %9s %9s %9s %7s\n' workload untraced alloctr. heaptrack ratio \
  'MiB:untr' alloctr. heaptrack ratio
for w in "${workloads[@]}"; do
  for _ in $(seq "$repeats"); do
    for tool in "${tools[@]}"; do run_once "$w" "$tool" --time-only; done
  done
  for tool in "${tools[@]}"; do run_once "$w" "$tool"; done
  col() { if [ "$1" = 1 ]; then cut -d' ' -f1 "$out/$w.$2"; else cut -d' ' -f2 "$out/$w.$2.mem"; fi | median; }
  awk -v w="$w" -v u="$(col 1 untraced)" -v a="$(col 1 alloctrace)" -v h="$(col 1 heaptrack)" \
    -v um="$(col 2 untraced)" -v am="$(col 2 alloctrace)" -v hm="$(col 2 heaptrack)" 'BEGIN {
      printf "%-10s %8.3fs %8.3fs %8.3fs %7.2f   %9.1f %9.1f %9.1f %7.2f\n",
        w, u, a, h, a / h, um / 1024, am / 1024, hm / 1024, am / hm }'
  if [ -n "$base" ]; then
    awk -v w="$w" -v b="$(col 1 base)" -v h="$(col 1 heaptrack)" -v bm="$(col 2 base)" \
      -v hm="$(col 2 heaptrack)" 'BEGIN {
        printf "%-10s %9s %8.3fs %9s %7.2f   %9s %9.1f %9s %7.2f\n",
          "  base", "", b, "", b / h, "", bm / 1024, "", bm / hm }'
  fi
done
