#!/usr/bin/env python3
"""The command line's own help (tools/usage.c): `alloctrace help CMD` and
`CMD --help` print the same full usage (options, defaults, exit status),
every option that help lists is one the command accepts, a misspelled
option or command gets one line naming the nearest, the manual pages
render with man(1) and say what help says, the bash completion completes
commands and options in a real bash, and `meson install` puts the pages,
the completion and the docs where they belong.

    cli_test.py ALLOCTRACE BUILD_DIR WORKDIR
"""
import os
import re
import shutil
import subprocess
import sys

from tap import check, finish

alloctrace, build, workdir = (os.path.abspath(a) for a in sys.argv[1:4])
work = os.path.join(workdir, "cli-%d" % os.getpid())
os.makedirs(work, exist_ok=True)


def tool(*args, **kw):
    return subprocess.run([alloctrace, *args], capture_output=True, text=True, timeout=60, **kw)


commands = tool("help", "--commands").stdout.split()
check(commands == ["run", "recover", "report", "check", "query", "html", "export", "version",
                   "help"],
      "help --commands lists the commands", commands)

OPTION = re.compile(r"^  (?:-(\w), )?\s*--([\w-]+)(?: (\S+))?", re.M)
helps = {}
for cmd in commands:
    h = tool("help", cmd)
    own = tool(cmd, "--help") if cmd not in ("version", "help") else h
    ok = h.returncode == 0 and own.returncode == 0 and h.stdout == own.stdout
    check(ok and h.stdout.startswith("usage: alloctrace %s" % cmd)
          and "\noptions:\n" in h.stdout and "\nexit status:\n" in h.stdout,
          "%s: `help %s` and `%s --help` print the same full usage" % (cmd, cmd, cmd),
          h.stderr + own.stderr)
    opts = OPTION.findall(h.stdout.split("\nexit status:\n")[0])
    helps[cmd] = (h.stdout, opts)
    check(("h", "help", "") in opts, "%s: --help is listed" % cmd, opts)
    if cmd in ("version", "help"):
        continue
    # Every option listed is accepted: given with a value where it takes
    # one, it is never "unknown"; and each misspelling gets the nearest.
    for short, name, arg in opts:
        if name == "help":
            continue
        r = tool(cmd, "--" + name, *(["x"] if arg else []), "/nonexistent/trace.db",
                 cwd=work)
        check("unknown or ambiguous option" not in r.stderr and "internal error" not in r.stderr
              and "needs a value" not in r.stderr and r.returncode != 134,
              "%s: --%s is accepted" % (cmd, name), r.stderr)
        typo = "--" + name[:-1] if len(name) > 4 else "--" + name + "x"
        if any(n.startswith(typo[2:]) for _, n, _ in opts):
            typo = "--" + name[0] + name[2:]  # not a prefix getopt would take
        r = tool(cmd, typo, "x.db", cwd=work)
        lines = r.stderr.strip().split("\n")
        check(r.returncode == 2 and len(lines) == 1 and
              ("did you mean '--%s'?" % name) in lines[0],
              "%s %s: one line, exit 2, suggests --%s" % (cmd, typo, name), r.stderr)

# Defaults and exit statuses are in the help.
run_help = helps["run"][0]
check("(default 64)" in run_help and "127 PROGRAM was not found" in run_help
      and "86 --check" in run_help, "run's help gives defaults and exit statuses")
check("(default: all but zero-size)" in " ".join(helps["check"][0].split())
      and "\n  1 fail\n" in helps["check"][0],
      "check's help gives its defaults and exit 1")

r = tool("reprot", "x.db")
check(r.returncode == 2 and "did you mean 'report'?" in r.stderr and r.stderr.count("\n") == 1,
      "a misspelled command: one line naming the nearest, exit 2", r.stderr)
r = tool("help", "frobnicate")
check(r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr, "help of no command: 2")
trace = os.path.join(work, "true.db")
r = tool("run", "-q", "-o", trace, "--", "true")
check(r.returncode == 0, "run true", r.stderr)
r = tool("report", trace, "-o", work)
check(r.returncode != 0 and "is a directory" in r.stderr, "report -o DIR says it is a directory",
      r.stderr)

# ---- progress on a terminal ---------------------------------------------------------------------
import pty


