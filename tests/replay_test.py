#!/usr/bin/env python3
"""The replay's two sources give one answer.

`alloctrace run` replays the live heap from the log the spool reader kept
while writing the lifetimes (lib/trace/replay.h); `alloctrace recover` of
a trace whose completion is undone replays the same lifetimes read back
from the `lifetimes` table.  On traces with the tie of the replay's rule
(views_prog peak: a release at the seq of an allocation), threads with
cross-thread frees and realloc (preload_prog threads), and a real program
(Debian's sqlite3), the timeline rows and the peak must be the same, row
for row.

A program that frees its first block only after 1.2 million allocations
(bench/keep_live's shape) must be replayed from the log too: its first
lifetime logs a release 1.2 million seqs ahead, which once made the log
give up as if the spool were corrupt (2.3 s of replaying the table at the
end of a 2 million block run instead of 0.05 s).  The same program freeing
in a random order writes most lifetimes to lifetimes_late while it runs;
the finished trace holds them in `lifetimes` (and `recover` moves those of
a trace left unfinished, also of a recorder killed right after a commit
that set rows aside: each block's lifetime once, none made twice).  An
aggregated run whose recorder died: no released block becomes a leak,
and the allocations lost with the dead recorder's folds are counted.

  replay_test.py ALLOCTRACE VIEWS_PROG PRELOAD_PROG WORKDIR SQLITE3 KEEP_LIVE
"""
import os
import shutil
import sqlite3
import subprocess
import sys

import orphans
from tap import check, finish

alloctrace, views_prog, preload_prog, workdir, sqlite3_prog, keep_live = sys.argv[1:7]
work = os.path.join(workdir, "replay-%d" % os.getpid())
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)

PEAK_KEYS = ("peak_bytes", "peak_blocks", "peak_seq", "peak_time_us")


def answer(path):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    timeline = db.execute("SELECT * FROM timeline ORDER BY seq").fetchall()
    peak = dict(db.execute("SELECT key, value FROM meta WHERE key IN (%s)"
                           % ",".join("?" * len(PEAK_KEYS)), PEAK_KEYS).fetchall())
    lifetimes = db.execute("SELECT count(*) FROM lifetimes").fetchone()[0]
    db.close()
    return timeline, peak, lifetimes


def compare(name, argv, stdin=None):
    trace = os.path.join(work, name + ".db")
    r = subprocess.run([alloctrace, "run", "-q", "-o", trace, "--"] + argv, stdin=stdin,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       env=dict(os.environ, ALLOCTRACE_TIMING="1"))
    check(r.returncode == 0, "%s: traced" % name, r.stderr)
    check("timeline" in r.stderr and "(from the log)" in r.stderr,
          "%s: run's completion replayed the log, not the table" % name, r.stderr)
    logged, logged_peak, n = answer(trace)
    check(n > 0 and len(logged) > 0 and set(logged_peak) == set(PEAK_KEYS),
          "%s: %d lifetimes, %d timeline rows, the peak's four keys" % (name, n, len(logged)))
    # Undo the completion's replay, then let recover complete it again:
    # recover knows nothing of a log, so it replays the table.
    again = os.path.join(work, name + "-again.db")
    shutil.copyfile(trace, again)
    db = sqlite3.connect(again)
    db.execute("DELETE FROM timeline")
    db.execute("DELETE FROM meta WHERE key IN (%s)" % ",".join("?" * len(PEAK_KEYS)), PEAK_KEYS)
    db.execute("UPDATE meta SET value = 0 WHERE key = 'finished'")
    db.commit()
    db.close()
    r = subprocess.run([alloctrace, "recover", again], capture_output=True, text=True)
    check(r.returncode == 0, "%s: recover completes it again" % name, r.stderr)
    read_back, read_back_peak, _ = answer(again)
    check(read_back_peak == logged_peak,
          "%s: the same peak from the log and from the table (%s)" % (name, logged_peak),
          "table: %s" % read_back_peak)
    diff = [(a, b) for a, b in zip(logged, read_back) if a != b]
    check(len(read_back) == len(logged) and not diff,
          "%s: the same %d timeline rows from the log and from the table" % (name, len(logged)),
          "%d vs %d rows, first difference %s" % (len(logged), len(read_back), diff[:1]))
    return logged_peak


peak = compare("peak", [views_prog, "peak"])
check(peak.get("peak_bytes") == 4000, "peak: 4000 B, the tie counted as the rule says", peak)
compare("threads", [preload_prog, "threads"])
script = "".join("INSERT INTO t VALUES(%d, printf('%%0*d', %d, %d));\n" % (i, i % 300, i)
                 for i in range(20000))
