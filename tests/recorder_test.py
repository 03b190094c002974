#!/usr/bin/env python3
"""The recorder's death and its signals (issue 12, cases 2, 3 and 12):

- SIGKILL of `alloctrace run` at a random moment while a multi-threaded
  program leaks: `alloctrace recover TRACE` (the path given to run) gives a
  trace holding every block the program says it leaked, each with its
  allocation stack through leak_site(), the right call count, nothing lost;
  no spool, no journal left.  TRIALS trials (bench/recorder_kill.sh: 100).
- a dead recorder whose pid is reused (the spool's consumer_pid made the
  pid of a live process): a program that spools far more than the spool
  may still take never waits and never crawls; the spool stops growing;
  what could not be spooled is counted in lost_events.
- SIGTERM from `timeout`: forwarded to the program, the trace finished, the
  run's status the program's, no spool left.
- --force: the old trace stays whole until the new one is complete, also
  when the recorder is killed (recover then puts the new one in its place).

    recorder_test.py ALLOCTRACE RECORDER_PROG WORKDIR TRIALS
"""
import ctypes
import fcntl
import hashlib
import os
import random
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time

import orphans
from tap import check, finish

alloctrace, prog, workdir = (os.path.abspath(a) for a in sys.argv[1:4])
trials = int(sys.argv[4])
work = os.path.join(workdir, "recorder-%d" % os.getpid())
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
THREADS, ITERS = 4, 20000


def wait_file(path, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return False


def meta(db, key):
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return str(row[0]) if row else None


def recover(trace):
    """`alloctrace recover TRACE`, again while the program is still exiting."""
    return orphans.recover(alloctrace, trace)


def leftovers(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".spool") or f.endswith("-journal")
                  or f.endswith("-late") or f.startswith(".alloctrace."))


def leaking_run(name, *args, stderr=subprocess.DEVNULL, env=None):
    """A directory of its own under `work`, and `alloctrace run` in it of the
    leaking program with ARGS after its thread count; the program lists
    what it leaked in DIR/leaked.  (dir, that file, the trace, the run)."""
    d = os.path.join(work, name)
    os.makedirs(d)
    out, trace = os.path.join(d, "leaked"), os.path.join(d, "t.db")
    run = subprocess.Popen([alloctrace, "run", "-q", "-o", trace, "--", prog, out, str(THREADS),
                            *args], stdout=subprocess.DEVNULL, stderr=stderr, text=True,
                           env=env)
    return d, out, trace, run


