#!/usr/bin/env python3
"""Invalid allocation requests under `alloctrace run` (requests_prog.c,
requests_cxx.cc): the program sees exactly what it sees without alloctrace
(same output: results, errno, exceptions, new-handler calls; same exit
status), and each bad request is a finding of its own kind, counted in the
trace, in `alloctrace report` (text and JSON) and by `alloctrace check`,
which does not fail on zero-size notes unless told to.  Interior and
misaligned frees each have their own kind; an aligned delete with an
alignment that is not a power of two is a layout mismatch told with the
value passed.

    requests_test.py ALLOCTRACE REQUESTS_PROG REQUESTS_CXX WORKDIR
"""
import json
import os
import sqlite3
import subprocess
import sys

from tap import check, finish

alloctrace, prog, cxx, workdir = (os.path.abspath(a) for a in sys.argv[1:5])
work = os.path.join(workdir, "requests-%d" % os.getpid())
os.makedirs(work, exist_ok=True)


def native(*args):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    return subprocess.run(list(args), capture_output=True, text=True, cwd=work, timeout=60,
                          env=env)


def traced(name, *args, opts=()):
    trace = os.path.join(work, name + ".db")
    r = subprocess.run([alloctrace, "run", "-o", trace, "--force", *opts, "--", *args],
                       capture_output=True, text=True, cwd=work, timeout=120)
    return trace, r


def kinds(trace):
    db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
    k = dict(db.execute("SELECT kind, count(*) FROM findings GROUP BY kind").fetchall())
    return db, k


def report_json(trace):
    r = subprocess.run([alloctrace, "report", trace, "--format", "json"], capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 0, "report --format json %s: exit 0" % os.path.basename(trace), r.stderr)
    return json.loads(r.stdout) if r.returncode == 0 else {}


def json_kinds(doc):
    """Kind -> count, from the report's findings (each with its count)."""
    out = {}
    for f in doc.get("findings", []):
        out[f["kind"]] = out.get(f["kind"], 0) + f.get("count", 1)
    return out


def check_run(name, args, expected):
    n = native(*args)
    trace, t = traced(name, *args)
    check(n.returncode == 0, "%s: runs natively" % name, n.stderr)
    check(t.returncode == n.returncode, "%s: same exit status traced (%d) as natively (%d)"
          % (name, t.returncode, n.returncode), t.stderr)
    same = t.stdout == n.stdout
    if not same:
        diff = [f"native {a!r} / traced {b!r}" for a, b in
                zip(n.stdout.splitlines(), t.stdout.splitlines()) if a != b]
        detail = "; ".join(diff[:5]) or "lengths differ"
    check(same and n.stdout.count("\n") > 10, "%s: same output traced as natively" % name,
          "" if same else detail)
    db, k = kinds(trace)
    check(k == expected, "%s: findings by kind %s" % (name, expected), str(k))
    doc = report_json(trace)
    jk = json_kinds(doc)
    check(jk == expected, "%s: report --format json counts the same kinds" % name, str(jk))
    text = subprocess.run([alloctrace, "report", trace], capture_output=True, text=True,
                          timeout=60).stdout
    for kind in expected:
        label = {"invalid_alignment": "invalid alignment", "invalid_size": "invalid size",
                 "zero_size": "zero-size request"}[kind]
        check(label in text, "%s: the text report names %s" % (name, label))
    return db, trace


# ---- C: malloc, calloc, realloc, reallocarray, memalign, aligned_alloc, valloc, pvalloc,
# posix_memalign --------------------------------------------------------------------------
c_expected = {"zero_size": 11, "invalid_alignment": 16, "invalid_size": 2}
db, c_trace = check_run("c", [prog, "requests"], c_expected)
check(db.execute("SELECT release_align, release_size FROM findings WHERE kind ="
                 " 'invalid_alignment' AND detail LIKE 'alignment 3 is %'").fetchall()
      == [(3, 8), (3, 8)], "c: memalign(3, 8) and aligned_alloc(3, 8): alignment 3, size 8 as passed")
