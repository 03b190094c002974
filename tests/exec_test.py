#!/usr/bin/env python3
"""exec replaces a process's image, it does not end the process
(docs/cli.md, "Processes"): under `alloctrace run`, a wrapper that execs the
program under test is traced into a trace of its own and judged, the
wrapper's blocks live at the exec are released by it (never leaks), a
failed exec changes nothing; a program that cannot be traced fails the run
with 87; --output-dir collects a whole suite's traces, which `check DIR`
judges together; a failing --check logs its leak sites under -q.

    exec_test.py ALLOCTRACE EXEC_PROG EXEC_PROG_C WORKDIR

EXEC_PROG_C is built statically here with the system's cc (libc6-dev's
libc.a): a missing compiler or libc.a fails the test.
"""
import glob
import os
import shutil
import sqlite3
import subprocess
import sys

from tap import check, finish

alloctrace, prog, source, workdir = (os.path.abspath(a) for a in sys.argv[1:5])
work = os.path.join(workdir, "exec-%d" % os.getpid())
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
env = {k: v for k, v in os.environ.items() if not k.startswith("ALLOCTRACE_")}
static = os.path.join(work, "exec_prog_static")
cc = subprocess.run(["cc", "-static", "-g", "-O1", "-o", static, source], capture_output=True,
                    text=True)
check(cc.returncode == 0, "cc -static builds the statically linked program", cc.stderr)


def at(*args, cwd=work, extra=None):
    return subprocess.run([alloctrace, *args], capture_output=True, text=True, cwd=cwd,
                          env=dict(env, **(extra or {})), timeout=240)


def traces(d):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(d, "*.db")))


def one(path, sql, *params):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    row = db.execute(sql, params).fetchone()
    db.close()
    return row[0] if row else None


def meta(path, key):
    return one(path, "SELECT value FROM meta WHERE key = ?", key)


def leak_sizes(path):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    v = sorted(s for (s,) in db.execute("SELECT size FROM leaks"))
    db.close()
    return v


# ---- bash -c 'exec PROG leak': the exec'd program is judged, not bash --------------------
d = os.path.join(work, "bash-exec")
r = at("run", "--check", "-q", "--output-dir", d, "--", "bash", "-c", "exec %s leak" % prog)
check(r.returncode == 86, "bash -c 'exec prog leak': run --check fails (86)",
      "%d\n%s" % (r.returncode, r.stderr))
names = traces(d)
bash_t = [n for n in names if n.startswith("bash.")]
prog_t = [n for n in names if n.startswith("exec_prog.")]
check(len(bash_t) == 1 and len(prog_t) == 1 and len(names) == 2,
      "--output-dir: one trace per image, PROG.PID.db (%s)" % names)
if bash_t and prog_t:
    b, p = os.path.join(d, bash_t[0]), os.path.join(d, prog_t[0])
    check(bash_t[0].split(".")[1] == prog_t[0].split(".")[1],
          "the exec'd image keeps the pid in its name")
    check(meta(b, "program_end") == "exec", "bash's trace ends with program_end = exec")
    check(one(b, "SELECT count(*) FROM leaks") == 0,
          "bash's blocks live at the exec are not leaks")
    released = one(b, "SELECT count(*) FROM allocations WHERE free_op = 'exec'")
    check(released and released > 100,
          "bash's blocks live at the exec are released by it (free_op exec: %s)" % released)
    check(one(b, "SELECT count(*) FROM reachability") == 0,
          "no reachability scan at the exec")
    check(meta(p, "exec_from") == b, "the exec'd image's trace names bash's (exec_from)")
    check(leak_sizes(p) == [4242], "the exec'd program's trace holds its planted leak only")
    fn = one(p, "SELECT sf.function FROM leaks l JOIN stack_frames sl ON sl.stack = l.stack"
                " JOIN frames sf ON sf.id = sl.frame WHERE sf.function = 'exec_leak_site'")
    check(fn == "exec_leak_site", "the exec'd program's leak has its stack (%s)" % fn)
    # The log of a failing check, under -q: verdict, site, file:line, bytes, trace path.
    check("FAILED" in r.stderr and "exec_leak_site" in r.stderr and "exec_prog.c:" in r.stderr
          and "4242 B" in r.stderr and p in r.stderr,
          "-q: the failing log names the leak's function, file:line, bytes and trace",
          r.stderr)
    check(bash_t[0] not in r.stderr, "-q: the clean trace of bash is not in the log")

