#!/usr/bin/env bash
# The Rust crate's cost, side by side in one run: a BTreeMap/Vec-heavy Rust
# program (bench/rust/workload.rs, built --release by cargo, offline) run
#   untraced        the default allocator, no tracing;
#   crate           alloctrace::Traced<System>, its own trace (exact layouts);
#   alloctrace run  the untraced build under the preload library (no layouts
#                   on release);
#   heaptrack       the untraced build under heaptrack (if installed);
# the modes alternating, REPEATS times; medians of wall and CPU (user +
# system, children included) seconds, and each against untraced.  Run on
# purpose; never part of the tests.
#
#   bench/rust_bench.sh [N [REPEATS]]     (N: workload iterations)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
n=${1:-300000}
repeats=${2:-5}
bench_build
command -v cargo >/dev/null || { echo "rust_bench: cargo is needed (scripts/setup.sh installs it)" >&2; exit 1; }

# The two programs, in the scratch directory (Cargo.lock and target too).
cat >"$out/Cargo.toml" <<TOML
[package]
name = "rust_bench"
version = "0.1.0"
edition = "2021"

[dependencies]
alloctrace = { path = "$here/bindings/rust" }

[[bin]]
name = "plain"
path = "$here/bench/rust/plain.rs"

[[bin]]
name = "traced"
path = "$here/bench/rust/traced.rs"

[profile.release]
debug = 1
TOML
(cd "$out" && CARGO_HOME="$out/cargo-home" CARGO_TARGET_DIR="$out/target" \
   ALLOCTRACE_LIB_DIR="$build/lib" cargo build --offline --release -q)
plain="$out/target/release/plain"
traced="$out/target/release/traced"
export LD_LIBRARY_PATH="$build/lib"

modes=(untraced crate run)
heaptrack=$(command -v heaptrack || true)
[ -n "$heaptrack" ] && modes+=(heaptrack)

# One run of mode $1: "WALL CPU" seconds appended to $out/$1.times.
run_once() {
  local mode=$1 cmd
  rm -f "$out"/t.db "$out"/heaptrack.*
  case $mode in
    untraced) cmd=("$plain" "$n") ;;
    crate) cmd=(env ALLOCTRACE_OUTPUT="$out/t.db" "$traced" "$n") ;;
    run) cmd=("$build/tools/alloctrace" run -q -o "$out/t.db" -- "$plain" "$n") ;;
    heaptrack) cmd=("$heaptrack" -o "$out/heaptrack" "$plain" "$n") ;;
  esac
  # bash's `times`-free way: GNU time's wall, user and system seconds.
  /usr/bin/time -f '%e %U %S' -o "$out/time" "${cmd[@]}" >/dev/null 2>"$out/stderr" ||
    { cat "$out/stderr" >&2; exit 1; }
  awk '{printf "%s %.2f\n", $1, $2 + $3}' "$out/time" >>"$out/$mode.times"
}

echo "rust_bench: $n iterations, median of $repeats (modes alternating); $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
for _ in $(seq "$repeats"); do
  for m in "${modes[@]}"; do run_once "$m"; done
done
w0=$(cut -d' ' -f1 <"$out/untraced.times" | median)
c0=$(cut -d' ' -f2 <"$out/untraced.times" | median)
printf '%-15s %9s %9s %9s %9s\n' mode wall_s cpu_s wall_x cpu_x
for m in "${modes[@]}"; do
  w=$(cut -d' ' -f1 <"$out/$m.times" | median)
  c=$(cut -d' ' -f2 <"$out/$m.times" | median)
  awk -v m="$m" -v w="$w" -v c="$c" -v w0="$w0" -v c0="$c0" \
    'BEGIN { printf "%-15s %9.2f %9.2f %9.1f %9.1f\n", m, w, c, w / w0, (c0 > 0 ? c / c0 : 0) }'
done
