#!/usr/bin/env python3
"""recover and a run's unfinished trace (issue 12, docs/design.md "Faults"):

- a spool whose program died and whose pid is now a live, unrelated
  process: `alloctrace recover TRACE` knows nobody writes the spool (the
  writer's lock, lib/tracer/run_protocol.h), never asks the pid, and gives
  the whole trace;
- a spool whose program still runs: refused, with the line and the status
  (125) recover has always given, then completed once the program ended;
- `alloctrace run` whose trace is on a file system the program fills: the
  program's output and status as untraced, the run says in one line that
  the trace is left for `alloctrace recover TRACE`, exits 88, keeps the
  spool; once room is made, recover gives every leak of the program, the
  same as a run on a disk with room.

    recover_faults_test.py ALLOCTRACE RECORDER_PROG FILL_PROG WORKDIR
"""
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import time

from tap import check, finish

alloctrace, rec_prog, fill_prog, workdir = (os.path.abspath(a) for a in sys.argv[1:5])
work = os.path.join(workdir, "recover-faults-%d" % os.getpid())
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
# at_spool_header (lib/tracer/spool.h): producer_pid at 20, closed at 28
PRODUCER_PID, CLOSED = 20, 28
EXIT_TOOL, EXIT_RUN_UNFINISHED = 125, 88


def run(argv, timeout=300, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def wait_for(pred, timeout):
    end = time.time() + timeout
    while time.time() < end and not pred():
        time.sleep(0.02)
    return pred()


def listed(path):
    if not os.path.exists(path):
        return set()
    with open(path) as f:
        return {tuple(int(x) for x in line.split()) for line in f}


def leaks_of(trace):
    """(ptr, size) of every leak allocated through leak_site()."""
    db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
    rows = set(db.execute(
        "SELECT l.ptr, l.size FROM leaks l JOIN stack_text s ON s.stack = l.stack"
        " WHERE l.size BETWEEN 5000 AND 5999 AND s.text LIKE '%leak_site%'").fetchall())
    lost = db.execute("SELECT value FROM meta WHERE key = 'lost_events'").fetchone()
    db.close()
    return rows, int(lost[0]) if lost else 0


def leftovers(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".spool") or f.endswith("-journal"))


def run_spool(d):
    s = [f for f in os.listdir(d) if f.startswith(".alloctrace.") and f.endswith(".spool")]
    return os.path.join(d, s[0]) if len(s) == 1 else None


def header_pid(spool):
    with open(spool, "rb") as f:
        f.seek(PRODUCER_PID)
        return struct.unpack("<i", f.read(4))[0]


def orphaned_run(name, *args):
    """`alloctrace run` of recorder_prog ARGS, SIGKILLed once its trace
    exists: the program runs on alone.  (dir, leaked list, trace, spool)."""
    d = os.path.join(work, name)
    os.makedirs(d)
    out, trace = os.path.join(d, "leaked"), os.path.join(d, "t.db")
    r = subprocess.Popen([alloctrace, "run", "-q", "-o", trace, "--", rec_prog, out, *args],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: os.path.exists(trace), 30)
    time.sleep(0.2)
    r.kill()
    r.wait()
    return d, out, trace, run_spool(d)


# ---- a dead program, its pid reused -----------------------------------------------------
d, out, trace, spool = orphaned_run("reused", "2", "20000", "50000")  # about 1 s
pid = header_pid(spool) if spool else 0
check(pid > 0 and wait_for(lambda: os.path.exists(out), 120)
      and wait_for(lambda: not os.path.exists("/proc/%d" % pid), 30),
      "the orphaned program ran to its end (pid %d)" % pid)
sleeper = subprocess.Popen(["sleep", "300"], stdout=subprocess.DEVNULL)
try:
    # The program as if killed (no closed flag) and its pid given to `sleep`.
    with open(spool or os.devnull, "r+b") as f:
        f.seek(PRODUCER_PID)
        f.write(struct.pack("<i", sleeper.pid))
        f.seek(CLOSED)
        f.write(struct.pack("<I", 0))
    r = run([alloctrace, "recover", "-q", trace])
