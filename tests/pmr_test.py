#!/usr/bin/env python3
"""alloctrace::pmr::traced_resource, read back from its traces.

tests/pmr_test.cc runs std::pmr::vector, string and map over
traced_resource over a counting resource over each upstream kind
(new_delete_resource, monotonic_buffer_resource,
unsynchronized_pool_resource, synchronized_pool_resource with four
threads), plants a wrong-size, a wrong-alignment, a double and an unknown
deallocate and a leak, and prints what the upstream saw.  Here: the
program's own checks passed (the upstream never saw a wrong layout or a
pointer it did not hand out); the trace (sqlite3) holds every upstream
allocation with its exact layout (0 bytes as 0, where the upstream was
asked for 1), the findings with both layouts and both stacks at the planted
lines (the first release's stack too for the double deallocate), the leak
at its line; `alloctrace check --format json` says the same.

    pmr_test.py ALLOCTRACE PMR_TEST WORKDIR
"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys

from tap import check, finish

alloctrace, prog, workdir = (os.path.abspath(a) for a in sys.argv[1:4])
work = os.path.join(workdir, "pmr-%d" % os.getpid())
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)

SRC = "pmr_test.cc"


def frames_text(db, stack):
    """The stack's lines as `function file:line` strings, innermost first."""
    rows = db.execute("SELECT function, file, line FROM stack_lines WHERE stack = ? "
                      "ORDER BY level", (stack,)).fetchall()
    return ["%s %s:%s" % (f, os.path.basename(fl or "?"), ln) for f, fl, ln in rows]


def at_line(frames, function, line):
    """Some frame is `function` (a substring of its name) in pmr_test.cc at `line`."""
    want = "%s:%d" % (SRC, line)
    return any(function in f and f.endswith(want) for f in frames)


def json_frames_at(frames, function, line):
    return any(function in (f.get("function") or "") and (f.get("file") or "").endswith(SRC)
               and f.get("line") == line for f in frames or [])


def trace_checks(kind, trace, out):
    L = out["lines"]
    db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
    meta = {k: str(v) for k, v in db.execute("SELECT key, value FROM meta")}
    check(meta.get("finished") == "1" and meta.get("lost_events") == "0",
          "%s: trace finished, nothing lost" % kind)
    n, size = db.execute("SELECT count(*), sum(size) FROM allocations").fetchone()
    check(n == out["allocs"], "%s: one lifetime per upstream allocation" % kind,
          "%d lifetimes, %d upstream allocations" % (n, out["allocs"]))
    check(size + 2 == out["bytes"],
          "%s: the trace's bytes are the upstream's but for two 0-byte requests asked as 1"
          % kind, "trace %d, upstream %d" % (size, out["bytes"]))
    zero = db.execute("SELECT count(*) FROM allocations WHERE size = 0 AND align = 8").fetchone()[0]
    check(zero == 2, "%s: allocate(0, 8) recorded as 0 bytes, twice" % kind)
    check(db.execute("SELECT count(*) FROM allocations WHERE size = 256 AND align = 64")
          .fetchone()[0] == 1, "%s: the alignment of allocate(256, 64) recorded" % kind)

    rows = db.execute("SELECT kind, release_size, release_align, alloc_size, alloc_align, "
                      "alloc_stack, release_stack, first_free_stack FROM findings "
                      "ORDER BY seq").fetchall()
    kinds = [r[0] for r in rows]
    check(kinds == ["layout_mismatch", "layout_mismatch", "double_free", "invalid_free"],
          "%s: the four planted findings, in order" % kind, kinds)
    if len(rows) != 4:
        return
    size_m, align_m, dbl, unk = rows
    check(size_m[1:5] == (40, 16, 48, 16), "%s: wrong size: released (40, 16), allocated "
          "(48, 16)" % kind, size_m[1:5])
    check(at_line(frames_text(db, size_m[5]), "plant_wrong_size", L["wrong_size_alloc"])
          and at_line(frames_text(db, size_m[6]), "plant_wrong_size", L["wrong_size_free"]),
          "%s: wrong size: both stacks at the planted lines" % kind)
    check(align_m[1:5] == (256, 16, 256, 64), "%s: wrong alignment: released (256, 16), "
          "allocated (256, 64)" % kind, align_m[1:5])
    check(at_line(frames_text(db, align_m[5]), "plant_wrong_align", L["wrong_align_alloc"])
          and at_line(frames_text(db, align_m[6]), "plant_wrong_align", L["wrong_align_free"]),
          "%s: wrong alignment: both stacks at the planted lines" % kind)
    check(dbl[7] is not None
          and at_line(frames_text(db, dbl[5]), "plant_double", L["double_alloc"])
          and at_line(frames_text(db, dbl[7]), "plant_double", L["double_first"])
          and at_line(frames_text(db, dbl[6]), "plant_double", L["double_second"]),
          "%s: double deallocate: allocation, first and second release at their lines" % kind)
    check(unk[5] is None and at_line(frames_text(db, unk[6]), "plant_unknown",
                                     L["unknown_free"]),
          "%s: unknown pointer: no allocation, the release at its line" % kind)

    leaks = db.execute("SELECT size, align, stack FROM leaks").fetchall()
    check(len(leaks) == 1 and leaks[0][:2] == (4321, 32)
          and at_line(frames_text(db, leaks[0][2]), "plant_leak", L["leak"]),
          "%s: the one leak, (4321, 32), at its line" % kind, leaks)
    db.close()


