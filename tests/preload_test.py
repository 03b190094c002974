#!/usr/bin/env python3
"""`alloctrace run` and the preload library on programs with known
allocation behaviour (preload_prog.c, preload_cxx.cc): every entry point,
leaks with their stacks, each kind of bad release, threads with cross-thread
frees, fork, every way out of a program (including abort and SIGKILL), and
the command's own exit codes and errors.

    preload_test.py ALLOCTRACE PRELOAD_PROG PRELOAD_CXX WORKDIR PLUGIN_SO PRELOAD_BOOT
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys

from tap import check, finish
import time

alloctrace, prog, cxx, workdir, plugin, boot = (os.path.abspath(a) for a in sys.argv[1:7])
work = os.path.join(workdir, "preload-%d" % os.getpid())
os.makedirs(work, exist_ok=True)


def run(name, *args, opts=(), expect=0):
    """Runs a program under alloctrace run; returns (trace connection, result)."""
    trace = os.path.join(work, name + ".db")
    r = subprocess.run([alloctrace, "run", "-o", trace, "--force", *opts, "--", *args],
                       capture_output=True, text=True, cwd=work, timeout=120)
    check(r.returncode == expect, "%s: exit status %d (expected %d)%s" % (
        name, r.returncode, expect, "" if r.returncode == expect else "\n" + r.stderr))
    db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
    return db, r


def one(db, sql, *params):
    row = db.execute(sql, params).fetchone()
    return row[0] if row else None


def meta(db, key):
    return one(db, "SELECT value FROM meta WHERE key = ?", key)


# ---- every entry point, nothing leaked -----------------------------------------------
db, r = run("clean", prog, "clean")
check(r.stdout == "clean\n", "clean: output untouched")
check(meta(db, "program_end") == "closed", "clean: trace closed by the program")
check(one(db, "SELECT count(*) FROM leaks") == 0, "clean: no leaks")
check(one(db, "SELECT count(*) FROM findings") == 0, "clean: no findings")
check(one(db, "SELECT count(*) FROM runtime_blocks WHERE reason = 'stdio buffer'") == 1,
      "clean: stdout's buffer is set aside as runtime-owned")
for size, align in [(200, 64), (256, 128), (10, 4096), (512, 256), (100, 16), (64, 16)]:
    check(one(db, "SELECT count(*) FROM allocations WHERE size = ? AND align = ?"
                  " AND free_seq IS NOT NULL", size, align) >= 1,
          "clean: a (%d, %d) block was allocated and released" % (size, align))
check(one(db, "SELECT count(*) FROM allocations WHERE alloc_op = 'realloc'") >= 3,
      "clean: reallocations are recorded as such")
check(one(db, "SELECT count(*) FROM allocations WHERE alloc_op = 'alloc_zeroed' AND size = 100") == 1,
      "clean: calloc(10, 10) is a zeroed (100, 16) block")
check(meta(db, "alloc_calls") == one(db, "SELECT count(*) FROM allocations"),
      "clean: meta.alloc_calls matches the rows")
# The release layout is what the release passed: nothing for free() (NULL
# size and alignment), both for the C23 sized frees.
check(db.execute("SELECT free_size, free_align FROM allocations WHERE size = 100 AND align = 16"
                 " AND alloc_op = 'alloc' AND free_op = 'dealloc'").fetchall() == [(None, None)],
      "clean: free() passed no layout: NULL free_size and free_align")
check(db.execute("SELECT free_size, free_align FROM allocations WHERE size = 64 AND align = 16"
                 " AND free_op = 'dealloc'").fetchall() == [(64, 16)],
      "clean: free_sized(p, 64) keeps the size it passed")
check(db.execute("SELECT free_size, free_align FROM allocations WHERE size = 512"
                 " AND align = 256").fetchall() == [(512, 256)],
      "clean: free_aligned_sized(p, 256, 512) keeps its layout")
check(one(db, "SELECT count(*) FROM allocations WHERE free_op = 'realloc'"
              " AND (free_size IS NOT NULL OR free_align IS NOT NULL)") == 0,
      "clean: a block given up by realloc passed no layout")

# ---- leaks and their stacks --------------------------------------------------------------
db, r = run("leak", prog, "leak")
check(sorted(x for (x,) in db.execute("SELECT size FROM leaks")) == [1000, 1001, 1002],
      "leak: exactly the three planted blocks leak")
# The compiler may unroll the loop into three call sites: one to three sites.
check(one(db, "SELECT sum(bytes) FROM leak_sites") == 3003 and
      one(db, "SELECT count(*) FROM leak_sites") in (1, 2, 3), "leak: 3003 bytes by site")
texts = [t for (t,) in db.execute("SELECT s.text FROM leak_sites l JOIN stack_text s"
                                   " ON s.stack = l.stack")]
check(texts and all(t.startswith("leaky_site <- main") for t in texts),
      "leak: each stack starts at the caller of malloc (%s)" % texts)
f = db.execute("SELECT file, line FROM stack_lines WHERE stack = (SELECT min(stack) FROM"
               " leak_sites) AND level = 0").fetchone()
check(f is not None and f[0] is not None and f[0].endswith("preload_prog.c") and f[1] > 0,
      "leak: the leaking line is known (%s)" % (f,))
check("leaked 3 blocks" in r.stderr, "leak: the summary says so")

# ---- bad releases ------------------------------------------------------------------------
db, r = run("findings", prog, "findings")
check(r.stdout == "survived\n", "findings: the program survives bad frees glibc would abort on")
kinds = dict(db.execute("SELECT kind, count(*) FROM findings GROUP BY kind").fetchall())
check(kinds == {"layout_mismatch": 12, "double_free": 2, "invalid_free": 1, "interior_free": 1},
      "findings: each kind, the loops' double free counted twice, the mismatch ten times (%s)"
      % kinds)
check(one(db, "SELECT count(*) FROM findings WHERE kind = 'layout_mismatch' AND release_size = 48"
              " AND alloc_size = 64") == 2, "findings: free_sized with the wrong size")
check(one(db, "SELECT count(*) FROM findings WHERE kind = 'layout_mismatch'"
              " AND release_align = 16 AND alloc_align = 32") == 1,
      "findings: free_aligned_sized with the wrong alignment")
check(db.execute("SELECT DISTINCT release_size, release_align FROM findings"
                 " WHERE kind IN ('double_free', 'invalid_free', 'interior_free')").fetchall()
      == [(None, None)], "findings: the bad free()s passed no layout: NULL release size and align")
# findings() is static and called once: the compiler may inline it into
# main, and the stacks then name it as a frame of its own (inlined_frames).
check(one(db, "SELECT count(*) FROM findings_detail"
              " WHERE release_stack_text LIKE 'bad_release <- main%'"
              " OR release_stack_text LIKE 'bad_release <- findings <- main%'") == 16,
      "findings: every release stack starts at the bad call")
check(one(db, "SELECT count(*) FROM findings WHERE alloc_stack IS NOT NULL") == 15,
      "findings: all but the never-allocated pointer have the allocation's stack")
check(one(db, "SELECT count(*) FROM leaks") == 0, "findings: nothing leaked")

# ---- release stacks: allocated, first released, released again ----------------------------
# The lines of preload_prog.c marked /* @NAME */, where each call is.
source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "preload_prog.c")
marks = {}
for number, text in enumerate(open(source), 1):
    if "/* @" in text:
        marks[text.split("/* @")[1].split(" */")[0]] = number


def top(db, stack):
    """The innermost frame of the program's own code in `stack` (the
    allocator's entry points above it left out): (function, line)."""
    return db.execute("SELECT function, line FROM stack_lines l WHERE stack = ?"
                      " AND level >= coalesce((SELECT skip FROM stack_sites WHERE stack = l.stack), 0)"
                      " ORDER BY level LIMIT 1", (stack,)).fetchone()


