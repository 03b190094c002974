#!/usr/bin/env python3
"""Stacks stored as a call tree (docs/schema.md, `stack_nodes`).

tree_prog's stacks share their callers (a recursion 10, 20 and 30 deep
under three leaves); traced by `alloctrace run`, in the parent's trace and
in its fork()ed child's:
- every node is one (parent, frame) pair, none twice, and the node count
  is exactly the number of distinct stack suffixes (what sharing implies),
  far fewer than the sum of the stacks' depths;
- the view stack_frames is each stack of `stacks` walked up the tree, with
  `depth` rows, level 0 the node itself;
- report's JSON, which walks the tree in C, names for every leak the same
  frames (function and module offset) as stack_frames does, after the
  allocator frames it hides, and those frames are the leaf, the recursion
  d + 1 deep, then its callers;
- a cycle of parents (a corrupt trace) ends the walks at their bound.

    stack_tree_test.py ALLOCTRACE TREE_PROG WORKDIR
"""
import glob
import json
import os
import shutil
import sqlite3
import subprocess
import sys

from tap import check, finish

alloctrace, prog, workdir = (os.path.abspath(a) for a in sys.argv[1:4])
work = os.path.join(workdir, "stack-tree-%d" % os.getpid())
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
trace = os.path.join(work, "tree.db")
r = subprocess.run([alloctrace, "run", "-q", "--no-leak-scan", "-o", trace, "--", prog],
                   capture_output=True, text=True, timeout=120)
check(r.returncode == 0, "alloctrace run tree_prog", r.stderr.strip())
children = [p for p in glob.glob(os.path.join(work, "tree.*.db")) if p != trace]
check(len(children) == 1, "the forked child wrote a trace of its own", str(children))

SIZES = {base + 100 * leaf + depth: ("tree_leaf_" + "abc"[leaf], depth)
         for base in (1000, 2000) for leaf in range(3) for depth in (10, 20, 30)}


def check_tree(path, name):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    nodes = {i: (p or 0, f) for i, p, f in db.execute("SELECT id, parent, frame FROM stack_nodes")}
    stacks = dict(db.execute("SELECT id, depth FROM stacks"))
    view = {}
    for stack, level, frame in db.execute(
            "SELECT stack, level, frame FROM stack_frames ORDER BY stack, level"):
        view.setdefault(stack, []).append((level, frame))
    check(len(set(nodes.values())) == len(nodes),
          "%s: no two nodes are the same (parent, frame)" % name)
    walked = {}
    for s in stacks:
        frames, n = [], s
        while n:
            frames.append(nodes[n][1])
            n = nodes[n][0]
        walked[s] = frames
    check(all(stacks[s] == len(walked[s]) for s in stacks),
          "%s: a stack's depth counts its frames up to the root" % name)
    check(all([f for _, f in view.get(s, [])] == walked[s] and
               [lv for lv, _ in view.get(s, [])] == list(range(len(walked[s])))
               for s in stacks) and set(view) == set(stacks),
          "%s: stack_frames is every stack walked up the tree, level 0 first" % name)
    suffixes = {tuple(walked[s][k:]) for s in stacks for k in range(len(walked[s]))}
    total = sum(stacks.values())
    check(len(nodes) == len(suffixes) and len(nodes) < total // 2,
          "%s: one node per distinct suffix (%d nodes, %d stacks, %d frames in all)"
          % (name, len(nodes), len(stacks), total))

    lines = {}
    for stack, function, offset in db.execute(
            "SELECT sf.stack, f.function, f.module_offset FROM stack_frames sf"
            " JOIN frames f ON f.id = sf.frame ORDER BY sf.stack, sf.level"):
        lines.setdefault(stack, []).append((function, offset))
    r = subprocess.run([alloctrace, "report", path, "--format", "json", "--show-reachable"],
                       capture_output=True, text=True, timeout=120)
    sites = [s for s in json.loads(r.stdout)["leak_sites"] if s["min_size"] in SIZES]
    check(len(sites) == 9, "%s: nine leak sites of tree_prog's" % name, str(len(sites)))
    for site in sites:
        leaf, depth = SIZES[site["min_size"]]
        at = site["allocated_at"]
        shown = [(f["function"], int(f["module_offset"])) for f in at["frames"]]
        names = [f for f, _ in shown]
        check(shown == lines[at["id"]][at["hidden_frames"]:] and
              names[0] == leaf and names[1:depth + 2] == ["tree_descend"] * (depth + 1) and
              names[depth + 2] == "all_sites",
              "%s: %s at depth %d: report's frames are stack_frames' frames"
              % (name, leaf, depth), str(names[:4]))
    db.close()


check_tree(trace, "parent")
if children:
    check_tree(children[0], "child")

# A corrupt tree (every outermost node its own parent): the walks stop at
# their bound, in SQL as in C, instead of looping.
cycle = os.path.join(work, "cycle.db")
shutil.copy(trace, cycle)
db = sqlite3.connect(cycle)
db.execute("UPDATE stack_nodes SET parent = id WHERE parent IS NULL")
db.commit()
rows = db.execute("SELECT count(*) FROM stack_frames").fetchone()[0]
nstacks = db.execute("SELECT count(*) FROM stacks").fetchone()[0]
db.close()
check(nstacks < rows <= 1025 * nstacks, "a cycle of parents: stack_frames stops at level 1024")
r = subprocess.run([alloctrace, "report", cycle, "--format", "json"], capture_output=True,
                   text=True, timeout=120)
check(len(json.loads(r.stdout)["leak_sites"]) > 0, "a cycle of parents: report ends")
finish()
