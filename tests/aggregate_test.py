#!/usr/bin/env python3
"""`alloctrace run --aggregate` against the full trace of the same run:
deterministic programs (aggregate_prog.c; Debian's sqlite3 on a small
script) are traced twice, full and aggregated, and the two traces must
agree on everything an aggregated trace keeps exact: the leaks (sequence
numbers, sizes, stacks), the findings (every column but the time), the
peak (meta peak_bytes, peak_blocks, peak_seq) and the blocks live at it,
the stored timeline's peak and end, each stack's allocation count and bytes, `check
--format json` and `report --format json` (apart from the trace's path,
pid and times) and the text report's peak line; the aggregated trace has
fewer lifetime rows than the full one, says meta aggregated = 1, and
html and query run on it.  A longer run of the program (600 k events
after its bad releases, past the recorder's replay window of 2^18
seqs, then a peak of 70 k blocks, past the 65,536 it holds before
writing them as rows) agrees the same way, and the recorder's memory does not grow with
the calls: eight times as many take less than 32 MiB more.

    aggregate_test.py ALLOCTRACE AGGREGATE_PROG SQLITE3 WORKDIR
"""
import json
import os
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import check, finish  # noqa: E402
import real_programs_test  # noqa: E402

alloctrace, prog, sqlite_bin, workdir = (os.path.abspath(a) for a in sys.argv[1:5])
work = os.path.join(workdir, "aggregate-%d" % os.getpid())
os.makedirs(work, exist_ok=True)


def traced(name, argv, aggregate, stdin=None):
    trace = os.path.join(work, name + (".agg" if aggregate else ".full") + ".db")
    opts = ["--aggregate"] if aggregate else []
    r = subprocess.run([alloctrace, "run", "-q", "-o", trace, "--force", *opts, "--", *argv],
                       input=stdin, capture_output=True, text=True, cwd=work, timeout=300)
    check(r.returncode == 0, "%s%s: run exit 0" % (name, " --aggregate" if aggregate else ""),
          r.stderr)
    return trace


def recorder_rss_kib(argv):
    """The peak resident set of `alloctrace run --aggregate -- argv`: the
    largest of it and the program (a small one), read by a child of our
    own so that no earlier run counts."""
    trace = os.path.join(work, "rss.db")
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True,"
            " stdout=subprocess.DEVNULL); print(resource.getrusage("
            "resource.RUSAGE_CHILDREN).ru_maxrss)")
    r = subprocess.run([sys.executable, "-c", code, alloctrace, "run", "-q", "--aggregate",
                        "-o", trace, "--force", "--", *argv],
                       capture_output=True, text=True, cwd=work, timeout=300)
    check(r.returncode == 0, "rss: run --aggregate %s" % " ".join(argv[1:]), r.stderr)
    return int(r.stdout.strip() or 0)


def rows(db, sql):
    return sorted(db.execute(sql).fetchall(), key=repr)


RUN_SPECIFIC = {"trace", "pid", "start_time", "end_time", "duration_us", "peak_time_us",
                "time_us", "ptr", "alloc_ptr"}


def normal(doc):
    """`doc` without what differs between two runs of one program: where,
    when, which pid, which addresses (ASLR)."""
    if isinstance(doc, dict):
        return {k: normal(v) for k, v in doc.items() if k not in RUN_SPECIFIC}
    if isinstance(doc, list):
        return [normal(v) for v in doc]
    return doc


def tool_json(trace, *cmd):
    r = subprocess.run([alloctrace, *cmd, trace, "--format", "json"], capture_output=True,
                       text=True, timeout=120)
    return r.returncode, normal(json.loads(r.stdout)) if r.stdout.strip() else {}


PEAK_LIVE = ("SELECT alloc_seq, size, align, family, alloc_stack FROM allocations,"
             " (SELECT value AS p FROM meta WHERE key = 'peak_seq')"
             " WHERE alloc_seq <= p AND (free_seq IS NULL OR free_seq > p)")
FINDINGS = ("SELECT kind, seq, release_stack, release_size, release_align, release_family,"
            " alloc_seq, alloc_stack, alloc_size, alloc_align, alloc_family,"
            " first_free_seq, first_free_stack, detail FROM findings")