def double_frees(db):
    return db.execute("SELECT alloc_size, alloc_stack, first_free_stack, release_stack,"
                      " first_free_seq, seq FROM findings WHERE kind = 'double_free'"
                      " ORDER BY seq").fetchall()


db, r = run("relstacks", prog, "relstacks")
check(r.stdout == "released\n", "relstacks: the program survives both double frees")
rows = double_frees(db)
check([x[0] for x in rows] == [1111, 2222], "relstacks: two double frees (%s)" % rows)
expect = {1111: ("second_free", "a second free()"), 2222: ("realloc_freed", "realloc() of a freed block")}
for size, alloc, first, again, first_seq, seq in rows:
    name, what = expect[size]
    check(top(db, alloc) == ("relstack_alloc", marks["alloc"]),
          "relstacks: %s: allocated at relstack_alloc:%d (%s)" % (what, marks["alloc"], top(db, alloc)))
    check(first is not None and top(db, first) == ("relstack_first_free", marks["first_free"]),
          "relstacks: %s: first released at relstack_first_free:%d (%s)"
          % (what, marks["first_free"], first and top(db, first)))
    check(top(db, again) == ("relstack_" + name, marks[name]),
          "relstacks: %s: released again at relstack_%s:%d (%s)" % (what, name, marks[name], top(db, again)))
    check(one(db, "SELECT free_stack FROM allocations WHERE alloc_seq = ("
                  "SELECT alloc_seq FROM findings WHERE seq = ?)", seq) == first,
          "relstacks: %s: the block's lifetime has the first release's stack" % what)
    check(one(db, "SELECT free_seq FROM allocations WHERE alloc_seq = ("
                  "SELECT alloc_seq FROM findings WHERE seq = ?)", seq) == first_seq,
          "relstacks: %s: ... released at first_free_seq" % what)
