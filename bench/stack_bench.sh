#!/usr/bin/env bash
# How big a trace is and how long `alloctrace run`, `report` and `html`
# take, for this build and another side by side, the two alternating, on
# two programs with many distinct deep stacks: clang++ -fsyntax-only of
# bench/stl_heavy.cc and the sqlite3 workload (common.sh).  Medians of
# REPEATS runs; the size of the stack tables (dbstat) of the last run.
# Run on purpose; never part of the tests.
#
#   bench/stack_bench.sh BASE [REPEATS [ROWS]]
#
# BASE is a revision, checked out into a scratch worktree and built there
# (release, no tests), or the directory of a build of another tree (its
# tools/alloctrace is used).  This tree's build is build-bench.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
base=${1:?usage: bench/stack_bench.sh BASE [REPEATS [ROWS]]}
repeats=${2:-3}
rows=${3:-100000}
bench_build tools/alloctrace lib/liballoctrace_preload.so

if [ -x "$base/tools/alloctrace" ]; then
  base_at=$(cd "$base" && pwd)/tools/alloctrace
else
  base_build "$base"
  base_at="$base_tree/build-bench/tools/alloctrace"
fi
this_at="$build/tools/alloctrace"
sqlite_workload "$rows"
sqlite=$(command -v sqlite3)
clang=$(command -v clang++)

# elapsed SIDE WHAT COMMAND...: appends COMMAND's wall time to $out/SIDE.WHAT
elapsed() {
  local file="$out/$1.$2" t0 t1
  shift 2
  t0=$(now)
  "$@" >/dev/null 2>&1
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f\n", b - a}' >>"$file"
}

# one_run SIDE PROGRAM: a trace of PROGRAM, then report and html on it
one_run() {
  local side=$1 prog=$2 at trace="$out/$1.$2.db"
  at=$([ "$side" = base ] && echo "$base_at" || echo "$this_at")
  rm -rf "$out/db" "$trace" "$out/page.html" && mkdir "$out/db"
  case $prog in
    clang) elapsed "$side" "$prog.run" "$at" run -q -o "$trace" -- \
             "$clang" -std=c++17 -fsyntax-only "$here/bench/stl_heavy.cc" ;;
    sqlite) elapsed "$side" "$prog.run" sh -c '"$1" run -q -o "$2" -- "$3" "$4" <"$5"' _ \
              "$at" "$trace" "$sqlite" "$out/db/test.db" "$out/workload.sql" ;;
  esac
  stat -c %s "$trace" >>"$out/$side.$prog.size"
  elapsed "$side" "$prog.report" "$at" report "$trace"
  elapsed "$side" "$prog.html" "$at" html "$trace" -o "$out/page.html"
}

for prog in clang sqlite; do
  for _ in $(seq "$repeats"); do
    one_run base "$prog"
    one_run this "$prog"
  done
done

printf '%-8s %-8s %12s %12s\n' program measure base this
for prog in clang sqlite; do
  for what in size run report html; do
    b=$(median <"$out/base.$prog.$what")
    t=$(median <"$out/this.$prog.$what")
    printf '%-8s %-8s %12s %12s\n' "$prog" "$what" "$b" "$t"
  done
done
for side in base this; do
  echo "$side, clang: rows and bytes of the stack tables"
  "$sqlite" "$out/$side.clang.db" "SELECT name, sum(pgsize) FROM dbstat GROUP BY name
    ORDER BY 2 DESC LIMIT 6" | sed 's/^/  /'
  "$sqlite" "$out/$side.clang.db" "SELECT 'stacks', count(*) FROM stacks" | sed 's/^/  /'
  "$sqlite" "$out/$side.clang.db" "SELECT 'stack_nodes', count(*) FROM stack_nodes" 2>/dev/null |
    sed 's/^/  /' || true
done