def on_terminal(*args):
    """stderr of `alloctrace ARGS` when it is a terminal (a pty), and when not."""
    master, slave = pty.openpty()
    env = {**os.environ, "ALLOCTRACE_PROGRESS_AFTER": "0"}
    p = subprocess.Popen([alloctrace, *args], stdout=subprocess.DEVNULL, stderr=slave,
                         cwd=work, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    p.wait(timeout=120)
    os.close(master)
    return p.returncode, b"".join(chunks).decode("utf-8", "replace")


prog_trace = os.path.join(work, "progress.db")
rc, tty = on_terminal("run", "-o", prog_trace, "--", "python3", "-c", "print(sum(range(10)))")
steps = re.findall(r"\ralloctrace: (finishing the trace: [a-z ]+)\.\.\.", tty)
check(rc == 0 and "finishing the trace: the rest of the spool" in steps
      and "finishing the trace: symbols and sites" in steps and "\r\x1b[K" in tty,
      "run on a terminal: each step of finishing the trace is shown, then cleared", repr(tty[-600:]))
r = tool("run", "-o", os.path.join(work, "progress2.db"), "--", "python3", "-c", "print(1)",
         env={**os.environ, "ALLOCTRACE_PROGRESS_AFTER": "0"})
check(r.returncode == 0 and "\r" not in r.stderr and "finishing the trace" not in r.stderr,
      "run with stderr not a terminal: no progress", r.stderr[-300:])
rc, tty = on_terminal("report", prog_trace)
check(rc == 0 and "\ralloctrace: " in tty, "report on a terminal shows its steps too", repr(tty[-300:]))

# ---- manual pages -------------------------------------------------------------------------------
man = shutil.which("man")
check(man is not None, "man is installed (scripts/setup.sh installs man-db)")
for cmd in commands:
    page = os.path.join(build, "tools", "alloctrace-%s.1" % cmd)
    r = subprocess.run([man or "man", "-l", page], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "MANWIDTH": "100", "MAN_KEEP_FORMATTING": "0",
                            "PAGER": "cat"})
    text = re.sub(r".\x08", "", r.stdout)
    names = [n for _, n, _ in helps[cmd][1]]
    missing = [n for n in names if ("--" + n) not in text]
    check(r.returncode == 0 and ("alloctrace-%s" % cmd) in text and "EXIT STATUS" in text
          and not missing, "man alloctrace-%s renders with every option of its help" % cmd,
          "missing %s; %s" % (missing, r.stderr))

# ---- bash completion ------------------------------------------------------------------------------
script = os.path.join(build, "tools", "completion", "alloctrace")


def complete(*words):
    line = " ".join(words)
    prog = ('source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _alloctrace; printf "%%s\\n" '
            '"${COMPREPLY[@]}"' % (script, line, len(words) - 1))
    r = subprocess.run(["bash", "--norc", "-c", prog], capture_output=True, text=True,
                       timeout=60, cwd=work)
    return r.stdout.split()


check(complete("alloctrace", "rep") == ["report"], "completion: a command", complete("alloctrace", "rep"))
check(complete("alloctrace", "report", "--fo") == ["--format"], "completion: an option of report")
check(sorted(complete("alloctrace", "run", "--no-")) ==
      ["--no-leak-scan", "--no-release-stacks"], "completion: run's options")
check("ls" in complete("alloctrace", "run", "-q", "--", "l"), "completion: after run's --, programs")

# ---- meson install ----------------------------------------------------------------------------------
dest = os.path.join(work, "dest")
r = subprocess.run(["meson", "install", "-C", build, "--no-rebuild", "--quiet", "--destdir", dest],
                   capture_output=True, text=True, timeout=300)
check(r.returncode == 0, "meson install --destdir", r.stderr[-2000:])
found = {os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs}
want = ["share/man/man1/alloctrace-%s.1" % c for c in commands] + [
    "share/bash-completion/completions/alloctrace", "share/doc/alloctrace/cli.md",
    "share/doc/alloctrace/schema.md", "share/doc/alloctrace/README.md"]
missing = [w for w in want if not any(f.endswith(w) for f in found)]
check(not missing, "meson install: manual pages, bash completion and docs", missing)

shutil.rmtree(work, ignore_errors=True)
finish()