check(one(db, "SELECT count(*) FROM findings_detail WHERE kind = 'double_free'"
              " AND first_free_stack_text LIKE 'relstack_first_free <- release_stacks <- main%'") == 2,
      "relstacks: findings_detail spells the first release's stack out")
# Ordinary frees: who freed each block.
ordinary = db.execute("SELECT free_stack FROM allocations WHERE size = 4321").fetchall()
check(len(ordinary) == 3 and all(s is not None and top(db, s) == ("relstack_ordinary_free", marks["ordinary_free"])
                                 for (s,) in ordinary),
      "relstacks: allocations.free_stack of ordinary frees names relstack_ordinary_free:%d (%s)"
      % (marks["ordinary_free"], [top(db, s) for (s,) in ordinary if s]))
check(one(db, "SELECT count(*) FROM allocations WHERE free_op IN ('dealloc', 'realloc')"
              " AND free_stack IS NULL") == 0,
      "relstacks: every release the program made has a stack")
check(one(db, "SELECT count(*) FROM allocations WHERE free_seq IS NULL AND free_stack IS NOT NULL") == 0,
      "relstacks: blocks still live have no release stack")
check(one(db, "SELECT max(depth) FROM stacks WHERE id IN (SELECT free_stack FROM allocations)") <= 8,
      "relstacks: release stacks are at most 8 frames deep")

# The same three stacks in the text report, in order, and in JSON.
trace = os.path.join(work, "relstacks.db")
text = subprocess.run([alloctrace, "report", trace, "--color", "never"], capture_output=True,
                      text=True, timeout=60).stdout
first_finding = text[text.index("#1  double free"):text.index("#2  double free")]
want = ["allocated at (sequence number", "relstack_alloc", "preload_prog.c:%d" % marks["alloc"],
        "first released at (sequence number", "relstack_first_free",
        "preload_prog.c:%d" % marks["first_free"], "released again at (sequence number",
        "relstack_second_free", "preload_prog.c:%d" % marks["second_free"]]
at = [first_finding.find(w) for w in want]
check(all(x >= 0 for x in at) and at == sorted(at),
      "relstacks: text report: allocated, first released, released again, each with function"
      " and line, in that order", first_finding)
realloc_finding = text[text.index("#2  double free"):]
check("relstack_realloc_freed" in realloc_finding and "preload_prog.c:%d" % marks["realloc_freed"]
      in realloc_finding.split("released again at")[1]
      and "relstack_first_free" in realloc_finding.split("first released at")[1],
      "relstacks: text report: the realloc of a freed block, its first release shown")
doc = json.loads(subprocess.run([alloctrace, "report", trace, "--format", "json"],
                                capture_output=True, text=True, timeout=60).stdout)


def jtop(stack):
    return (stack["frames"][0]["function"], stack["frames"][0]["line"]) if stack["frames"] else None


jf = sorted((f for f in doc["findings"] if f["kind"] == "double_free"),
            key=lambda f: f["allocated"]["size"])
