#!/usr/bin/env python3
"""fork() while four threads allocate and free hard (fork_stress.c), under
`alloctrace run`, three times: every run must finish with every child exited
in time, a sane parent trace and no findings.  Before the prepare handler
closed the gate around libunwind, about one run in eight left a child
blocked for good on a libunwind mutex held by a thread it did not have.

    fork_test.py ALLOCTRACE FORK_STRESS WORKDIR
"""
import glob
import os
import re
import sqlite3
import subprocess
import sys
import time

from tap import check, finish

alloctrace, stress, workdir = (os.path.abspath(a) for a in sys.argv[1:4])
work = os.path.join(workdir, "fork-%d" % os.getpid())
os.makedirs(work, exist_ok=True)

# Three runs: each takes 8 to 20 s on two shared cores, most of it in fork()
# itself (copy-on-write faults in four busy threads).  Children 0 and 100
# keep their traces; completing all 200 would take `alloctrace run` longer
# than the run.
# The reachability scan at each child's exit reads the whole heap it
# inherited (up to a second each on these machines while the parent's four
# threads run): two runs without it, at full size, and one with it, smaller.
RUNS = [(200, 100, False), (200, 100, False), (40, 20, True)]


def one(db, sql, *params):
    row = db.execute(sql, params).fetchone()
    return row[0] if row else None


started = time.monotonic()
for run, (FORKS, KEEP_EVERY, scan) in enumerate(RUNS):
    kept = [n for n in range(FORKS) if n % KEEP_EVERY == 0]
    name = "run%d" % run
    trace = os.path.join(work, name + ".db")
    for old in glob.glob(os.path.join(work, name + ".*")):
        os.unlink(old)
    try:
        r = subprocess.run([alloctrace, "run", "-q", "-o", trace, "--force"] +
                           ([] if scan else ["--no-leak-scan"]) +
                           ["--", stress, str(FORKS), trace, str(KEEP_EVERY)],
                           capture_output=True, text=True, cwd=work, timeout=120)
    except subprocess.TimeoutExpired:
        check(False, "%s: finished within 120 s" % name)
        continue
    check(r.returncode == 0, "%s: exit status 0" % name, "%d\n%s" % (r.returncode, r.stderr))
    m = re.search(r"allocs (\d+) forks (\d+) children_ok (\d+) hung (\d+) failed (\d+)", r.stdout)
    if not check(m is not None, "%s: the program reported" % name, r.stdout + r.stderr):
        continue
    allocs, forks, ok, hung, failed = (int(x) for x in m.groups())
    check(forks == FORKS and ok == FORKS, "%s: every one of the %d children exited 0 (%d did)"
          % (name, FORKS, ok), r.stderr)
    check(hung == 0, "%s: no child hung (%d did)" % (name, hung), r.stderr)
    check(failed == 0, "%s: no child failed (%d did)" % (name, failed), r.stderr)
    db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    check(meta.get("program_end") == "closed", "%s: the parent's trace was closed" % name,
          meta.get("program_end"))
    calls = int(meta.get("alloc_calls", 0))
    check(calls >= allocs > 0, "%s: the trace has every allocation the program made (%d >= %d)"
          % (name, calls, allocs))
    check(calls == one(db, "SELECT count(*) FROM allocations"),
          "%s: meta.alloc_calls matches the rows" % name)
    check(int(meta.get("lost_events", -1)) == 0, "%s: no event lost" % name,
          meta.get("lost_events"))
    check(one(db, "SELECT count(*) FROM findings") == 0, "%s: no findings" % name)
    check(one(db, "SELECT count(*) FROM leaks") == 0, "%s: no leaks" % name)
    db.close()
    kids = sorted(glob.glob(os.path.join(work, name + ".*.db")))
    check(len(kids) == len(kept), "%s: the %d kept children wrote their traces (%d)"
          % (name, len(kept), len(kids)))
    for kid in kids:
        kdb = sqlite3.connect("file:%s?mode=ro" % kid, uri=True)
        kmeta = dict(kdb.execute("SELECT key, value FROM meta").fetchall())
        # exit(0) or _exit(0): the preload library closes the trace on both
        check(kmeta.get("program_end") == "closed" and
              int(kmeta.get("alloc_calls", 0)) >= 100 and
              one(kdb, "SELECT count(*) FROM findings") == 0 and
              (kmeta.get("reach_scan") == "done") == scan,
              "%s: child %s: closed, its allocations, no findings, scanned: %s (%s, %s calls, %s)"
              % (name, os.path.basename(kid), scan, kmeta.get("program_end"),
                 kmeta.get("alloc_calls"), kmeta.get("reach_scan")))
        kdb.close()
    for f in glob.glob(os.path.join(work, name + ".*")):
        os.unlink(f)
    print("# %s: %d allocations by the program, %.1f s so far"
          % (name, allocs, time.monotonic() - started), flush=True)
finish()