finally:
    sleeper.kill()
    sleeper.wait()
check(r.returncode == 0 and "still running" not in r.stderr,
      "pid reused by a live `sleep`: recover proceeds (status %d)" % r.returncode, r.stderr)
made = listed(out)
found, lost = leaks_of(trace) if r.returncode == 0 else (set(), -1)
check(made and found == made and lost == 0 and not leftovers(d),
      "and the trace is whole: %d of %d leaks with their stack, %d lost, left %s"
      % (len(found & made), len(made), lost, leftovers(d)))

# ---- the program still runs -------------------------------------------------------------
d, out, trace, spool = orphaned_run("running", "1", "20000", "400000")  # about 8 s
r = run([alloctrace, "recover", "-q", trace])
check(r.returncode == EXIT_TOOL and "is still running" in r.stderr
      and "alloctrace recover" in r.stderr and spool and os.path.exists(spool),
      "while the program runs: refused, status %d, the spool kept" % r.returncode, r.stderr)
pid = header_pid(spool) if spool else 0
check(wait_for(lambda: os.path.exists(out), 120)
      and wait_for(lambda: not os.path.exists("/proc/%d" % pid), 30), "then the program ends")
r = run([alloctrace, "recover", "-q", trace])
made = listed(out)
found, lost = leaks_of(trace) if r.returncode == 0 else (set(), -1)
check(r.returncode == 0 and made and found == made and lost == 0 and not leftovers(d),
      "and recover completes it: %d of %d leaks, %d lost" % (len(found & made), len(made), lost),
      r.stderr)

# ---- the trace's file system filled by the program --------------------------------------
N = 3000
mnt = os.path.join(work, "small")
os.makedirs(mnt)
m = run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt])
check(m.returncode == 0, "a 16 MiB tmpfs is mounted", m.stderr)
try:
    filler = os.path.join(mnt, "filler")
    native = run([fill_prog, os.path.join(work, "native-leaked"), filler, str(N)])
    os.unlink(filler)
    roomy = os.path.join(work, "roomy.db")
    rr = run([alloctrace, "run", "-q", "-o", roomy, "--", fill_prog,
              os.path.join(work, "roomy-leaked"), filler, str(N)])
    os.unlink(filler)
    check(native.returncode == 0 and rr.returncode == 0 and rr.stdout == native.stdout,
          "natively, and traced with the trace elsewhere: %r" % native.stdout, rr.stderr)
    trace = os.path.join(mnt, "t.db")
    out = os.path.join(work, "full-leaked")
    t = run([alloctrace, "run", "-q", "-o", trace, "--", fill_prog, out, filler, str(N)])
    check(t.stdout == native.stdout, "the program's output as untraced: %r" % t.stdout)
    lines = [l for l in t.stderr.splitlines() if l.startswith("alloctrace:")]
    check(t.returncode == EXIT_RUN_UNFINISHED and len(lines) == 1
          and "alloctrace recover %s" % trace in lines[0],
          "the run says in one line that recover completes it, status %d" % t.returncode,
          t.stderr)
    spool = run_spool(mnt)
    check(spool is not None and os.path.exists(trace), "the spool and the trace are kept")
    os.unlink(filler)  # room again
    r = run([alloctrace, "recover", "-q", trace])
    made = listed(out)
    found, lost = leaks_of(trace) if r.returncode == 0 else (set(), -1)
    roomy_leaks, _ = leaks_of(roomy)
    check(r.returncode == 0 and len(made) == N and found == made and lost == 0
          and sorted(s for _, s in found) == sorted(s for _, s in roomy_leaks)
          and not leftovers(mnt),
          "room made, recover gives the whole trace: %d of %d leaks (%d on a roomy disk),"
          " %d lost, left %s" % (len(found & made), len(made), len(roomy_leaks), lost,
                                 leftovers(mnt)), r.stderr)
finally:
    run(["umount", mnt])
finish()