check(len(jf) == 2 and [jtop(f["allocated"]["stack"]) for f in jf] == [("relstack_alloc", marks["alloc"])] * 2
      and [jtop(f["first_released"]["stack"]) for f in jf] == [("relstack_first_free", marks["first_free"])] * 2
      and [jtop(f["released"]["stack"]) for f in jf] == [("relstack_second_free", marks["second_free"]),
                                                         ("relstack_realloc_freed", marks["realloc_freed"])]
      and all(f["first_released"]["seq"] == f["released"]["first_release_seq"] for f in jf),
      "relstacks: JSON: allocated, first_released and released stacks with function and line")

# --no-release-stacks: no stack for any release, the double frees still found.
db, r = run("no-relstacks", prog, "relstacks", opts=("--no-release-stacks",))
rows = double_frees(db)
check([x[0] for x in rows] == [1111, 2222] and all(x[2] is None and x[4] is not None and x[3] is not None
                                                   for x in rows),
      "no-release-stacks: both double frees, with their first release's seq but no stack (%s)" % rows)
check(one(db, "SELECT count(*) FROM allocations WHERE free_stack IS NOT NULL") == 0,
      "no-release-stacks: allocations.free_stack is NULL throughout")
check(one(db, "SELECT count(*) FROM allocations WHERE free_seq IS NOT NULL") > 10,
      "no-release-stacks: ... while the releases are there")
text = subprocess.run([alloctrace, "report", os.path.join(work, "no-relstacks.db"), "--color",
                       "never"], capture_output=True, text=True, timeout=60).stdout
check(text.count("(no stack: traced with --no-release-stacks)") == 2,
      "no-release-stacks: the text report says why the first release has no stack")

# ---- threads -------------------------------------------------------------------------------
db, r = run("threads", prog, "threads")
check(one(db, "SELECT count(*) FROM allocations WHERE size BETWEEN 16 AND 215"
              " AND alloc_thread <> free_thread") > 1000, "threads: blocks freed on other threads")
check(one(db, "SELECT count(*) FROM leaks") == 0, "threads: nothing leaked")
check(one(db, "SELECT count(*) FROM threads") >= 5, "threads: every thread is listed")
check(meta(db, "alloc_calls") >= 40000 and meta(db, "lost_events") == 0,
      "threads: every call recorded")

# ---- fork ----------------------------------------------------------------------------------
for old in [f for f in os.listdir(work) if f.startswith("fork.")]:
    os.unlink(os.path.join(work, old))
db, r = run("fork", prog, "fork")
check(r.stdout == "child 0\n", "fork: the child ran")
check(one(db, "SELECT count(*) FROM allocations WHERE size IN (4242, 4343)") == 0,
      "fork: the child's allocations stay out of the parent's trace")
check(one(db, "SELECT count(*) FROM leaks WHERE size = 777") == 1, "fork: the parent's leak")
kids = [f for f in os.listdir(work) if f.startswith("fork.") and f.endswith(".db")
        and f != "fork.db"]
check(len(kids) == 1, "fork: the child wrote its own trace, fork.PID.db (%s)" % kids)
if kids:
    kdb = sqlite3.connect(os.path.join(work, kids[0]))
    check(one(kdb, "SELECT count(*) FROM allocations WHERE size = 4242 AND free_seq IS NOT NULL")
          == 100, "fork: the child's own calls are in the child's trace")
    check([x for (x,) in kdb.execute("SELECT size FROM leaks")] == [4343],
          "fork: the child's leak, and only it")
    check(one(kdb, "SELECT count(*) FROM runtime_blocks WHERE size = 777"
                   " AND reason = 'inherited from the parent process'") == 1,
          "fork: blocks inherited from the parent are set aside, not the child's leaks")
    check(one(kdb, "SELECT value FROM meta WHERE key = 'parent_pid'") is not None,
          "fork: the child's trace names its parent")

# ---- every way out ---------------------------------------------------------------------
for how, status in [("_exit", 3), ("quick_exit", 4), ("exit", 5), ("return", 6)]:
    db, r = run("exit-" + how, prog, "exit", how, expect=status)
    check(meta(db, "program_end") == "closed" and
          one(db, "SELECT count(*) FROM leaks WHERE size = 555") == 1,
          "exit via %s: trace closed, leak recorded" % how)

db, r = run("abort", prog, "abort", opts=["--abort-on-finding"], expect=128 + signal.SIGABRT)
check(one(db, "SELECT count(*) FROM findings WHERE kind = 'double_free'") == 1,
      "abort-on-finding: the finding is on disk")
