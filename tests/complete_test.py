#!/usr/bin/env python3
"""Completing traces, and read commands that never write.

Traces left unfinished the ways a real run leaves them: a program killed
with SIGKILL under plain LD_PRELOAD (a spool nobody read), a program that
exited under plain LD_PRELOAD (the same, closed), `alloctrace run` itself
killed (a trace with meta.finished = 0 and a dead writer), a program using
the library's in-process writer killed, a finished trace with
meta.finished set back to 0, and a trace still being written.  For each:
report, check, query and html exit 3 with one line that names the command
that completes it, write nothing to stdout, and leave every file of the
directory as it was (sha256 and mtime, no file added); then that command
(`alloctrace recover ...`, or the run ending) completes it and every read
command works.  Also: the meta keys of lib/trace/complete.h are the ones
docs/schema.md documents; `version` and `help` come from the table of
commands; the run protocol's names appear in lib/tracer/run_protocol.h only.

    complete_test.py ALLOCTRACE COMPLETE_PROG PRELOAD_SO WORKDIR SOURCE_ROOT
"""
import hashlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

from tap import check, finish

alloctrace, prog, preload, workdir, root = (os.path.abspath(a) for a in sys.argv[1:6])
work = os.path.join(workdir, "complete-%d" % os.getpid())
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
UNFINISHED = 3


