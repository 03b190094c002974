#!/usr/bin/env python3
"""Files the CLI writes for the user (`html -o`, `report -o`,
tools/output.c): mode 0600 like the trace; a regular file is replaced
whole, never through a symbolic link planted at the path; a FIFO or a
character device is written into and stays what it is (a pipe,
/dev/stdout); /dev/full gets an error and is not turned into a file; a
report that fails leaves no file behind; query's table pads no row to a
huge cell.

    output_test.py ALLOCTRACE PRELOAD_PROG WORKDIR
"""
import os
import shutil
import stat
import subprocess
import sys
import threading

from tap import check, finish

alloctrace, prog, workdir = (os.path.abspath(a) for a in sys.argv[1:4])
work = os.path.join(workdir, "output_test")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)


def tool(*argv):
    return subprocess.run([alloctrace, *argv], cwd=work, capture_output=True, text=True,
                          timeout=120)


trace = os.path.join(work, "t.db")
r = subprocess.run([alloctrace, "run", "-q", "-o", trace, "--", prog], cwd=work,
                   capture_output=True, text=True, timeout=120)
check(os.path.exists(trace), "a trace to write reports of", r.stderr)

for cmd in (["html", trace, "-o"], ["report", trace, "-o"]):
    name = cmd[0]
    out = os.path.join(work, name + ".out")

    # a new file, then the same path again: replaced whole, 0600 both times
    for attempt in ("new", "replaced"):
        r = tool(*cmd, out)
        st = os.lstat(out)
        check(r.returncode == 0 and stat.S_ISREG(st.st_mode)
              and stat.S_IMODE(st.st_mode) == 0o600,
              "%s -o: %s file, mode 0600 (%o)" % (name, attempt, stat.S_IMODE(st.st_mode)),
              r.stderr)
    leftovers = [f for f in os.listdir(work) if f.startswith(name + ".out.")]
    check(not leftovers, "%s -o: no temporary file left" % name, leftovers)

    # a symbolic link planted at the path is not written through
    victim = os.path.join(work, name + ".victim")
    with open(victim, "w") as f:
        f.write("precious\n")
    link = os.path.join(work, name + ".link")
    os.symlink(victim, link)
    r = tool(*cmd, link)
    check(r.returncode != 0 and "symbolic link" in r.stderr and os.path.islink(link)
          and open(victim).read() == "precious\n",
          "%s -o SYMLINK: refused in one line, the link and its target untouched" % name,
          r.stderr)

    # a FIFO is written into and stays a FIFO
    fifo = os.path.join(work, name + ".fifo")
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    r = tool(*cmd, fifo)
    reader.join(60)
    check(r.returncode == 0 and got and len(got[0]) > 100
          and stat.S_ISFIFO(os.lstat(fifo).st_mode),
          "%s -o FIFO: the output went through the pipe, still a FIFO" % name, r.stderr)

    # /dev/stdout, a link to a character device, is followed
    r = subprocess.run([alloctrace, *cmd, "/dev/stdout"], cwd=work, capture_output=True,
                       timeout=120)
    check(r.returncode == 0 and len(r.stdout) > 100,
          "%s -o /dev/stdout: written to standard output" % name, r.stderr[:300])

    # /dev/full: an error, and the device stays a device
    r = tool(*cmd, "/dev/full")
    check(r.returncode != 0 and stat.S_ISCHR(os.lstat("/dev/full").st_mode)
          and "alloctrace:" in r.stderr,
          "%s -o /dev/full: fails with a message, /dev/full still a device" % name, r.stderr)

    # a directory is not replaced
    d = os.path.join(work, name + ".dir")
    os.makedirs(d)
    r = tool(*cmd, d)
    check(r.returncode != 0 and os.path.isdir(d),
          "%s -o DIR: refused, the directory stays" % name, r.stderr)

# query's table: a column is padded to 80 characters at most, so one huge
# cell does not make every other row as wide
r = tool("query", trace, "SELECT 1 AS a, printf('%.*c', 1000000, 'x') AS big"
         " UNION ALL SELECT 22, 'y'")
lines = r.stdout.split("\n")
check(r.returncode == 0 and len(lines) >= 4 and len(lines[2]) == 1000004
      and len(lines[3]) < 100,
      "query table: the huge cell printed whole, the other row not padded to it",
      [len(x) for x in lines])

# a report that fails (a trace that is no trace) leaves no file
bad = os.path.join(work, "bad.db")
with open(bad, "w") as f:
    f.write("not a trace\n")
out = os.path.join(work, "bad.out")
r = tool("report", bad, "-o", out)
check(r.returncode != 0 and not os.path.exists(out)
      and not [f for f in os.listdir(work) if f.startswith("bad.out")],
      "report of a bad trace: no output file, no temporary file", r.stderr)
finish()