check(r.stdout == "", "abort-on-finding: the program stopped at the finding")

# SIGKILL in the middle of a busy multi-threaded run.
trace = os.path.join(work, "kill.db")
p = subprocess.Popen([alloctrace, "run", "-o", trace, "--force", "--", prog, "kill"],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=work)
line = p.stdout.readline().split()
check(len(line) == 2 and line[0] == "ready", "kill: the program started")
time.sleep(0.5)  # let the threads churn
if len(line) == 2:
    os.kill(int(line[1]), signal.SIGKILL)
out, err = p.communicate(timeout=120)
check(p.returncode == 128 + signal.SIGKILL, "kill: status 137 (%d)" % p.returncode)
db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
check(meta(db, "program_end") == "died", "kill: the trace says the program died")
check(one(db, "SELECT count(DISTINCT size) FROM leaks l JOIN stack_text s ON s.stack = l.stack"
              " WHERE size BETWEEN 100000 AND 100999 AND s.text LIKE 'keep_site <- %'") == 1000,
      "kill: all 1000 blocks live at the kill are there, with their stacks")
check(meta(db, "alloc_calls") > 10000, "kill: the churn before the kill is recorded")

# ---- C++ ---------------------------------------------------------------------------------
db, r = run("cxx", cxx)
check(r.stdout == "bad_alloc caught\nnothrow gave null\n100 strings\n",
      "c++: output untouched, bad_alloc still thrown through the preload library")
check(one(db, "SELECT count(*) FROM findings") == 0, "c++: every form matched, no findings")
check(one(db, "SELECT count(*) FROM leaks") == 0,
      "c++: no leaks (libstdc++'s emergency pool is given back at exit)")
check(one(db, "SELECT count(*) FROM frames WHERE function LIKE '\\_Z%' ESCAPE '\\'") == 0 and
      one(db, "SELECT count(*) FROM frames WHERE function LIKE 'std::%'") > 0,
      "c++: function names are demangled")
for fam in ("new", "new[]"):
    check(one(db, "SELECT count(*) FROM allocations WHERE family = ?", fam) > 0,
          "c++: %s blocks are recorded as %s" % (fam, fam))
check(one(db, "SELECT count(*) FROM allocations WHERE align = 64 AND family = 'new'") >= 1 and
      one(db, "SELECT count(*) FROM allocations WHERE align = 128 AND family = 'new[]'") >= 1,
      "c++: aligned new keeps its alignment in the layout")

db, r = run("cxx-mistakes", cxx, "mistakes")
rows = sorted(db.execute("SELECT kind, alloc_family, release_family, alloc_size, release_size,"
                         " alloc_align, release_align FROM findings").fetchall(), key=str)
expected = sorted([
    ("family_mismatch", "new[]", "new", 40, None, 16, 16),
    ("family_mismatch", "malloc", "new", 32, None, 16, 16),
    ("family_mismatch", "new", "malloc", 4, None, 16, None),
    ("layout_mismatch", "new", "new", 100, 80, 16, 16),
    ("layout_mismatch", "new", "new", 64, None, 64, 16),
], key=str)
check(rows == expected, "c++: wrong family, wrong size, wrong alignment; an unsized delete"
      " passed no size (%s)" % rows)
check(db.execute("SELECT free_size, free_align FROM allocations WHERE size = 100"
                 " AND family = 'new'").fetchall() == [(80, 16)],
      "c++: the sized delete's lifetime keeps the size it passed")
check(db.execute("SELECT free_size, free_align FROM allocations WHERE size = 64 AND align = 64"
                 " AND family = 'new' AND free_size IS NULL").fetchall() == [(None, 16)],
      "c++: the unsized delete's lifetime: no size, the default new alignment")
check(db.execute("SELECT free_size, free_align FROM allocations WHERE size = 48 AND align = 32"
                 " AND family = 'new'").fetchall() == [(48, 32)],
      "c++: operator delete(p, 48, align_val_t(32)) keeps its layout")

# ---- allocations made before tracing started ------------------------------------------
db, r = run("boot", boot)
check(r.stdout == "released\n" and one(db, "SELECT count(*) FROM findings") == 0,
      "bootstrap: 5000 blocks allocated before tracing started are released without findings")
