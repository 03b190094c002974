#!/usr/bin/env python3
"""The Rust crate (bindings/rust): two programs built here with
`cargo build --offline` over the crate (tests/rust_crate/: system.rs
decorates std's System, pool.rs a bump allocator of its own), run with a
trace of their own and, system.rs, under `alloctrace run`; the traces hold
the exact layouts: a #[repr(align(64))] Box has align 64, Vec growth is
reallocs passing the old layout, a Vec rebuilt with the wrong capacity is a
layout_mismatch with both sizes and both stacks (and the bump allocator
gets the block's own layout), Box::leak and mem::forget are leaks at their
lines, four threads' live_since_this_thread counts are exact, Rust's
runtime block is set aside, and under `alloctrace run` one trace holds each
allocation once.  The build script's error names what it looked for.
cargo is required: without it this test fails.

    rust_crate_test.py ALLOCTRACE SOURCE_ROOT BUILD_ROOT WORKDIR
"""
import glob
import os
import re
import shutil
import sqlite3
import subprocess
import sys

from tap import check, finish

alloctrace, root, build_root, workdir = (os.path.abspath(a) for a in sys.argv[1:5])
libdir = os.path.join(build_root, "lib")
work = os.path.join(workdir, "rust-crate-%d" % os.getpid())
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
src = os.path.join(root, "tests", "rust_crate")

cargo = shutil.which("cargo")
check(cargo is not None, "cargo is installed (scripts/setup.sh installs it)")
if cargo is None:
    finish()

marks = {}
for n, text in enumerate(open(os.path.join(src, "common.rs")), 1):
    m = re.search(r"// MARK: (\w+)", text)
    if m:
        marks[m.group(1)] = n

with open(os.path.join(work, "Cargo.toml"), "w") as f:
    f.write("""[package]
name = "rust_crate_test"
version = "0.1.0"
edition = "2021"

[dependencies]
alloctrace = {{ path = "{crate}" }}

[[bin]]
name = "traced_system"
path = "{src}/system.rs"

[[bin]]
name = "traced_pool"
path = "{src}/pool.rs"

[[bin]]
name = "word_count"
path = "{example}"
""".format(crate=os.path.join(root, "bindings", "rust"), src=src,
           example=os.path.join(root, "examples", "rust", "word_count.rs")))

base_env = dict(os.environ, CARGO_HOME=os.path.join(work, "cargo-home"))
base_env.pop("ALLOCTRACE_LIB_DIR", None)
base_env.pop("RUSTFLAGS", None)


def cargo_build(target, extra, what):
    env = dict(base_env, CARGO_TARGET_DIR=os.path.join(work, target), **extra)
    r = subprocess.run([cargo, "build", "--offline", "--bin", what], cwd=work, env=env,
                       capture_output=True, text=True, timeout=600)
    return r


# The build script: nothing found, then each way of finding the library.
r = cargo_build("t-none", {"ALLOCTRACE_LIB_DIR": os.path.join(work, "nowhere")}, "traced_system")
check(r.returncode != 0 and "neither " + os.path.join(work, "nowhere", "liballoctrace.so") in r.stderr
      and "liballoctrace.a" in r.stderr,
      "a wrong ALLOCTRACE_LIB_DIR fails, naming the files it looked for", r.stderr[-1500:])
r = cargo_build("t-none", {"PKG_CONFIG_PATH": os.path.join(work, "nowhere"),
                           "PKG_CONFIG_LIBDIR": os.path.join(work, "nowhere")}, "traced_system")
check(r.returncode != 0 and "ALLOCTRACE_LIB_DIR is not set" in r.stderr
      and "pkg-config --libs alloctrace" in r.stderr,
      "no ALLOCTRACE_LIB_DIR and no pkg-config file fails, naming both", r.stderr[-1500:])
r = cargo_build("t", {"ALLOCTRACE_LIB_DIR": libdir}, "traced_system")
check(r.returncode == 0, "cargo build --offline with ALLOCTRACE_LIB_DIR", r.stderr[-3000:])
r = cargo_build("t", {"PKG_CONFIG_PATH": os.path.join(build_root, "meson-uninstalled")},
                "traced_pool")
check(r.returncode == 0, "cargo build --offline through pkg-config (meson's uninstalled .pc)",
      r.stderr[-3000:])
r = cargo_build("t", {"ALLOCTRACE_LIB_DIR": libdir}, "word_count")
check(r.returncode == 0, "the example, examples/rust/word_count.rs, builds", r.stderr[-3000:])
system_exe = os.path.join(work, "t", "debug", "traced_system")
pool_exe = os.path.join(work, "t", "debug", "traced_pool")

