#!/usr/bin/env python3
"""Reachability at exit (the `leaks` view's column `reachability`,
docs/schema.md) against valgrind's own leak checker.

    reach_test.py cases ALLOCTRACE REACH_PROG REACH_CXX REACH_LIB WORKDIR
    reach_test.py programs ALLOCTRACE SOURCE_ROOT WORKDIR

cases: every mode of reach_prog.c (`reach_prog list`) and reach_cxx.cc runs
under `valgrind --leak-check=full --show-leak-kinds=all --xml=yes` and under
`alloctrace run`.  The program prints "block SIZE CLASS" for each block the
case is about (each of a size of its own, each allocated at a call site of
its own, so each has a valgrind loss record of its own).  For each block:
valgrind's class is the intended one, and the trace's is the same (or the
one DIFFERENCES gives, with its reason).  Blocks nobody planned (glibc's)
must be the same in both, or explained by a rule of RUNTIME_RULES.  The
class totals (`SELECT reachability, count(*), sum(size) FROM leaks GROUP BY
1`) must be the planned ones, and `alloctrace run --check` must pass exactly
when no block is definitely or indirectly lost.  The C++ shapes that
valgrind's heuristics call reachable are also run with
--leak-check-heuristics=none, where valgrind must call them possibly lost.
A program that kills itself leaves every block 'unknown', with its stack.

programs: git log -p, python3, sqlite3 and clang-format, as Debian installs
them: blocks and bytes per class from valgrind and from the trace are equal
once the explained differences (EXPLAINED) are taken out, each of those
asserted as such; `alloctrace run --check` exits 0 on each.

Prints "ok - ..." / "FAIL - ..." per check (tap.py); exits 1 on any failure.
A missing program is a failure.  Scratch files stay under WORKDIR when a
check failed.
"""
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

import tap
from tap import check

CLASSES = ('definitely_lost', 'indirectly_lost', 'possibly_lost', 'still_reachable', 'unknown')
VALGRIND_KINDS = {
    'Leak_DefinitelyLost': 'definitely_lost',
    'Leak_IndirectlyLost': 'indirectly_lost',
    'Leak_PossiblyLost': 'possibly_lost',
    'Leak_StillReachable': 'still_reachable',
}
# What `alloctrace run --check` fails on by default (docs/ci.md): LSan's
# default, plus blocks never classified.
GATED = ('definitely_lost', 'indirectly_lost', 'unknown')
CXX_MODES = ('newarray', 'multi', 'stdstring', 'length64')
TIMEOUT = 300

# (mode, size) -> (class in the trace, why it differs from valgrind's).
# Empty: the trace must say what valgrind says for every planned block.
DIFFERENCES = {}


def note(text):
    for line in str(text).splitlines():
        print(f'# {line}', flush=True)


def equal(name, got, want):
    return check(got == want, name, f'got {got!r}, want {want!r}')