def tool(*args, cwd=work):
    return subprocess.run([alloctrace, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def digest(path):
    """sha256 of the file's bytes.  Spools are sparse files of 1 GiB: their
    holes (zeros) are skipped, and the offset of every data extent hashed
    with it, so that equal digests still mean equal bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        fd, size, off = f.fileno(), os.fstat(f.fileno()).st_size, 0
        while off < size:
            try:
                start = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:  # only a hole is left
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            f.seek(start)
            h.update(b"%d:" % start)
            h.update(f.read(end - start))
            off = end
    return h.hexdigest()


def snapshot(d):
    """Every file of directory `d`: name -> (sha256, mtime in ns, size)."""
    out = {}
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        if os.path.isfile(p):
            st = os.stat(p)
            out[name] = (digest(p), st.st_mtime_ns, st.st_size)
    return out


def read_commands(path, d):
    html = os.path.join(d, "report-of-unfinished.html")
    return [["report", path], ["report", path, "--format", "json"], ["check", path],
            ["query", path, "SELECT count(*) FROM lifetimes"], ["html", path, "-o", html],
            ["export", path, "-o", os.path.join(d, "export-of-unfinished.pb.gz")],
            ["export", "--format", "folded", "--what", "allocations", path]]


def refused(name, path, fix, d=work):
    """Every read command on `path` exits 3 with one line naming `fix`, and
    no file of `d` changes."""
    before = snapshot(d)
    for argv in read_commands(path, d):
        r = tool(*argv, cwd=d)
        check(r.returncode == UNFINISHED and r.stdout == "" and r.stderr.count("\n") == 1
              and fix in r.stderr,
              "%s: %s exits %d with one line naming `%s`" % (name, argv[0], UNFINISHED, fix),
              "exit %d, stderr %r" % (r.returncode, r.stderr[:300]))
    after = snapshot(d)
    check(after == before, "%s: the read commands changed no file (sha256, mtime, no new file)"
          % name, "before %s after %s" % (before, after))


def readable(name, path, d=work):
    """Every read command on `path` works."""
    for argv in read_commands(path, d):
        r = tool(*argv, cwd=d)
        check((r.returncode == 0 or (argv[0] == "check" and r.returncode == 1))
              and ("-o" in argv or r.stdout), "%s: %s now works (exit %d)"
              % (name, " ".join(argv[:1] + argv[2:3]), r.returncode), r.stderr[:300])
    os.unlink(os.path.join(d, "report-of-unfinished.html"))
    os.unlink(os.path.join(d, "export-of-unfinished.pb.gz"))


def meta(path, key):
    # A program killed inside a transaction leaves a hot journal, which a
    # read-only connection cannot roll back: read a copy of the pair, so
    # that the trace itself stays as the kill left it.
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "t.db")
        shutil.copyfile(path, copy)
        if os.path.exists(path + "-journal"):
            shutil.copyfile(path + "-journal", copy + "-journal")
        db = sqlite3.connect(copy)
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        db.close()
    return row[0] if row else None


def leaks(path):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    sizes = sorted(x for (x,) in db.execute("SELECT size FROM leaks"))
    db.close()
    return sizes


def complete(path):
    return meta(path, "finished") == 1 and meta(path, "symbolized") == 1


def start(argv, env=None, cwd=work):
    """Starts a program that prints 'ready PID' once it holds its blocks."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=cwd, env=env)
    line = p.stdout.readline().split()
    check(len(line) == 2 and line[0] == "ready", "%s: the program started (%s)"
          % (argv[-1], line))
    return p, int(line[1]) if len(line) == 2 else None


HELD = list(range(1100, 1300))  # hold: the blocks still live
plain = dict(os.environ, LD_PRELOAD=preload)
plain.pop("ALLOCTRACE_OUTPUT", None)

# ---- plain LD_PRELOAD, the program SIGKILLed: a spool nobody read ------------------------
d = os.path.join(work, "killed")
os.makedirs(d)
p, pid = start([prog, "hold"], env=plain, cwd=d)
if pid:
    os.kill(pid, signal.SIGKILL)
p.communicate(timeout=60)
trace = os.path.join(d, "alloctrace.complete_prog.%d.db" % pid)
spool = trace + ".spool"
check(os.path.exists(spool) and not os.path.exists(trace),
      "LD_PRELOAD + SIGKILL: a spool is left, no trace", str(os.listdir(d)))
refused("LD_PRELOAD + SIGKILL, the spool given", spool, "alloctrace recover %s" % spool, d)
refused("LD_PRELOAD + SIGKILL, the trace given", trace, "alloctrace recover %s" % spool, d)
r = tool("recover", "-q", trace, cwd=d)
check(r.returncode == 0 and complete(trace) and not os.path.exists(spool),
      "recover TRACE reads its spool into a complete trace", r.stderr)
check(meta(trace, "program_end") == "died" and leaks(trace) == HELD,
      "LD_PRELOAD + SIGKILL: the trace says the program died and holds its 200 live blocks")
readable("LD_PRELOAD + SIGKILL, recovered", trace, d)

# ---- plain LD_PRELOAD, the program exited: the spool was never read ----------------------
d = os.path.join(work, "exited")
os.makedirs(d)
r = subprocess.run([prog, "leak"], env=plain, cwd=d, capture_output=True, text=True, timeout=60)
spools = [f for f in os.listdir(d) if f.endswith(".spool")]
check(len(spools) == 1, "LD_PRELOAD + exit: a spool is left (%s)" % spools)
if spools:
    spool = os.path.join(d, spools[0])
    trace = spool[:-len(".spool")]
    refused("LD_PRELOAD, spool never read", spool, "alloctrace recover %s" % spool, d)
    r = tool("recover", "-q", spool, cwd=d)
    check(r.returncode == 0 and complete(trace) and leaks(trace) == HELD
          and meta(trace, "program_end") == "closed",
          "recover SPOOL: a complete trace with the leaked blocks, the program closed it",
          r.stderr)
    readable("LD_PRELOAD, spool recovered", trace, d)

# ---- `alloctrace run` killed: meta.finished = 0, its writer dead --------------------------
d = os.path.join(work, "run-killed")
os.makedirs(d)
trace = os.path.join(d, "t.db")
run = subprocess.Popen([alloctrace, "run", "-o", trace, "--", prog, "hold"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=d)
line = run.stdout.readline().split()
check(len(line) == 2 and line[0] == "ready", "run killed: the program started")
time.sleep(0.3)  # the reader has read what the program spooled
run.send_signal(signal.SIGKILL)
run.wait(timeout=60)
if len(line) == 2:  # its program holds the pipes open
    os.kill(int(line[1]), signal.SIGKILL)
run.communicate(timeout=60)
check(meta(trace, "finished") == 0, "run killed: the trace it left has meta.finished = 0")
for spool in [f for f in os.listdir(d) if f.endswith(".spool")]:
    os.unlink(os.path.join(d, spool))  # what the reader had read is in the trace
refused("run killed", trace, "alloctrace recover %s" % trace, d)
r = tool("recover", "-q", trace, cwd=d)
check(r.returncode == 0 and complete(trace) and meta(trace, "program_end") == "died",
      "recover TRACE completes it in place (program_end died)", r.stderr)
readable("run killed, recovered", trace, d)

# ---- the library's in-process writer, its program SIGKILLed -------------------------------
d = os.path.join(work, "tracer-killed")
os.makedirs(d)
trace = os.path.join(d, "t.db")
p, pid = start([prog, "tracer", trace], cwd=d)
if pid:
    os.kill(pid, signal.SIGKILL)
p.communicate(timeout=60)
check(meta(trace, "finished") == 0 and meta(trace, "pid") == pid,
      "tracer killed: meta.finished = 0, meta.pid the dead program")
refused("tracer killed", trace, "alloctrace recover %s" % trace, d)
r = tool("recover", "-q", trace, cwd=d)
# The in-process writer writes a lifetime when the block is released (or
# at close), once its thread's buffer is full: what reached the file is
# what the totals count.
db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
rows, freed = db.execute("SELECT count(*), count(free_dseq) FROM lifetimes").fetchone()
db.close()
check(r.returncode == 0 and complete(trace) and rows > 10000
      and meta(trace, "alloc_calls") == rows and meta(trace, "free_calls") == freed
      and meta(trace, "program_end") == "died",
      "recover TRACE: complete, died, the totals counted from the %d rows it has" % rows,
      r.stderr)
readable("tracer killed, recovered", trace, d)

# ---- a finished trace whose meta.finished says 0 ------------------------------------------
d = os.path.join(work, "meta0")
os.makedirs(d)
trace = os.path.join(d, "t.db")
r = subprocess.run([alloctrace, "run", "-q", "-o", trace, "--", prog, "leak"],
                   capture_output=True, text=True, cwd=d, timeout=60)
check(r.returncode == 0 and complete(trace), "meta0: a complete trace to start from", r.stderr)
db = sqlite3.connect(trace)
db.execute("UPDATE meta SET value = 0 WHERE key = 'finished'")
db.commit()
db.close()
refused("meta.finished = 0", trace, "alloctrace recover %s" % trace, d)
r = tool("recover", "-q", trace, cwd=d)
check(r.returncode == 0 and complete(trace), "recover: finished again", r.stderr)
readable("meta.finished = 0, recovered", trace, d)

# ---- still being written: the run itself completes it ------------------------------------
d = os.path.join(work, "running")
os.makedirs(d)
trace = os.path.join(d, "t.db")
run = subprocess.Popen([alloctrace, "run", "-q", "-o", trace, "--", prog, "hold"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=d)
line = run.stdout.readline().split()
# The run reads what the program spooled before it printed: wait until
# the trace stops changing, then the read commands must leave it so.
stable, last = 0, None
while stable < 3:
    time.sleep(0.2)
    now = os.stat(trace).st_mtime_ns
    stable, last = (stable + 1 if now == last else 0), now
before = {k: v for k, v in snapshot(d).items() if k == "t.db"}
for argv in read_commands(trace, d):
    r = tool(*argv, cwd=d)
    check(r.returncode == UNFINISHED and "still being written by process %d" % run.pid in r.stderr
          and r.stderr.count("\n") == 1, "running: %s says who is writing it" % argv[0],
          r.stderr)
check({k: v for k, v in snapshot(d).items() if k == "t.db"} == before,
      "running: the read commands did not touch the trace")
if len(line) == 2:
    os.kill(int(line[1]), signal.SIGTERM)
run.communicate(timeout=60)
check(run.returncode == 128 + signal.SIGTERM and complete(trace),
      "running: the run completed the trace when its program ended")
readable("running, then ended", trace, d)

# ---- recover refuses what it cannot complete ----------------------------------------------
r = tool("recover", os.path.join(work, "missing.db"))
check(r.returncode == 125 and "no such file" in r.stderr, "recover: a missing file is exit 125")
r = tool("recover", "-o", os.path.join(work, "x.db"), trace)
check(r.returncode == 125 and "-o is for spools" in r.stderr,
      "recover: -o with a trace is refused", r.stderr)

# ---- the meta keys: lib/trace/complete.h's table is what docs/schema.md documents ---------------
header = open(os.path.join(root, "lib", "trace", "complete.h")).read()
table = set(re.findall(r'X\(\w+, "(\w+)"\)', re.sub(r"/\*.*?\*/", "", header, flags=re.S)))
schema = open(os.path.join(root, "docs", "schema.md")).read()
section = schema.split("### `meta(", 1)[1].split("\n### ", 1)[0]
documented = set()
for row in re.findall(r"^\| (.*?) \|", section, re.M):
    documented.update(re.findall(r"`(\w+)`", row))
check(len(table) > 20 and table == documented,
      "every meta key of AT_META_KEYS is in docs/schema.md and no other",
      "undocumented %s, not in the table %s" % (sorted(table - documented),
                                               sorted(documented - table)))
written = subprocess.run(["grep", "-rln", "INTO meta", os.path.join(root, "lib"),
                          os.path.join(root, "tools")], capture_output=True, text=True).stdout
check([os.path.basename(f) for f in written.split()] == ["complete.c"],
      "meta rows are written in lib/trace/complete.c only", written)

# ---- the table of commands ----------------------------------------------------------------
version = re.search(r"version\s*:\s*'([0-9.]+)'", open(os.path.join(root, "meson.build")).read())
r = tool("version")
check(r.returncode == 0 and r.stdout == "alloctrace %s\n" % version.group(1),
      "version prints meson's project version (at_version())", r.stdout)
help_text = tool("help").stdout
names = re.findall(r'^\s*\{"(\w+)", cmd_\w+,', open(os.path.join(root, "tools", "commands.c")).read(),
                   re.M)
check(len(names) == 9 and all(re.search(r"^  %s  " % n, help_text, re.M) for n in names)
      and all(("alloctrace %s" % n) in help_text for n in names),
      "help lists every command of the table, with its synopsis (%s)" % names)
check("3 the trace is not complete yet" in " ".join(help_text.split()),
      "help documents exit status 3")
r = tool("frobnicate")
check(r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr, "an unknown command: 2")

# ---- the run protocol: its names are written in lib/tracer/run_protocol.h only --------------------
hits = subprocess.run(["grep", "-rnE", r'"ALLOCTRACE_[A-Z_]+"|"\.alloctrace\.|"liballoctrace_preload\.so"',
                       os.path.join(root, "lib"), os.path.join(root, "tools")],
                      capture_output=True, text=True).stdout.splitlines()
check(hits and all(h.startswith(os.path.join(root, "lib", "tracer", "run_protocol.h") + ":") for h in hits),
      "environment names and file names of the run protocol: only in lib/tracer/run_protocol.h",
      "\n".join(h for h in hits if "run_protocol.h" not in h))

shutil.rmtree(work, ignore_errors=True)
finish()