with open(os.path.join(work, "w.sql"), "w") as f:
    f.write("CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);\nBEGIN;\n" + script +
            "COMMIT;\nCREATE INDEX tb ON t(b);\nSELECT count(*), sum(length(b)) FROM t;\n")
with open(os.path.join(work, "w.sql")) as f:
    compare("sqlite3", [sqlite3_prog, os.path.join(work, "db.sqlite")], stdin=f)
peak = compare("keep_live", [keep_live, "1200000", "24"])
check(int(peak.get("peak_blocks", 0)) >= 1200000, "keep_live: the 1.2 M blocks live at the peak",
      peak)


# Releases in no particular order: most lifetimes go to lifetimes_late
# while the program runs (lib/trace/rows.c), and completion moves them into
# lifetimes in sequence order.
N = 300000
peak = compare("shuffled", [keep_live, str(N), "24", "shuffled"])
check(int(peak.get("peak_blocks", 0)) >= N, "shuffled: the %d blocks live at the peak" % N, peak)
shuffled = os.path.join(work, "shuffled.db")
check(not [f for f in os.listdir(work) if f.startswith("shuffled.db-")],
      "shuffled: no late file or journal left beside the trace", os.listdir(work))
db = sqlite3.connect("file:%s?mode=ro" % shuffled, uri=True)
late = db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'lifetimes_late'").fetchone()[0]
pages, free = (db.execute("PRAGMA %s" % p).fetchone()[0] for p in ("page_count", "freelist_count"))
check(free * 20 < pages, "shuffled: the trace is not half free pages (%d of %d free)"
      % (free, pages))
released = db.execute("SELECT count(*), count(DISTINCT seq + free_dseq), min(seq), max(seq)"
                      " FROM lifetimes WHERE size = 24 AND free_dseq IS NOT NULL").fetchone()
rows = db.execute("SELECT * FROM lifetimes ORDER BY seq").fetchall()
db.close()
check(not late, "shuffled: the finished trace has no lifetimes_late")
check(released[0] == N and released[1] == N and released[3] - released[2] == N - 1,
      "shuffled: each of the %d blocks released once, %d distinct releases, seqs %s..%s"
      % (N, released[1], released[2], released[3]))

# A trace left unfinished with rows in lifetimes_late (a recorder killed
# while a shuffled program ran): recover moves them, and the rows are those
# of the trace finished in one go.
moved = os.path.join(work, "moved.db")
shutil.copyfile(shuffled, moved)
db = sqlite3.connect(moved)
db.executescript(
    "CREATE TABLE lifetimes_late AS SELECT * FROM lifetimes WHERE seq % 3 = 1 ORDER BY random();"
    "DELETE FROM lifetimes WHERE seq % 3 = 1; DELETE FROM timeline;"
    "UPDATE meta SET value = 0 WHERE key = 'finished';")
db.commit()
db.close()
r = subprocess.run([alloctrace, "recover", moved], capture_output=True, text=True)
check(r.returncode == 0, "moved: recover completes a trace with rows in lifetimes_late", r.stderr)
db = sqlite3.connect("file:%s?mode=ro" % moved, uri=True)
again = db.execute("SELECT * FROM lifetimes ORDER BY seq").fetchall()
late = db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'lifetimes_late'").fetchone()[0]
db.close()
check(again == rows and not late, "moved: the same %d lifetimes, lifetimes_late gone" % len(rows),
      "%d rows against %d" % (len(again), len(rows)))


