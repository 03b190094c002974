#!/bin/sh
# 100 trials (or $1) of SIGKILL of `alloctrace run` at a random moment while
# tests/recorder_prog leaks from 4 threads, each followed by `alloctrace
# recover TRACE`: every trial's trace must hold every leak with its stack
# (tests/recorder_test.py, whose suite runs 8).  BUILD: the build dir.
#     bench/recorder_kill.sh [TRIALS] [BUILD]
set -e
trials=${1:-100}
build=${2:-build}
cd "$(dirname "$0")/.."
ninja -C "$build" tools/alloctrace tests/recorder_prog lib/liballoctrace_preload.so >/dev/null
PYTHONPATH=tests exec python3 tests/recorder_test.py "$build/tools/alloctrace" \
    "$build/tests/recorder_prog" "$build/tests" "$trials"