def check_json_checks(kind, trace, out):
    L = out["lines"]
    r = subprocess.run([alloctrace, "check", trace, "--format", "json"], capture_output=True,
                       text=True, timeout=120)
    check(r.returncode == 1, "%s: check fails (exit 1)" % kind, r.stderr)
    d = json.loads(r.stdout)
    by_kind = {}
    for f in d["failures"]:
        by_kind.setdefault(f["kind"], []).append(f)
    leak = by_kind.get("leak", [])
    check(len(leak) == 1 and leak[0]["bytes"] == 4321 and leak[0]["blocks"] == 1
          and json_frames_at(leak[0]["allocated_at"], "plant_leak", L["leak"]),
          "%s: check: the leak, 4321 bytes, at its line" % kind)
    mm = by_kind.get("layout_mismatch", [])
    details = sorted(f["detail"] for f in mm)
    check(details == ["released as (256, 16), allocated as (256, 64)",
                      "released as (40, 16), allocated as (48, 16)"],
          "%s: check: both layout mismatches with both layouts" % kind, details)
    ok = len(mm) == 2
    for f in mm:
        fn = "plant_wrong_size" if "(40, 16)" in f["detail"] else "plant_wrong_align"
        a = L["wrong_size_alloc"] if fn == "plant_wrong_size" else L["wrong_align_alloc"]
        rl = L["wrong_size_free"] if fn == "plant_wrong_size" else L["wrong_align_free"]
        ok = ok and json_frames_at(f["allocated_at"], fn, a) and \
            json_frames_at(f["released_at"], fn, rl)
    check(ok, "%s: check: each mismatch with both stacks at the planted lines" % kind)
    check(len(by_kind.get("double_free", [])) == 1 and len(by_kind.get("invalid_free", [])) == 1,
          "%s: check: one double free, one invalid free" % kind)


for kind in ["new_delete", "monotonic", "pool", "sync_pool"]:
    trace = os.path.join(work, kind + ".trace")
    r = subprocess.run([prog, trace, kind], capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "%s: the program's own checks pass" % kind, r.stderr.strip())
    try:
        out = json.loads(r.stdout)
    except ValueError:
        check(False, "%s: the program prints its counts" % kind, r.stdout[:200])
        continue
    check(out["wrong_layout"] == 0 and out["unknown"] == 0,
          "%s: the upstream saw no wrong layout and no unknown pointer" % kind, out)
    check(out["tracer_alloc_calls"] == out["allocs"],
          "%s: the tracer counted every upstream allocation" % kind)
    trace_checks(kind, trace, out)
    check_json_checks(kind, trace, out)

# Untraced (a NULL tracer): the resource forwards as it is, and the
# counting resource sees the wrong size it is given; no trace is written.
trace = os.path.join(work, "none.trace")
r = subprocess.run([prog, trace, "none"], capture_output=True, text=True, timeout=120)
out = json.loads(r.stdout) if r.returncode == 0 else {}
check(r.returncode == 0 and out.get("wrong_layout") == 1 and not os.path.exists(trace),
      "untraced: forwarded as it is, the counting resource's check sees the wrong size",
      r.stderr.strip())

finish()