# ---- a wrapper script ending in exec "$@", of a clean program: passes ---------------------
wrapper = os.path.join(work, "wrapper.sh")
with open(wrapper, "w") as f:
    f.write('#!/bin/sh\nexport WRAPPED=1\nexec "$@"\n')
os.chmod(wrapper, 0o755)
d = os.path.join(work, "wrapper")
r = at("run", "--check", "-q", "-o", d + "/", "--", wrapper, prog, "clean")
check(r.returncode == 0, "a wrapper that execs a clean program passes (-o DIR/)",
      "%d\n%s" % (r.returncode, r.stderr))
names = traces(d)
check(len(names) == 2 and any(n.startswith("exec_prog.") for n in names),
      "the wrapper and the program it execs each have a trace (%s)" % names)
r = at("run", "--check", "-q", "-o", d + "/", "--", wrapper, prog, "leak")
check(r.returncode == 86 and "exec_leak_site" in r.stderr,
      "the same wrapper around a leaking program fails (86)", r.stderr)

# ---- a failed exec changes nothing ---------------------------------------------------------
d = os.path.join(work, "failexec")
r = at("run", "--check", "-q", "--output-dir", d, "--", prog, "failexec")
names = traces(d)
check(r.returncode == 86 and r.stdout.startswith("exec failed"),
      "failed exec: the program goes on, and its own leak fails the check",
      "%d %r\n%s" % (r.returncode, r.stdout, r.stderr))
check(len(names) == 1, "failed exec: one trace, no new image (%s)" % names)
if names:
    t = os.path.join(d, names[0])
    check(meta(t, "program_end") == "closed", "failed exec: the trace is closed at exit")
    check(leak_sizes(t) == [4343] and "after_failed_exec" in r.stderr,
          "failed exec: the leak after it is found, with its stack")
    check(one(t, "SELECT count(*) FROM allocations WHERE free_op = 'exec'") == 0,
          "failed exec: nothing released by it")

# ---- a vfork child shares the parent's memory and tracer: its _exit, its
# exec, its failed exec end nothing of the parent's trace -------------------------------------
for how in ("vfork-exit", "vfork-exec", "vfork-badexec"):
    d = os.path.join(work, how)
    r = at("run", "--check", "-q", "--output-dir", d, "--", prog, how)
    names = [n for n in traces(d) if n.startswith("exec_prog.")]
    check(r.returncode == 86 and "after_vfork" in r.stderr and len(names) == 1,
          "%s: the parent's own leak after the vfork fails the check" % how,
          "%d %s\n%s" % (r.returncode, names, r.stderr))
    if names:
        t = os.path.join(d, names[0])
        check(leak_sizes(t) == [4545] and meta(t, "program_end") == "closed",
              "%s: the parent's trace goes on to its end: only its 4545 B leaked (%s), not the"
              " block it freed after the vfork" % (how, leak_sizes(t)))
        check(one(t, "SELECT count(*) FROM allocations WHERE size BETWEEN 50 AND 69"
                     " AND free_seq IS NOT NULL") == 20,
              "%s: the parent's 20 allocations after the vfork are in its trace, released" % how)

# ---- an image exec'ing itself: numbered names, the old image's block released -------------
d = os.path.join(work, "reexec")
r = at("run", "--check", "-q", "--output-dir", d, "--", prog, "reexec")
names = traces(d)
check(r.returncode == 0 and len(names) == 2, "re-exec of itself: passes, two traces (%s)"
      % names, r.stderr)
first = [n for n in names if n.count(".") == 2]
second = [n for n in names if n.endswith(".2.db")]
check(len(first) == 1 and len(second) == 1,
      "the second image of the same name and pid is PROG.PID.2.db (%s)" % names)
