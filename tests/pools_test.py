#!/usr/bin/env python3
"""A program's own pool allocator, described with alloctrace/annotate.h
(docs/pools.md), under `alloctrace run`.

tests/pool_prog.c plants a double free, a free with the wrong size, a free
of a pointer the pool never gave out and a leak (a pool never destroyed)
in its pool "frames", and destroys its pool "scratch" with 199 blocks
still in it.  Checked here: the program links with no alloctrace library
and behaves the same untraced, traced, and built without the header; the
trace has both pools by name, each finding with its stacks at the lines
the source marks (`/* @name */`), the leak with its stack, the blocks the
destroy released released by it and not leaked, every pool block tied to
the malloc'd chunk it lies in (the first one at the chunk's very address),
and the malloc blocks untouched by the pool's frees (the chunks freed
without a finding); the exit scan classifies each pool block on its own
(pool "nodes": still reachable through a global, definitely lost, indirectly
lost through a lost pool block, and malloc blocks under them), the chunk
holding them still reachable; report, check and JSON name the pool; the header
compiles as C99 and C++11 with gcc and clang, and a PIE built by either,
or a shared library the program dlopens, binds the annotations under
alloctrace only; a forked child's trace inherits the pool's live blocks.

    pools_test.py ALLOCTRACE WORKDIR POOL_PROG POOL_PLAIN SOURCE_ROOT
"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys

from tap import check, finish

alloctrace, workdir, prog, plain, root = (os.path.abspath(a) for a in sys.argv[1:6])
work = os.path.join(workdir, "pools-%d" % os.getpid())
os.makedirs(work, exist_ok=True)
source = os.path.join(root, "tests", "pool_prog.c")
include = os.path.join(root, "lib", "include")

marks = {}
with open(source) as f:
    for number, text in enumerate(f, 1):
        if "/* @" in text:
            marks[text.split("/* @")[1].split(" */")[0]] = number


def run(argv, **kw):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    return subprocess.run(argv, capture_output=True, text=True, cwd=work, timeout=120, env=env,
                          **kw)


def one(db, sql, *params):
    row = db.execute(sql, params).fetchone()
    return row[0] if row else None


def frames_work_line(db, stack):
    """The line of frames_work in `stack` (the caller of the pool's function)."""
    return one(db, "SELECT line FROM stack_lines WHERE stack = ? AND function = 'frames_work'"
                   " ORDER BY level LIMIT 1", stack)


def rows_of(trace, sql):
    """The rows of SQL in TRACE, read-only; none when there is no trace."""
    if not os.path.exists(trace):
        return []
    tdb = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
    try:
        return tdb.execute(sql).fetchall()
    finally:
        tdb.close()


def traced(program, name, *args):
    trace = os.path.join(work, name + ".db")
    r = run([alloctrace, "run", "-o", trace, "--force", "--", program] + list(args))
    return r, trace


# ---- untraced: no library, the same behaviour -------------------------------------------
needed = run(["readelf", "-d", prog]).stdout
check("liballoctrace" not in needed and "(NEEDED)" in needed,
      "pool_prog needs no alloctrace library (readelf -d)",
      [l for l in needed.splitlines() if "NEEDED" in l])
weak = run(["nm", "-D", prog]).stdout.split("\n")
check(sorted(l.split()[-1] for l in weak if "at_pool_" in l)
      == ["at_pool_alloc", "at_pool_create", "at_pool_destroy", "at_pool_free"]
      and all(l.split()[0] == "w" for l in weak if "at_pool_" in l),
      "the four annotations are weak undefined references", [l for l in weak if "at_pool" in l])
bare = run([prog])
check(bare.returncode == 3 and bare.stdout.endswith("done\n"),
      "untraced, pool_prog runs to its end (status %d)" % bare.returncode, bare.stderr)
unannotated = run([plain])
check((unannotated.returncode, unannotated.stdout) == (bare.returncode, bare.stdout),
      "built without the header, the same output and status", unannotated.stdout)

# ---- traced -------------------------------------------------------------------------------
r, trace = traced(prog, "pool_prog")
check((r.returncode, r.stdout) == (bare.returncode, bare.stdout),
      "traced, the same output and status (%d)" % r.returncode, r.stderr[-2000:])
db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
pools = dict((name, (pid, created, destroyed)) for pid, name, created, destroyed in db.execute(
    "SELECT id, name, created_seq, destroyed_seq FROM pools"))
check(sorted(pools) == ["frames", "nodes", "scratch"], "the trace has the three pools by name"
      " (%s)" % pools)
check("frames" in pools and pools["frames"][2] is None and pools["frames"][1] is not None,
      "frames was created, never destroyed", pools.get("frames"))
check("scratch" in pools and pools["scratch"][2] is not None,
      "scratch was destroyed", pools.get("scratch"))

# findings: kind -> (release stack, alloc stack, first release stack, sizes)
found = db.execute(
    "SELECT f.kind, f.release_stack, f.alloc_stack, f.first_free_stack, f.alloc_size,"
    " f.release_size, f.release_family, p.name FROM findings f"
    " JOIN pool_findings pf ON pf.seq = f.seq JOIN pools p ON p.id = pf.pool ORDER BY f.seq"
).fetchall()
check([(k, n) for k, *_, n in found] == [("double_free", "frames"), ("layout_mismatch", "frames"),
                                          ("invalid_free", "frames")],
      "three findings, each of pool frames", [(f[0], f[-1]) for f in found])
check(one(db, "SELECT count(*) FROM findings") == 3, "no other finding (the malloc'd chunks,"
      " freed by the destroy at a pool block's address, are no double free)",
      db.execute("SELECT kind, detail FROM findings").fetchall())
by_kind = dict((f[0], f) for f in found)
if "double_free" in by_kind:
    k, rel, alloc, first, *_ = by_kind["double_free"]
    lines = (frames_work_line(db, rel), frames_work_line(db, alloc), frames_work_line(db, first))
    check(lines == (marks["double_free"], marks["twice_alloc"], marks["first_free"]),
          "double free: released again, allocated and first released at the marked lines %s"
          % (lines,))
if "layout_mismatch" in by_kind:
    k, rel, alloc, first, asize, rsize, *_ = by_kind["layout_mismatch"]
    check((asize, rsize) == (48, 64), "the wrong-size free: allocated 48, released as 64")
    lines = (frames_work_line(db, rel), frames_work_line(db, alloc))
    check(lines == (marks["wrong_size"], marks["sized_alloc"]),
          "the wrong-size free and its allocation at the marked lines %s" % (lines,))
if "invalid_free" in by_kind:
    k, rel, alloc, *_ = by_kind["invalid_free"]
    check(alloc is None and frames_work_line(db, rel) == marks["invalid_free"],
          "the pointer the pool never gave out: no allocation, released at its line")
check(all(f[6] == "pool" for f in found), "the findings' release family is pool")

# leaks: the block left in frames, with its stack; none of scratch's
pool_leaks = db.execute(
    "SELECT k.size, k.stack, k.reachability, pa.pool_name FROM leaks k"
    " JOIN pool_allocations pa ON pa.alloc_seq = k.alloc_seq WHERE pa.pool_name != 'nodes'"
).fetchall()
check([(s, n) for s, _, _, n in pool_leaks] == [(32, "frames")],
      "one pool leak: frames' 32-byte block", pool_leaks)
if pool_leaks:
    check(frames_work_line(db, pool_leaks[0][1]) == marks["leak"],
          "the leak's stack is at its marked line (%s)" % frames_work_line(db, pool_leaks[0][1]))
    check(pool_leaks[0][2] == "definitely_lost", "its pointer dropped, the leak is definitely"
          " lost, though the pool (a global) points to its chunk", pool_leaks[0][2])
scratch = db.execute(
    "SELECT count(*), sum(released_by_destroy), count(free_seq) FROM pool_allocations"
    " WHERE pool_name = 'scratch'").fetchone()
check(scratch == (200, 199, 200), "scratch: 200 blocks, 199 released by its destroy (%s)"
      % (scratch,))
check(one(db, "SELECT count(*) FROM pool_allocations WHERE pool_name = 'scratch'"
              " AND free_seq = (SELECT destroyed_seq FROM pools WHERE name = 'scratch')") == 199,
      "the destroy's blocks are released at its sequence number")

# chunks: every block lies in a live malloc'd chunk; the first at its start
unchunked = one(db, "SELECT count(*) FROM pool_allocations WHERE chunk_seq IS NULL")
check(unchunked == 0, "every pool block is tied to the malloc'd chunk holding it (%s without)"
      % unchunked)
same = one(db, "SELECT count(*) FROM pool_allocations pa JOIN allocations c"
               " ON c.alloc_seq = pa.chunk_seq WHERE c.family = 'malloc' AND c.size = 4096"
               " AND pa.ptr >= c.ptr AND pa.ptr < c.ptr + c.size")
check(same == 209, "each chunk is a 4096-byte malloc block that holds the block (%s)" % same)
check(one(db, "SELECT count(*) FROM pool_allocations pa JOIN allocations c"
              " ON c.alloc_seq = pa.chunk_seq WHERE pa.ptr = c.ptr") == 4,
      "four pool blocks lie at their chunk's very address (the first of frames, of nodes,"
      " of each of scratch's two chunks)")
chunks = db.execute("SELECT free_op, count(*) FROM allocations WHERE family = 'malloc'"
                    " AND size = 4096 GROUP BY 1 ORDER BY 1").fetchall()
check(chunks == [(None, 3), ("dealloc", 2)],
      "malloc's chunks: scratch's two freed by free(), frames', nodes' and stdout's buffer"
      " live (%s)" % chunks)

# reachability: each of nodes' blocks classified on its own
def caller_line(stack, function):
    return one(db, "SELECT line FROM stack_lines WHERE stack = ? AND function = ?"
                   " ORDER BY level LIMIT 1", stack, function)


classes = dict((caller_line(stack, "nodes_work"), (family, reach)) for stack, family, reach in
               db.execute("SELECT k.stack, k.family, k.reachability FROM leaks k"
                          " WHERE k.alloc_seq IN (SELECT alloc_seq FROM pool_allocations"
                          " WHERE pool_name = 'nodes') OR k.size = 8"))
expected = {marks["kept"]: ("pool", "still_reachable"),
            marks["kept_tail"]: ("malloc", "still_reachable"),
            marks["lost"]: ("pool", "definitely_lost"),
            marks["child"]: ("pool", "indirectly_lost"),
            marks["child_tail"]: ("malloc", "indirectly_lost")}
for line, want in sorted(expected.items()):
    check(classes.get(line) == want, "the block allocated at line %d is %s %s (%s)"
          % (line, want[0], want[1], classes.get(line)))
check(len(classes) == 5, "nodes: four leaks, the malloc blocks under them (%s)" % classes)
chunk_reach = db.execute(
    "SELECT p.name, k.reachability FROM leaks k JOIN pool_blocks b ON b.chunk = k.alloc_seq"
    " JOIN pools p ON p.id = b.pool GROUP BY 1, 2 ORDER BY 1").fetchall()
check(chunk_reach == [("frames", "still_reachable"), ("nodes", "still_reachable")],
      "the chunks the live pools hold are still reachable, no leak the check counts (%s)"
      % chunk_reach)
check(one(db, "SELECT count(*) FROM leaks WHERE reachability = 'unknown'") == 0,
      "no leak of reachability unknown")
check(one(db, "SELECT value FROM meta WHERE key = 'alloc_calls'")
      == one(db, "SELECT count(*) FROM allocations WHERE family != 'pool'"),
      "meta.alloc_calls counts the program's allocator only")
timeline = one(db, "SELECT max(live_blocks) FROM timeline")
check(timeline is not None and timeline < 20, "the heap's timeline has no pool block (%s)"
      % timeline)
db.close()

# ---- report, check, JSON -------------------------------------------------------------------
rep = run([alloctrace, "report", trace])
check(rep.returncode == 0 and "32 B in 1 block of 32 B, of pool frames" in rep.stdout
      and rep.stdout.count("      pool       frames") == 3,
      "report: the leak and each finding name their pool", rep.stdout[-3000:])
js = run([alloctrace, "report", "--format", "json", trace])
doc = json.loads(js.stdout) if js.returncode == 0 else {}
check(sorted(s.get("pool") for s in doc.get("leak_sites", []) if s.get("pool"))
      == ["frames", "nodes", "nodes"]
      and sorted(f.get("pool") for f in doc.get("findings", [])) == ["frames"] * 3,
      "JSON: a 'pool' field on the pool's leak site and findings")
chk = run([alloctrace, "check", trace])
check(chk.returncode == 1 and "of pool frames" in chk.stdout and "double-free     FAIL" in
      chk.stdout, "check fails on them and names the pool", chk.stdout[-2000:])
r2, plain_trace = traced(plain, "pool_plain")
pdb = sqlite3.connect("file:%s?mode=ro" % plain_trace, uri=True)
check(r2.returncode == 3 and one(pdb, "SELECT count(*) FROM pools") == 0
      and one(pdb, "SELECT count(*) FROM findings") == 0,
      "the program built without the header: no pool, no finding")
pdb.close()
pj = run([alloctrace, "report", "--format", "json", plain_trace])
check(pj.returncode == 0 and '"pool"' not in pj.stdout, "its JSON report has no pool field")

# ---- the header: C99 and C++11, gcc and clang, PIE -----------------------------------------
main_c = os.path.join(work, "annotate_use.c")
with open(main_c, "w") as f:
    f.write('#include <alloctrace/annotate.h>\n#include <stdio.h>\n#include <stdlib.h>\n'
            'int main(void) {\n  static int pool;\n  char *chunk = (char *)malloc(64);\n'
            '  AT_POOL_CREATE(&pool, "tiny");\n  AT_POOL_ALLOC(&pool, chunk, 16, 16);\n'
            '  AT_POOL_FREE(&pool, chunk, 16, 16);\n  AT_POOL_ALLOC(&pool, chunk + 16, 8, 8);\n'
            '  AT_POOL_DESTROY(&pool);\n  free(chunk);\n  puts("tiny");\n  return 0;\n}\n')
main_cc = os.path.join(work, "annotate_use.cc")
shutil.copy(main_c, main_cc)
compilers = [("gcc", "-std=c99", main_c), ("g++", "-std=c++11", main_cc),
             ("clang", "-std=c99", main_c), ("clang++", "-std=c++11", main_cc)]
for cc, std, src in compilers:
    if not shutil.which(cc):
        check(cc.startswith("clang"), "%s is there (gcc and g++ are required)" % cc)
        continue
    exe = os.path.join(work, "use_" + cc.replace("+", "x"))
    b = run([cc, std, "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2", "-fPIE", "-pie",
             "-I", include, src, "-o", exe])
    if not check(b.returncode == 0, "%s %s: the header compiles without a warning, links"
                 " without a library" % (cc, std), b.stderr):
        continue
    u = run([exe])
    t, tr = traced(exe, "use_" + cc.replace("+", "x"))
    rows = rows_of(tr, "SELECT pool_name, size, released_by_destroy FROM pool_allocations"
                       " ORDER BY alloc_seq")
    check(u.stdout == t.stdout == "tiny\n" and u.returncode == t.returncode == 0
          and rows == [("tiny", 16, 0), ("tiny", 8, 1)],
          "%s %s: the same untraced and traced, and the trace has its pool (%s)" % (cc, std, rows))

# ---- a shared library the program dlopens ----------------------------------------------------
plug_c = os.path.join(work, "plug.c")
with open(plug_c, "w") as f:
    f.write('#include <alloctrace/annotate.h>\n#include <stdlib.h>\n'
            'void plug_run(void) {\n  static int pool;\n  char *chunk = malloc(32);\n'
            '  AT_POOL_CREATE(&pool, "plugin");\n  AT_POOL_ALLOC(&pool, chunk, 32, 8);\n'
            '  AT_POOL_FREE(&pool, chunk, 32, 8);\n  AT_POOL_FREE(&pool, chunk, 32, 8);\n'
            '  AT_POOL_DESTROY(&pool);\n  free(chunk);\n}\n')
host_c = os.path.join(work, "host.c")
with open(host_c, "w") as f:
    f.write('#include <dlfcn.h>\n#include <stdio.h>\n'
            'int main(int argc, char **argv) {\n  (void)argc;\n'
            '  void *h = dlopen(argv[1], RTLD_NOW);\n  if (!h) { puts(dlerror()); return 1; }\n'
            '  void (*run)(void) = (void (*)(void))dlsym(h, "plug_run");\n'
            '  run();\n  puts("plugged");\n  return 0;\n}\n')
plug_so, host = os.path.join(work, "libplug.so"), os.path.join(work, "host")
b1 = run(["gcc", "-O2", "-shared", "-fPIC", "-Wall", "-Werror", "-I", include, plug_c, "-o",
          plug_so])
b2 = run(["gcc", "-O2", "-Wall", "-Werror", host_c, "-o", host, "-ldl"])
if check(b1.returncode == 0 and b2.returncode == 0, "a dlopen'ed library using the header builds"
         " without an alloctrace library", b1.stderr + b2.stderr):
    u = run([host, plug_so])
    t, tr = traced(host, "host", plug_so)
    kinds = rows_of(tr, "SELECT f.kind, p.name FROM findings f JOIN pool_findings pf"
                        " ON pf.seq = f.seq JOIN pools p ON p.id = pf.pool")
    check(u.stdout == t.stdout == "plugged\n" and u.returncode == t.returncode == 0
          and kinds == [("double_free", "plugin")],
          "the dlopen'ed library's annotations are bound under alloctrace only (%s)" % kinds)

# ---- fork: the child inherits the pool and its live blocks ---------------------------------
fork_c = os.path.join(work, "forked.c")
with open(fork_c, "w") as f:
    f.write('#include <alloctrace/annotate.h>\n#include <stdio.h>\n#include <stdlib.h>\n'
            '#include <sys/wait.h>\n#include <unistd.h>\n'
            'int main(void) {\n  static int pool;\n  char *c = malloc(64);\n'
            '  AT_POOL_CREATE(&pool, "forked");\n  AT_POOL_ALLOC(&pool, c, 16, 8);\n'
            '  pid_t pid = fork();\n'
            '  if (pid == 0) { AT_POOL_FREE(&pool, c, 16, 8); AT_POOL_FREE(&pool, c, 16, 8);'
            ' _exit(0); }\n'
            '  waitpid(pid, NULL, 0);\n  AT_POOL_FREE(&pool, c, 16, 8);\n'
            '  AT_POOL_DESTROY(&pool);\n  free(c);\n  puts("forked");\n  return 0;\n}\n')
fork_exe = os.path.join(work, "forked")
b = run(["gcc", "-O1", "-fPIE", "-pie", "-Wall", "-Werror", "-I", include, fork_c, "-o",
         fork_exe])
if check(b.returncode == 0, "the forking program builds", b.stderr):
    for old_trace in os.listdir(work):
        if old_trace.startswith("forked.") and old_trace.endswith(".db"):
            os.unlink(os.path.join(work, old_trace))
    t, tr = traced(fork_exe, "forked")
    child = [n for n in os.listdir(work) if n.startswith("forked.") and n.endswith(".db")
             and n != "forked.db"]
    rows = {}
    for name in ["forked.db"] + child:
        path = os.path.join(work, name)
        rows[name == "forked.db"] = (
            rows_of(path, "SELECT pool_name, alloc_op, free_op FROM pool_allocations"),
            rows_of(path, "SELECT kind FROM findings"))
    check(t.stdout == "forked\n" and len(child) == 1
          and rows.get(True) == ([("forked", "alloc", "dealloc")], [])
          and rows.get(False) == ([("forked", "inherited", "dealloc")], [("double_free",)]),
          "a forked child's trace has the pool's inherited block and its own double free,"
          " the parent's its block freed once (%s)" % rows)

finish()
