#!/usr/bin/env python3
"""Rust names in traces: a Rust program (rust_prog.rs) built here by
rustc with the legacy and the v0 symbol manglings, run under `alloctrace
run`; the leaked Box's stack names the Rust functions demangled, without
their hash.  rustc is required: without it this test fails.

    rust_test.py ALLOCTRACE RUST_PROG_RS WORKDIR
"""
import os
import re
import shutil
import sqlite3
import subprocess
import sys

from tap import check, finish

alloctrace, source, workdir = (os.path.abspath(a) for a in sys.argv[1:4])
work = os.path.join(workdir, "rust-%d" % os.getpid())
os.makedirs(work, exist_ok=True)

rustc = shutil.which("rustc")
check(rustc is not None, "rustc is installed (scripts/setup.sh installs it)")
if rustc is None:
    finish()

# A hash as legacy mangling appends it, or a mangled name left as it was.
raw = re.compile(r"::h[0-9a-f]{16}\b|\b_R[A-Za-z0-9_]|\b_ZN")

for mangling in ("legacy", "v0"):
    exe = os.path.join(work, "rust_prog_" + mangling)
    # Legacy is the default; naming it needs -Z unstable-options.
    flags = ["-C", "symbol-mangling-version=v0"] if mangling == "v0" else []
    b = subprocess.run([rustc, "-C", "opt-level=0", "-g", *flags,
                        "--crate-name", "rust_prog", "-o", exe, source],
                       capture_output=True, text=True, timeout=300)
    if not check(b.returncode == 0, "%s: rustc builds the program" % mangling, b.stderr):
        continue
    nm = subprocess.run(["nm", exe], capture_output=True, text=True, check=True).stdout
    prefix = "_RNv" if mangling == "v0" else "_ZN9rust_prog8leak_box17h"
    check(prefix in nm, "%s: the symbols are mangled that way" % mangling)

    trace = os.path.join(work, mangling + ".db")
    r = subprocess.run([alloctrace, "run", "-o", trace, "--force", "--", exe],
                       capture_output=True, text=True, cwd=work, timeout=120)
    check(r.returncode == 0 and r.stdout == "leaked 7\n", "%s: the program runs" % mangling,
          r.stderr)
    db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
    rows = db.execute("SELECT s.text FROM leaks l JOIN stack_text s ON s.stack = l.stack"
                      " WHERE l.size = 512").fetchall()
    check(len(rows) == 1, "%s: the 512-byte Box leaks" % mangling, rows)
    text = rows[0][0] if rows else ""
    check("rust_prog::leak_box <- rust_prog::main" in text,
          "%s: its stack names rust_prog::leak_box, then rust_prog::main" % mangling, text)
    check(not raw.search(text), "%s: no hash and no mangled name in the stack" % mangling, text)
    # Its line may be that of code of the standard library inlined there.
    fn = db.execute("SELECT function FROM frames WHERE function LIKE '%leak_box%'").fetchall()
    check(fn == [("rust_prog::leak_box",)], "%s: one frame, rust_prog::leak_box" % mangling, fn)
    rep = subprocess.run([alloctrace, "report", trace], capture_output=True, text=True, timeout=120)
    check(rep.returncode == 0 and "rust_prog::leak_box" in rep.stdout and not raw.search(rep.stdout),
          "%s: the text report names it the same way" % mangling, rep.stdout[-2000:])
    db.close()

finish()
