#!/usr/bin/env python3
"""Faults the traced program must survive as it would untraced:

- calls from a signal handler that interrupted a traced call
  (lib/preload/preload.c, "calls from a signal handler"): every allocation
  and release the handler makes is in the trace, none lost, none a false
  finding;
- a file-size limit (RLIMIT_FSIZE, `ulimit -f`): the spool is made no
  larger than the limit, so the program is never killed by SIGXFSZ; what
  did not fit is counted in lost_events.

    faults_test.py ALLOCTRACE SIGNAL_PROG WORKDIR
"""
import os
import re
import shutil
import sqlite3
import subprocess
import sys

from tap import check, finish

alloctrace, prog, workdir = (os.path.abspath(a) for a in sys.argv[1:4])
work = os.path.join(workdir, "faults-%d" % os.getpid())
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

# ---- RLIMIT_FSIZE: 2 MiB, where the spool is 1 GiB of sparse file ------------------------
# Under plain LD_PRELOAD (no reader: the spool must hold everything) the
# program runs to its end with its own output and status, the spool within
# the limit; `alloctrace recover` then says how much was dropped.
d = os.path.join(work, "fsize")
os.makedirs(d)
spool_env = {k: v for k, v in os.environ.items() if not k.startswith("ALLOCTRACE_")}
spool_env["LD_PRELOAD"] = os.path.join(os.path.dirname(alloctrace), "..", "lib",
                                       "liballoctrace_preload.so")
spool_env["ALLOCTRACE_OUTPUT"] = os.path.join(d, "t.db")
limited = subprocess.run(["bash", "-c", "ulimit -f 2048; exec \"$0\"", prog], cwd=d, env=spool_env,
                         capture_output=True, text=True, timeout=300)
check(limited.returncode == 0 and limited.stdout.startswith("handler leaked"),
      "ulimit -f 2048: the program is not killed by SIGXFSZ, its output as natively",
      "%d %r %s" % (limited.returncode, limited.stdout, limited.stderr[-300:]))
# bash, preloaded too, made its spool before the limit; the image it
# execs makes its own under it
spools = sorted((os.path.getsize(os.path.join(d, f)), f) for f in os.listdir(d)
                if f.endswith(".spool"))
check(len(spools) == 2 and spools[0][0] <= 2 << 20,
      "the program's spool is no larger than the limit (%s)" % spools)
spools = [spools[0][1]] if spools else []
if spools:
    r = subprocess.run([alloctrace, "recover", "-q", "-o", os.path.join(d, "r.db"),
                        os.path.join(d, spools[0])], cwd=d, capture_output=True, text=True,
                       timeout=300)
    rdb = sqlite3.connect("file:%s?mode=ro" % os.path.join(d, "r.db"), uri=True)
    lost = int(rdb.execute("SELECT value FROM meta WHERE key = 'lost_events'").fetchone()[0])
    check(r.returncode == 0 and lost > 0,
          "recover: a trace that counts what the limit dropped (%d lost)" % lost, r.stderr)
finish()