# The same with the rows aside as the writer leaves them now: runs of
# lifetimes in seq order, packed (lib/trace/late_runs.h), in the late file
# beside the trace.  1,500 runs: more than one merge takes at once
# (MERGE_RUNS, complete.c), so they are merged a group after the other.
def leb128(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7f | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def pack_run(run):
    out, prev = bytearray(), 0
    for row in run:
        out += leb128(sum(1 << c for c, x in enumerate(row) if x is None))
        out += leb128(row[0] - prev)
        out += b"".join(leb128(x) for x in row[1:] if x is not None)
        prev = row[0]
    return bytes(out)


def set_runs_aside(trace, nruns, spoil=None):
    """Moves a third of the trace's lifetimes into NRUNS runs of its late
    file, unfinished; `spoil(data)` changes the bytes of one run.  The
    number of lifetimes moved."""
    db = sqlite3.connect(trace)
    aside = db.execute("SELECT * FROM lifetimes WHERE seq % 3 = 2 ORDER BY seq").fetchall()
    runs = [[] for _ in range(nruns)]
    for i, row in enumerate(aside):
        runs[i * 7919 % nruns].append(row)
    db.executescript("DELETE FROM lifetimes WHERE seq % 3 = 2; DELETE FROM timeline;"
                     "UPDATE meta SET value = 0 WHERE key = 'finished';")
    db.commit()
    db.close()
    late = sqlite3.connect(trace + "-late")
    late.execute("CREATE TABLE lifetimes_late_runs(id INTEGER PRIMARY KEY, rows INTEGER NOT NULL,"
                 " data BLOB NOT NULL)")
    for k, run in enumerate(runs):
        data = pack_run(run)
        if spoil and k == nruns // 2:
            data = spoil(data)
        late.execute("INSERT INTO lifetimes_late_runs(rows, data) VALUES(?, ?)", (len(run), data))
    late.commit()
    late.close()
    return len(aside)


packed = os.path.join(work, "packed.db")
shutil.copyfile(shuffled, packed)
moved_n = set_runs_aside(packed, 1500)
r = subprocess.run([alloctrace, "recover", packed], capture_output=True, text=True)
check(r.returncode == 0, "packed: recover completes a trace with %d lifetimes in 1,500 runs"
      % moved_n, r.stderr)
db = sqlite3.connect("file:%s?mode=ro" % packed, uri=True)
again = db.execute("SELECT * FROM lifetimes ORDER BY seq").fetchall()
db.close()
check(again == rows and not os.path.exists(packed + "-late"),
      "packed: the same %d lifetimes, the late file gone" % len(rows),
      "%d rows against %d" % (len(again), len(rows)))

# A run whose bytes do not make its rows (cut short; a seq that does not
# grow): recover fails with one line saying so (exit 125, as for any trace
# it cannot read) and completes nothing, the rows aside stay where they were.
for what, spoil in (("cut short", lambda d: d[:-1]),
                    ("a seq that does not grow", lambda d: d[:1] + b"\0" + d[2:])):
    spoiled = os.path.join(work, "spoiled.db")
    for f in (spoiled, spoiled + "-late"):
        if os.path.exists(f):
            os.unlink(f)
    shutil.copyfile(shuffled, spoiled)
    before = len(rows) - set_runs_aside(spoiled, 40, spoil)
    r = subprocess.run([alloctrace, "recover", spoiled], capture_output=True, text=True)
    db = sqlite3.connect("file:%s?mode=ro" % spoiled, uri=True)
    held = db.execute("SELECT count(*) FROM lifetimes").fetchone()[0]
    finished = db.execute("SELECT value FROM meta WHERE key = 'finished'").fetchone()[0]
    db.close()
    check(r.returncode == 125 and len(r.stderr.splitlines()) == 1 and "corrupt" in r.stderr
          and held == before and int(finished) == 0 and os.path.exists(spoiled + "-late"),
          "spoiled (%s): recover fails in one line (exit %d: %s), the trace unfinished with its"
          " %d rows" % (what, r.returncode, r.stderr.strip(), held), r.stderr)


# The recorder killed while the shuffled program releases, right after
# the first commit that left rows in lifetimes_late
# (ALLOCTRACE_FAULT_DIE_AFTER_COMMIT=late): `recover` must take those rows
# as the trace's (once it read the spool again over them and made a
# second row of each, and completing failed on lifetimes.seq).
def recover(trace):
    """`alloctrace recover TRACE`, again while the orphaned program runs."""
    return orphans.recover(alloctrace, trace)


K = 400000
trace = os.path.join(work, "killed.db")
r = subprocess.run([alloctrace, "run", "-q", "-o", trace, "--", keep_live, str(K), "24",
                    "shuffled"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=dict(os.environ, ALLOCTRACE_FAULT_DIE_AFTER_COMMIT="late"))
check(r.returncode == -9, "killed: the recorder died after its first commit with rows aside",
      r.returncode)
# the rows set aside are in the trace's late file (lib/trace/schema.h)
check(os.path.exists(trace + "-late"), "killed: the late file is beside the trace")
db = sqlite3.connect("file:%s-late?mode=ro&immutable=1" % trace, uri=True)
names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
aside = db.execute("SELECT coalesce(sum(rows), 0) FROM lifetimes_late_runs").fetchone()[0] \
    if "lifetimes_late_runs" in names else 0
db.close()
r = recover(trace)
check(not [f for f in os.listdir(work) if f.startswith("killed.db-")],
      "killed: recover leaves no late file or journal", os.listdir(work))
check(r.returncode == 0, "killed: recover completes the trace", r.stderr)
db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
lost = int(db.execute("SELECT value FROM meta WHERE key = 'lost_events'").fetchone()[0])
got = db.execute("SELECT count(*), count(DISTINCT seq), count(DISTINCT seq + free_dseq)"
                 " FROM lifetimes WHERE size = 24 AND free_dseq IS NOT NULL").fetchone()
live = db.execute("SELECT count(*) FROM lifetimes WHERE size = 24 AND free_dseq IS NULL"
                  ).fetchone()[0]
db.close()
# The orphaned program may outrun what the spool still takes (a loaded
# machine): what it could not spool is counted, and every block is then
# released once in the trace or live with its release among those.
whole = got == (K, K, K) and live == 0 if lost == 0 else \
    got[0] == got[1] == got[2] and got[0] + live == K and live <= lost
check(aside > 0 and whole,
      "killed with %d rows aside, %d events lost: recovered, no lifetime twice, each of the %d"
      " blocks released once (%s) or, its release lost, live (%d)" % (aside, lost, K, got, live))

# A late file left by a dead run whose trace is gone: a new trace of the
# same name starts without its rows (they collided with its own on
# lifetimes.seq and the run could not complete).
fresh = os.path.join(work, "fresh.db")
db = sqlite3.connect(fresh + "-late")
db.execute("CREATE TABLE lifetimes_late(seq INTEGER NOT NULL, ptr INTEGER, size INTEGER,"
           " info INTEGER, thread INTEGER, stack INTEGER, t INTEGER, free_dseq INTEGER,"
           " free_dt INTEGER, free_thread INTEGER, free_stack INTEGER)")
db.executemany("INSERT INTO lifetimes_late VALUES(?, 1, 24, 0, 1, 1, 0, 1, 0, 1, 1)",
               [(seq,) for seq in range(1, 500)])
db.commit()
db.close()
r = subprocess.run([alloctrace, "run", "-q", "-o", fresh, "--", keep_live, "1000", "24"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
db = sqlite3.connect("file:%s?mode=ro" % fresh, uri=True)
n = db.execute("SELECT count(*) FROM lifetimes WHERE size = 24").fetchone()[0]
db.close()
check(r.returncode == 0 and n == 1000 and not os.path.exists(fresh + "-late"),
      "a stale late file beside a new trace: its rows are not the new trace's (%d rows)" % n,
      r.stderr)

# --aggregate, the recorder killed right after the fourth commit past a
# folded lifetime (ALLOCTRACE_FAULT_DIE_AFTER_COMMIT=fold): the lifetimes
# it had folded were only in its memory, and their allocations' halves,
# loaded back by recover, once became leaks (267 of a run that frees every
# block).  The exit scan says which blocks were live; what was lost is
# counted.
def aggregated_killed(trace):
    """The run, recover, and what the recovered trace holds."""
    r = subprocess.run([alloctrace, "run", "-q", "--aggregate", "-o", trace, "--", keep_live,
                        str(N), "24", "shuffled"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL,
                       env=dict(os.environ, ALLOCTRACE_FAULT_DIE_AFTER_COMMIT="fold"))
    check(r.returncode == -9, "aggregated: the recorder died after folding", r.returncode)
    r = recover(trace)
    check(r.returncode == 0, "aggregated, killed: recover completes the trace", r.stderr)
    db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
    m = dict(db.execute("SELECT key, value FROM meta").fetchall())
    leaks = db.execute("SELECT count(*) FROM leaks WHERE size = 24").fetchone()[0]
    rows = db.execute("SELECT count(*) FROM lifetimes").fetchone()[0]
    verdicts = db.execute("SELECT count(*) FROM reachability").fetchone()[0]
    db.close()
    return m, leaks, rows, verdicts


# The commits after the fold do not always give back a chunk holding a
# folded lifetime's release (then the resumed reader reads it again and
# nothing is lost): up to three runs, until one lost some.
for attempt in range(3):
    m, leaks, rows, verdicts = aggregated_killed(os.path.join(work, "agg_killed%d.db" % attempt))
    if int(m.get("lost_events", 0)) > 0:
        break
check(m.get("reach_scan") == "done" and int(m.get("reach_blocks", -1)) == verdicts,
      "aggregated, killed: the exit scan's %s verdicts sent are the %d in the trace"
      % (m.get("reach_blocks"), verdicts))
calls, lost = int(m.get("alloc_calls", 0)), int(m.get("lost_events", 0))
check(leaks == 0 and lost > 0 and rows + lost == calls and str(m.get("aggregating")) == "1",
      "aggregated, killed: no released block a leak (%d), the %d allocations its folds took"
      " counted lost (%d lifetimes of %d calls)" % (leaks, lost, rows, calls))

shutil.rmtree(work, ignore_errors=True)
finish()