run_env = dict(os.environ, LD_LIBRARY_PATH=libdir)
for k in list(run_env):
    if k.startswith("ALLOCTRACE_"):
        del run_env[k]

EXPECTED = ["aligned 1", "grow 100", "mismatch 5", "leak_box 7"] + \
    ["thread %d live 101 5600 after 0 0" % i for i in range(4)] + ["main live 1 24 after 0 0"]


def has_line(db, stack, name, function):
    """Whether `stack` has common.rs's MARK line `name` in `function`."""
    return db.execute("SELECT count(*) FROM stack_lines WHERE stack = ? AND file LIKE '%common.rs'"
                      " AND line = ? AND function LIKE ?",
                      (stack, marks[name], "%" + function)).fetchone()[0] > 0


raw = re.compile(r"::h[0-9a-f]{16}\b|\b_R[A-Za-z0-9_]|\b_ZN")


def check_trace(path, what):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    q = lambda sql, *a: db.execute(sql, a).fetchall()
    check(q("SELECT value FROM meta WHERE key = 'finished'") == [(1,)] or
          q("SELECT value FROM meta WHERE key = 'finished'") == [("1",)],
          "%s: the trace is complete" % what)
    al = q("SELECT alloc_stack, free_size, free_align FROM allocations"
           " WHERE size = 128 AND align = 64 AND family = 'allocator'")
    check(len(al) == 1 and has_line(db, al[0][0], "aligned", "common::aligned")
          and al[0][1:] == (128, 64),
          "%s: the #[repr(align(64))] Box: one block (128, 64) at its line, released as (128, 64)"
          % what, al)
    grow = q("SELECT size, align, alloc_op, free_op, free_size, free_align, alloc_stack"
             " FROM allocations WHERE family = 'allocator' AND align = 8 AND size IN"
             " (32, 64, 128, 256, 512, 1024) ORDER BY alloc_seq")
    grow = [g for g in grow if has_line(db, g[6], "grow", "common::grow")]
    check([g[:6] for g in grow] ==
          [(32, 8, "alloc", "realloc", 32, 8)] +
          [(s, 8, "realloc", "realloc", s, 8) for s in (64, 128, 256, 512)] +
          [(1024, 8, "realloc", "dealloc", 1024, 8)],
          "%s: Vec growth: 32 bytes, then reallocs to 64..1024, each passing the old layout" % what,
          [g[:6] for g in grow])
    f = q("SELECT kind, release_size, release_align, alloc_size, alloc_align, alloc_stack,"
          " release_stack FROM findings")
    check(len(f) == 1 and f[0][:5] == ("layout_mismatch", 64, 4, 40, 4),
          "%s: one finding, layout_mismatch released as (64, 4), allocated as (40, 4)" % what, f)
    if f:
        check(has_line(db, f[0][5], "mismatch_alloc", "common::wrong_layout"),
              "%s: its allocation stack is at Vec::with_capacity's line" % what)
        check(has_line(db, f[0][6], "mismatch_release", "common::wrong_layout"),
              "%s: its release stack is at drop(w)'s line" % what)
    lk = q("SELECT size, align, stack FROM leaks ORDER BY size")
    check([x[:2] for x in lk] == [(300, 1), (500, 2)], "%s: two leaks, (300, 1) and (500, 2)" % what,
          lk)
    if len(lk) == 2:
        check(has_line(db, lk[0][2], "leak_box", "common::leak_box"),
              "%s: the Box::leak is at its line" % what)
        check(has_line(db, lk[1][2], "forget_vec", "common::forget_vec"),
              "%s: the mem::forget Vec is at its line" % what)
        text = q("SELECT text FROM stack_text WHERE stack IN (?, ?)", lk[0][2], lk[1][2])
        check(len(text) == 2 and not any(raw.search(t[0]) for t in text),
              "%s: the leaks' stacks have no hash and no mangled name" % what, text)
    # Which blocks std keeps depends on its version (1.63's: none of
    # ours; newer ones: the main thread's stack-guard record): every block
    # live at the end besides the two leaks must be set aside as Rust's.
    rt = q("SELECT count(*) FROM runtime_blocks WHERE reason LIKE 'Rust runtime (std::%'")[0][0]
    live = q("SELECT count(*) FROM allocations WHERE family = 'allocator' AND free_seq IS NULL")[0][0]
    check(live == 2 + rt, "%s: every block live at the end but the leaks is Rust's runtime's (%d)"
          % (what, rt), q("SELECT size, reason FROM runtime_blocks"))
    th = q("SELECT count(*), count(DISTINCT alloc_thread) FROM allocations"
           " WHERE size = 48 AND align = 1 AND family = 'allocator'")
    check(th == [(400, 4)], "%s: 400 blocks of 48 bytes from four threads" % what, th)
    check(q("SELECT count(*) FROM marks WHERE label = 'main'") == [(1,)],
          "%s: the labelled mark is in the marks table" % what)
    # The bump allocator's own table points to its leaks: still reachable.
    rep = subprocess.run([alloctrace, "report", "--show-reachable", path], capture_output=True, text=True, timeout=120)
    check("common.rs:%d" % marks["leak_box"] in rep.stdout and
          "common.rs:%d" % marks["forget_vec"] in rep.stdout and
          "released as (64, 4), allocated as (40, 4)" in rep.stdout,
          "%s: the report shows both leaks' lines and the mismatch" % what,
          "rc %d: %s %s" % (rep.returncode, rep.stdout[-3000:], rep.stderr[-1000:]))
    n = q("SELECT count(*) FROM allocations WHERE family = 'allocator'")[0][0]
    db.close()
    return n


