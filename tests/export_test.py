#!/usr/bin/env python3
"""alloctrace export: pprof profiles and folded stacks, read back by
independent decoders.

Traces made by `alloctrace run` of preload_prog (leaks at known lines),
views_prog (a peak of 4000 B in 2 blocks; a leak reached through several
return addresses) and inline_prog (leaks in always_inline helpers).  Each
pprof profile is gunzipped by node and decoded by pprof-format (npm,
pinned by tests/pprof/package-lock.json, installed by scripts/setup.sh):
its sample types are Go's heap profile's, its totals are the trace's own
(leaks: `alloctrace check --leak-kinds all --format json`; allocations:
meta's alloc_calls and the lifetimes; peak: meta's peak_bytes and
peak_blocks), its stacks name the functions with file and line, an inlined
helper is a line of its caller's location.  Each folded output parses
(`frame;...;frame N`, root first) and sums to the same totals.  Wrong
arguments and hostile input: one line on stderr, the documented exit
status, the trace never written; hostile names stay one frame each.

    export_test.py ALLOCTRACE PRELOAD_PROG VIEWS_PROG INLINE_PROG WORKDIR NODE PPROF_DIR
"""
import hashlib
import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys

from tap import check, finish

alloctrace, preload_prog, views_prog, inline_prog, workdir, node, pprof_dir = (
    os.path.abspath(a) for a in sys.argv[1:8])
work = os.path.join(workdir, "export-%d" % os.getpid())
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
decoder = os.path.join(pprof_dir, "decode.mjs")
USAGE, UNFINISHED, TOOL = 2, 3, 125


def tool(*argv):
    return subprocess.run([alloctrace, *argv], capture_output=True, cwd=work, timeout=300)


def make_trace(name, *program):
    path = os.path.join(work, name + ".db")
    r = subprocess.run([alloctrace, "run", "-q", "-o", path, "--force", "--", *program],
                       capture_output=True, text=True, cwd=work, timeout=120)
    if not os.path.exists(path):
        sys.exit("cannot make %s: %s" % (name, r.stderr))
    return path


def sql(trace, statement):
    db = sqlite3.connect("file:%s?mode=ro" % trace, uri=True)
    rows = db.execute(statement).fetchall()
    db.close()
    return rows


def meta(trace, key):
    return int(sql(trace, "SELECT value FROM meta WHERE key = '%s'" % key)[0][0])


def pprof(trace, *opts):
    """Exports, decodes; the decoded profile, or None."""
    name = os.path.basename(trace) + "-" + "-".join(o.strip("-") for o in opts) + ".pb.gz"
    out = os.path.join(work, name)
    r = tool("export", "--format", "pprof", *opts, trace, "-o", out)
    if not check(r.returncode == 0, "export pprof %s %s" % (os.path.basename(trace),
                                                            " ".join(opts)), r.stderr):
        return None
    check(stat.S_IMODE(os.stat(out).st_mode) == 0o600, "%s: mode 0600" % name)
    d = subprocess.run([node, decoder, out], capture_output=True, text=True, timeout=120)
    if not check(d.returncode == 0, "pprof-format decodes %s" % name, d.stderr[-500:]):
        return None
    return json.loads(d.stdout)


def totals(profile):
    sums = [0, 0, 0, 0]
    for s in profile["samples"]:
        for i, v in enumerate(s["values"]):
            sums[i] += v
    return sums


FOLDED = re.compile(r"^(\S.*) (\d+)$")


def folded(trace, *opts):
    """Exports folded to stdout; {stack text: value}, or None."""
    r = tool("export", "--format", "folded", *opts, trace)
    if not check(r.returncode == 0, "export folded %s %s" % (os.path.basename(trace),
                                                             " ".join(opts)), r.stderr):
        return None
    lines = r.stdout.decode("utf-8", "surrogateescape").splitlines()
    out = {}
    bad = [ln for ln in lines if not FOLDED.match(ln)]
    check(not bad, "folded %s: every line is `frames count`" % " ".join(opts), bad[:3])
    for ln in lines:
        m = FOLDED.match(ln)
        if m:
            check(m.group(1) not in out, "folded: each stack once", m.group(1))
            out[m.group(1)] = int(m.group(2))
    return out


def frames_named(profile, function):
    """The (file, line) of every line of the profile's stacks in `function`."""
    return {(ln["file"], ln["line"]) for s in profile["samples"] for loc in s["stack"]
            for ln in loc if ln["function"] == function}