def run(argv, cwd, env=None, stdin=None, timeout=TIMEOUT):
    try:
        with open(stdin or os.devnull, 'rb') as f:
            return subprocess.run(argv, stdin=f, capture_output=True, cwd=cwd, env=env,
                                  timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        check(False, f'{os.path.basename(argv[0])} runs', f'{e}: {argv}')
        return None


# ---- valgrind's verdict ----------------------------------------------------------

class Record:
    """One valgrind loss record: class, blocks, direct bytes, frames."""
    def __init__(self, cls, blocks, nbytes, frames):
        self.cls, self.blocks, self.bytes, self.frames = cls, blocks, nbytes, frames

    def has_frame(self, names):
        return any(f and any(f.startswith(n) for n in names) for f in self.frames)


DIRECT = re.compile(r'\(([\d,]+) direct, [\d,]+ indirect\)')


def parse_valgrind_xml(path):
    """The loss records of a --xml=yes leak check.  A definitely lost
    record's <leakedbytes> counts the indirectly lost blocks behind it too;
    its text says "N (D direct, I indirect) bytes": D is its own."""
    records = []
    for err in ET.parse(path).getroot().iter('error'):
        cls = VALGRIND_KINDS.get(err.findtext('kind'))
        if cls is None:
            continue
        nbytes = int(err.findtext('xwhat/leakedbytes'))
        m = DIRECT.search(err.findtext('xwhat/text') or '')
        if m:
            nbytes = int(m.group(1).replace(',', ''))
        frames = [f.findtext('fn') for f in err.iterfind('stack/frame')]
        records.append(Record(cls, int(err.findtext('xwhat/leakedblocks')), nbytes, frames))
    return records


def valgrind(tools, argv, work, name, extra=(), env=None, stdin=None):
    """Runs argv under memcheck's leak check; returns (run, records) or None."""
    xml = os.path.join(work, f'{name}.vg.xml')
    r = run([tools['valgrind'], '--tool=memcheck', '--leak-check=full',
             '--show-leak-kinds=all', '--xml=yes', f'--xml-file={xml}', *extra, *argv],
            work, env, stdin)
    if r is None:
        return None
    if not check(os.path.isfile(xml), f'{name}: valgrind wrote its XML', r.stderr[-800:]):
        return None
    try:
        return r, parse_valgrind_xml(xml)
    except ET.ParseError as e:
        check(False, f'{name}: valgrind XML parses', f'{xml}: {e}')
        return None


# ---- the trace's verdict -----------------------------------------------------------

class Trace:
    def __init__(self, path):
        self.db = sqlite3.connect(f'file:{path}?mode=ro', uri=True)

    def rows(self, sql, *args):
        return self.db.execute(sql, args).fetchall()

    def leaks(self):
        """(size, reachability, stack text) of every leak."""
        return self.rows('SELECT l.size, l.reachability, coalesce(s.text, \'\') FROM leaks l'
                         ' LEFT JOIN stack_text s ON s.stack = l.stack ORDER BY l.alloc_seq')

    def classes(self):
        return {c: (n, b) for c, n, b in self.rows(
            'SELECT reachability, count(*), sum(size) FROM leaks GROUP BY 1')}

    def runtime(self):
        return self.rows('SELECT size, reason FROM runtime_blocks')


def alloctrace(exe, argv, work, name, env=None, stdin=None, want_rc=0):
    trace = os.path.join(work, f'{name}.trace.db')
    r = run([exe, 'run', '-q', '-o', trace, '--force', '--', *argv], work, env, stdin)
    if r is None:
        return None
    equal(f'{name}: alloctrace run exits {want_rc}', r.returncode, want_rc)
    if not check(os.path.isfile(trace), f'{name}: trace written', r.stderr.decode()[-800:]):
        return None
    return r, Trace(trace)


# ---- the cases -------------------------------------------------------------------------

def plan_of(out):
    """{size: class} from the program's "block SIZE CLASS" lines."""
    plan = {}
    for line in out.decode().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == 'block':
            plan[int(parts[1])] = parts[2]
    return plan


# Blocks nobody planned that valgrind classifies and the trace sets aside as
# the C library's own (table runtime_owned): (what, valgrind frames, reason
# in the trace, same size in both).
RUNTIME_RULES = [
    ('a live thread\'s DTV (its TCB points 8 bytes in: possibly lost for valgrind); '
     'its size counts the modules loaded, valgrind\'s preloads or alloctrace\'s',
     ('allocate_dtv', '_dl_allocate_tls'), 'C library cache (_dl_allocate_tls)', False),
    ('the dynamic loader\'s records of a library loaded by dlopen',
     ('_dl_map_object', '_dl_new_object', '_dl_check_map_versions', 'dl_open_worker'),
     'C library cache (_dl_open)', True),
]


def explain_runtime(name, record, runtime):
    """Checks that an unplanned valgrind record is a runtime-owned block of
    the trace; removes the block from `runtime`.  Returns True if a rule
    explains it."""
    for what, frames, reason, same_size in RUNTIME_RULES:
        if not record.has_frame(frames):
            continue
        for i, (size, r) in enumerate(runtime):
            if r == reason and (not same_size or size == record.bytes):
                del runtime[i]
                check(True, f'{name}: valgrind\'s {record.cls} {record.bytes} B is runtime-owned '
                            f'in the trace ({reason}): {what}')
                return True
    return False


def compare_unplanned(name, records, leaks, runtime):
    """Blocks nobody planned: each valgrind record is a leak of the trace of
    the same size (and must have valgrind's class there) or an explained
    runtime-owned block; the trace has no other leak.  Returns the (class,
    size) each of `leaks` must have."""
    pending, want = list(leaks), []
    for rec in records:
        match = next((x for x in pending if rec.blocks == 1 and x[0] == rec.bytes), None)
        if match:
            pending.remove(match)
            want.append((rec.cls, match[0]))
            equal(f'{name}: unplanned {rec.bytes} B ({match[2][:60]}) is {rec.cls} in the trace '
                  'as for valgrind', match[1], rec.cls)
        elif not explain_runtime(name, rec, runtime):
            check(False, f'{name}: valgrind\'s unplanned {rec.cls} record is in the trace',
                  f'{rec.blocks} blocks, {rec.bytes} B at {rec.frames[:6]}; trace leaks '
                  f'{[(s, c) for s, c, _ in leaks]}')
    check(not pending, f'{name}: the trace has no unplanned leak valgrind does not',
          [(s, c, t[:160]) for s, c, t in pending])
    return want + [(c, s) for s, c, _ in pending]


def case_argv(args, mode):
    if mode in CXX_MODES:
        return [args['cxx'], mode]
    if mode == 'shlib':
        return [args['prog'], mode, args['lib']]
    return [args['prog'], mode]


def test_case(tools, args, mode, work):
    argv = case_argv(args, mode)
    vg = valgrind(tools, argv, work, mode)
    at = alloctrace(args['exe'], argv, work, mode)
    if not vg or not at:
        return
    (vg_run, records), (at_run, trace) = vg, at
    equal(f'{mode}: exits 0 under valgrind', vg_run.returncode, 0)
    plan, at_plan = plan_of(vg_run.stdout), plan_of(at_run.stdout)
    if not check(plan and set(plan) == set(at_plan), f'{mode}: the program planned its blocks',
                 f'{plan} / {at_plan}'):
        return
    leaks = trace.leaks()
    planned_leaks = {}
    for size, cls, text in leaks:
        if size in at_plan:
            planned_leaks.setdefault(size, []).append((cls, text))
    for size in sorted(plan):
        mine = [r for r in records if r.blocks == 1 and r.bytes == size]
        records = [r for r in records if r not in mine]
        equal(f'{mode}: {size} B is {plan[size]} for valgrind', [r.cls for r in mine], [plan[size]])
        want, why = DIFFERENCES.get((mode, size), (at_plan[size], None))
        got = [c for c, _ in planned_leaks.get(size, [])]
        equal(f'{mode}: {size} B is {want} in the trace' + (f' ({why})' if why else ''),
              got, [want])
    unplanned = [x for x in leaks if x[0] not in at_plan]
    # The class each leak must have: the plan's (or DIFFERENCES'), valgrind's
    # for the unplanned ones.
    want = [(DIFFERENCES.get((mode, size), (at_plan[size],))[0], size)
            for size, _, _ in leaks if size in at_plan]
    want += compare_unplanned(mode, records, unplanned, list(trace.runtime()))
    want_classes = {}
    for cls, size in want:
        n, b = want_classes.get(cls, (0, 0))
        want_classes[cls] = (n + 1, b + size)
    equal(f'{mode}: leaks per class (SELECT reachability, count(*), sum(size) FROM leaks '
          'GROUP BY 1)', trace.classes(), want_classes)
    gate = os.path.join(work, f'{mode}.check.db')
    r = run([args['exe'], 'run', '-q', '--check', '-o', gate, '--force', '--', *argv], work)
    fails = any(cls in GATED for cls, _ in want)
    if r:
        equal(f'{mode}: alloctrace run --check exits {86 if fails else 0} '
              f'(gate: {"+".join(GATED)})', r.returncode, 86 if fails else 0)


def test_heuristic(tools, args, mode, work):
    """Without its heuristics valgrind calls the C++ shapes possibly lost:
    what makes them reachable is the heuristic, not a start pointer."""
    vg = valgrind(tools, case_argv(args, mode), work, f'{mode}.noheur',
                  ['--leak-check-heuristics=none'])
    if not vg:
        return
    plan = plan_of(vg[0].stdout)
    for size in plan:
        equal(f'{mode}: {size} B is possibly_lost for valgrind with --leak-check-heuristics=none',
              [r.cls for r in vg[1] if r.blocks == 1 and r.bytes == size], ['possibly_lost'])


def test_killed(args, work):
    """A program killed by SIGKILL: no scan ran, every leak is unknown and
    keeps its stack."""
    at = alloctrace(args['exe'], [args['prog'], 'killed'], work, 'killed', want_rc=128 + 9)
    if not at:
        return
    plan = plan_of(at[0].stdout)
    leaks = at[1].leaks()
    equal('killed: the planned blocks leak', sorted(s for s, _, _ in leaks if s in plan),
          sorted(plan))
    equal('killed: every leak is unknown', sorted({c for _, c, _ in leaks}), ['unknown'])
    check(all(t.startswith('block <- mode_killed <- main') for s, _, t in leaks if s in plan),
          'killed: each planned leak keeps its stack', [t for _, _, t in leaks])


def cases(tools, argv, work):
    args = dict(zip(('exe', 'prog', 'cxx', 'lib'), (os.path.abspath(a) for a in argv)))
    for what in ('exe', 'prog', 'cxx', 'lib'):
        if not check(os.path.isfile(args[what]), f'{what} is built', args[what]):
            return
    r = run([args['prog'], 'list'], work)
    modes = r.stdout.decode().split() if r else []
    check(len(modes) >= 15, 'reach_prog lists its modes', modes)
    for mode in [m for m in modes if m != 'killed'] + list(CXX_MODES):
        test_case(tools, args, mode, work)
    for mode in CXX_MODES:
        test_heuristic(tools, args, mode, work)
    test_killed(args, work)


# ---- Debian's programs ----------------------------------------------------------------

# glibc state that valgrind frees at exit (__libc_freeres): absent from
# valgrind's records, and set aside in the trace as the C library's cache
# (lib/trace/runtime.c), so never one of its leaks.
GLIBC_FREERES = ('tzset_internal', '__tzfile_read', '_nl_find_domain', 'textdomain',
                 'set_binding_values', '__add_to_environ', '__tsearch', '__wcsmbs_load_conv',
                 '__gconv_', '_nl_load_domain', '_nl_find_locale')


def freeres_block(text):
    return any(re.search(r'(^| <- )' + re.escape(f), text) for f in GLIBC_FREERES)


# Blocks whose size valgrind changes: LLVM's alternate signal stack, sized
# from the auxiliary vector's AT_MINSIGSTKSZ, which valgrind replaces.
SIZE_DIFFERS = ('llvm::InitLLVM::InitLLVM',)


def totals(pairs):
    t = {c: [0, 0] for c in CLASSES}
    for cls, blocks, nbytes in pairs:
        t[cls][0] += blocks
        t[cls][1] += nbytes
    return t


def compare_program(name, records, trace, source):
    """Per class blocks and bytes, valgrind's against the trace's, less the
    explained differences, each asserted."""
    runtime = list(trace.runtime())
    vg_kept = []
    for rec in records:
        if not explain_runtime(name, rec, runtime):
            vg_kept.append(rec)
    at_kept, freeres = [], []
    for size, cls, text in trace.leaks():
        (freeres if freeres_block(text) else at_kept).append((size, cls, text))
    # glibc's state, which valgrind frees through __libc_freeres before it
    # checks, is set aside as the C library's cache: never a leak.
    equal(f'{name}: no block of glibc\'s state freed by __libc_freeres under valgrind is a '
          'leak of the trace (set aside as the C library\'s cache)',
          [(s, c) for s, c, _ in freeres], [])
    # Sizes valgrind changes: compared by count and class only.
    resized_vg = [r for r in vg_kept if r.has_frame(SIZE_DIFFERS)]
    resized_at = [x for x in at_kept if any(f in x[2] for f in SIZE_DIFFERS)]
    equal(f'{name}: blocks valgrind resizes (LLVM\'s signal stack), class and count',
          sorted((c, 1) for _, c, _ in resized_at), sorted((r.cls, r.blocks) for r in resized_vg))
    vg = totals((r.cls, r.blocks, 0 if r in resized_vg else r.bytes) for r in vg_kept)
    at = totals((c, 1, 0 if (s, c, t) in resized_at else s) for s, c, t in at_kept)
    for cls in CLASSES:
        equal(f'{name}: {cls} blocks and bytes equal valgrind\'s', at[cls], vg[cls])
    note(f'{name}: valgrind {dict((c, v) for c, v in vg.items() if v[0])}, '
         f'freeres blocks {len(freeres)}, runtime-owned {len(trace.runtime())}; {source}')


GIT_ARGS = ('log', '-p', '-n', '200', '--no-color')
PYTHON_CODE = ('import json, re\n'
               'd = {str(i): [i, str(i) * 3] for i in range(2000)}\n'
               'print(len(json.dumps(d)), len(re.findall("1", json.dumps(d))))\n')
SQLITE_SCRIPT = ('CREATE TABLE t(a INTEGER, b TEXT);\n'
                 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000)\n'
                 'INSERT INTO t SELECT x, hex(x * 7) FROM c;\n'
                 'CREATE INDEX t_b ON t(b);\n'
                 'SELECT count(*), max(b), sum(a) FROM t WHERE b LIKE \'%A%\';\n')