def run(cmd, env, what):
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=work, env=env, timeout=300)
    lines = r.stdout.splitlines()
    check(r.returncode == 0 and lines[:len(EXPECTED)] == EXPECTED,
          "%s: runs, and live_since counts exactly on each thread and on all" % what,
          r.stdout + r.stderr[-2000:])
    return lines


# A trace of its own, over System.
own = os.path.join(work, "own.db")
lines = run([system_exe], dict(run_env, ALLOCTRACE_OUTPUT=own), "System")
check("traced true preloaded false" in lines, "System: traced by its own tracer", lines)
own_n = check_trace(own, "System")

# Over an allocator of the test's own.
pool = os.path.join(work, "pool.db")
lines = run([pool_exe], dict(run_env, ALLOCTRACE_OUTPUT=pool), "pool")
check(any(re.fullmatch(r"pool mismatches 0 unknown 0 blocks \d+", x) for x in lines),
      "pool: the inner allocator got every block's own layout back, and no pointer it never gave",
      lines)
check_trace(pool, "pool")

# The default name, as `alloctrace run` names traces.
d = os.path.join(work, "default")
os.makedirs(d)
r = subprocess.run([system_exe], capture_output=True, text=True, cwd=d, env=run_env, timeout=300)
names = os.listdir(d)
check(r.returncode == 0 and len(names) == 1 and
      re.fullmatch(r"alloctrace\.traced_system\.\d+\.db", names[0]) is not None,
      "without ALLOCTRACE_OUTPUT: alloctrace.traced_system.PID.db", names)

# The example: counting leaves the table live, dropping it frees it all.
r = subprocess.run([os.path.join(work, "t", "debug", "word_count"), os.path.join(src, "common.rs")],
                   capture_output=True, text=True, cwd=work,
                   env=dict(run_env, ALLOCTRACE_OUTPUT=os.path.join(work, "wc.db")), timeout=300)
m = re.search(r"^(\d+) distinct words; (\d+) blocks .*\nafter drop: 0 blocks live", r.stdout, re.S | re.M)
check(r.returncode == 0 and m is not None and int(m.group(2)) > int(m.group(1)),
      "the example runs: more blocks live than words after counting, none after the drop",
      r.stdout + r.stderr[-1000:])

# Under `alloctrace run`: the preload library's tracer, one trace.
d = os.path.join(work, "run")
os.makedirs(d)
r = subprocess.run([alloctrace, "run", "-o", "run.db", "--", system_exe], capture_output=True,
                   text=True, cwd=d, env=run_env, timeout=300)
lines = r.stdout.splitlines()
check(r.returncode == 0 and lines[:len(EXPECTED)] == EXPECTED and
      "traced true preloaded true" in lines,
      "alloctrace run: runs, traced through the preload library", r.stdout + r.stderr[-2000:])
names = sorted(os.listdir(d))
check(names == ["run.db"], "alloctrace run: one trace, nothing else", names)
run_db = os.path.join(d, "run.db")
if os.path.exists(run_db):
    run_n = check_trace(run_db, "alloctrace run")
    check(run_n == own_n, "alloctrace run: as many allocator-family records as the crate's own trace",
          (run_n, own_n))
    db = sqlite3.connect("file:%s?mode=ro" % run_db, uri=True)
    dup = db.execute("SELECT count(*) FROM allocations a WHERE family = 'malloc' AND EXISTS ("
                     " SELECT 1 FROM stack_lines s WHERE s.stack = a.alloc_stack AND"
                     " (s.function GLOB '*__rust_alloc*' OR s.function GLOB '*__rust_realloc*'"
                     "  OR s.function GLOB '*alloctrace::Traced*'))").fetchone()[0]
    check(dup == 0, "alloctrace run: no malloc record of a block the crate recorded", dup)
    db.close()

finish()
