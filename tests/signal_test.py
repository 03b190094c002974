#!/usr/bin/env python3
"""Calls from a signal handler that interrupted a traced call
(lib/preload/preload.c, "calls from a signal handler"): every allocation
and release the handler makes is in the trace, none lost, none a false
finding, whether it interrupted the tracer or the program.

    signal_test.py ALLOCTRACE SIGNAL_PROG WORKDIR
"""
import os
import re
import shutil
import sqlite3
import subprocess
import sys

from tap import check, finish

alloctrace, prog, workdir = (os.path.abspath(a) for a in sys.argv[1:4])
work = os.path.join(workdir, "signal-%d" % os.getpid())
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)

native = subprocess.run([prog], capture_output=True, text=True, timeout=120)
check(native.returncode == 0 and native.stdout.startswith("handler leaked"),
      "natively: the program runs and its handler allocates", native.stdout + native.stderr)

trace = os.path.join(work, "t.db")
r = subprocess.run([alloctrace, "run", "-q", "-o", trace, "--", prog], capture_output=True,
                   text=True, timeout=300)
m = re.match(r"handler leaked (\d+)", r.stdout)
check(r.returncode == 0 and m, "traced: the program runs as natively", r.stdout + r.stderr)
n = int(m.group(1)) if m else -1
db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
leaked = db.execute("SELECT count(*) FROM leaks WHERE size = 888").fetchone()[0]
check(n > 100 and leaked == n,
      "every block the handler kept is a leak in the trace (%d of %d)" % (leaked, n))
made = db.execute("SELECT count(*) FROM allocations WHERE size = 777").fetchone()[0]
freed = db.execute("SELECT count(*) FROM allocations WHERE size = 777"
                   " AND free_seq IS NOT NULL").fetchone()[0]
check(made >= n and freed == made,
      "every block the handler freed at once is in the trace, released (%d of %d)"
      % (freed, made))
findings = db.execute("SELECT count(*) FROM findings WHERE kind != 'zero_size'").fetchone()[0]
lost = int(db.execute("SELECT value FROM meta WHERE key = 'lost_events'").fetchone()[0])
check(findings == 0 and lost == 0, "no false finding, nothing lost (%d findings, %d lost)"
      % (findings, lost))
nostack = db.execute("SELECT count(*) FROM allocations WHERE size IN (777, 888)"
                     " AND alloc_stack IS NULL").fetchone()[0]
print("# %d of the handler's %d allocations interrupted a traced call (no stack)"
      % (nostack, made + n))
check(nostack > 0, "some of the handler's calls interrupted the tracer (the case under test)")
finish()