check(db.execute("SELECT count(*) FROM findings WHERE kind = 'invalid_alignment'"
                 " AND release_align = 24 AND ptr = 0").fetchone()[0] == 1,
      "c: posix_memalign(24) failed (ptr 0), memalign(24) did not")
check(db.execute("SELECT count(*) FROM findings WHERE kind = 'invalid_alignment'"
                 " AND detail LIKE 'alignment 4 is not a multiple of sizeof(void *)%'")
      .fetchone()[0] == 1, "c: posix_memalign(4): a power of two below sizeof(void *)")
check(db.execute("SELECT release_size, release_align FROM findings WHERE kind = 'invalid_size'"
                 " ORDER BY seq").fetchall() == [(8, 64), (100, 64)],
      "c: aligned_alloc(64, 8) and (64, 100): sizes not a multiple of the alignment")
check(db.execute("SELECT count(*) FROM allocations WHERE size = 8 AND align = 8192"
                 " AND free_seq IS NOT NULL").fetchone()[0] == 1,
      "c: memalign(4097, 8)'s block is traced with the alignment glibc rounds it up to")

# requests() is static and called once: gcc at -O1 inlines it into main,
# and the stacks then name it as a frame of its own (inlined_frames).
check(db.execute("SELECT count(*) FROM findings_detail WHERE release_stack_text LIKE 'main <- %'"
                 " OR release_stack_text LIKE 'requests <- main <- %'"
                 " OR release_stack_text LIKE 'try_posix_memalign <- main <- %'"
                 " OR release_stack_text LIKE 'try_posix_memalign <- requests <- main <- %'")
      .fetchone()[0]
      == sum(c_expected.values()), "c: every request's stack starts at the call")

# check: the zero-size notes do not fail by default; they do when asked for.
code = subprocess.run([alloctrace, "check", c_trace, "--fail-on", "leaks,zero-size"],
                      capture_output=True, text=True, timeout=60).returncode
check(code == 1, "check --fail-on zero-size: the notes fail (exit %d)" % code)
r = subprocess.run([alloctrace, "check", c_trace, "--fail-on", "invalid-request"],
                   capture_output=True, text=True, timeout=60)
check(r.returncode == 1, "check --fail-on invalid-request: fails (exit %d)" % r.returncode)

# A program whose only findings are zero-size requests passes check and run --check.
z_trace, z = traced("zero", prog, "zero", opts=["--check"])
check(z.returncode == 0, "run --check: zero-size requests alone do not fail (exit %d)"
      % z.returncode, z.stderr)
zdb, zk = kinds(z_trace)
check(zk == {"zero_size": 3}, "zero: three zero-size notes recorded", str(zk))
check(zdb.execute("SELECT count(*) FROM leaks").fetchone()[0] == 0
      and zdb.execute("SELECT count(*) FROM allocations WHERE size = 4 AND free_op = 'dealloc'")
      .fetchone()[0] == 1, "zero: realloc(p, 0) released p, as glibc does")
r = subprocess.run([alloctrace, "check", z_trace], capture_output=True, text=True, timeout=60)
check(r.returncode == 0, "check: zero-size notes alone pass by default (exit %d)" % r.returncode,
      r.stdout + r.stderr)
r = subprocess.run([alloctrace, "check", z_trace, "--fail-on", "all"], capture_output=True,
                   text=True, timeout=60)
check(r.returncode == 1, "check --fail-on all: includes the notes (exit %d)" % r.returncode)
r = subprocess.run([alloctrace, "report", z_trace, "--format", "junit"], capture_output=True,
                   text=True, timeout=60)
check(r.returncode == 0 and 'failures="0"' in r.stdout and r.stdout.count("<system-out>") >= 1,
      "report --format junit: zero-size notes are passing test cases", r.stdout[:400])