if first:
    t = os.path.join(d, first[0])
    check(one(t, "SELECT count(*) FROM allocations WHERE size = 777 AND free_op = 'exec'") == 1,
          "re-exec: the block held at the exec is released by it")

# ---- programs that cannot be traced ---------------------------------------------------------
d = os.path.join(work, "static")
r = at("run", "--check", "-q", "--output-dir", d, "--", static, "leak")
check(r.returncode == 87 and "statically linked" in r.stderr
      and len(r.stderr.strip().splitlines()) == 1,
      "a statically linked program: exit 87 and one line saying why", "%d\n%s"
      % (r.returncode, r.stderr))
check(traces(d) == [], "a statically linked program leaves no (empty) trace")
r = at("run", "-q", "--output-dir", d, "--", static, "clean")
check(r.returncode == 87, "without --check too: never a pass (%d)" % r.returncode)
r = at("run", "--check", "-q", "--output-dir", d, "--", "bash", "-c", "exec %s leak" % static)
check(r.returncode == 87 and "could not be traced" in r.stderr,
      "an exec'd image that cannot be traced: exit 87", "%d\n%s" % (r.returncode, r.stderr))

# ---- a small suite: a Python driver, three programs, one leaks -----------------------------
driver = os.path.join(work, "driver.py")
with open(driver, "w") as f:
    f.write("import subprocess, sys\n"
            "for mode in ['clean', 'leak', 'clean']:\n"
            "    subprocess.run([sys.argv[1], mode], check=True)\n")
d = os.path.join(work, "suite")
r = at("run", "--check", "-q", "--follow-children", "--", sys.executable, driver, prog,
       extra={"ALLOCTRACE_OUTPUT_DIR": d})
check(r.returncode == 86, "suite: run --check fails (86)", "%d\n%s" % (r.returncode, r.stderr))
names = traces(d)
progs = [n for n in names if n.startswith("exec_prog.")]
check(len(progs) == 3, "suite: ALLOCTRACE_OUTPUT_DIR holds each program's trace (%s)" % names)
failing = [n for n in progs if leak_sizes(os.path.join(d, n)) != []]
check(len(failing) == 1 and leak_sizes(os.path.join(d, failing[0])) == [4242],
      "suite: exactly one program leaks (%s)" % failing)
check(r.stderr.count("alloctrace: FAILED") == 1 and failing and failing[0] in r.stderr,
      "suite: the run's log names the one failing trace", r.stderr)
c = at("check", d)
check(c.returncode == 1, "check DIR: one verdict, failing (1)", c.stdout + c.stderr)
fail_lines = [l for l in c.stdout.splitlines() if l.startswith("FAIL ")]
check(len(fail_lines) == 1 and failing and failing[0] in fail_lines[0],
      "check DIR: one failing trace named (%s)" % fail_lines, c.stdout)
check("clean" in c.stdout and "exec_leak_site" in c.stdout,
      "check DIR: says how many were clean, and the failing one's details", c.stdout)
c = at("check", *[os.path.join(d, n) for n in progs if n not in failing])
check(c.returncode == 0, "check FILE FILE: the clean traces together pass", c.stdout)
rep = at("report", d)
check(rep.returncode == 0 and rep.stdout.count("alloctrace report:") == len(names),
      "report DIR: each trace's report", rep.stderr)
check(failing and ("== %s" % os.path.join(d, failing[0])) in rep.stdout,
      "report DIR: a header names each trace and program", rep.stdout[:2000])
out = os.path.join(work, "html")
h = at("html", d, "-o", out)
pages = sorted(os.listdir(out)) if os.path.isdir(out) else []
check(h.returncode == 0 and "index.html" in pages and len(pages) == len(names) + 1,
      "html DIR -o OUTDIR: one page per trace and an index (%s)" % pages, h.stderr)
if "index.html" in pages and failing:
    idx = open(os.path.join(out, "index.html")).read()
    check(failing[0] in idx, "html: the index names the failing trace")

finish()