# ---- leaks -----------------------------------------------------------------------
leak = make_trace("leak", preload_prog, "leak")
r = tool("check", leak, "--leak-kinds", "all", "--format", "json")
cat = json.loads(r.stdout)["categories"]["leaks"]
want_leaks = (cat["blocks"], cat["bytes"])
check(want_leaks[0] > 0, "leak: the trace has leaks", want_leaks)

p = pprof(leak)
if p:
    check(p["string0"] == "", "string_table[0] is empty")
    check(p["sampleType"] == [["alloc_objects", "count"], ["alloc_space", "bytes"],
                              ["inuse_objects", "count"], ["inuse_space", "bytes"]],
          "Go heap profile's sample types", p["sampleType"])
    check(p["defaultSampleType"] == "inuse_space" and p["periodType"] == ["space", "bytes"],
          "leaks: default inuse_space, period type space/bytes")
    t = totals(p)
    check((t[2], t[3]) == want_leaks and (t[0], t[1]) == want_leaks,
          "leaks: pprof totals are check's leaks (%d blocks, %d B)" % want_leaks, t)
    at = frames_named(p, "leaky_site")
    check(any(f.endswith("preload_prog.c") and ln > 0 for f, ln in at),
          "leaks: leaky_site with its file and line", at)
    check(frames_named(p, "main") and all(s["stack"] for s in p["samples"]),
          "leaks: every sample has a stack; main is in them")
    check(p["durationNanos"] == meta(leak, "duration_us") * 1000, "duration from the trace")
f = folded(leak)
if f is not None:
    check(sum(f.values()) == want_leaks[1], "leaks: folded bytes sum to check's leaked bytes",
          sum(f.values()))
    check(any(k.startswith("_start;") and k.endswith(";main;leaky_site") for k in f),
          "leaks: folded is root first, leaky_site last", list(f)[:3])
fb = folded(leak, "--value", "blocks")
if fb is not None:
    check(sum(fb.values()) == want_leaks[0], "leaks: folded blocks sum to check's leaked blocks")

# ---- allocations -----------------------------------------------------------------
p = pprof(leak, "--what", "allocations")
n_life, b_life = sql(leak, "SELECT count(*), sum(size) FROM lifetimes")[0]
if p:
    t = totals(p)
    check(t[0] == meta(leak, "alloc_calls") == n_life and t[1] == b_life,
          "allocations: alloc totals are the trace's alloc_calls and bytes",
          (t, meta(leak, "alloc_calls"), n_life, b_life))
    check((t[2], t[3]) == want_leaks, "allocations: in-use totals are the leaks", t)
    check(p["defaultSampleType"] == "alloc_space", "allocations: default alloc_space")
    check(frames_named(p, "every_entry_point"), "allocations: the freed blocks' stacks too")
f = folded(leak, "--what", "allocations")
if f is not None:
    check(sum(f.values()) == b_life, "allocations: folded sums to every byte allocated")
f = folded(leak, "--what", "allocations", "--value", "blocks")
if f is not None:
    check(sum(f.values()) == n_life, "allocations: folded blocks sum to every allocation")

# ---- peak ------------------------------------------------------------------------
peak = make_trace("peak", views_prog, "peak")
check((meta(peak, "peak_bytes"), meta(peak, "peak_blocks")) == (4000, 2),
      "peak: the trace says 4000 B in 2 blocks")
p = pprof(peak, "--what", "peak")
if p:
    t = totals(p)
    check(t == [2, 4000, 2, 4000], "peak: pprof totals 2 blocks, 4000 B", t)
f = folded(peak, "--what", "peak")
if f is not None:
    check(sum(f.values()) == 4000, "peak: folded sums to 4000 B", f)
fb = folded(peak, "--what", "peak", "--value", "blocks")
if fb is not None:
    check(sum(fb.values()) == 2, "peak: folded blocks sum to 2")

# ---- several return addresses, one line ----------------------------------------------
sites = make_trace("sites", views_prog, "sites")
r = tool("check", sites, "--leak-kinds", "all", "--format", "json")
cat = json.loads(r.stdout)["categories"]["leaks"]
p = pprof(sites)
f = folded(sites)
if p and f is not None:
    t = totals(p)
    check((t[2], t[3]) == (cat["blocks"], cat["bytes"]), "sites: pprof totals are check's")
    check(sum(f.values()) == cat["bytes"], "sites: folded sums to check's bytes")
    here = frames_named(p, "leak_here")
    check(len(here) == 1, "sites: leak_here is one function at one line", here)
    nstacks = sql(sites, "SELECT count(DISTINCT l.stack) FROM leaks l JOIN stack_lines s"
                  " ON s.stack = l.stack WHERE s.function = 'leak_here'")[0][0]
    merged = [k for k in f if k.endswith(";leak_here")]
    check(nstacks > len(merged) >= 1, "sites: %d stacks of leak_here read as %d folded lines"
          % (nstacks, len(merged)))

