#!/usr/bin/env python3
"""alloctrace on programs nobody here wrote, as Debian installs them.

    real_programs_test.py ALLOCTRACE_EXE SOURCE_ROOT WORKDIR

Each program runs untraced and under `alloctrace run`; its stdout and exit
status must not change, and the trace must agree with itself (and, for
sqlite3, with valgrind's heap totals):

  1. sqlite3 building and indexing a table of ROWS rows (script made here):
     identical stdout, exit status and database file; meta alloc_calls and
     alloc_bytes equal valgrind's "total heap usage" of the same input; no
     leaks, no findings.
  2. git log -p over this project's own history: identical output, more
     than 1000 allocation calls, no findings.
  3. python3 building a 100k-entry dict and round-tripping it through JSON:
     identical output, no findings; python keeps memory by design, so no
     leak check, but meta alloc_calls/free_calls must match the
     allocations view.
  4. clang-format (C++: operator new/delete) over lib/tracer/tracer.c: identical
     output, 'new' rows in the trace, no findings, no leaks.

Prints one "ok - ..." or "FAIL - ..." line per check and exits 1 if any
check failed.  A missing program is a failure, never a skip.  Python
standard library only.  The scratch directory (under WORKDIR) is removed
when every check passed and kept for inspection otherwise.
"""
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

import tap
from tap import check

# sqlite3 workload size: "a few hundred thousand" rows.  Valgrind is the
# slow part (about 25 s for 300000 rows on a current x86-64 machine).
ROWS = 300000
TIMEOUT = 600  # seconds, for any one program run


def note(text):
    for line in str(text).splitlines():
        print(f'# {line}', flush=True)


def equal(name, got, want):
    return check(got == want, name, f'got {got!r}, want {want!r}')


# ---- running things -----------------------------------------------------------

class Run:
    def __init__(self, argv, rc, out, err, seconds):
        self.argv, self.rc, self.out, self.err, self.seconds = argv, rc, out, err, seconds


