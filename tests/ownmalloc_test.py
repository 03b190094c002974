#!/usr/bin/env python3
"""A program linked with its own allocator (jemalloc, mimalloc, tcmalloc)
keeps it under `alloctrace run`: ownmalloc_prog.c checks with the
allocator's own API (jemalloc's thread.allocated and stats.allocated,
mimalloc's mi_is_in_heap_region and mi_process_info, tcmalloc's
MallocExtension ownership and generic.current_allocated_bytes) that every
block is the allocator's and that glibc's heap did not grow, and exits 1
otherwise; run untraced and traced, its output and exit status must be the
same, and the trace must hold every call it made: each entry point with its
layout, the 1000 pairs, the 64 big blocks, the planted leak at its line and
the planted wrong-size free_sized at its line.

    ownmalloc_test.py ALLOCTRACE WORKDIR PROG_JEMALLOC PROG_MIMALLOC PROG_TCMALLOC
"""
import os
import sqlite3
import subprocess
import sys

from tap import check, finish

alloctrace, workdir = (os.path.abspath(a) for a in sys.argv[1:3])
progs = [os.path.abspath(a) for a in sys.argv[3:]]
check(len(progs) == 3, "three programs, one per allocator")
work = os.path.join(workdir, "ownmalloc-%d" % os.getpid())
os.makedirs(work, exist_ok=True)

source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ownmalloc_prog.c")
marks = {}
with open(source) as f:
    for number, text in enumerate(f, 1):
        if "/* @" in text:
            marks[text.split("/* @")[1].split(" */")[0]] = number


def one(db, sql, *params):
    row = db.execute(sql, params).fetchone()
    return row[0] if row else None


def top(db, stack):
    """The innermost frame of the program's own code in `stack`: (function, line)."""
    return db.execute("SELECT function, line FROM stack_lines l WHERE stack = ?"
                      " AND level >= coalesce((SELECT skip FROM stack_sites WHERE stack = l.stack), 0)"
                      " ORDER BY level LIMIT 1", (stack,)).fetchone()


# (size, align, alloc_op, free_op, free_size, free_align) of each entry
# point's block, as entry_points() calls them.
ENTRY_POINTS = [
    (1111, 16, "alloc", "dealloc", None, None),          # malloc
    (333, 16, "alloc_zeroed", "dealloc", None, None),    # calloc(3, 111)
    (2222, 16, "alloc", "realloc", None, None),          # malloc, then realloc'd
    (4321, 16, "realloc", "dealloc", None, None),        # realloc(.., 4321)
    (2000, 64, "alloc", "dealloc", None, None),          # posix_memalign
    (1280, 128, "alloc", "dealloc", 1280, 128),          # aligned_alloc, free_aligned_sized
    (3000, 256, "alloc", "dealloc", None, None),         # memalign
    (5000, 4096, "alloc", "dealloc", None, None),        # valloc
    (640, 16, "alloc", "dealloc", 640, 16),              # malloc, free_sized
]

for prog in progs:
    name = os.path.basename(prog)
    own = name.split("_", 1)[1]
    plain = subprocess.run([prog], capture_output=True, text=True, cwd=work, timeout=120)
    check(plain.returncode == 0 and plain.stdout.endswith("\nok\n"),
          "%s: untraced, the allocator served every block (%d: %s)"
          % (name, plain.returncode, plain.stdout.strip().splitlines()[-1:]))
    trace = os.path.join(work, name + ".db")
    traced = subprocess.run([alloctrace, "run", "-o", trace, "--force", "--", prog],
                            capture_output=True, text=True, cwd=work, timeout=120)
    check(traced.returncode == plain.returncode,
          "%s: traced, the same exit status (%d, untraced %d)%s"
          % (name, traced.returncode, plain.returncode,
             "" if traced.returncode == plain.returncode else "\n" + traced.stderr))
    check(traced.stdout == plain.stdout,
          "%s: traced, the same output: %s still served every block (%r)"
          % (name, own, traced.stdout))
    db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
    check(one(db, "SELECT value FROM meta WHERE key = 'program_end'") == "closed",
          "%s: the trace is complete" % name)
    check(one(db, "SELECT value FROM meta WHERE key = 'alloc_calls'")
          == one(db, "SELECT count(*) FROM allocations"),
          "%s: meta.alloc_calls matches the rows" % name)
    for size, align, aop, fop, fsize, falign in ENTRY_POINTS:
        rows = db.execute("SELECT alloc_op, free_op, free_size, free_align FROM allocations"
                          " WHERE size = ? AND align = ?", (size, align)).fetchall()
        check(rows == [(aop, fop, fsize, falign)],
              "%s: the (%d, %d) block: %s, released by %s (%s)" % (name, size, align, aop, fop, rows))
    check(one(db, "SELECT count(*) FROM allocations WHERE size = 1234 AND align = 16"
                  " AND alloc_op = 'alloc' AND free_op = 'dealloc'") == 1000,
          "%s: the 1000 malloc/free pairs of 1234 bytes" % name)
    check(one(db, "SELECT count(*) FROM allocations WHERE size = 1048576"
                  " AND free_op = 'dealloc'") == 64, "%s: the 64 blocks of 1 MiB" % name)
    # The program's own leaks are the planted one; tcmalloc's constructor
    # (TCMallocGuard) keeps a few small blocks for good, which are its own.
    leaks = db.execute("SELECT size, stack FROM leaks WHERE stack IN (SELECT stack FROM stack_lines"
                       " WHERE file LIKE '%ownmalloc_prog.c')").fetchall()
    check([s for s, _ in leaks] == [777], "%s: exactly the planted block leaks (%s)"
          % (name, [s for s, _ in leaks]))
    if leaks:
        check(top(db, leaks[0][1]) == ("leaky_site", marks["leak"]),
              "%s: the leak is at leaky_site:%d (%s)" % (name, marks["leak"], top(db, leaks[0][1])))
    others = [t for (t,) in db.execute("SELECT s.text FROM leaks l JOIN stack_text s ON s.stack = l.stack"
                                        " WHERE l.size != 777")]
    check(all("main" not in t.split(" <- ") for t in others) and (own == "tcmalloc" or not others),
          "%s: any other leak is the allocator's own, from before main (%s)" % (name, others))
    found = db.execute("SELECT kind, alloc_size, release_size, release_stack FROM findings").fetchall()
    check([f[:3] for f in found] == [("layout_mismatch", 96, 80)],
          "%s: one finding: free_sized(p, 80) of a 96-byte block (%s)" % (name, found))
    if found:
        check(top(db, found[0][3]) == ("mismatch_site", marks["mismatch"]),
              "%s: the mismatch is at mismatch_site:%d (%s)"
              % (name, marks["mismatch"], top(db, found[0][3])))
    check("findings 1: layout_mismatch 1" in traced.stderr, "%s: the summary says so" % name)
    db.close()

finish()
