#!/usr/bin/env python3
"""A mutation fuzzer of the read commands over trace files (the companion of
fuzz_spool.c, which fuzzes the spool reader).

A corpus of real traces is made first, in-process (the sanitizer build's
preload library cannot be preloaded into a program: the ASan runtime must
come first): examples/word_index, traced through the tracing allocator,
over a small input and a large one (leaks, a layout mismatch per bucket
array, many stacks), and tests/complete_prog's trace, whose writer is
killed before it completes (recovered: leaks, findings, threads).  Each
input is one of them, mutated either in SQL (a row's value set to NULL, a
negative or huge number, an id that names nothing, a long string; a cycle
in stack_nodes' parent links; a parent naming a node deeper than itself;
meta keys dropped or changed) or in bytes (pages of the file flipped, cut
or copied).  `report` (text and json), `check`, `html -o` and `query` then
read it, in the sanitizer build, and each must:

- end within 20 s, in less than 768 MiB of resident memory;
- exit 0 (check: 0 or 1), or refuse with one line on stderr and exit 3
  (unfinished) or 125 (not a readable trace), never by a signal;
- print no sanitizer report;
- leave the file it read as it was (bytes and mtime).

    fuzz_trace.py ALLOCTRACE WORD_INDEX WORKDIR SECONDS
"""
import hashlib
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

from tap import check, finish

alloctrace, word_index, workdir = (os.path.abspath(a) for a in sys.argv[1:4])
seconds = float(sys.argv[4])
work = os.path.join(workdir, "fuzz-trace-%d" % os.getpid())
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
rng = random.Random(int(os.environ.get("FUZZ_SEED", "12")))

# ---- the corpus: real traces -----------------------------------------------------------
corpus = []
small = os.path.join(work, "small.txt")
with open(small, "w") as f:
    f.write("the quick brown fox jumps over the lazy dog the end\n")
large = os.path.join(work, "large.txt")
with open(large, "w") as f:
    words = ["w%d%s" % (rng.randrange(5000), "x" * rng.randrange(12)) for _ in range(40000)]
    f.write(" ".join(words))
for name, text in (("small", small), ("large", large)):
    path = os.path.join(work, name + ".db")
    r = subprocess.run([word_index, path, text], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "ASAN_OPTIONS": "detect_leaks=0"})
    check(os.path.exists(path), "corpus: a real trace of %s" % name, r.stderr[-400:])
    if os.path.exists(path):
        corpus.append(path)
print("# corpus: %d traces, %d bytes" % (len(corpus), sum(os.path.getsize(p) for p in corpus)))

VALUES = [None, -1, 0, 1, -2**63, 2**63 - 1, 2**31, 2**32 + 7, 999999999, "x" * 4096, "",
          3.5, b"\x00\xff"]


def sql_mutate(path):
    db = sqlite3.connect(path)
    db.execute("PRAGMA writable_schema = OFF")
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    what = rng.random()
    try:
        if what < 0.25:  # cycles and bad depths in the node tree
            ids = [r[0] for r in db.execute("SELECT id FROM stack_nodes ORDER BY random() LIMIT 3")]
            if len(ids) >= 2:
                kind = rng.randrange(4)
                if kind == 0:
                    db.execute("UPDATE stack_nodes SET parent = id WHERE id = ?", (ids[0],))
                elif kind == 1:
                    db.execute("UPDATE stack_nodes SET parent = ? WHERE id = ?", (ids[1], ids[0]))
                    db.execute("UPDATE stack_nodes SET parent = ? WHERE id = ?", (ids[0], ids[1]))
                elif kind == 2:
                    db.execute("UPDATE stack_nodes SET parent = (SELECT max(id) FROM stack_nodes)"
                               " WHERE id = (SELECT min(id) FROM stack_nodes)")
                else:
                    db.execute("UPDATE stacks SET depth = ? WHERE id IN"
                               " (SELECT id FROM stacks ORDER BY random() LIMIT 5)",
                               (rng.choice([0, -1, 2**31 - 1, 100000]),))
        elif what < 0.35:  # meta
            key = rng.choice(["schema_version", "finished", "format", "lost_events",
                              "alloc_calls", "stack_depth", "pid", "duration_us"])
            if rng.random() < 0.3:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute("UPDATE meta SET value = ? WHERE key = ?", (rng.choice(VALUES), key))
        else:  # any value of any row of any table
            for _ in range(rng.randrange(1, 6)):
                t = rng.choice(tables)
                cols = [r[1] for r in db.execute("PRAGMA table_info(%s)" % t)]
                if not cols:
                    continue
                c = rng.choice(cols)
                v = rng.choice(VALUES)
                if rng.random() < 0.2:
                    db.execute("UPDATE %s SET %s = ?" % (t, c), (v,))
                else:
                    db.execute("UPDATE %s SET %s = ? WHERE rowid IN (SELECT rowid FROM %s"
                               " ORDER BY random() LIMIT %d)" % (t, c, t, rng.randrange(1, 4)),
                               (v,))
        db.commit()
    except sqlite3.Error:
        pass  # a constraint refused it: the input is as it was, still worth reading
    db.close()