r = subprocess.run([alloctrace, "report", z_trace, "--format", "sarif"], capture_output=True,
                   text=True, timeout=60)
levels = {x["level"] for x in json.loads(r.stdout)["runs"][0]["results"]} if r.returncode == 0 else None
check(levels == {"note"}, "report --format sarif: zero-size requests are notes (%s)" % levels)
z_trace, z = traced("zero-abort", prog, "zero", opts=["--abort-on-finding"])
check(z.returncode == 0 and z.stdout == "zero\n",
      "--abort-on-finding: a zero-size note does not abort (exit %d)" % z.returncode, z.stderr)

# ---- C++: operator new and new[] in every form -------------------------------------------
cxx_expected = {"invalid_alignment": 24, "invalid_size": 4}
db, _ = check_run("cxx", [cxx, "requests"], cxx_expected)
check(db.execute("SELECT count(*) FROM findings WHERE kind = 'invalid_alignment'"
                 " AND release_align = 63 AND ptr = 0").fetchone()[0] == 4,
      "cxx: new(32, align_val_t(63)) in its four forms failed, alignment stored as 63")
check(db.execute("SELECT count(*) FROM findings_detail WHERE release_stack_text IS NULL"
                 " OR release_stack_text LIKE 'operator new%' OR release_stack_text LIKE '%cxx_new%'"
                 " OR release_stack_text LIKE '%on_request%'").fetchone()[0] == 0,
      "cxx: no request's stack starts inside operator new or alloctrace")
check(db.execute("SELECT count(DISTINCT release_family) FROM findings").fetchone()[0] == 2,
      "cxx: the findings name new and new[]")
check(db.execute("SELECT count(*) FROM findings WHERE kind = 'invalid_size' AND ptr != 0"
                 " AND detail LIKE '% rounded up to the alignment 64 overflows%'").fetchone()[0]
      == 4, "cxx: new(SIZE_MAX, align 64): libstdc++'s wrapped size returns a block, a finding")

# ---- bad releases ----------------------------------------------------------------------
n = native(cxx, "releases")
trace, t = traced("releases", cxx, "releases")
check(t.returncode == n.returncode == 0 and t.stdout == n.stdout == "released\n",
      "releases: same output and exit status traced as natively", t.stderr)
db, k = kinds(trace)
check(k == {"layout_mismatch": 1, "misaligned_free": 1}, "releases: a layout mismatch and a"
      " misaligned free", str(k))
row = db.execute("SELECT release_align, alloc_align, detail FROM findings"
                 " WHERE kind = 'layout_mismatch'").fetchone()
check(row is not None and row[0] == 63 and row[1] == 64 and "(\u2013, 63)" in row[2]
      and "63 is not a power of two" in row[2],
      "releases: delete(p, align_val_t(63)) of a 64-aligned block: 64 vs 63, as passed", str(row))
row = db.execute("SELECT release_align, detail FROM findings"
                 " WHERE kind = 'misaligned_free'").fetchone()
check(row is not None and row[0] == 4096 and "not a multiple of the alignment 4096" in row[1],
      "releases: a block released with an alignment its address is not a multiple of", str(row))
check(db.execute("SELECT count(*) FROM release_layouts WHERE align = 0").fetchone()[0] == 1,
      "releases: the lifetime's release alignment that is no power of two is 0, not rounded")

trace, t = traced("interior", prog, "interior")
check(t.returncode == 0, "interior: the program survives a free glibc would abort on", t.stderr)
db, k = kinds(trace)
check(k == {"interior_free": 1}, "interior: an interior free is its own kind", str(k))
check(db.execute("SELECT detail FROM findings").fetchone()[0]
      == "pointer is 16 bytes inside a live block of 64", "interior: its detail")
doc = report_json(trace)
check(json_kinds(doc) == {"interior_free": 1}, "interior: report --format json says interior_free")

finish()