def program_runs(tools, exe, source_root, work):
    """(name, argv, stdin) of each program."""
    head = run([tools['git'], '-C', source_root, 'rev-parse', '--verify', 'HEAD^{commit}'], work)
    out = []
    if check(head is not None and head.returncode == 0,
             f'{source_root} is a git checkout with commits (git log -p runs there)'):
        commit = head.stdout.decode().strip()
        out.append(('git log -p', [tools['git'], '-C', source_root, *GIT_ARGS, commit], None))
    out.append(('python3', [tools['python3'], '-I', '-c', PYTHON_CODE], None))
    script = os.path.join(work, 'script.sql')
    with open(script, 'w') as f:
        f.write(SQLITE_SCRIPT)
    out.append(('sqlite3', [tools['sqlite3'], ':memory:'], script))
    src = os.path.join(work, 'format_me.c')
    shutil.copyfile(os.path.join(source_root, 'tests', 'reach_lib.c'), src)
    out.append(('clang-format', [tools['clang-format'], '--style=LLVM', src], None))
    return out


def programs(tools, argv, work):
    exe, source_root = (os.path.abspath(a) for a in argv)
    env = dict(os.environ)
    for k in [k for k in env if k.startswith('ALLOCTRACE_') and k != 'ALLOCTRACE_PRELOAD']:
        del env[k]
    home = os.path.join(work, 'home')
    os.mkdir(home)
    env.update(HOME=home, XDG_CONFIG_HOME=os.path.join(home, '.config'), LC_ALL='C.UTF-8',
               GIT_PAGER='cat', PAGER='cat', GIT_CONFIG_NOSYSTEM='1', TZ='UTC')
    for name, cmd, stdin in program_runs(tools, exe, source_root, work):
        start = time.monotonic()
        slug = name.replace(' ', '_')
        vg = valgrind(tools, cmd, work, slug, env=env, stdin=stdin)
        at = alloctrace(exe, cmd, work, slug, env, stdin)
        if vg and at:
            equal(f'{name}: exits 0 under valgrind', vg[0].returncode, 0)
            compare_program(name, vg[1], at[1], f'{time.monotonic() - start:.1f} s')
        gate = os.path.join(work, f'{slug}.check.db')
        r = run([exe, 'run', '-q', '--check', '-o', gate, '--force', '--', *cmd], work, env, stdin)
        if r:
            equal(f'{name}: alloctrace run --check exits 0 (nothing definitely or indirectly '
                  'lost, nothing unknown)', r.returncode, 0)


def find_tools(names):
    tools = {n: shutil.which(n) for n in names}
    if 'python3' in tools:
        tools['python3'] = shutil.which('python3', path='/usr/bin:/bin')
    for n, path in tools.items():
        check(path is not None, f'{n} is installed', f'apt-get install {n}')
    return tools


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ('cases', 'programs') or \
            len(sys.argv) != {'cases': 7, 'programs': 5}[sys.argv[1]]:
        sys.exit(__doc__.split('\n\n')[1])
    what, args, workdir = sys.argv[1], sys.argv[2:-1], sys.argv[-1]
    start = time.monotonic()
    names = ['valgrind'] + (['git', 'python3', 'sqlite3', 'clang-format']
                            if what == 'programs' else [])
    tools = find_tools(names)
    os.makedirs(workdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f'reach_{what}.', dir=workdir)
    if all(tools.values()):
        (cases if what == 'cases' else programs)(tools, args, work)
    note(f'total {time.monotonic() - start:.1f} s')
    if tap.failures:
        note(f'{tap.failures} check(s) failed; files kept in {work}')
    else:
        shutil.rmtree(work, ignore_errors=True)
    tap.finish()


if __name__ == '__main__':
    main()