# ---- inlined frames -----------------------------------------------------------------
inl = make_trace("inline", inline_prog)
p = pprof(inl)
if p:
    locs = [loc for s in p["samples"] for loc in s["stack"]]
    inlined = [loc for loc in locs if len(loc) > 1 and loc[0]["function"] == "inline_leak_one"]
    check(inlined and all(loc[-1]["function"] == "inline_caller" for loc in inlined),
          "inline: inline_leak_one is the first line of a location of inline_caller",
          [[ln["function"] for ln in loc] for loc in locs][:8])
    chain = [loc for loc in locs if [ln["function"] for ln in loc][:2]
             == ["inline_leak_inner", "inline_leak_outer"]]
    check(chain and all(ln["line"] > 0 and ln["file"].endswith("inline_prog.c")
                        for loc in chain for ln in loc),
          "inline: the chain inner, outer, caller, each with file and line")
f = folded(inl)
if f is not None:
    check(any(";inline_caller;inline_leak_one" in k for k in f),
          "inline: folded shows the inlined helper below its caller", list(f)[:4])

# ---- hostile names ------------------------------------------------------------------
hostile = os.path.join(work, "hostile.db")
shutil.copy(leak, hostile)
db = sqlite3.connect(hostile)
db.execute("UPDATE frames SET function = 'evil;name' || char(10) || 'x 99' WHERE function = "
           "'leaky_site'")
db.commit()
db.close()
f = folded(hostile)
if f is not None:
    check(sum(f.values()) == want_leaks[1], "hostile: folded still sums to the leaked bytes")
    check(any(k.endswith(";main;evil_name_x 99") for k in f),
          "hostile: ';' and the line break become '_', one frame", list(f))
p = pprof(hostile)
if p:
    check(frames_named(p, "evil;name\nx 99"), "hostile: pprof keeps the name as it is")

# ---- wrong arguments ----------------------------------------------------------------
digest = hashlib.sha256(open(leak, "rb").read()).hexdigest()
not_trace = os.path.join(work, "not-a-trace.db")
with open(not_trace, "w") as fh:
    fh.write("hello\n")
os.makedirs(os.path.join(work, "adir"), exist_ok=True)
cases = [
    (["--format", "svg", leak], USAGE, "--format is pprof or folded"),
    (["--what", "everything", leak], USAGE, "--what is leaks, allocations or peak"),
    (["--value", "pages", "--format", "folded", leak], USAGE, "--value is bytes or blocks"),
    (["--bogus", leak], USAGE, "unknown or ambiguous option '--bogus'"),
    ([leak, "-o"], USAGE, "-o needs a value"),
    ([], USAGE, "one trace"),
    ([leak, leak], USAGE, "one trace"),
    ([leak, "-o", leak], USAGE, "is the trace itself"),
    (["--format", "folded", leak, "-o", os.path.join(work, "adir")], TOOL, None),
    ([os.path.join(work, "missing.db"), "-o", os.path.join(work, "x.pb.gz")], TOOL, None),
    ([not_trace, "-o", os.path.join(work, "y.pb.gz")], TOOL, None),
]
for args, code, text in cases:
    r = tool("export", *args)
    err = r.stderr.decode("utf-8", "replace")
    first = err.splitlines()[0] if err else ""
    check(r.returncode == code and first.startswith("alloctrace") and
          (text is None or text in first),
          "export %s: exit %d, one line" % (" ".join(os.path.basename(a) for a in args), code),
          "exit %d: %r" % (r.returncode, err[:300]))
check(not os.path.exists(os.path.join(work, "x.pb.gz"))
      and not os.path.exists(os.path.join(work, "y.pb.gz")), "nothing written on failure")
check(hashlib.sha256(open(leak, "rb").read()).hexdigest() == digest,
      "the trace is never written")

# An unfinished trace: exit 3 like every read command.
unf = os.path.join(work, "unfinished.db")
shutil.copy(leak, unf)
db = sqlite3.connect(unf)
db.execute("UPDATE meta SET value = 0 WHERE key = 'finished'")
db.commit()
db.close()
r = tool("export", "--format", "folded", unf)
check(r.returncode == UNFINISHED and b"recover" in r.stderr and not r.stdout,
      "unfinished trace: exit 3, names recover", r.stderr)

finish()