def compare(name, argv, stdin=None, fresh=None):
    if fresh:
        fresh()
    full = traced(name, argv, False, stdin)
    if fresh:
        fresh()
    agg = traced(name, argv, True, stdin)
    f = sqlite3.connect("file:%s?mode=ro" % full, uri=True)
    a = sqlite3.connect("file:%s?mode=ro" % agg, uri=True)
    meta = "SELECT key, value FROM meta WHERE key IN ('peak_bytes', 'peak_blocks', 'peak_seq'," \
           " 'alloc_calls', 'alloc_bytes', 'free_calls', 'findings')"
    check(rows(f, meta) == rows(a, meta) and len(rows(f, meta)) == 7,
          "%s: peak, totals and findings count in meta are the full trace's" % name,
          "%r / %r" % (rows(f, meta), rows(a, meta)))
    check(a.execute("SELECT value FROM meta WHERE key = 'aggregated'").fetchone() == (1,),
          "%s: meta aggregated = 1" % name)
    check(f.execute("SELECT value FROM meta WHERE key = 'aggregated'").fetchone() is None,
          "%s: a full trace has no meta aggregated" % name)
    nf = f.execute("SELECT count(*) FROM lifetimes").fetchone()[0]
    na = a.execute("SELECT count(*) FROM lifetimes").fetchone()[0]
    check(na * 5 < nf, "%s: the aggregated trace has far fewer lifetime rows" % name,
          "%d against %d" % (na, nf))
    leaks = "SELECT alloc_seq, size, align, family, stack, reachability FROM leaks"
    check(rows(f, leaks) == rows(a, leaks) and (len(rows(f, leaks)) > 0 or name == "sqlite3"),
          "%s: the same leaks" % name)
    check(rows(f, FINDINGS) == rows(a, FINDINGS), "%s: the same findings" % name)
    check(rows(f, PEAK_LIVE) == rows(a, PEAK_LIVE) and len(rows(f, PEAK_LIVE)) > 0,
          "%s: the same blocks live at the peak" % name)
    # Points are 10 ms of trace time apart, and times differ between runs:
    # the peak's and the last point are the same.
    tl = ("SELECT seq, live_bytes, live_blocks, alloc_calls, alloc_bytes, free_calls FROM timeline"
          " WHERE seq = (SELECT value FROM meta WHERE key = 'peak_seq')"
          " OR seq = (SELECT max(seq) FROM timeline)")
    check(rows(f, tl) == rows(a, tl) and len(rows(f, tl)) == 2,
          "%s: the stored timeline's peak and last point" % name)
    sites_full = rows(f, "SELECT alloc_stack, count(*), sum(size) FROM allocations GROUP BY 1")
    sites_agg = rows(a, "SELECT stack, count, bytes FROM allocation_totals")
    check(sites_full == sites_agg and len(sites_full) > 2,
          "%s: every stack's allocation count and bytes" % name)
    hist = a.execute("SELECT (SELECT sum(count) FROM aggregates),"
                     " (SELECT sum(count) FROM aggregate_sizes),"
                     " (SELECT sum(count) FROM aggregate_lifetimes),"
                     " (SELECT sum(bytes) FROM aggregates), (SELECT sum(bytes) FROM aggregate_sizes)"
                     ).fetchone()
    check(hist[0] == hist[1] == hist[2] and hist[3] == hist[4] and hist[0] > 0,
          "%s: the histograms add up to their aggregates" % name, repr(hist))
    for cmd in (("check",), ("report",)):
        rf, jf = tool_json(full, *cmd)
        ra, ja = tool_json(agg, *cmd)
        check(rf == ra and jf == ja and jf, "%s: %s --format json is the full trace's"
              % (name, cmd[0]), json.dumps(jf)[:300] + " / " + json.dumps(ja)[:300])
    peak_line = [subprocess.run([alloctrace, "report", t], capture_output=True, text=True,
                                timeout=120).stdout for t in (full, agg)]
    pl = [[ln.split(",")[0] for ln in out.splitlines() if "peak heap" in ln] for out in peak_line]
    check(pl[0] == pl[1] and pl[0], "%s: the text report's peak" % name, repr(pl))
    html = os.path.join(work, name + ".html")
    r = subprocess.run([alloctrace, "html", agg, "-o", html], capture_output=True, text=True,
                       timeout=120)
    check(r.returncode == 0 and os.path.getsize(html) > 0, "%s: html on the aggregated trace"
          % name, r.stderr)
    r = subprocess.run([alloctrace, "query", agg, "SELECT count(*) FROM allocations"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "%s: query on the aggregated trace" % name, r.stderr)


compare("prog", [prog])
compare("prog-long", [prog, "150"])
small_run, large_run = recorder_rss_kib([prog, "100"]), recorder_rss_kib([prog, "800"])
check(0 < large_run < small_run + 32 * 1024,
      "rss: 8x the calls, the recorder's peak memory %d KiB -> %d KiB" % (small_run, large_run))
dbdir = os.path.join(work, "sqlite")


def fresh_db():
    if os.path.exists(dbdir):
        for n in os.listdir(dbdir):
            os.unlink(os.path.join(dbdir, n))
    else:
        os.makedirs(dbdir)


compare("sqlite3", [sqlite_bin, os.path.join(dbdir, "test.db")],
        stdin=real_programs_test.sqlite_script(3000), fresh=fresh_db)
finish()