def run(argv, env, cwd, stdin_path=None):
    """Runs argv to completion; returns a Run, or None (with a FAIL) when it
    could not be started or overran TIMEOUT."""
    start = time.monotonic()
    try:
        with open(stdin_path, 'rb') if stdin_path else open(os.devnull, 'rb') as stdin:
            p = subprocess.run(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env, cwd=cwd, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        check(False, f'{argv[0]} finishes', f'still running after {TIMEOUT} s: {argv}')
        return None
    except OSError as e:
        check(False, f'{argv[0]} starts', f'{e}: {argv}')
        return None
    return Run(argv, p.returncode, p.stdout, p.stderr, time.monotonic() - start)


def show_bytes(b, limit=600):
    s = b.decode('utf-8', 'replace')
    return s if len(s) <= limit else s[:limit] + f'... ({len(b)} bytes)'


def first_difference(a, b):
    n = min(len(a), len(b))
    i = next((k for k in range(n) if a[k] != b[k]), n)
    return (f'{len(a)} vs {len(b)} bytes, first difference at byte {i}: '
            f'{a[max(0, i - 40):i + 40]!r} vs {b[max(0, i - 40):i + 40]!r}')


# alloctrace's own stderr lines: the summary, and anything else is a warning.
SUMMARY_LINE = re.compile(rb'^alloctrace: (trace written to |  (allocation calls|peak live heap'
                          rb'|leaked|findings) )')


def split_stderr(err):
    """(program's stderr, alloctrace summary lines, other alloctrace lines)"""
    prog, summary, warnings = [], [], []
    for line in err.splitlines(keepends=True):
        if not line.startswith(b'alloctrace: '):
            prog.append(line)
        elif SUMMARY_LINE.match(line):
            summary.append(line)
        else:
            warnings.append(line)
    return b''.join(prog), summary, warnings


def compare_runs(name, plain, traced):
    """Checks that tracing changed nothing the program's user can see, and
    that the tool printed its summary and nothing else.  Returns the
    summary lines."""
    equal(f'{name}: untraced run exits 0', plain.rc, 0)
    if plain.rc != 0:
        note(f'untraced stderr: {show_bytes(plain.err)}')
    equal(f'{name}: traced exit status equals untraced', traced.rc, plain.rc)
    check(traced.out == plain.out, f'{name}: traced stdout is byte-identical to untraced',
           first_difference(traced.out, plain.out))
    prog_err, summary, warnings = split_stderr(traced.err)
    check(prog_err == plain.err, f'{name}: traced stderr (less alloctrace lines) equals untraced',
           first_difference(prog_err, plain.err))
    check(len(summary) >= 5, f'{name}: alloctrace printed its summary',
           f'stderr was: {show_bytes(traced.err)}')
    check(not warnings, f'{name}: alloctrace printed no warnings',
           show_bytes(b''.join(warnings)))
    note(f'{name}: untraced {plain.seconds:.2f} s, traced {traced.seconds:.2f} s, '
         f'{len(plain.out)} bytes of output')
    return summary


# ---- reading traces -----------------------------------------------------------

class Trace:
    def __init__(self, path):
        self.db = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
        self.meta = dict(self.db.execute('SELECT key, value FROM meta'))

    def one(self, sql, *args):
        return self.db.execute(sql, args).fetchone()[0]

    def rows(self, sql, *args):
        return self.db.execute(sql, args).fetchall()


def open_trace(name, path):
    if not check(os.path.isfile(path), f'{name}: trace file exists', path):
        return None
    try:
        t = Trace(path)
        t.one('SELECT count(*) FROM allocations')
        return t
    except sqlite3.Error as e:
        check(False, f'{name}: trace is readable', f'{path}: {e}')
        return None


def meta_int(t, key):
    v = t.meta.get(key)
    return int(v) if v is not None else None


def check_trace_complete(name, t, summary):
    """What every trace must show, whatever the program: closed properly,
    nothing lost, totals matching the rows and the printed summary."""
    equal(f'{name}: meta program_end', t.meta.get('program_end'), 'closed')
    equal(f'{name}: meta finished', meta_int(t, 'finished'), 1)
    equal(f'{name}: meta lost_events', meta_int(t, 'lost_events'), 0)
    equal(f'{name}: meta writer_error', meta_int(t, 'writer_error'), 0)
    if 'spool_errors' in t.meta:
        equal(f'{name}: meta spool_errors', meta_int(t, 'spool_errors'), 0)
    alloc_calls, free_calls = meta_int(t, 'alloc_calls'), meta_int(t, 'free_calls')
    equal(f'{name}: meta alloc_calls equals the rows of allocations',
          alloc_calls, t.one('SELECT count(*) FROM allocations'))
    equal(f'{name}: meta free_calls equals the allocations with a free_seq',
          free_calls, t.one('SELECT count(*) FROM allocations WHERE free_seq IS NOT NULL'))
    equal(f'{name}: meta findings equals the rows of findings',
          meta_int(t, 'findings'), t.one('SELECT count(*) FROM findings'))
    m = re.search(rb'allocation calls (\d+), frees (\d+), bytes allocated .*\((\d+) B\)',
                  b''.join(summary))
    if check(m is not None, f'{name}: summary has allocation calls, frees and bytes',
              show_bytes(b''.join(summary))):
        equal(f'{name}: summary totals equal meta',
              tuple(int(x) for x in m.groups()),
              (alloc_calls, free_calls, meta_int(t, 'alloc_bytes')))


def check_no_findings(name, t):
    n = t.one('SELECT count(*) FROM findings')
    if not equal(f'{name}: no findings', n, 0):
        for kind, count, detail in t.rows(
                'SELECT kind, count(*), min(detail) FROM findings GROUP BY kind'):
            note(f'  {count} x {kind}: {detail}')
        for text, in t.rows('SELECT release_stack_text FROM findings_detail LIMIT 3'):
            note(f'  released at: {text}')


def leak_lines(t, where='1'):
    return [f'  {size} B ({family}) at {text}' for size, family, text in t.rows(
        'SELECT l.size, l.family, s.text FROM leaks l LEFT JOIN stack_text s ON s.stack = l.stack'
        f' WHERE {where} ORDER BY l.size DESC LIMIT 5')]


# ---- the programs -------------------------------------------------------------

def sqlite_script(rows):
    return f"""\
CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER NOT NULL, b TEXT NOT NULL);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows})
INSERT INTO t(a, b) SELECT (x * 7919) % 100003, printf('row-%08d-%s', x, hex(x * 31)) FROM c;
CREATE INDEX t_a ON t(a);
CREATE INDEX t_b ON t(b);
SELECT count(*), sum(a), max(b), min(b) FROM t;
SELECT a, b FROM t WHERE a BETWEEN 500 AND 505 ORDER BY a, b;
SELECT substr(b, 1, 8), count(*) FROM t GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5;
SELECT group_concat(id) FROM (SELECT id FROM t WHERE b LIKE 'row-0001234%' ORDER BY id);
SELECT a % 10, count(*), sum(length(b)) FROM t GROUP BY 1 ORDER BY 1;
PRAGMA integrity_check;
"""


VALGRIND_IN_USE = re.compile(rb'in use at exit: ([\d,]+) bytes in ([\d,]+) blocks')
VALGRIND_TOTALS = re.compile(
    rb'total heap usage: ([\d,]+) allocs, ([\d,]+) frees, ([\d,]+) bytes allocated')


def test_sqlite(tools, exe, work, env):
    name = 'sqlite3'
    sql = os.path.join(work, 'workload.sql')
    with open(sql, 'w') as f:
        f.write(sqlite_script(ROWS))
    note(f'{name}: {ROWS} rows, script {sql}')
    sqlite, valgrind = tools['sqlite3'], tools['valgrind']

    def db(n):
        # The same input for all three runs means paths of the same length
        # too: sqlite3 allocates strings holding the database's full path.
        d = os.path.join(work, f'sqlite.{n}')
        os.mkdir(d)
        return os.path.join(d, 'test.db')

    plain_db, traced_db, vg_db = db(1), db(2), db(3)
    trace = os.path.join(work, 'sqlite3.trace.db')
    plain = run([sqlite, plain_db], env, work, sql)
    traced = run([exe, 'run', '-o', trace, '--force', '--', sqlite, traced_db], env, work, sql)
    if not plain or not traced:
        return
    summary = compare_runs(name, plain, traced)
    with open(plain_db, 'rb') as a, open(traced_db, 'rb') as b:
        check(a.read() == b.read(), f'{name}: traced database file is byte-identical to untraced')

    t = open_trace(name, trace)
    if not t:
        return
    check_trace_complete(name, t, summary)
    check_no_findings(name, t)
    if not equal(f'{name}: no leaks', t.one('SELECT count(*) FROM leaks'), 0):
        for line in leak_lines(t):
            note(line)

    if not valgrind:
        return  # reported missing already
    vg = run([valgrind, '--tool=memcheck', '--leak-check=no', sqlite, vg_db], env, work, sql)
    if not vg:
        return
    note(f'{name}: valgrind {vg.seconds:.2f} s')
    equal(f'{name}: valgrind run exits 0', vg.rc, 0)
    m = VALGRIND_TOTALS.search(vg.err)
    if not check(m is not None, f'{name}: valgrind printed its heap totals',
                  show_bytes(vg.err[-2000:])):
        return
    vg_allocs, vg_frees, vg_bytes = (int(x.replace(b',', b'')) for x in m.groups())
    equal(f'{name}: meta alloc_calls equals valgrind allocs', meta_int(t, 'alloc_calls'), vg_allocs)
    equal(f'{name}: meta alloc_bytes equals valgrind bytes allocated',
          meta_int(t, 'alloc_bytes'), vg_bytes)
    # Not asserted: valgrind frees at exit what glibc keeps (__libc_freeres),
    # which the trace sets aside as runtime-owned instead.
    note(f'{name}: valgrind frees {vg_frees}; trace free_calls {meta_int(t, "free_calls")} + '
         f'runtime-owned blocks {t.one("SELECT count(*) FROM runtime_blocks")}')


def test_git(tools, exe, source_root, work, env):
    name = 'git log -p'
    git = tools['git']
    head = run([git, '-C', source_root, 'rev-parse', '--verify', 'HEAD^{commit}'], env, work)
    if not head:
        return
    if not check(head.rc == 0, f'{name}: {source_root} is a git repository with commits',
                  show_bytes(head.err)):
        return
    # One fixed commit for both runs: others may commit in between.
    commit = head.out.decode().strip()
    argv = [git, '-C', source_root, 'log', '-p', '-n', '200', '--no-color', commit]
    trace = os.path.join(work, 'git.trace.db')
    plain = run(argv, env, work)
    traced = run([exe, 'run', '-o', trace, '--force', '--'] + argv, env, work)
    if not plain or not traced:
        return
    summary = compare_runs(name, plain, traced)
    check(len(plain.out) > 0, f'{name}: output is not empty')
    t = open_trace(name, trace)
    if not t:
        return
    check_trace_complete(name, t, summary)
    calls = meta_int(t, 'alloc_calls')
    check(calls is not None and calls > 1000, f'{name}: more than 1000 allocation calls',
           f'alloc_calls = {calls}')
    check_no_findings(name, t)


PYTHON_SCRIPT = """\
import hashlib
import json

d = {f"key-{i:06d}": [i, i * i % 9973, f"v{i:x}", {"even": i % 2 == 0}] for i in range(100000)}
text = json.dumps(d, sort_keys=True)
back = json.loads(text)
assert back == d
print(len(back), len(text), hashlib.sha256(text.encode()).hexdigest())
print(sum(v[1] for v in back.values()), sum(1 for v in back.values() if v[3]["even"]))
"""


def test_python(tools, exe, work, env):
    name = 'python3'
    python = tools['python3']
    script = os.path.join(work, 'workload.py')
    with open(script, 'w') as f:
        f.write(PYTHON_SCRIPT)
    argv = [python, '-I', script]  # -I: no PYTHON* variables, no user site
    trace = os.path.join(work, 'python3.trace.db')
    plain = run(argv, env, work)
    traced = run([exe, 'run', '-o', trace, '--force', '--'] + argv, env, work)
    if not plain or not traced:
        return
    summary = compare_runs(name, plain, traced)
    t = open_trace(name, trace)
    if not t:
        return
    check_trace_complete(name, t, summary)
    check_no_findings(name, t)
    note(f'{name}: {meta_int(t, "alloc_calls")} allocation calls, '
         f'{t.one("SELECT count(*) FROM leaks")} leaks (not checked: python keeps memory)')


def test_clang_format(tools, exe, source_root, work, env):
    name = 'clang-format'
    clang_format = tools['clang-format']
    # A copy: others may be editing the source tree between the two runs.
    src = os.path.join(work, 'tracer.c')
    shutil.copyfile(os.path.join(source_root, 'lib', 'tracer', 'tracer.c'), src)
    argv = [clang_format, '--style=LLVM', src]
    trace = os.path.join(work, 'clang-format.trace.db')
    plain = run(argv, env, work)
    traced = run([exe, 'run', '-o', trace, '--force', '--'] + argv, env, work)
    if not plain or not traced:
        return
    summary = compare_runs(name, plain, traced)
    check(len(plain.out) > 1000, f'{name}: output is not empty')
    t = open_trace(name, trace)
    if not t:
        return
    check_trace_complete(name, t, summary)
    n_new = t.one("SELECT count(*) FROM allocations WHERE family = 'new'")
    check(n_new > 0, f"{name}: the trace has family 'new' allocations", f'{n_new} rows')
    check_no_findings(name, t)
    # What is still live at exit must be exactly what valgrind finds in use
    # at exit (valgrind frees glibc's own blocks first, as the trace sets
    # them aside): LLVM keeps an alternate signal stack and libz3 a static
    # block for the whole process, "still reachable" for valgrind.
    valgrind = tools['valgrind']
    if not valgrind:
        return
    vg = run([valgrind, '--tool=memcheck', '--leak-check=summary'] + argv, env, work)
    if not vg:
        return
    m = VALGRIND_IN_USE.search(vg.err)
    if not check(m is not None, f'{name}: valgrind printed what is in use at exit',
                  show_bytes(vg.err[-2000:])):
        return
    vg_bytes, vg_blocks = (int(x.replace(b',', b'')) for x in m.groups())
    leaks = t.one('SELECT count(*) FROM leaks')
    leaked = t.one('SELECT coalesce(sum(size), 0) FROM leaks')
    if not equal(f'{name}: leaked blocks equal valgrind\'s blocks in use at exit', leaks, vg_blocks):
        for line in leak_lines(t, '1'):
            note(line)
    # Not compared: the signal stack's size comes from the auxiliary vector,
    # which valgrind changes.
    note(f'{name}: leaked {leaked} bytes; valgrind: {vg_bytes} bytes in use at exit')


# ---- main -----------------------------------------------------------------------

def find_tools():
    """Every program the tests run, by name; None (and a FAIL) when missing."""
    tools = {}
    for name in ('sqlite3', 'git', 'valgrind'):
        tools[name] = shutil.which(name)
    tools['clang-format'] = shutil.which('clang-format') or shutil.which('clang-format-14')
    # Debian's interpreter first (a pyenv or virtualenv `python3` on PATH
    # may be a shell-script shim); whatever it is, trace the interpreter
    # itself, not a wrapper.
    python = shutil.which('python3', path='/usr/bin:/bin') or shutil.which('python3')
    if python:
        try:
            python = subprocess.run([python, '-I', '-c', 'import sys; print(sys.executable)'],
                                    stdout=subprocess.PIPE, check=True, timeout=60,
                                    text=True).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            python = None
    tools['python3'] = python
    for name, path in tools.items():
        want = 'clang-format or clang-format-14' if name == 'clang-format' else name
        if check(path is not None, f'{name} is installed',
                  f'{want} not found on PATH ({os.environ.get("PATH", "")}); install the Debian '
                  f'package (apt-get install {"clang-format" if name == "clang-format" else name})'):
            note(f'{name}: {path}')
    return tools


def main():
    if len(sys.argv) != 4:
        sys.exit(f'usage: {sys.argv[0]} ALLOCTRACE_EXE SOURCE_ROOT WORKDIR')
    exe, source_root, workdir = (os.path.abspath(a) for a in sys.argv[1:])
    start = time.monotonic()

    if not check(os.access(exe, os.X_OK), 'alloctrace executable exists', exe):
        return 1
    if not os.environ.get('ALLOCTRACE_PRELOAD'):
        preload = os.path.normpath(os.path.join(os.path.dirname(exe), '..', 'lib',
                                                'liballoctrace_preload.so'))
        check(os.path.isfile(preload), 'preload library is built next to the tool', preload)
    tools = find_tools()

    os.makedirs(workdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix='real_programs.', dir=workdir)
    home = os.path.join(work, 'home')
    os.mkdir(home)
    env = dict(os.environ)
    for k in list(env):
        if k.startswith('ALLOCTRACE_') and k != 'ALLOCTRACE_PRELOAD':
            del env[k]
    env.update(HOME=home, XDG_CONFIG_HOME=os.path.join(home, '.config'), LC_ALL='C.UTF-8',
               GIT_PAGER='cat', PAGER='cat', GIT_CONFIG_NOSYSTEM='1', TZ='UTC')

    if tools['sqlite3']:
        test_sqlite(tools, exe, work, env)
    if tools['git']:
        test_git(tools, exe, source_root, work, env)
    if tools['python3']:
        test_python(tools, exe, work, env)
    if tools['clang-format']:
        test_clang_format(tools, exe, source_root, work, env)

    note(f'total {time.monotonic() - start:.1f} s')
    if tap.failures:
        note(f'{tap.failures} check(s) failed; traces and outputs kept in {work}')
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
