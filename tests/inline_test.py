#!/usr/bin/env python3
"""Inlined frames expanded (docs/schema.md, `inlined_frames`).

inline_prog (built at -O2) leaks from an always_inline helper called from
two lines of one function, and from a chain of two inlined helpers.
Traced by `alloctrace run`:
- the three leaks are three sites (the two calls of the one helper differ
  only in their caller's line, so they must not merge);
- each site's stack reads, in report's text, its JSON, check's JSON, the
  HTML page's data and SQL (stack_lines, leak_site_lines, stack_text):
  the helper at its malloc line, the outer helper at its call line (the
  chain), then the caller at the line that called the helper, then main;
  the helpers marked inlined, and every line of one frame at one address;
- binutils' `addr2line -i` at each leaf frame's address names the same
  functions at the same lines, in the same order;
- a suppression naming the outer helper (a function of no real frame)
  suppresses the chain's site and no other.

    inline_test.py ALLOCTRACE INLINE_PROG SOURCE WORKDIR
"""
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys

from tap import check, finish

alloctrace, prog, source, workdir = (os.path.abspath(a) for a in sys.argv[1:5])
work = os.path.join(workdir, "inline-%d" % os.getpid())
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
SRC = os.path.basename(source)

# The lines of the program's markers ("@NAME" in a comment).
marks = {}
with open(source) as f:
    for n, text in enumerate(f, 1):
        m = re.search(r"/\* @(\w+) \*/", text)
        if m:
            marks[m.group(1)] = n
check(len(marks) == 6, "inline_prog.c has its six markers", str(marks))

# Each site's expected lines from the innermost: (function, line, inlined).
EXPECTED = {
    "first": [("inline_leak_one", marks["one_malloc"], 1),
              ("inline_caller", marks["caller_first"], 0)],
    "second": [("inline_leak_one", marks["one_malloc"], 1),
               ("inline_caller", marks["caller_second"], 0)],
    "chain": [("inline_leak_inner", marks["inner_malloc"], 1),
              ("inline_leak_outer", marks["outer_calls_inner"], 1),
              ("inline_caller", marks["caller_chain"], 0)],
}


def tool(*argv):
    return subprocess.run([alloctrace, *argv], capture_output=True, text=True, timeout=120)


def which(lines):
    """The EXPECTED site whose lines `lines` starts with, then main; or None.
    `lines` is [(function, file, line, inlined)], inlined None when the
    source does not tell."""
    for name, exp in EXPECTED.items():
        head = lines[:len(exp) + 1]
        if len(head) == len(exp) + 1 and head[-1][0] == "main" and all(
                got[0] == fn and got[1] is not None and os.path.basename(got[1]) == SRC
                and got[2] == ln and got[3] in (None, inl)
                for got, (fn, ln, inl) in zip(head, exp)):
            return name
    return None


trace = os.path.join(work, "inline.db")
r = tool("run", "-q", "-o", trace, "--", prog)
check(r.returncode == 0, "alloctrace run inline_prog", r.stderr.strip())

# ---- SQL --------------------------------------------------------------------------------
db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
check(db.execute("PRAGMA user_version").fetchone()[0] == 7, "schema version 7")
sites = [s for (s,) in db.execute("SELECT stack FROM leak_sites ORDER BY bytes")]
check(len(sites) == 3, "three leak sites: the helper's two callers' lines are two", str(sites))


def sql_lines(view, stack):
    return db.execute("SELECT function, file, line, inlined, frame, ip, level FROM %s"
                      " WHERE stack = ? ORDER BY level" % view, (stack,)).fetchall()


found = {}
for s in sites:
    rows = sql_lines("stack_lines", s)
    name = which([r[:4] for r in rows])
    found[name] = s
    check(name is not None, "stack_lines: site %d is helper(s) then caller then main" % s, str(rows[:4]))
    check([r[6] for r in rows] == list(range(len(rows))), "stack_lines: levels 0, 1, ... with no gap")
    if name:
        frames = {(r[4], r[5]) for r in rows[:len(EXPECTED[name])]}
        check(len(frames) == 1, "stack_lines: the %s site's helpers and caller are one frame,"
              " one address" % name, str(frames))
    check(sql_lines("leak_site_lines", s) == rows, "leak_site_lines: site %d as stack_lines" % s)
    text = db.execute("SELECT text FROM stack_text WHERE stack = ?", (s,)).fetchone()[0]
    check(text.startswith(" <- ".join(r[0] for r in rows[:3])),
          "stack_text: site %d names the inlined helpers" % s, text)
check(set(found) == set(EXPECTED), "every expected site, once", str(found))
inl = db.execute("SELECT count(*) FROM inlined_frames i JOIN frames f ON f.id = i.frame").fetchone()[0]
check(inl >= 4, "inlined_frames rows belong to frames", str(inl))