check(one(db, "SELECT count(*) FROM allocations WHERE size = 32 AND free_seq IS NOT NULL") == 5000,
      "bootstrap: each of them is in the trace with its release")
texts = [t for (t,) in db.execute("SELECT s.text FROM leaks l JOIN stack_text s"
                                   " ON s.stack = l.stack WHERE l.size = 100")]
check(len(texts) == 3 and all(t.startswith("bootlib_start <- ") for t in texts),
      "bootstrap: the constructor's leaks are reported, with its stack (%s)" % texts[:1])

# ---- a library unloaded before exit ----------------------------------------------------
db, r = run("dlopen", prog, "dlopen", plugin)
row = db.execute("SELECT sl.function, sl.file, sl.module FROM leaks l JOIN stack_lines sl"
                 " ON sl.stack = l.stack AND sl.level = 0 WHERE l.size = 31337").fetchone()
check(r.stdout == "unloaded\n" and row is not None and row[0] == "plugin_leak"
      and (row[1] or "").endswith("preload_plugin.c") and (row[2] or "").endswith(".so"),
      "dlopen/dlclose: frames in a library unloaded before exit still symbolize (%s)" % (row,))

# ---- children: followed on request, and plain LD_PRELOAD plus recover ----------------------
trace = os.path.join(work, "follow.db")
for old in [f for f in os.listdir(work) if f.startswith("follow.")]:
    os.unlink(os.path.join(work, old))
db, r = run("follow", "sh", "-c", "%s leak >/dev/null; echo done" % prog,
            opts=["--follow-children"])
children = [f for f in os.listdir(work) if f.startswith("follow.") and f.endswith(".db")
            and f != "follow.db"]
check(r.stdout == "done\n" and len(children) == 1, "follow: the child got its own trace (%s)"
      % children)
if children:
    cdb = sqlite3.connect(os.path.join(work, children[0]))
    check(sorted(x for (x,) in cdb.execute("SELECT size FROM leaks")) == [1000, 1001, 1002],
          "follow: the child's trace holds the child's leaks")
check(not [f for f in os.listdir(work) if f.startswith("follow.") and f.endswith(".spool")],
      "follow: no spool left behind")
db, r = run("nofollow", "sh", "-c", "%s leak >/dev/null; echo done" % prog)
check(not [f for f in os.listdir(work) if f.startswith("nofollow.") and f != "nofollow.db"],
      "no --follow-children: children run untraced")

# exec without fork: the image that calls exec is replaced, not ended (its
# trace's program_end is exec); the new image (same pid) gets a trace of its
# own, with or without --follow-children (exec_test.py has the rest).
for old in [f for f in os.listdir(work) if f.startswith("execd.")]:
    os.unlink(os.path.join(work, old))
db, r = run("execd", "env", prog, "leak")
check(r.stdout == "leaked\n" and meta(db, "program_end") == "exec",
      "exec: the trace of the program that called exec ends with program_end = exec")
images = [f for f in os.listdir(work) if f.startswith("execd.") and f.endswith(".db")
          and f != "execd.db"]
check(len(images) == 1, "exec: the new image wrote its own trace (%s)" % images)
if images:
    idb = sqlite3.connect(os.path.join(work, images[0]))
    check(sorted(x for (x,) in idb.execute("SELECT size FROM leaks")) == [1000, 1001, 1002],
          "exec: the new image's leaks are in its trace")

env = dict(os.environ, LD_PRELOAD=os.path.join(os.path.dirname(alloctrace), "..", "lib",
                                                "liballoctrace_preload.so"))
lp = subprocess.run([prog, "leak"], env=env, capture_output=True, text=True, cwd=work)
spools = [f for f in os.listdir(work) if f.startswith("alloctrace.preload_prog.")
          and f.endswith(".spool")]
check(lp.returncode == 0 and len(spools) == 1, "LD_PRELOAD alone: the program leaves a spool")
if spools:
    rc = subprocess.run([alloctrace, "recover", "-q", os.path.join(work, spools[0])],
                        capture_output=True, text=True)
    tdb = os.path.join(work, spools[0][:-len(".spool")])
    check(rc.returncode == 0 and os.path.exists(tdb), "recover: the spool becomes a trace")
    if os.path.exists(tdb):
        rdb = sqlite3.connect(tdb)
        check(sorted(x for (x,) in rdb.execute("SELECT size FROM leaks")) == [1000, 1001, 1002]
              and one(rdb, "SELECT value FROM meta WHERE key='symbolized'") == 1,
              "recover: leaks and symbols as with alloctrace run")
        rdb.close()
        os.unlink(tdb)
