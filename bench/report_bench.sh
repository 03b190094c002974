#!/usr/bin/env bash
# How long `alloctrace report` takes on a trace of ten million allocations
# (about 4000 allocation sites, ten thousand leaked blocks over most of
# them, a hundred layout mismatches), made by bench/trace_gen through the
# public API.  Prints the trace's size and the time of each command, the
# median of REPEATS runs with the trace in the page cache.  Run on purpose;
# never part of the tests.
#
#   bench/report_bench.sh [ALLOCATIONS [REPEATS]]
#
# BUILD (default build-bench, a release build) is the build directory;
# TRACE (default a temporary file) keeps the trace between runs: an
# existing TRACE is reused, not made again.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
allocations=${1:-10000000}
repeats=${2:-3}
if [ -n "${BUILD:-}" ]; then
  build=$BUILD
else
  bench_build
fi
trace=${TRACE:-$out/bench.db}

TIMEFORMAT=%R
if [ ! -f "$trace" ]; then
  made=$( { time "$build/bench/trace_gen" "$trace" "$allocations" >/dev/null; } 2>&1 )
  echo "trace: made in $made s"
fi
rows=$(sqlite3 "$trace" 'SELECT count(*) FROM lifetimes')
sites=$(sqlite3 "$trace" 'SELECT count(*) FROM leak_sites')
echo "trace: $trace, $(du -m "$trace" | cut -f1) MiB, $rows lifetimes, $sites leak stacks"
cat "$trace" >/dev/null # into the page cache: the figures are the tool's, not the disk's

time_it() { # label, command...
  local label=$1; shift
  : >"$out/times"
  for _ in $(seq "$repeats"); do
    # check exits 1 on this trace (it leaks): that is its answer, not an error.
    { time "$@" >/dev/null 2>&1 || [ $? -eq 1 ]; } 2>>"$out/times"
  done
  printf '%-40s %6.2f s (median of %d)\n' "$label" "$(median <"$out/times")" "$repeats"
}
a="$build/tools/alloctrace"
time_it "alloctrace report (text)" "$a" report "$trace"
time_it "alloctrace report --format json" "$a" report "$trace" --format json
time_it "alloctrace report --format sarif" "$a" report "$trace" --format sarif
time_it "alloctrace check" "$a" check "$trace"