# ---- addr2line -i at the same addresses: the peer --------------------------------------------
for name, s in sorted(found.items()):
    leaf = db.execute("SELECT f.module_offset FROM stack_lines sl JOIN frames f ON f.id = sl.frame"
                      " WHERE sl.stack = ? AND sl.level = 0", (s,)).fetchone()[0]
    a2l = subprocess.run(["addr2line", "-i", "-f", "-e", prog, "0x%x" % (leaf - 1)],
                         capture_output=True, text=True, timeout=60)
    out = a2l.stdout.split("\n")
    peer = []
    for fn, loc in zip(out[0::2], out[1::2]):
        loc = loc.split(" (discriminator")[0]
        file, _, line = loc.rpartition(":")
        peer.append((fn, os.path.basename(file), int(line) if line.isdigit() else 0))
    ours = [(fn, os.path.basename(file or ""), line)
            for fn, file, line, *_ in sql_lines("stack_lines", s)[:len(peer)]]
    check(a2l.returncode == 0 and len(peer) == len(EXPECTED[name]) and ours == peer,
          "addr2line -i at the %s site's address: the same functions and lines" % name,
          "ours %s, addr2line %s" % (ours, peer))

# ---- report: text and JSON -------------------------------------------------------------------
r = tool("report", trace)
check(r.returncode == 0, "report", r.stderr.strip())
blocks, cur = [], None
for line in r.stdout.splitlines():
    if re.match(r"\s+#\d+\s", line):
        cur = []
        blocks.append(cur)
        continue
    m = re.match(r"\s+(\S+)\s+(\S+):(\d+)\s+\S+( \(inlined\))?$", line)
    if cur is not None and m:
        cur.append((m.group(1), m.group(2), int(m.group(3)), 1 if m.group(4) else 0))
    elif cur is not None and not line.strip():
        cur = None
names = [which(b) for b in blocks]
check(sorted(n or "?" for n in names) == sorted(EXPECTED),
      "report text: each site's helper(s), marked (inlined), then the caller at its call line",
      str(blocks))

r = tool("report", trace, "--format", "json")
check(r.returncode == 0, "report --format json", r.stderr.strip())
doc = json.loads(r.stdout)
names = [which([(f["function"], f["file"], f["line"], int(f["inlined"]))
                for f in site["allocated_at"]["frames"]]) for site in doc["leak_sites"]]
check(sorted(n or "?" for n in names) == sorted(EXPECTED),
      "report JSON: each site's helper(s), \"inlined\": true, then the caller at its call line",
      str(names))

# ---- the HTML page's data ---------------------------------------------------------------------
page = os.path.join(work, "inline.html")
r = tool("html", trace, "-o", page)
check(r.returncode == 0, "html", r.stderr.strip())
with open(page) as f:
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', f.read(), re.S)
data = json.loads(m.group(1)) if m else {"stacks": {}, "frames": [], "strings": []}
strings = data["strings"]
names = []
for name, s in found.items():
    ids = data["stacks"].get(str(s), [])[1:]
    lines = [(strings[data["frames"][i][0]], strings[data["frames"][i][1]],
              data["frames"][i][2], data["frames"][i][4]) for i in ids]
    names.append(which(lines))
check(sorted(n or "?" for n in names) == sorted(EXPECTED),
      "html: each site's frames are the helper(s), marked inlined, then the caller",
      str(names))

# ---- SARIF: each stack frame says whether it was inlined ---------------------------------------
r = tool("report", trace, "--format", "sarif")
check(r.returncode == 0, "report --format sarif", r.stderr.strip())
sarif = json.loads(r.stdout) if r.returncode == 0 else {"runs": [{"results": []}]}
names = []
for res in sarif["runs"][0]["results"]:
    for stack in res.get("stacks", []):
        lines = []
        for fr in stack["frames"]:
            loc = fr["location"]
            phys = loc.get("physicalLocation", {})
            logical = loc.get("logicalLocations", [{}])[0]
            lines.append((logical.get("fullyQualifiedName"),
                          phys.get("artifactLocation", {}).get("uri"),
                          phys.get("region", {}).get("startLine"),
                          int(fr.get("properties", {}).get("inlined", False))))
        names.append(which(lines))
check(sorted(n or "?" for n in names) == sorted(EXPECTED),
      "sarif: each result's stack: the helper(s) with properties.inlined, then the caller",
      str(names))

# ---- check and suppressions ---------------------------------------------------------------------
supp = os.path.join(work, "inline.supp")
with open(supp, "w") as f:
    f.write("leak:inline_leak_outer\n")
r = tool("check", trace, "--suppressions", supp, "--format", "json")
verdict = json.loads(r.stdout) if r.stdout else {"failures": [], "categories": {}}
leaks = verdict["categories"].get("leaks", {})
left = sorted(which([(f["function"], f["file"], f["line"], None) for f in x["allocated_at"]]) or "?"
              for x in verdict["failures"])
check(r.returncode == 1 and leaks.get("suppressed") == 1 and left == ["first", "second"],
      "check: a suppression of the outer inlined helper suppresses the chain's site only",
      "exit %d, %s, %s" % (r.returncode, leaks.get("suppressed"), left))
finish()