notspool = os.path.join(work, "notspool.txt")
with open(notspool, "w") as f:
    f.write("neither a spool nor a trace\n")
rc = subprocess.run([alloctrace, "recover", notspool], capture_output=True, text=True)
check(rc.returncode == 125 and "not an alloctrace spool or trace" in rc.stderr,
      "recover: a file that is neither a spool nor a trace is a clear error")

# ---- the command itself --------------------------------------------------------------------
def status(*args, cwd=work):
    r = subprocess.run([alloctrace, *args], capture_output=True, text=True, cwd=cwd)
    return r.returncode, r.stderr


code, err = status("run", "--no-such-option", "--", "true")
check(code == 2 and "unknown or ambiguous option '--no-such-option'" in err,
      "run: an unknown option is a usage error (2)", err)
code, err = status("run", "--", "no-such-program-here")
check(code == 127 and "command not found" in err, "run: a missing program exits 127")
marker = os.path.join(work, "marker")
code, err = status("run", "-o", os.path.join(work, "no", "such", "dir", "t.db"), "--",
                   "touch", marker)
check(code == 125 and "does not exist" in err and not os.path.exists(marker),
      "run: an output directory that does not exist is an error before the program starts")
existing = os.path.join(work, "clean.db")
code, err = status("run", "-o", existing, "--", "true")
check(code == 125 and "exists" in err, "run: an existing trace is never overwritten silently")
code, err = status("run", "-q", "-o", os.path.join(work, "s3.db"), "--force", "--", "sh", "-c",
                   "exit 3")
check(code == 3, "run: the program's status is passed on")
code, err = status("run", "-q", "-o", os.path.join(work, "sig.db"), "--force", "--", "sh", "-c",
                   "kill -TERM $$")
check(code == 128 + signal.SIGTERM, "run: death by signal N gives 128+N")
code, err = status("run", "--check", "-o", os.path.join(work, "c1.db"), "--force", "--", prog,
                   "leak")
check(code == 86, "run --check: a leak fails the check (86)")
code, err = status("run", "--check", "-o", os.path.join(work, "c2.db"), "--force", "--", prog,
                   "clean")
check(code == 0, "run --check: a clean program passes")

# A long command line is kept whole in meta.arguments: a hundred arguments
# of 100 bytes (10 KB) all there; an argument longer than a spool record
# is cut and says so, never dropped.
long_args = ["x%03d" % i + "y" * 96 for i in range(100)] + ["z" * 9000]
args_db = os.path.join(work, "args.db")
code, err = status("run", "-q", "-o", args_db, "--", "true", *long_args)
got = json.loads(meta(sqlite3.connect(args_db), "arguments"))
check(code == 0 and len(got) == 102 and got[1:101] == long_args[:100]
      and got[101].startswith("z" * 1000) and "cut by alloctrace: 9000 bytes" in got[101],
      "run: a 10 KB command line whole in meta.arguments, a 9000-byte argument cut with a note",
      (len(got), got[101][-60:] if len(got) > 101 else None))

# The program's environment is the caller's: the same variables in the
# same order, GLIBC_TUNABLES absent, empty or set; only the run protocol's
# and LD_PRELOAD are added.
for tunables in (None, "", "glibc.malloc.tcache_count=3"):
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if tunables is not None:
        env["GLIBC_TUNABLES"] = tunables
    plain = subprocess.run(["env", "-0"], capture_output=True, env=env, check=True).stdout
    own = subprocess.run([alloctrace, "run", "-q", "-o", os.path.join(work, "env.db"), "--force",
                          "--", "env", "-0"], capture_output=True, env=env, cwd=work, timeout=60)
    ours = lambda e: e.startswith(b"ALLOCTRACE_") or e.startswith(b"LD_PRELOAD=")
    strip = lambda block: [e for e in block.split(b"\0") if e and not ours(e)]
    check(own.returncode == 0 and strip(own.stdout) == strip(plain),
          "run: the program's environment is the caller's, in its order (GLIBC_TUNABLES %r)"
          % (tunables,))

finish()
