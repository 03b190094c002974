#!/usr/bin/env python3
"""Runs every SQL block of docs/queries.md with Debian's sqlite3 shell on a
real trace and checks that each one answers without error and, except where
the trace legitimately has nothing to say, with at least one row.

    queries_test.py QUERIES_MD SQLITE3 TRACE_PROGRAM WORKDIR
"""
import os
import re
import sqlite3 as sqlite
import subprocess
import sys

queries_md, sqlite3, program, workdir = sys.argv[1:5]
trace = os.path.join(workdir, "queries-%d.db" % os.getpid())
if os.path.exists(trace):
    os.unlink(trace)

# A real run: the word index example over the project's own sources, which
# leaks and mis-releases on purpose, so every question has an answer.
src = os.path.join(os.path.dirname(os.path.abspath(queries_md)), "..", "lib")
files = sorted(os.path.join(d, f) for d, _, names in os.walk(src) for f in names if f.endswith(".c"))
# Its leaks are planted: a sanitizer build must not fail the run over them.
env = dict(os.environ)
env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
run = subprocess.run([program, trace] + files, capture_output=True, text=True, env=env)
if run.returncode != 0:
    sys.exit("example failed: %s" % run.stderr)

# The reachability questions need classified leaks.  The exit scan fills
# `reachability` (docs/schema.md); where this build's tracer left it empty
# (meta reach_scan absent: no scan ran), the test writes what a scan
# would, cycling through vocab.h's classes (AT_REACH; unknown is the
# absence of a row) so that each class has blocks, and says so.
vocab = open(os.path.join(os.path.dirname(os.path.abspath(queries_md)), "..", "lib", "include",
                          "alloctrace", "vocab.h")).read().replace("\\\n", " ")
reach = re.search(r"#define AT_REACH\(X\)(.*)", vocab).group(1)
codes = [int(c) for i, c in re.findall(r"X\(\s*(\w+),\s*(\d+),", reach) if i != "UNKNOWN"]
db = sqlite.connect(trace)
scanned = db.execute("SELECT count(*) FROM meta WHERE key = 'reach_scan'").fetchone()[0]
if not scanned and db.execute("SELECT count(*) FROM reachability").fetchone()[0] == 0:
    seqs = [r[0] for r in db.execute("SELECT alloc_seq FROM leaks ORDER BY alloc_seq")]
    # Every fifth block stays unclassified: unknown has blocks too.
    db.executemany("INSERT INTO reachability VALUES (?, ?)",
                   [(q, codes[i % len(codes)]) for i, q in enumerate(seqs) if i % 5 != 4])
    db.commit()
    print("# no scan ran: the test classified %d leaked blocks" % len(seqs))
db.close()

text = open(queries_md).read()
blocks = re.findall(r"```sql\n(.*?)```", text, re.S)
if len(blocks) < 10:
    sys.exit("expected at least 10 queries in %s, found %d" % (queries_md, len(blocks)))

failed = 0
for i, sql in enumerate(blocks, 1):
    r = subprocess.run([sqlite3, "-bail", "-readonly", trace], input=sql,
                       capture_output=True, text=True)
    rows = [l for l in r.stdout.splitlines() if l.strip()]
    if r.returncode != 0 or r.stderr:
        print("query %d failed: %s\n%s" % (i, r.stderr.strip(), sql))
        failed += 1
    elif not rows:
        print("query %d returned no rows:\n%s" % (i, sql))
        failed += 1
    else:
        print("ok - query %d (%d rows)" % (i, len(rows)))
os.unlink(trace)
sys.exit(1 if failed else 0)