def has_schema(trace):
    try:
        db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True, timeout=1)
        try:
            return db.execute("SELECT 1 FROM sqlite_master WHERE name = 'lifetimes'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None


def wait_schema(trace, seconds):
    """Until the trace holds its tables: the file comes before them (a
    loaded machine may take a while from creating it to committing them)."""
    end = time.time() + seconds
    while not has_schema(trace) and time.time() < end:
        time.sleep(0.02)
    return has_schema(trace)


def kill_while_writing(run, trace, out):
    """SIGKILL of the recorder once its trace holds its tables (a loaded
    machine may take a while from creating the file to committing them),
    then the orphaned program's end (it writes `out` last).  Whether the
    kill came before the program's end (the caller runs a program that
    pauses long enough: see SLOW; on a loaded machine the tables can come
    late enough that it does not: see killed_while_writing)."""
    wait_file(trace, 30)
    wait_schema(trace, 30)
    time.sleep(0.1)
    running = not os.path.exists(out)
    run.kill()
    run.wait()
    wait_file(out, 120)
    time.sleep(0.3)  # the program's exit
    return running and run.returncode == -signal.SIGKILL


def killed_while_writing(name):
    """A run of the slow leaking program whose recorder is killed while the
    program still runs: up to three tries.  (dir, out, trace, killed)."""
    for attempt in range(3):
        d, out, trace, run = leaking_run("%s-%d" % (name, attempt), str(ITERS), SLOW)
        if kill_while_writing(run, trace, out):
            return d, out, trace, True
    return d, out, trace, False


# A pause every 1000 iterations that makes the program outlast the wait for
# its trace's tables on a loaded machine (20 pauses: at least 0.6 s).
SLOW = "30000"


def orphan_status():
    """The orphaned program's end, as this process's child now (a subreaper,
    below): its wait status, None when there was no child (the program had
    ended before the kill, or was never forked), "hung" after 120 s."""
    status, end = None, time.time() + 120
    try:
        while time.time() < end and status is None:
            pid, st = os.waitpid(-1, os.WNOHANG)
            status = st if pid else None
            time.sleep(0 if pid else 0.02)
    except ChildProcessError:
        pass
    return "hung" if status is None and time.time() >= end else status


def kill_trial(n, seed):
    d, out, trace, run = leaking_run("kill%d" % n, str(ITERS), "1500")
    # a random moment of the recording: from the spool's creation (the
    # program starts right after) into the program's run
    t0 = time.time()
    while not [f for f in os.listdir(d) if f.endswith(".spool")] and time.time() < t0 + 30:
        time.sleep(0.005)
    delay = random.Random(seed).uniform(0.0, 0.6)
    time.sleep(delay)
    run.kill()
    run.wait()
    status = orphan_status()
    if status == "hung":
        return "the program never finished"
    if not os.path.exists(out) and (status is None or (
            os.WIFEXITED(status) and os.WEXITSTATUS(status) == EXIT_TOOL)):
        not_started.append(n)
        return None
    if not os.path.exists(out):
        return "the program never finished (status %#x)" % status
    why = recovered_whole(d, out, trace)
    return "killed after %.2f s: %s" % (delay, why) if why else None


def recovered_whole(d, out, trace):
    """`alloctrace recover TRACE`, then what is wrong with the trace (None:
    every leak the program wrote to OUT, with its stack, every call)."""
    r = recover(trace)
    if r.returncode != 0:
        return "recover failed: %s" % r.stderr
    made = set()
    with open(out) as f:
        for line in f:
            ptr, size = line.split()
            made.add((int(ptr), int(size)))
    db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
    found = set(db.execute(
        "SELECT l.ptr, l.size FROM leaks l JOIN stack_text s ON s.stack = l.stack"
        " WHERE l.size BETWEEN 5000 AND 5999 AND s.text LIKE '%leak_site%'").fetchall())
    calls = int(meta(db, "alloc_calls") or 0)
    lost = int(meta(db, "lost_events") or 0)
    lifetimes = db.execute("SELECT count(*) FROM lifetimes").fetchone()[0]
    db.close()
    missing = made - found
    left = leftovers(d)
    if missing or not made:
        return "%d of %d leaks missing (with their stack)" % (len(missing), len(made))
    if calls < THREADS * ITERS or calls != lifetimes or lost:
        return "alloc_calls %d, lifetimes %d, lost %d" % (calls, lifetimes, lost)
    if left:
        return "left behind: %s" % left
    return None


failures, not_started = [], []
EXIT_TOOL = 125
# The recorder's orphaned program comes to this process, which reaps it and
# so knows when (and whether) it ran; only during the kill trials.
PR_SET_CHILD_SUBREAPER = 36
libc = ctypes.CDLL(None, use_errno=True)
check(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0, "this test reaps orphans")
for n in range(trials):
    why = kill_trial(n, 1000 + n)
    if why:
        failures.append("trial %d: %s" % (n, why))


def die_after_commit(n):
    """The recorder killed right after its Nth commit, before that commit's
    chunks go back to the program: the spool still holds records the trace
    (and spool_pending) hold too."""
    env = dict(os.environ, ALLOCTRACE_FAULT_DIE_AFTER_COMMIT=str(n))
    d, out, trace, run = leaking_run("commit%d" % n, str(ITERS), "1500", env=env)
    run.wait()
    if run.returncode != -signal.SIGKILL:
        return None  # fewer than n commits (a loaded machine commits less often)
    killed_after_commit.append(n)
    if orphan_status() == "hung" or not os.path.exists(out):
        return "the program never finished"
    return recovered_whole(d, out, trace)


commit_failures, killed_after_commit = [], []
for n in (1, 2, 3, 4, 6, 9):
    why = die_after_commit(n)
    if why:
        commit_failures.append("after commit %d: %s" % (n, why))
    if n not in killed_after_commit:
        break  # the run had fewer commits than n


def aggregated_killed(n):
    """`run --aggregate` whose recorder dies right after its Nth commit:
    what it had folded was only in its memory.  The recovered trace must
    hold every leak, no block the program released (the exit scan says
    which were live), and count the allocations it lost."""
    d = os.path.join(work, "agg%d" % n)
    os.makedirs(d)
    out, trace = os.path.join(d, "leaked"), os.path.join(d, "t.db")
    run = subprocess.run([alloctrace, "run", "-q", "--aggregate", "-o", trace, "--", prog, out,
                          str(THREADS), str(ITERS), "1500"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL,
                         env=dict(os.environ, ALLOCTRACE_FAULT_DIE_AFTER_COMMIT=str(n)))
    if run.returncode != -signal.SIGKILL:
        return None
    if orphan_status() == "hung" or not os.path.exists(out):
        return "the program never finished"
    r = recover(trace)
    if r.returncode != 0:
        return "recover failed: %s" % r.stderr
    with open(out) as f:
        made = {tuple(int(x) for x in line.split()) for line in f}
    db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
    leaks = set(db.execute("SELECT ptr, size FROM leaks").fetchall())
    calls = int(meta(db, "alloc_calls") or 0)
    lost = int(meta(db, "lost_events") or 0)
    rows = db.execute("SELECT count(*) FROM lifetimes").fetchone()[0]
    db.close()
    aggregated_kills.append((n, rows, lost))
    if not made or not made <= leaks:
        return "%d of %d leaks missing" % (len(made - leaks), len(made))
    if leaks - made:
        return "%d blocks the program released are leaks" % len(leaks - made)
    if rows + lost != calls:
        return "alloc_calls %d, %d lifetimes and %d counted lost" % (calls, rows, lost)
    return None


aggregated_failures, aggregated_kills = [], []
for n in (12, 9, 6, 3):
    why = aggregated_killed(n)
    if why:
        aggregated_failures.append("after commit %d: %s" % (n, why))
libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
check(aggregated_kills and not aggregated_failures,
      "--aggregate, the recorder killed after a commit: recover gives every leak and no released"
      " block as one, the allocations its folds took counted lost (commit, lifetimes, lost: %s)"
      % aggregated_kills, "\n".join(aggregated_failures))
print("# %d trials of SIGKILL of the recorder, %d failed, %d killed before the program started"
      " (trials %s)" % (trials, len(failures), len(not_started), not_started))
check(len(not_started) < max(2, trials // 4), "most trials kill the recorder once the program"
      " runs (%d of %d did not)" % (len(not_started), trials))
check(not failures, "every trial's recovered trace holds every leak with its stack (%d trials)"
      % trials, "\n".join(failures[:10]))
check(len(killed_after_commit) >= 2 and not commit_failures, "the recorder killed right after a"
      " commit, before giving its chunks back: recover reads no record twice, every leak with its"
      " stack (killed after commits %s)" % killed_after_commit, "\n".join(commit_failures))

# ---- killed while it completes the trace ---------------------------------------------------
# The program has ended; the recorder is killed at each step of completing
# (lib/trace/complete.c), seen from outside by what the trace holds:
# the leaks are rows (spool_pending dropped) but no views yet (the replay);
# the views made, symbols not yet (symbolizing, most of the time).  Each is
# caught at least once in a few tries.  (From symbols done to finished is
# too short a moment to be caught from outside.)
def trace_state(trace):
    """What the trace holds, read without a lock (the writer may be half
    way through a write: None then)."""
    try:
        db = sqlite3.connect("file:%s?mode=ro&immutable=1" % trace, uri=True)
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        m = dict(db.execute("SELECT key, value FROM meta").fetchall())
        db.close()
    except sqlite3.Error:
        return None
    return ("spool_pending" in names, "leaks" in names, m.get("symbolized"), m.get("finished"))


STEPS = {
    "leaks written, no views": lambda s: s[:2] == (False, False),
    "views made, not symbolized": lambda s: s[1] and s[2] is None,
}
for name, step in STEPS.items():
    caught, why = 0, None
    for attempt in range(8):
        d, out, trace, run = leaking_run("complete-%s-%d" % (name.split()[0], attempt),
                                         str(ITERS))
        while run.poll() is None and not os.path.exists(out):
            time.sleep(0.002)
        while run.poll() is None:
            s = trace_state(trace) if os.path.exists(trace) else None
            if s and step(s):
                run.kill()
                caught = 1
                break
        run.wait()
        if caught:
            why = recovered_whole(d, out, trace)
            break
    check(caught and not why, "the recorder killed while completing (%s, try %d): recover gives"
          " every leak with its stack" % (name, attempt + 1), why or "")

# ---- killed after it named the trace in the spool, before its reader took the spool ----------
# The program then runs with no reader at all; `recover TRACE` finds the
# spool by the names in its header (it used to look only at spools whose
# reader had taken the lock: "no such file").  The moment is made to last:
# this test holds the spool's lock (the reader's, spool.c) from the spool's
# creation, so the run's reader cannot take it, and kills the run once the
# header names the trace.
F_OFD_SETLK, F_WRLCK = 37, 1
caught, why = 0, None
for attempt in range(5):
    d, out, trace, run = leaking_run("unlocked-%d" % attempt, str(ITERS))
    spool = os.path.join(d, ".alloctrace.%d.spool" % run.pid)
    fd = -1
    while fd < 0 and run.poll() is None:
        try:  # once the spool has its size (at__spool_create)
            fd = os.open(spool, os.O_RDWR) if os.path.getsize(spool) > 0 else -1
        except FileNotFoundError:
            pass
        time.sleep(0 if fd >= 0 else 0.0005)
    locked = fd >= 0
    try:
        fcntl.fcntl(fd, F_OFD_SETLK, struct.pack("hhqqi4x", F_WRLCK, 0, 0, 1, 0))
    except OSError:
        locked = False  # the reader was first
    while locked and run.poll() is None and not (os.pread(fd, 1, 72) or b"\0")[0]:
        time.sleep(0.0005)  # at_spool_header.writing (the file may be empty yet)
    run.kill()
    run.wait()
    if fd >= 0:
        os.close(fd)
    if locked and wait_file(out, 120):
        caught = 1
        why = recovered_whole(d, out, trace)
        break
check(caught and not why, "the recorder killed before its reader took the spool (try %d):"
      " recover TRACE gives every leak with its stack" % (attempt + 1), why or "")

# ---- another process reading the trace meanwhile --------------------------------------------
# A query holding a read transaction on the trace for a moment: the
# recorder's commit waits for it (it used to fail, and lose the trace:
# "SQLite refused an operation"), and so does `recover`'s.
def hold_read_lock(trace, seconds):
    db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True, isolation_level=None)
    db.execute("BEGIN")
    db.execute("SELECT count(*) FROM lifetimes").fetchone()
    time.sleep(seconds)
    db.execute("COMMIT")
    db.close()


d, out, trace, run = leaking_run("reading", str(ITERS), "1500", stderr=subprocess.PIPE)
wait_file(trace, 30)
check(wait_schema(trace, 60), "reading: the recorder made the trace's tables")
time.sleep(0.2)
hold_read_lock(trace, 0.5)
_, err = run.communicate(timeout=300)
why = recovered_whole(d, out, trace)  # recover of a finished trace: nothing to do
check(run.returncode == 0 and not why, "a read transaction on the trace during the run: the"
      " recorder waits for it, the trace is whole", err[-400:] + (why or ""))
d, out, trace, killed = killed_while_writing("reading-recover")
check(killed, "reading-recover: the recorder killed while the program writes")
db = sqlite3.connect(trace, isolation_level=None)
db.execute("BEGIN")
db.execute("SELECT count(*) FROM lifetimes").fetchone()
rec = subprocess.Popen([alloctrace, "recover", "-q", trace], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
time.sleep(0.5)
db.execute("COMMIT")
db.close()
_, err = rec.communicate(timeout=300)
why = recovered_whole(d, out, trace)
check(rec.returncode == 0 and not why, "a read transaction on the trace during recover: it waits"
      " for it, the trace is whole", err[-400:] + (why or ""))

# A recover that fails half way (here a trigger refuses every new lifetime)
# keeps in the spool what it could not commit: the next recover, once
# the trigger is gone, gives the whole trace (the chunks used to go back
# to a program that had ended: their leaks were lost).
d, out, trace, killed = killed_while_writing("recover-twice")
check(killed, "recover-twice: the recorder killed while the program writes")
db = sqlite3.connect(trace, isolation_level=None)
db.execute("CREATE TRIGGER refuse BEFORE INSERT ON lifetimes BEGIN SELECT RAISE(FAIL, 'no'); END")
db.close()
r = recover(trace)
check(r.returncode != 0 and [f for f in leftovers(d) if f.endswith(".spool")],
      "recover refused by the trace fails, the spool stays (%s)" % leftovers(d), r.stderr)
db = sqlite3.connect(trace, isolation_level=None)
db.execute("DROP TRIGGER refuse")
db.close()
why = recovered_whole(d, out, trace)
check(not why, "then recover again: every leak with its stack", why or "")

# ---- a dead recorder, its pid reused: never waits, never crawls ---------------------------
d = os.path.join(work, "reuse")
os.makedirs(d)
BIG = 400000
t0 = time.time()
live = subprocess.run([alloctrace, "run", "-q", "-o", os.path.join(d, "live.db"), "--", prog,
                       os.path.join(d, "live-leaked"), str(THREADS), str(BIG)],
                      capture_output=True, text=True, timeout=300)
live_s = time.time() - t0
check(live.returncode == 0, "a big run with a live recorder", live.stderr[-500:])
out, trace = os.path.join(d, "leaked"), os.path.join(d, "t.db")
other = subprocess.Popen(["sleep", "300"])
t0 = time.time()
run = subprocess.Popen([alloctrace, "run", "-q", "-o", trace, "--", prog, out, str(THREADS),
                        str(BIG)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
spool = os.path.join(d, ".alloctrace.%d.spool" % run.pid)
wait_file(trace, 30)
time.sleep(0.1)
run.kill()
run.wait()
with open(spool, "r+b") as f:  # at_spool_header.consumer_pid: a live process, not the recorder
    f.seek(24)
    f.write(other.pid.to_bytes(4, "little"))
finished = wait_file(out, 120)
dead_s = time.time() - t0
usage = os.stat(spool).st_blocks * 512 if os.path.exists(spool) else -1
other.kill()
check(finished and dead_s < 2 * live_s + 10,
      "the program whose recorder died (pid reused) runs to its end without waiting:"
      " %.1f s, %.1f s with a live recorder" % (dead_s, live_s))
check(0 < usage <= 96 << 20, "the spool stopped growing: %.1f MiB on disk" % (usage / 2**20))
r = recover(trace)
check(r.returncode == 0, "recover completes it", r.stderr)
db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
lost = int(meta(db, "lost_events") or 0)
calls = int(meta(db, "alloc_calls") or 0)
lifetimes = db.execute("SELECT count(*) FROM lifetimes").fetchone()[0]
program_end = meta(db, "program_end")
db.close()
# The program ended (it wrote OUT); its END record was among what could
# not be spooled, and the spool's header says it closed: not "died".
check(program_end == "closed", "the program ended, its END lost: program_end %s" % program_end)
ck = subprocess.run([alloctrace, "check", trace], capture_output=True, text=True, timeout=120)
# The exit scan's verdicts may or may not have reached the spool: with
# them, a block the scan did not find live was released unrecorded (closed
# as vanished, no leak); without them, the leaks may be such releases.
with open(out) as f:
    made = {tuple(int(x) for x in line.split()) for line in f}
db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
scanned = meta(db, "reach_scan") == "done" and int(meta(db, "reach_blocks") or -1) <= \
    db.execute("SELECT count(*) FROM reachability").fetchone()[0]
leaks = set(db.execute("SELECT ptr, size FROM leaks WHERE size BETWEEN 5000 AND 5999").fetchall())
db.close()
check("died" not in ck.stdout and "could not be recorded" in ck.stdout
      and ("these may not be leaks" in ck.stdout if not scanned else leaks <= made),
      "check does not say the program died, and says events were lost (scan complete: %s;"
      " %d leak rows at the leak site, %d not made)" % (scanned, len(leaks), len(leaks - made)),
      ck.stdout[:1500])
check(lost > 0 and calls >= THREADS * BIG and lifetimes < calls,
      "what could not be spooled is counted: lost_events %d, alloc_calls %d, %d lifetimes"
      % (lost, calls, lifetimes))
rep = subprocess.run([alloctrace, "report", trace], capture_output=True, text=True, timeout=120)
check("could not be recorded" in rep.stdout + rep.stderr or "lost" in rep.stdout + rep.stderr,
      "the report says events were lost", (rep.stdout + rep.stderr)[:600])

# ---- SIGTERM from timeout ------------------------------------------------------------------
d = os.path.join(work, "term")
os.makedirs(d)
trace = os.path.join(d, "t.db")
# The program says when its trap is set (on a loaded machine a fixed delay
# can end the run before bash has even started); then `run` is sent
# SIGTERM as timeout sends it.
ready = os.path.join(d, "ready")
run = subprocess.Popen([alloctrace, "run", "-q", "-o", trace, "--", "bash", "-c",
                        "trap 'exit 7' TERM; : > %s; while :; do :; done" % ready],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
wait_file(ready, 120)
run.send_signal(signal.SIGTERM)
_, err = run.communicate(timeout=120)
check(run.returncode == 7, "SIGTERM reaches the program, the run exits with its status 7"
      " (%d)" % run.returncode, err[-400:])
r = run
r.stderr = err
ok = os.path.exists(trace)
db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True) if ok else None
check(ok and meta(db, "finished") == "1" and meta(db, "program_end") == "closed",
      "the trace is finished, the program closed it", r.stderr[-400:])
check(not leftovers(d), "no spool left (%s)" % leftovers(d))
out = os.path.join(d, "leaked")
r = subprocess.run(["timeout", "-s", "TERM", "5", alloctrace, "run", "-q", "-o",
                    os.path.join(d, "k.db"), "--", prog, out, "2", "100000000", "1000"],
                   capture_output=True, text=True, timeout=120)
check(r.returncode == 124, "timeout says the command timed out (124, got %d)" % r.returncode,
      r.stderr[-400:])
db = sqlite3.connect("file:%s?mode=ro" % os.path.join(d, "k.db"), uri=True)
leaks = db.execute("SELECT count(*) FROM leaks l JOIN stack_text s ON s.stack = l.stack"
                   " WHERE s.text LIKE '%leak_site%'").fetchone()[0]
check(meta(db, "finished") == "1" and meta(db, "program_end") == "died" and leaks > 0,
      "a program killed by the forwarded SIGTERM: its trace finished, its leaks in it (%d)" % leaks)
check(not leftovers(d), "no spool left (%s)" % leftovers(d))
r = subprocess.run(["timeout", "--preserve-status", "-s", "TERM", "5", alloctrace, "run", "-q",
                    "-o", os.path.join(d, "p.db"), "--", prog, out, "2", "100000000", "1000"],
                   capture_output=True, text=True, timeout=120)
check(r.returncode == 128 + signal.SIGTERM, "with --preserve-status: 143, as for the program"
      " untraced (%d)" % r.returncode)

# ---- --force: the old trace replaced only by a complete new one ----------------------------
d = os.path.join(work, "force")
os.makedirs(d)
trace = os.path.join(d, "t.db")
subprocess.run([alloctrace, "run", "-q", "-o", trace, "--", "true"], check=True, timeout=60)
digest = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
old = digest(trace)
go = os.path.join(d, "go")
run = subprocess.Popen([alloctrace, "run", "-q", "--force", "-o", trace, "--", "bash", "-c",
                        "while [ ! -e %s ]; do sleep 0.02; done" % go])
temp = os.path.join(d, ".alloctrace.%d.db" % run.pid)
wait_file(temp, 30)
check(os.path.exists(temp) and digest(trace) == old,
      "while the new trace is written (%s), the old one is untouched" % os.path.basename(temp))
open(go, "w").close()
check(run.wait(timeout=60) == 0, "the run ends")
db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
check(digest(trace) != old and meta(db, "finished") == "1" and "bash" in meta(db, "arguments")
      and not leftovers(d), "then the new trace replaces it, nothing left beside it")
db.close()
os.unlink(go)
old = digest(trace)
run = subprocess.Popen([alloctrace, "run", "-q", "--force", "-o", trace, "--", "bash", "-c",
                        "while [ ! -e %s ]; do sleep 0.02; done" % go])
temp = os.path.join(d, ".alloctrace.%d.db" % run.pid)
wait_file(temp, 30)
time.sleep(0.2)
run.kill()
run.wait()
open(go, "w").close()
time.sleep(0.5)
check(digest(trace) == old, "the recorder killed: the old trace is still whole")
r = recover(trace)
db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
check(r.returncode == 0 and digest(trace) != old and meta(db, "finished") == "1"
      and meta(db, "program_end") == "closed"
      and not [f for f in leftovers(d) if f.startswith(".alloctrace.")],
      "recover TRACE finds the new one, completes it and puts it in place (%s)" % leftovers(d),
      r.stderr)
# Releases the trace never got (the tracer drops every 50th release record
# and counts it lost, as with no memory for a thread), of blocks the exit
# scan did not find live: closed as vanished, not shown as leaks.
d, out, trace, run = leaking_run("dropped", str(ITERS),
                                 env=dict(os.environ, ALLOCTRACE_FAULT_DROP_RELEASES="50"))
run.wait()
with open(out) as f:
    made = {tuple(int(x) for x in line.split()) for line in f}
db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
leaks = set(db.execute("SELECT ptr, size FROM leaks WHERE size BETWEEN 5000 AND 5999").fetchall())
nleaks = db.execute("SELECT count(*) FROM leaks").fetchone()[0]
unjudged = db.execute("SELECT count(*) FROM leaks l WHERE NOT EXISTS"
                      " (SELECT 1 FROM reachability r WHERE r.seq = l.alloc_seq)").fetchone()[0]
vanished = db.execute("SELECT count(*) FROM allocations WHERE free_op = 'vanished'").fetchone()[0]
lost = int(meta(db, "lost_events") or 0)
db.close()
check(run.returncode == 0 and made and leaks == made and nleaks < len(made) + 16 and not unjudged
      and lost >= vanished > 0,
      "releases lost, the exit scan complete: %d lost, %d vanished, %d leaks (%d made, %d without"
      " a verdict)" % (lost, vanished, nleaks, len(made), unjudged))
fifo = os.path.join(d, "fifo.db")
os.mkfifo(fifo)
r = subprocess.run([alloctrace, "run", "-q", "--force", "-o", fifo, "--", "true"],
                   capture_output=True, text=True, timeout=60)
check(r.returncode != 0 and os.path.exists(fifo) and not os.path.isfile(fifo),
      "--force never replaces a FIFO", r.stderr)
finish()
