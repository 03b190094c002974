#!/usr/bin/env bash
# The untraced cost of the pool annotations (docs/pools.md): bench/pool_cost.c
# built with and without the macros of <alloctrace/annotate.h> (gcc -O2, PIE),
# run alternately, CPU ns per alloc+free pair, medians; then the annotated
# build under `alloctrace run` (build-pools or the build named), for scale.
# Run on purpose; never part of the tests.
#
#   bench/pool_cost.sh [PAIRS [REPEATS [BUILD_DIR]]]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pairs=${1:-1000000}
repeats=${2:-9}
build=${3:-$here/build-pools}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cc=${CC:-gcc}
$cc -O2 -fPIE -pie -o "$out/plain" "$here/bench/pool_cost.c"
$cc -O2 -fPIE -pie -DANNOTATE -I "$here/lib/include" -o "$out/annotated" "$here/bench/pool_cost.c"
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
field() { sed -n 's/.*ns_per_pair=\([^ ]*\).*/\1/p'; }
for _ in $(seq "$repeats"); do
  "$out/plain" "$pairs" | field >>"$out/plain.ns"
  "$out/annotated" "$pairs" | field >>"$out/annotated.ns"
done
p=$(median <"$out/plain.ns")
a=$(median <"$out/annotated.ns")
echo "untraced, $pairs pairs, median of $repeats ($cc -O2 PIE):"
echo "  without the macros  $p ns/pair  (all: $(tr '\n' ' ' <"$out/plain.ns"))"
echo "  with the macros     $a ns/pair  (all: $(tr '\n' ' ' <"$out/annotated.ns"))"
echo "  added               $(echo "$a - $p" | bc -l | xargs printf '%.2f') ns/pair"
if [ -x "$build/tools/alloctrace" ]; then
  n=$((pairs / 10))
  t=$("$build/tools/alloctrace" run -o "$out/t.db" -- "$out/annotated" "$n" 2>/dev/null | field)
  echo "traced (alloctrace run, $n pairs, once): $t ns/pair"
fi