def byte_mutate(path):
    data = bytearray(open(path, "rb").read())
    page = 4096
    npages = max(1, len(data) // page)
    for _ in range(rng.randrange(1, 8)):
        kind = rng.randrange(3)
        p = rng.randrange(npages) * page
        if kind == 0:
            for _ in range(rng.randrange(1, 16)):
                i = p + rng.randrange(page)
                if i < len(data):
                    data[i] ^= 1 << rng.randrange(8)
        elif kind == 1 and len(data) > 2 * page:
            del data[rng.randrange(page, len(data)):]
        else:
            q = rng.randrange(npages) * page
            data[p:p + page] = data[q:q + page]
    open(path, "wb").write(bytes(data))


def commands(path, out):
    return [["report", path], ["report", path, "--format", "json"], ["check", path],
            ["html", path, "-o", out], ["query", path, "SELECT count(*) FROM leaks"],
            ["query", path, "SELECT * FROM stack_text LIMIT 20"]]


def limits():
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_one(argv):
    """(rc or -signal, stderr, max RSS in KiB, timed out): the child's own
    figures, from its wait4."""
    p = subprocess.Popen([alloctrace] + argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         preexec_fn=limits)
    chunks = []
    reader = threading.Thread(target=lambda: chunks.append(p.stderr.read()))
    reader.start()
    deadline = time.monotonic() + 20
    timed_out = False
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline and not timed_out:
            p.kill()
            timed_out = True
        time.sleep(0.01)
    p.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    err = b"".join(chunks)
    return p.returncode, err.decode("utf-8", "replace"), usage.ru_maxrss, timed_out


def fingerprint(path):
    st = os.stat(path)
    return hashlib.sha256(open(path, "rb").read()).hexdigest(), st.st_mtime_ns, st.st_size


failures = []
inputs = runs = 0
deadline = time.monotonic() + seconds
base_rss = None
while corpus and time.monotonic() < deadline and len(failures) < 5:
    src = rng.choice(corpus)
    path = os.path.join(work, "in.db")
    shutil.copyfile(src, path)
    (sql_mutate if rng.random() < 0.7 else byte_mutate)(path)
    for extra in ("-wal", "-journal", "-shm"):
        if os.path.exists(path + extra):
            os.unlink(path + extra)
    inputs += 1
    before = fingerprint(path)
    for argv in commands(path, os.path.join(work, "out.html")):
        if os.path.exists(os.path.join(work, "out.html")):
            os.unlink(os.path.join(work, "out.html"))
        rc, err, rss, timed_out = run_one(argv)
        runs += 1
        ok_rc = {0, 1} if argv[0] == "check" else {0}
        lines = [l for l in err.splitlines() if l.strip()]
        problem = None
        if timed_out:
            problem = "no answer in 20 s"
        elif rc < 0:
            problem = "killed by signal %d" % -rc
        elif "Sanitizer" in err or "runtime error:" in err:
            problem = "sanitizer report"
        elif rss > 768 * 1024:
            problem = "%d MiB resident" % (rss // 1024)
        elif rc not in ok_rc and (rc not in (3, 125) or len(lines) != 1):
            problem = "refused with exit %d and %d lines" % (rc, len(lines))
        elif fingerprint(path) != before:
            problem = "the file it read was changed"
        if problem:
            keep = os.path.join(work, "failure-%d.db" % len(failures))
            shutil.copyfile(path, keep)
            failures.append("%s: %s (kept as %s)\n%s" % (" ".join(argv[:1] + argv[2:]), problem,
                                                          keep, err[-1500:]))
            break
print("# %d inputs, %d command runs in %.0f s" % (inputs, runs, seconds))
for f in failures:
    print("# " + f.replace("\n", "\n# "))
check(inputs > 0 and not failures, "every read command survives %d mutated traces" % inputs)
finish()
