#!/usr/bin/env python3
"""Resource limits and process shapes the traced program must survive as it
would untraced (issue 12, cases 4, 6, 8, 9), with what the tracer could not
record counted, never misreported as a finding:

- a full file system (a 3 MiB tmpfs, mounted by the test: it runs as root)
  under 4 and 8 threads: no SIGBUS, the program's output and status as
  untraced, and `recover` counts what did not fit in lost_events;
- RLIMIT_AS (`ulimit -v`): 3,000,000 mallocs that succeed untraced
  succeed traced (the spool is mapped chunk by chunk, not 1 GiB up front),
  the program then runs out of memory and its later leaks are leaks;
- 5,000 threads alive at once, more than the spool's 4,096 chunks: no
  hang; every thread's kept block is in the trace or counted as lost;
- children that chdir write their traces where the run looks for them; a
  child that cannot open its spool (RLIMIT_NOFILE used up) says so.

    limits_test.py ALLOCTRACE LIMITS_PROG WORKDIR
"""
import os
import shutil
import sqlite3
import subprocess
import sys

from tap import check, finish

alloctrace, prog, workdir = (os.path.abspath(a) for a in sys.argv[1:4])
work = os.path.join(workdir, "limits-%d" % os.getpid())
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
preload = os.path.join(os.path.dirname(alloctrace), "..", "lib", "liballoctrace_preload.so")


def run(argv, timeout=600, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def meta(db, key):
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def ro(path):
    return sqlite3.connect("file:%s?mode=ro" % path, uri=True)


def same_as_native(traced, native, what):
    check(traced.returncode == native.returncode and traced.stdout == native.stdout,
          "%s: output and status as untraced (%d %r)" % (what, traced.returncode, traced.stdout),
          traced.stderr[-600:])


# ---- case 4: a full file system ------------------------------------------------------
# The program writes its own spool (plain LD_PRELOAD: no reader, so the spool
# must hold everything) on a 3 MiB tmpfs; the trace is made elsewhere.
mnt = os.path.join(work, "small")
os.makedirs(mnt)
m = run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt])
check(m.returncode == 0, "a 3 MiB tmpfs is mounted", m.stderr)
try:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLOCTRACE_")}
    env["LD_PRELOAD"] = preload
    for n in (4, 8):
        for f in os.listdir(mnt):
            os.unlink(os.path.join(mnt, f))
        argv = [prog, "threads", str(n), "200000"]
        native = run(argv)
        env["ALLOCTRACE_OUTPUT"] = os.path.join(mnt, "t%d.db" % n)
        traced = run(argv, env=env)
        same_as_native(traced, native, "%d threads, spool on a full 3 MiB tmpfs" % n)
        spools = [f for f in os.listdir(mnt) if f.endswith(".spool")]
        check(len(spools) == 1, "one spool on the tmpfs (%s)" % spools)
        if spools:
            out = os.path.join(work, "full%d.db" % n)
            r = run([alloctrace, "recover", "-q", "-o", out, os.path.join(mnt, spools[0])])
            db = ro(out)
            lost = int(meta(db, "lost_events") or 0)
            calls = int(meta(db, "alloc_calls") or 0)
            check(r.returncode == 0 and lost > 0 and calls > 0,
                  "recover: %d calls recorded, %d lost counted" % (calls, lost), r.stderr)
            rep = run([alloctrace, "report", out])
            check("could not be recorded" in rep.stdout,
                  "the report says events were lost", rep.stdout[-400:])
finally:
    run(["umount", mnt])

# ---- case 6: RLIMIT_AS -----------------------------------------------------------------
LIMIT = "1200000"  # KiB: above what the program needs, below it plus a 1 GiB spool
argv = ["bash", "-c", 'ulimit -v %s; exec "$0" oom 3000000' % LIMIT, prog]
native = run(argv)
check(native.stdout.startswith("3000000 mallocs, 0 failed\nran out of memory: yes"),
      "untraced under ulimit -v: every malloc succeeds, then it runs out", native.stdout)
trace = os.path.join(work, "as.db")
traced = run([alloctrace, "run", "-q", "-o", trace, "--"] + argv)
same_as_native(traced, native, "ulimit -v %s, 3M mallocs then out of memory" % LIMIT)
kids = [f for f in os.listdir(work) if f.startswith("as.") and f.endswith(".db") and f != "as.db"]
check(len(kids) == 1, "the exec'd program's trace (%s)" % kids)
if kids:
    db = ro(os.path.join(work, kids[0]))
    findings = db.execute("SELECT count(*) FROM findings WHERE kind != 'zero_size'").fetchone()[0]
    check(findings == 0, "no false finding (%d)" % findings)
    leaks = db.execute("SELECT count(*) FROM leaks WHERE size = 4321").fetchone()[0]
    check(leaks == 100, "the 100 leaks made after running out of memory are leaks (%d)" % leaks)
    calls = int(meta(db, "alloc_calls"))
    lost = int(meta(db, "lost_events"))
    check(calls + lost >= 3000000, "every malloc recorded or counted lost (%d + %d)"
          % (calls, lost))

# ---- case 8: more live threads than spool chunks ----------------------------------------
N = 5000
argv = [prog, "live", str(N)]
native = run(argv)
trace = os.path.join(work, "live.db")
traced = run([alloctrace, "run", "-q", "--unwind", "fp", "-o", trace, "--"] + argv, timeout=900)
same_as_native(traced, native, "%d threads alive at once" % N)
db = ro(trace)
kept = db.execute("SELECT count(*) FROM leaks WHERE size = 3333").fetchone()[0]
lost = int(meta(db, "lost_events"))
print("# %d of %d threads' blocks in the trace, %d events lost" % (kept, N, lost))
check(kept > 4000 and kept + lost >= N,
      "each thread's kept block is a leak in the trace or counted lost (%d + %d)" % (kept, lost))
findings = db.execute("SELECT count(*) FROM findings WHERE kind != 'zero_size'").fetchone()[0]
check(findings == 0, "no false finding (%d)" % findings)

# ---- case 9: children that chdir; a child that cannot open its spool ----------------------
sub = os.path.join(work, "elsewhere")
os.makedirs(sub)
d = os.path.join(work, "cd")
os.makedirs(d)
argv = [prog, "chdir", sub, "3"]
native = run(argv)
traced = run([alloctrace, "run", "-q", "-o", "t.db", "--"] + argv, cwd=d)
same_as_native(traced, native, "3 children that chdir")
check(os.listdir(sub) == [], "nothing written in the directory they moved to (%s)"
      % os.listdir(sub))
kids = sorted(f for f in os.listdir(d) if f.startswith("t.") and f.endswith(".db") and f != "t.db")
sizes = [ro(os.path.join(d, k)).execute("SELECT group_concat(size) FROM leaks").fetchone()[0]
         for k in kids]
check(len(kids) == 3 and sizes == ["5555"] * 3,
      "each child's trace is beside the run's, with its leak (%s %s)" % (kids, sizes))

native = run([prog, "nofile"])
traced = run([alloctrace, "run", "-q", "-o", os.path.join(work, "nofile.db"), "--", prog,
              "nofile"])
same_as_native(traced, native, "a child out of file descriptors")
lines = [l for l in traced.stderr.splitlines() if "cannot write the spool" in l]
check(len(lines) == 1 and "Too many open files" in lines[0] and "running untraced" in lines[0],
      "the child says it runs untraced, and why", traced.stderr)
finish()
