#!/usr/bin/env python3
"""`alloctrace report`, `check` and `query` on traces made by `alloctrace
run` of programs with known behaviour (preload_prog.c, preload_cxx.cc):
every output format against a golden file, the structure of JSON, SARIF
and JUnit, check's exit codes for each policy, suppressions and
baselines, read-only queries, bad traces, and names that try to break the
output.

    report_test.py ALLOCTRACE PRELOAD_PROG PRELOAD_CXX WORKDIR GOLDEN_DIR SOURCE_ROOT
                   [--update-golden]

Golden files (GOLDEN_DIR/*) hold outputs with the unstable parts (pids,
times, addresses, sequence numbers, allocation counts of the C library's
start-up, absolute paths) replaced by placeholders.  To regenerate them
after an intended change of the output, run the test with
ALLOCTRACE_UPDATE_GOLDEN=1 (or --update-golden) and review the diff:

    ALLOCTRACE_UPDATE_GOLDEN=1 meson test -C build report

ALLOCTRACE_TEST_WRAPPER (e.g. "valgrind -q --error-exitcode=99
--leak-check=full --errors-for-leak-kinds=definite") runs every report,
check and query command under that wrapper.
"""
import difflib
import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys

from tap import check, finish
import xml.etree.ElementTree as ET

args = [a for a in sys.argv[1:] if a != "--update-golden"]
alloctrace, prog, cxx, workdir, golden_dir, source_root = (os.path.abspath(a) for a in args[:6])
update = "--update-golden" in sys.argv or os.environ.get("ALLOCTRACE_UPDATE_GOLDEN") == "1"
build_root = os.path.dirname(os.path.dirname(alloctrace))
work = os.path.join(workdir, "report-%d" % os.getpid())
os.makedirs(work, exist_ok=True)
wrapper = shlex.split(os.environ.get("ALLOCTRACE_TEST_WRAPPER", ""))


def tool(*argv, stdin=None):
    """Runs `alloctrace ARGV...` in the work directory; returns the result
    with stdout as text (undecodable bytes escaped, so nothing is lost)."""
    r = subprocess.run(wrapper + [alloctrace, *argv], capture_output=True, cwd=work,
                       input=stdin, timeout=300)
    r.stdout = r.stdout.decode("utf-8", "surrogateescape")
    r.stderr = r.stderr.decode("utf-8", "surrogateescape")
    return r


def make_trace(name, *program, flags=()):
    path = os.path.join(work, name + ".db")
    r = subprocess.run([alloctrace, "run", "-q", "-o", path, "--force", *flags, "--", *program],
                       capture_output=True, text=True, cwd=work, timeout=120)
    if not os.path.exists(path):
        sys.exit("cannot make %s: %s" % (name, r.stderr))
    return name + ".db"


def copy(src, name):
    shutil.copy(os.path.join(work, src), os.path.join(work, name))
    return name


def sql(trace, statement, *params):
    db = sqlite3.connect(os.path.join(work, trace))
    try:
        rows = db.execute(statement, params).fetchall()
        db.commit()
        return rows
    finally:
        db.close()


# ---- the traces ------------------------------------------------------------------------------
clean = make_trace("clean", prog, "clean")
leak = make_trace("leak", prog, "leak")
leak2 = make_trace("leak2", prog, "leak")
findings = make_trace("findings", prog, "findings")
cxx_trace = make_trace("cxx", cxx, "mistakes")

# ---- golden files ------------------------------------------------------------------------------
# Values that change from run to run, or with the C library's start-up.
UNSTABLE_KEYS = {
    "pid", "start_time", "duration_us", "time_us", "ptr", "seq", "peak_seq", "peak_time_us",
    "alloc_calls", "alloc_bytes", "free_calls", "peak_bytes", "peak_blocks", "runtime_blocks",
    "runtime_bytes", "module_offset", "id", "stack_ids", "first_release_seq", "traced_by",
    "semanticVersion",
}


def normalize_paths(s):
    for path, name in ((work, "WORK"), (build_root, "BUILD"), (source_root, "SRC")):
        s = s.replace(path, name)
    # The C library's directory depends on the architecture.
    return re.sub(r"/(usr/)?lib/[a-z0-9_]+-linux-gnu(?=/)", "/LIB", s)


def startup_frame(frame):
    """The C library's start-up frames below main, which look different
    with and without libc6-dbg: golden files leave them out."""
    if not isinstance(frame, dict):
        return False
    names = [frame.get("function"), frame.get("module")]
    loc = frame.get("location", {})
    names += [x.get("fullyQualifiedName") for x in loc.get("logicalLocations", [])]
    return any(n and (n == "_start" or "libc.so" in n or n.startswith("__libc_start"))
               for n in names)


def normalize_json(value, key=None):
    if key in UNSTABLE_KEYS and value is not None:
        return "N"
    if isinstance(value, dict):
        return {k: normalize_json(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize_json(v) for v in value if not startup_frame(v)]
    if isinstance(value, str):
        return re.sub(r"sequence number \d+", "sequence number N", normalize_paths(value))
    return value


TEXT_RULES = [
    (r"pid \d+, ran [0-9.]+ \w+", "pid N, ran T"),
    (r"(allocations +)\d+ calls, .*", r"\1N calls, N B; N frees"),
    (r"(peak heap +).*", r"\1N"),
    (r"(set aside +).*", r"\1N"),
    (r"sequence number \d+", "sequence number N"),
    (r"first released at \d+", "first released at N"),
    (r"\+0x[0-9a-f]+", "+0xN"),
    (r'(time|timestamp)="[^"]*"', r'\1="T"'),
    (r'(name="peak_bytes" value=)"\d+"', r'\1"N"'),
]


def normalize_text(s):
    s = normalize_paths(s)
    # Start-up frames (see startup_frame) go; the column they widened too.
    s = re.sub(r"(?m)^ +(\S+ +)?(_start|__libc_start\S*|\?\?) .*\n", "", s)
    s = re.sub(r"(?m)^ +\S.*libc\.so\.6.*\n", "", s)
    s = re.sub(r"(?m)^( +\S+) {2,}(?=\S+:\d+  |\S+\+0x)", r"\1  ", s)
    for pattern, repl in TEXT_RULES:
        s = re.sub(pattern, repl, s)
    return s


def golden(name, output, is_json=False):
    """Compares normalized output with GOLDEN_DIR/name (or rewrites it)."""
    if is_json:
        text = json.dumps(normalize_json(json.loads(output)), indent=1, ensure_ascii=False) + "\n"
    else:
        text = normalize_text(output)
    path = os.path.join(golden_dir, name)
    if update:
        os.makedirs(golden_dir, exist_ok=True)
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
        print("updated %s" % path)
        return
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            expected = f.read()
    except OSError:
        check(False, "golden %s exists (regenerate with ALLOCTRACE_UPDATE_GOLDEN=1)" % name)
        return
    diff = list(difflib.unified_diff(expected.splitlines(), text.splitlines(),
                                     "golden/" + name, "output", lineterm=""))
    check(not diff, "golden %s%s" % (name, "" if not diff else "\n" + "\n".join(diff[:60])))


FORMATS = {"text": "txt", "json": "json", "sarif": "sarif", "junit": "xml"}
for trace in (clean, leak, findings, cxx_trace):
    stem = trace[:-3]
    for fmt, ext in FORMATS.items():
        # SARIF and JUnit name files relative to the source tree (--source-root).
        root = ("--source-root", source_root) if fmt in ("sarif", "junit") else ()
        r = tool("report", trace, "--format", fmt, *root)
        check(r.returncode == 0 and r.stderr == "", "report %s --format %s: exit 0, quiet (%s)"
              % (trace, fmt, r.stderr.strip()))
        golden("report-%s.%s" % (stem, ext), r.stdout, fmt in ("json", "sarif"))
r = tool("check", leak)
golden("check-leak.txt", r.stdout)
r = tool("check", findings, "--format", "json")
golden("check-findings.json", r.stdout, True)


# ---- report: what it says ---------------------------------------------------------------------
def report_json(trace, *opts):
    r = tool("report", trace, "--format", "json", *opts)
    check(r.returncode == 0, "report %s %s: exit 0" % (trace, " ".join(opts)))
    return json.loads(r.stdout)


d = report_json(leak)
s = d["summary"]
check(d["format"] == "alloctrace-report" and d["version"] == 2, "json: format and version (2: leaks per reachability class)")
check(s["leaked_blocks"] == 3 and s["leaked_bytes"] == 3003, "json: 3 blocks, 3003 bytes leaked")
check(len(d["leak_sites"]) == 1 and d["leak_sites"][0]["bytes"] == 3003
      and d["leak_sites"][0]["min_size"] == 1000 and d["leak_sites"][0]["max_size"] == 1002,
      "json: the stacks that read the same are one site, 1000 to 1002 bytes")
frames = d["leak_sites"][0]["allocated_at"]["frames"]
check(frames[0]["function"] == "leaky_site" and frames[0]["file"].endswith("preload_prog.c")
      and frames[0]["line"] > 0 and frames[1]["function"] == "main",
      "json: the first frame is the caller of malloc, with its line")



def brute_peak(trace):
    """The peak by its definition, independently of the replay: for each
    allocation, the bytes of the blocks live right after it (allocated at
    or before it, not released at or before it); the first largest."""
    return tuple(sql(trace, """
        SELECT (SELECT coalesce(sum(b.size), 0) FROM allocations b WHERE b.alloc_seq <= a.alloc_seq
                AND (b.free_seq IS NULL OR b.free_seq > a.alloc_seq)) AS live,
               (SELECT count(*) FROM allocations b WHERE b.alloc_seq <= a.alloc_seq
                AND (b.free_seq IS NULL OR b.free_seq > a.alloc_seq)) AS blocks, a.alloc_seq
        FROM allocations a ORDER BY live DESC, a.alloc_seq LIMIT 1""")[0])


# The peak is exact: the same as its definition over every lifetime.
peak = brute_peak(leak)
check((s["peak_bytes"], s["peak_blocks"], s["peak_seq"]) == peak,
      "json: the peak (%d B, %d blocks, seq %d) is exact %s"
      % (s["peak_bytes"], s["peak_blocks"], s["peak_seq"], peak))
check(s["runtime_blocks"] >= 1 and report_json(clean)["summary"]["leaked_blocks"] == 0,
      "json: runtime-owned blocks are set aside, not leaks")

d = report_json(findings)
kinds = sorted((f["kind"], f["count"]) for f in d["findings"])
check(kinds == [("double_free", 2), ("interior_free", 1), ("invalid_free", 1),
                ("layout_mismatch", 1), ("layout_mismatch", 1), ("layout_mismatch", 10)],
      "json: findings, the same bug at the same line merged with a count (%s)" % kinds)
# The loop's ten wrong-size releases of blocks of 64 to 208 bytes: one
# group, its sizes as ranges, every occurrence by its sequence number.
group = [f for f in d["findings"] if f["count"] == 10]
with sqlite3.connect("file:%s?mode=ro" % os.path.join(work, findings), uri=True) as db:
    seqs = [r[0] for r in db.execute(
        "SELECT seq FROM findings WHERE kind = 'layout_mismatch' AND alloc_stack ="
        " (SELECT alloc_stack FROM findings WHERE alloc_size = 208) ORDER BY seq")]
check(len(group) == 1 and (group[0]["allocated"]["min_size"], group[0]["allocated"]["max_size"],
                           group[0]["released"]["min_size"], group[0]["released"]["max_size"])
      == (64, 208, 48, 48), "json: a group of ten: allocated 64 to 208 bytes, released as 48",
      group[:1] and (group[0]["allocated"], group[0]["released"]["min_size"]))
check(len(group) == 1 and group[0]["seqs"] == seqs and len(seqs) == 10,
      "json: the group lists its ten occurrences (%s, trace %s)"
      % (group[0]["seqs"] if group else None, seqs))
check(sum(len(f["seqs"]) for f in d["findings"]) == d["summary"]["findings"],
      "json: every occurrence is in one group's seqs")
inv = [f for f in d["findings"] if f["kind"] == "invalid_free"][0]
check(inv["allocated"] is None and inv["released"]["stack"]["frames"][0]["function"] ==
      "bad_release", "json: a pointer never allocated has no allocation, its release a stack")
with sqlite3.connect("file:%s?mode=ro" % os.path.join(work, findings), uri=True) as db:
    stray = db.execute("SELECT alloc_seq, alloc_size, alloc_family FROM findings"
                       " WHERE kind = 'invalid_free'").fetchall()
check(stray and all(r == (None, None, None) for r in stray),
      "a pointer never allocated: no allocation column filled (not the previous finding's family)",
      stray)
lm = [f for f in d["findings"] if f["kind"] == "layout_mismatch"]
check(any(f["allocated"]["size"] == 64 and f["released"]["size"] == 48 for f in lm)
      and any(f["allocated"]["align"] == 32 and f["released"]["align"] == 16 for f in lm),
      "json: both layouts of a mismatch")
dbl = [f for f in d["findings"] if f["kind"] == "double_free"][0]
check(dbl["released"]["size"] is None and dbl["released"]["align"] is None
      and dbl["allocated"]["size"] == 24, "json: free() passed no layout: its size and align null")
r = tool("report", findings)
blocks = r.stdout.split("\n  #")
dbl_text = [b for b in blocks if b.split("\n")[0].lower().find("double") >= 0]
check(len(dbl_text) == 1 and re.search(r"^ +size +24 +\u2013$", dbl_text[0], re.M)
      and re.search(r"^ +alignment +16 +\u2013$", dbl_text[0], re.M),
      "text: free() passed no size or alignment: an en dash (%s)" % dbl_text[:1])
sized = [b for b in blocks if re.search(r"^ +size +64 +48$", b, re.M)]
check(len(sized) == 1, "text: free_sized(p, 48) shows the size it passed")
ranged = [b for b in blocks if re.search(r"^ +size +64\u2013208 +48$", b, re.M)]
check(len(ranged) == 1 and ", 10 times; the first:" in ranged[0].split("\n")[0],
      "text: the group of ten: 10 times, the sizes as a range", ranged[:1])

d = report_json(cxx_trace)
fam = [f for f in d["findings"] if f["kind"] == "family_mismatch"]
check(sorted((f["allocated"]["family"], f["released"]["family"]) for f in fam) ==
      [("malloc", "new"), ("new", "malloc"), ("new[]", "new")], "json: families of each side")
unsized = [f for f in d["findings"] if f["kind"] == "layout_mismatch"
           and f["allocated"]["align"] == 64]
check(len(unsized) == 1 and unsized[0]["released"]["size"] is None
      and unsized[0]["released"]["align"] == 16,
      "json: an unsized delete passed no size (null), the default new alignment (16)")
sized = [f for f in d["findings"] if f["kind"] == "layout_mismatch"
         and f["allocated"]["size"] == 100]
check(len(sized) == 1 and sized[0]["released"]["size"] == 80,
      "json: a sized delete keeps the size it passed")
r = tool("report", cxx_trace)
check("wrong_delete_site(int)" in r.stdout, "text: C++ names are demangled")
check(re.search(r"^ +size +64 +\u2013$", r.stdout, re.M) is not None
      and re.search(r"^ +size +100 +80$", r.stdout, re.M) is not None,
      "text: an unsized delete's size is an en dash, a sized delete's its value")

d = report_json(findings, "--top", "1")
check(len(d["findings"]) == 1 and d["findings_omitted"] == 5, "--top limits findings shown")
d = report_json(leak, "--min-bytes", "4K")
check(d["leak_sites"] == [] and d["leak_sites_omitted"] == 1, "--min-bytes leaves small sites out")
d = report_json(leak, "--min-bytes", "3003")
check(len(d["leak_sites"]) == 1, "--min-bytes keeps a site of exactly that size")

# Allocator entry points and the tracer's own frames are trimmed from the top.
# Finishing stored each stack's site and trim (stack_sites); renamed frames
# in a trace made as an older alloctrace made them (no stack_sites, views
# that group by stack) are trimmed by the same rule, computed on reading.
# (Schema 3's leak_sites has the class second: so does this one.)
OLD_VIEWS = """DROP VIEW finding_sites; DROP VIEW leak_sites; DROP TABLE stack_sites;
    CREATE VIEW leak_sites AS SELECT stack, reachability, count(*) AS blocks, sum(size) AS bytes,
    min(size) AS min_size, max(size) AS max_size FROM leaks GROUP BY stack, reachability;"""
for name in ("malloc", "at_alloc", "at__trace_alloc", "operator new(unsigned long)"):
    t = copy(leak, "trim.db")
    db = sqlite3.connect(os.path.join(work, t))
    db.executescript(OLD_VIEWS)
    db.execute("UPDATE frames SET function = ? WHERE function = 'leaky_site'", (name,))
    db.commit()
    db.close()
    st = report_json(t)["leak_sites"][0]["allocated_at"]
    check(st["hidden_frames"] == 1 and st["frames"][0]["function"] == "main",
          "frames of %s at the top are hidden" % name)
t = copy(leak, "trim.db")
sql(t, "UPDATE frames SET function = 'malloc'")
st = report_json(t)["leak_sites"][0]["allocated_at"]
check(st["hidden_frames"] == 0 and len(st["frames"]) >= 2,
      "a stack of nothing but allocator frames is shown whole")

# Colour only when asked or on a terminal; -o writes a file.
r = tool("report", findings)
check("\x1b" not in r.stdout, "text: no colour into a pipe")
r = tool("report", findings, "--color", "always")
check("\x1b[" in r.stdout, "text: --color always colours")
r = tool("report", findings, "--format", "sarif", "-o", "out.sarif")
check(r.returncode == 0 and r.stdout == "" and
      json.load(open(os.path.join(work, "out.sarif")))["version"] == "2.1.0", "-o FILE")


# ---- SARIF and JUnit structure ------------------------------------------------------------------
def sarif_ok(trace, expect_results):
    r = tool("report", trace, "--format", "sarif", "--source-root", source_root)
    d = json.loads(r.stdout)
    run = d["runs"][0]
    rules = [x["id"] for x in run["tool"]["driver"]["rules"]]
    results = run["results"]
    ok = d["version"] == "2.1.0" and run["tool"]["driver"]["name"] == "alloctrace"
    ok = ok and len(results) == expect_results
    for res in results:
        loc = res["locations"][0]["physicalLocation"]
        ok = ok and res["ruleId"] in rules and rules[res["ruleIndex"]] == res["ruleId"]
        ok = ok and loc["artifactLocation"]["uri"].startswith("tests/")
        ok = ok and loc["artifactLocation"]["uriBaseId"] == "SRCROOT"
        ok = ok and loc["region"]["startLine"] > 0 and res["message"]["text"]
    check(ok, "sarif %s: 2.1.0, %d results, each with a rule and a source line"
          % (trace, expect_results))
    return results


res = sarif_ok(leak, 1)
check(res[0]["ruleId"] == "leak/definitely_lost" and res[0]["locations"][0]["physicalLocation"]
      ["artifactLocation"]["uri"] == "tests/preload_prog.c",
      "sarif: the leak is located at the caller of malloc")
res = sarif_ok(findings, 6)
check({x["ruleId"] for x in res} == {"layout_mismatch", "double_free", "invalid_free",
                                     "interior_free"}, "sarif: one rule per kind")
sarif_ok(cxx_trace, 5)
sarif_ok(clean, 0)


def junit(trace):
    r = tool("report", trace, "--format", "junit")
    return ET.fromstring(r.stdout.encode("utf-8", "surrogateescape"))


x = junit(findings)
cases = x.findall(".//testcase")
fails = x.findall(".//testcase/failure")
check(len(cases) == 7 and len(fails) == 6 and x.get("failures") == "6",
      "junit: a failing test case per finding, a passing one for no leaks")
x = junit(clean)
check(len(x.findall(".//testcase")) == 2 and not x.findall(".//failure"),
      "junit: a clean trace is passing test cases")


# ---- check ----------------------------------------------------------------------------------------
def status(*argv):
    r = tool("check", *argv)
    return r.returncode, r


def write(name, text):
    with open(os.path.join(work, name), "w") as f:
        f.write(text)
    return name


code, r = status(clean)
check(code == 0, "check: a clean trace passes, runtime-owned blocks included")
code, r = status(leak)
check(code == 1 and "leaky_site" in r.stdout, "check: a leak fails (1), with its stack")
for kind, trace in [("mismatch", findings), ("misaligned", findings), ("double-free", findings),
                    ("invalid-free", findings), ("mismatch", cxx_trace), ("leaks", leak)]:
    code, r = status(trace, "--fail-on", kind)
    check(code == 1, "check --fail-on %s fails on %s" % (kind, trace))
code, r = status(findings, "--fail-on", "leaks")
check(code == 0, "check --fail-on leaks: findings do not fail")
code, r = status(leak, "--fail-on", "mismatch,double-free,invalid-free,misaligned")
check(code == 0, "check: leaks do not fail when --fail-on leaves them out")
code, r = status(cxx_trace, "--fail-on", "double-free,invalid-free,misaligned")
check(code == 0, "check: family mismatches count as mismatch only")
for opt, limit, expect in [("--max-leaked-bytes", "3003", 0), ("--max-leaked-bytes", "3002", 1),
                           ("--max-leaked-bytes", "4K", 0), ("--max-leaked-blocks", "3", 0),
                           ("--max-leaked-blocks", "2", 1)]:
    code, r = status(leak, opt, limit)
    check(code == expect, "check %s %s: exit %d" % (opt, limit, expect))

supp = write("leak.supp", "# leaks we know about\n\n  leak:leaky_site   # a comment\n"
                          "leak:no_such_function_anywhere\n")
code, r = status(leak, "--suppressions", supp)
check(code == 0, "suppressions: a matching function suppresses the leak")
check("leak.supp:4" in r.stderr and "no_such_function_anywhere" in r.stderr
      and "leaky_site" not in r.stderr, "suppressions: the stale one is listed, only it")
for pattern, expect in [("leaky_*", 0), ("preload_prog.c", 0), ("*/tests/preload_prog.c", 0),
                        ("^leaky$", 1), ("^leaky_site$", 0), ("main", 0)]:
    code, r = status(leak, "--suppressions", write("p.supp", "leak:%s\n" % pattern))
    check(code == expect, "suppression leak:%s: exit %d" % (pattern, expect))
# LeakSanitizer's format, as a team would have it: module names, substrings.
lsan = write("lsan.supp", "# LSan suppressions\nleak:preload_prog\nleak:libfoo.so\n")
code, r = status(leak, "--suppressions", lsan)
check(code == 0 and "libfoo.so" in r.stderr, "suppressions: LeakSanitizer's file works as is")
code, r = status(findings, "--suppressions", write("all.supp", "*:bad_release\n"))
check(code == 0, "suppressions: * matches every kind, on the release stack")
code, r = status(findings, "--suppressions", write("df.supp", "double-free:bad_release\n"))
check(code == 1 and "double free" not in r.stdout.split("\n\n", 1)[1],
      "suppressions: a kind suppresses only that kind")
code, r = status(cxx_trace, "--suppressions", write("m.supp", "mismatch:wrong_delete_site\n"))
check(code == 0, "suppressions: mismatch covers family mismatches")
code, r = status(leak, "--suppressions", write("bad.supp", "bogus:thing\n"))
check(code == 2 and "bad.supp:1" in r.stderr, "suppressions: an unknown kind is a usage error")
code, r = status(leak, "--suppressions", "no-such.supp")
check(code == 2, "suppressions: a missing file is a usage error")

code, r = status(leak2, "--baseline", leak)
check(code == 0, "baseline: the same leak in another run (other addresses) passes")
code, r = status(leak, "--baseline", clean)
check(code == 1, "baseline: a leak the baseline does not have fails")
code, r = status(findings, "--baseline", findings)
check(code == 0, "baseline: the same findings pass")
code, r = status(cxx_trace, "--baseline", findings)
check(code == 1, "baseline: new findings fail")
t = copy(leak2, "moved.db")
sql(t, "UPDATE frames SET ip = ip + 4096, module_offset = module_offset + 16")
code, r = status(t, "--baseline", leak)
check(code == 0, "baseline: matched by function names, not by address")
code, r = status(leak, "--baseline", "no-such.db")
check(code == 125, "baseline: an unreadable baseline is a tool error")

code, r = status(leak, "--format", "json")
d = json.loads(r.stdout)
check(code == 1 and d["result"] == "fail" and d["exit_code"] == 1 and d["failures"][0]["kind"]
      == "leak", "check --format json")
code, r = status(leak, "--suppressions", supp, "--format", "json")
d = json.loads(r.stdout)
check(code == 0 and d["result"] == "pass" and len(d["unused_suppressions"]) == 1,
      "check --format json lists unused suppressions")

for argv in (["--fail-on", "everything"], ["--max-leaked-bytes", "-1"], ["--format", "xml"],
             ["--fail-on", "mismatch", "--max-leaked-bytes", "10"], []):
    r = tool("check", *argv, *([leak] if argv else []))
    check(r.returncode == 2, "check %s: usage error (2)" % " ".join(argv))

# ---- bad traces: one line, exit 125, never a crash --------------------------------------------------
write("text.db", "this is not a trace\n")
trunc = copy(leak, "truncated.db")
with open(os.path.join(work, trunc), "r+b") as f:
    f.truncate(os.path.getsize(os.path.join(work, leak)) // 2)
newer = copy(leak, "newer.db")
sql(newer, "PRAGMA user_version = 99")
# Version 1 kept align, ops and the release layout in lifetimes itself: its
# traces are refused, never read as the current layout.
older = copy(leak, "older.db")
sql(older, "PRAGMA user_version = 1")
# Version 3 kept every stack's frames in a table stack_frames, where 4 has
# the call tree stack_nodes; 4 had no release stacks, 5 no inlined_frames
# (a 5's frames name the real function at the inlined one's line): refused
# alike.
older3 = copy(leak, "older3.db")
sql(older3, "PRAGMA user_version = 3")
older4 = copy(leak, "older4.db")
sql(older4, "PRAGMA user_version = 4")
older5 = copy(leak, "older5.db")
sql(older5, "PRAGMA user_version = 5")
older6 = copy(leak, "older6.db")
sql(older6, "PRAGMA user_version = 6")
garbled = copy(leak, "garbled.db")
with open(os.path.join(work, garbled), "r+b") as f:
    f.seek(os.path.getsize(os.path.join(work, garbled)) // 2)
    f.write(b"\xa5" * 8192)
for bad in ("text.db", trunc, newer, older, older3, older4, older5, older6, garbled,
            "missing.db"):
    for argv in (["report", bad], ["report", bad, "--format", "sarif"], ["check", bad],
                 ["query", bad, "SELECT count(*) FROM lifetimes"]):
        r = tool(*argv)
        ok = r.returncode == 125 and r.stdout == "" if bad != garbled else r.returncode in (0, 1, 125)
        one_line = r.returncode != 125 or r.stderr.count("\n") == 1
        check(ok and one_line and r.returncode >= 0,
              "%s: exit %d, %s" % (" ".join(argv), r.returncode, r.stderr.strip()[:120]))
r = tool("report", newer)
check("newer" in r.stderr or "version 99" in r.stderr, "a newer schema says so")
for argv in (["report", older], ["html", older, "-o", os.path.join(work, "older.html")]):
    r = tool(*argv)
    check(r.returncode == 125 and "version 1 is older" in r.stderr
          and r.stderr.count("\n") == 1, "%s: an older schema says so (%d, %s)"
          % (argv[0], r.returncode, r.stderr.strip()))

# ---- hostile names ------------------------------------------------------------------------------------
EVIL = "evil\"<&>'\x01\n\x1b[31m]]></x>\\"
for src in (leak, findings):
    t = copy(src, "evil-" + src)
    db = sqlite3.connect(os.path.join(work, t))
    db.execute("UPDATE frames SET function = ? || CAST(x'fffec0' AS TEXT)"
               " WHERE function IN ('leaky_site', 'main', 'bad_release')", (EVIL,))
    db.execute("UPDATE frames SET file = CAST(x'2f746d702fff2f61263c220a2e63' AS TEXT)"
               " WHERE file LIKE '%preload_prog.c'")
    db.execute("UPDATE modules SET path = path || ' \"x\" & <y>' || char(7)")
    db.execute("UPDATE findings SET detail = detail || char(1) || '<&>' || CAST(x'ff' AS TEXT)")
    db.commit()
    db.close()
    r = tool("report", t, "--format", "json")
    d = json.loads(r.stdout)
    site = (d["leak_sites"] or [None])[0]
    if site:
        f0 = site["allocated_at"]["frames"][0]
        check(f0["function"] == EVIL + "\ufffd" * 3 and f0["file"] == "/tmp/\ufffd/a&<\"\n.c",
              "hostile %s: JSON keeps the text, invalid UTF-8 as U+FFFD" % t)
    else:
        check(len(d["findings"]) == 6, "hostile %s: JSON parses" % t)
    r = tool("report", t, "--format", "sarif")
    res = json.loads(r.stdout)["runs"][0]["results"]
    uris = [x["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for x in res]
    check(res and all(u.isascii() and " " not in u for u in uris),
          "hostile %s: SARIF parses, URIs percent-encoded (%s)" % (t, uris[:1]))
    r = tool("report", t, "--format", "junit")
    x = ET.fromstring(r.stdout.encode("utf-8", "surrogateescape"))
    names = [c.get("name") for c in x.iter("testcase")]
    check(any("evil\"<&>'" in n for n in names), "hostile %s: JUnit parses, names kept" % t)
    r = tool("report", t)
    check(r.returncode == 0 and "\x1b" not in r.stdout and "\x01" not in r.stdout
          and "\\x1B[31m" in r.stdout and "\\xFF" in r.stdout,
          "hostile %s: text escapes control characters and bad bytes" % t)
    r = tool("check", t, "--format", "json")
    json.loads(r.stdout)
    check(r.returncode == 1, "hostile %s: check --format json parses" % t)
    r = tool("query", t, "SELECT function, file FROM frames", "--format", "json")
    check(r.returncode == 0 and json.loads(r.stdout), "hostile %s: query --format json parses" % t)
    r = tool("query", t, "SELECT function FROM frames")
    check(r.returncode == 0 and "\x1b" not in r.stdout, "hostile %s: query table is escaped" % t)

# ---- every view says the same (views_prog.c) ---------------------------------------------------
views_prog = os.path.join(os.path.dirname(prog), "views_prog")


def html_data(trace):
    out = os.path.join(work, trace + ".html")
    r = tool("html", trace, "-o", out)
    check(r.returncode == 0, "html %s: exit 0 (%s)" % (trace, r.stderr.strip()))
    with open(out, encoding="utf-8") as f:
        m = re.search(r'<script type="application/json" id="data">(.*?)</script>', f.read(), re.S)
    return json.loads(m.group(1))


# ---- a double free's three stacks in the HTML page and SARIF (preload_prog.c relstacks) ----------
marks = {}
for number, text in enumerate(open(os.path.join(source_root, "tests", "preload_prog.c")), 1):
    if "/* @" in text:
        marks[text.split("/* @")[1].split(" */")[0]] = number
rs = make_trace("relstacks", prog, "relstacks")
first_stacks = sql(rs, "SELECT first_free_stack FROM findings WHERE kind = 'double_free' ORDER BY seq")
page = html_data(rs)


def page_top(data, stack):
    """The first frame the page shows of `stack`: (function, line)."""
    entry = data["stacks"].get(str(stack))
    if not entry or len(entry) < 2:
        return None
    shown = entry[1 + data.get("stack_skip", {}).get(str(stack), 0)]
    frame = data["frames"][shown]
    return (data["strings"][frame[0]], frame[2])


rows = [f for f in page["findings"] if page["strings"][f[2]] == "double_free"]
check(len(rows) == 2 and [f[17] for f in rows] == [x for (x,) in first_stacks]
      and all(page_top(page, f[17]) == ("relstack_first_free", marks["first_free"]) for f in rows),
      "relstacks: html: each double free names its first release's stack, listed with its frames",
      "%s %s" % ([f[17:] for f in rows], [page_top(page, f[17]) for f in rows]))
results = [x for x in json.loads(tool("report", rs, "--format", "sarif").stdout)["runs"][0]["results"]
           if x["ruleId"] == "double_free"]
related = [[(loc["message"]["text"], loc["physicalLocation"]["region"]["startLine"])
            for loc in x.get("relatedLocations", [])] for x in results]
check(len(results) == 2 and all(r == [("allocated here", marks["alloc"]),
                                      ("first released here", marks["first_free"])] for r in related)
      and all([st["message"]["text"] for st in x["stacks"]] == ["released again", "allocated",
                                                               "first released"] for x in results),
      "relstacks: sarif: related locations and stacks for allocated, first released, released again",
      str(related))

# p = malloc(1000); __libc_free(p); q = malloc(1000) (p's address: p vanishes at q's seq);
# r = malloc(3000); free(r); free(q): 4000 B were live at once, in every view.
pk = make_trace("peak", views_prog, "peak")
check(sql(pk, "SELECT count(*) FROM allocations WHERE free_op = 'vanished'"
              " AND free_seq = (SELECT min(alloc_seq) FROM allocations WHERE alloc_seq > 1)")
      == [(1,)], "peak: the first block vanished at the second allocation's seq")
check(brute_peak(pk) == (4000, 2, 3), "peak: by definition, 4000 B in 2 blocks (%s)"
      % (brute_peak(pk),))
r = tool("report", pk)
check(re.search(r"peak heap .*\(4000 B\) at sequence number 3", r.stdout) is not None,
      "peak: report text says 4000 B")
js = report_json(pk)["summary"]
check((js["peak_bytes"], js["peak_blocks"], js["peak_seq"]) == (4000, 2, 3),
      "peak: report json says 4000 B, 2 blocks")
r = tool("check", pk, "--format", "json")
check(json.loads(r.stdout)["peak_bytes"] == 4000, "peak: check json says 4000 B")
check(sql(pk, "SELECT max(live_bytes) FROM timeline") == [(4000,)],
      "peak: the timeline table reaches 4000 B")
check(sql(pk, "SELECT key, value FROM meta WHERE key LIKE 'peak_%' ORDER BY key")
      == [("peak_blocks", 2), ("peak_bytes", 4000), ("peak_seq", 3), ("peak_time_us",
          sql(pk, "SELECT alloc_time_us FROM allocations WHERE alloc_seq = 3")[0][0])],
      "peak: meta says 4000 B at seq 3")
check(sql(pk, """SELECT sum(size), count(*) FROM allocations, (SELECT value AS p FROM meta
                 WHERE key = 'peak_seq') WHERE alloc_seq <= p AND (free_seq IS NULL OR free_seq > p)""")
      == [(4000, 2)], "peak: the blocks live at the peak add up to it")
hd = html_data(pk)
check((hd["summary"]["peak_bytes"], hd["summary"]["peak_blocks"]) == (4000, 2)
      and max(hd["timeline"]["bytes"]) == 4000, "peak: the HTML page says 4000 B, its timeline too")

# One leaking line reached through four return addresses (an unrolled loop)
# and two (a function called twice from one line); a double free twice in
# an unrolled loop: 2 leak sites, 1 finding site of 2 findings everywhere.
st = make_trace("sites", views_prog, "sites")
check(sql(st, "SELECT count(DISTINCT alloc_stack) FROM allocations WHERE free_seq IS NULL")
      == [(6,)], "sites: 6 leaking stacks (the loop really unrolled)")
r = tool("report", st, "--show-reachable")
# Sites are per class: the headings of all the classes add up.
text_sites = re.findall(r"(?m)^[A-Z][a-z ]+, by allocation site, largest first \((\d+) sites?\)",
                        r.stdout)
text_sites = str(sum(map(int, text_sites))) if text_sites else None
text_findings = re.search(r"Bad releases, in the order they happened \((\d+) distinct\)", r.stdout)
text_total = re.search(r"findings +(\d+):", r.stdout)
js = report_json(st, "--show-reachable")
sarif = json.loads(tool("report", st, "--format", "sarif", "--show-reachable").stdout)["runs"][0]["results"]
hd = html_data(st)
counts = {
    "text": (int(text_sites) if text_sites else None,
             int(text_findings.group(1)) if text_findings else None,
             int(text_total.group(1)) if text_total else None),
    "json": (len(js["leak_sites"]), len(js["findings"]), js["summary"]["findings"]),
    "json summary": (js["summary"]["leak_sites"], len(js["findings"]), js["summary"]["findings"]),
    "sarif": (sum(x["ruleId"].startswith("leak/") for x in sarif),
              sum(not x["ruleId"].startswith("leak/") for x in sarif),
              sum(x["properties"].get("count", 1) for x in sarif
                  if not x["ruleId"].startswith("leak/"))),
    "sql": (sql(st, "SELECT count(*) FROM leak_sites")[0][0],
            sql(st, "SELECT count(*) FROM finding_sites")[0][0],
            sql(st, "SELECT count(*) FROM findings_detail")[0][0]),
    "html": (hd["summary"]["leak_sites"], hd["summary"]["finding_sites"], hd["summary"]["findings"]),
    "html rows": (len(hd["leak_sites"]), hd["summary"]["finding_sites"], len(hd["findings"])),
}
check(all(v == (2, 1, 2) for v in counts.values()),
      "sites: 2 leak sites, 1 finding site, 2 findings in every view %s" % counts)
check(sorted(sql(st, "SELECT blocks, stacks FROM leak_sites")) == [(2, 2), (4, 4)],
      "sites: leak_sites merges 4 and 2 stacks")
# The kinds come from one list (vocab.h): the page's legend is SARIF's rules.
rules = json.loads(tool("report", st, "--format", "sarif").stdout)["runs"][0]["tool"]["driver"]["rules"]
# SARIF has a rule per class of leak ("leak/definitely_lost"...), then one per
# finding kind.
leak_rules = [r for r in rules if r["id"].startswith("leak/")]
check([(k["name"], k["description"] + ".") for k in hd["kinds"] if k["name"] != "leak"]
      == [(r["id"], r["fullDescription"]["text"]) for r in rules[len(leak_rules):]]
      and [r["id"] for r in leak_rules]
      == ["leak/" + c for c in ("definitely_lost", "indirectly_lost", "possibly_lost",
                                "still_reachable", "unknown")]
      and all(r["fullDescription"]["text"].startswith(hd["kinds"][0]["description"])
              for r in leak_rules),
      "kinds: the HTML page's kinds are SARIF's rules, in their order (%s)"
      % [k["name"] for k in hd["kinds"]])

# ---- query -----------------------------------------------------------------------------------------------
r = tool("query", leak, "SELECT count(*) AS n, sum(size) AS bytes FROM leaks")
lines = r.stdout.splitlines()
check(r.returncode == 0 and lines[0].split() == ["n", "bytes"] and lines[2].split() == ["3", "3003"],
      "query: a table with a header (%s)" % lines)
r = tool("query", leak, "SELECT size, 'a,b\"c' AS s, NULL AS z FROM leaks ORDER BY size",
         "--format", "csv")
check(r.stdout == 'size,s,z\r\n1000,"a,b""c",\r\n1001,"a,b""c",\r\n1002,"a,b""c",\r\n',
      "query: CSV quoted as RFC 4180 says")
r = tool("query", leak, "SELECT size, 1.5 AS x, NULL AS z FROM leaks ORDER BY size",
         "--format", "json")
check(json.loads(r.stdout) == [{"size": s, "x": 1.5, "z": None} for s in (1000, 1001, 1002)],
      "query: JSON rows")
for statement in ("DELETE FROM meta", "SELECT 1; SELECT 2", "ATTACH 'other.db' AS o",
                  "PRAGMA user_version = 3", "SELECT nothing FROM nowhere", ""):
    r = tool("query", leak, statement)
    check(r.returncode == 2 and r.stdout == "", "query %r: refused (2): %s"
          % (statement, r.stderr.strip()))
check(sql(leak, "SELECT value FROM meta WHERE key = 'format'") == [("alloctrace-trace",)]
      and not os.path.exists(os.path.join(work, "other.db")), "query: nothing was written")
r = tool("query", leak, "SELECT 1 AS one; -- a comment")
check(r.returncode == 0, "query: a trailing comment is not a second statement")

# ---- reachability at exit (vocab.h's AT_REACH; the exit scan fills `reachability`) ----------------
def vocab_reach():
    """AT_REACH as lib/include/alloctrace/vocab.h defines it, read from the
    source: [(name, code, kind, label, gated, color)] in its order."""
    path = os.path.join(source_root, "lib", "include", "alloctrace", "vocab.h")
    text = open(path).read().replace("\\\n", " ")
    body = re.search(r"#define AT_REACH\(X\)(.*)", text).group(1)
    return [(m[2], int(m[1]), m[3], m[4], m[5] == "1", m[6]) for m in re.findall(
        r'X\(\s*(\w+),\s*(\d+),\s*"([^"]*)",\s*"([^"]*)",\s*"([^"]*)",\s*([01]),\s*"([^"]*)"',
        body)]


REACH = vocab_reach()
CODE = {kind: code for _, code, kind, _, _, _ in REACH}
NAME = {kind: name for name, _, kind, _, _, _ in REACH}
LABEL = {kind: label for _, _, kind, label, _, _ in REACH}
check([k for _, _, k, _, _, _ in REACH] == ["definite", "indirect", "possible", "reachable",
                                             "unknown"]
      and [k for _, _, k, _, g, _ in REACH if g] == ["definite", "indirect", "unknown"],
      "vocab.h: five classes; definite, indirect and unknown gated by default (%s)" % REACH)


def classify(src, name, by_size):
    """A copy of trace `src` whose leaks have the classes the exit scan
    would have stored: by_size maps a block's size to a KIND word (a size
    not in it gets no row: unknown)."""
    t = copy(src, name)
    db = sqlite3.connect(os.path.join(work, t))
    db.execute("DELETE FROM reachability")
    for seq, size in db.execute("SELECT alloc_seq, size FROM leaks").fetchall():
        if size in by_size:
            db.execute("INSERT INTO reachability VALUES (?, ?)", (seq, CODE[by_size[size]]))
    db.commit()
    db.close()
    return t


def check_json(trace, *opts):
    code, r = status(trace, "--format", "json", *opts)
    d = json.loads(r.stdout)
    check(d["exit_code"] == code, "check %s %s --format json: exit %d as it says"
          % (trace, " ".join(opts), code))
    return code, d


def failed_classes(d):
    return sorted(f["reachability"] for f in d["failures"] if f["kind"] == "leak")


# leaky_site's three blocks: 1000 definitely lost, 1001 still reachable, 1002 possibly lost.
cls = classify(leak, "classes.db", {1000: "definite", 1001: "reachable", 1002: "possible"})
check(sql(cls, "SELECT size, reachability FROM leaks ORDER BY size")
      == [(1000, "definitely_lost"), (1001, "still_reachable"), (1002, "possibly_lost")],
      "classes: the leaks view names the classes stored")
check(sorted(sql(cls, "SELECT reachability, blocks, bytes FROM leak_sites"))
      == [("definitely_lost", 1, 1000), ("possibly_lost", 1, 1002), ("still_reachable", 1, 1001)],
      "classes: leak_sites is per site and class")

# An unscanned trace: every leak is unknown, and gated.
noscan = make_trace("noscan", prog, "leak", flags=("--no-leak-scan",))
d = report_json(noscan)
check([(x["reachability"], x["bytes"]) for x in d["leak_sites"]] == [("unknown", 3003)]
      and d["summary"]["reachability"]["unknown"] == {"blocks": 3, "bytes": 3003, "sites": 1}
      and all(d["summary"]["reachability"][n]["blocks"] == 0 for n, *_ in REACH if n != "unknown")
      and d["summary"]["reach_scan"] is None,
      "no scan: the leak is of unknown reachability (%s)" % d["summary"]["reachability"])
code, j = check_json(noscan)
check(code == 1 and failed_classes(j) == ["unknown"] and j["policy"]["leak_kinds"]
      == ["definite", "indirect", "unknown"], "no scan: unknown leaks fail the check by default")
code, r = status(noscan)
check(re.search(r"(?m)^    reachability unknown FAIL 1 site, 3 blocks, .*not scanned", r.stdout)
      is not None, "no scan: check says the unknown class failed, and why")
code, r = status(noscan, "--leak-kinds", "definite,indirect")
check(code == 0, "no scan: --leak-kinds definite,indirect lets unknown leaks pass (as LSan would)")
r = tool("report", noscan)
check("Reachability unknown, by allocation site" in r.stdout and "not scanned" in r.stdout
      and "leaky_site" in r.stdout, "no scan: report lists unknown leaks with stacks, says why")

# report: grouped by class in AT_REACH's order; still reachable as one line.
d = report_json(cls)
check([(x["reachability"], x["bytes"]) for x in d["leak_sites"]]
      == [("definitely_lost", 1000), ("possibly_lost", 1002)] and d["leak_sites_omitted"] == 1,
      "report json: sites by class, still reachable not listed (%s)"
      % [(x["reachability"], x["bytes"]) for x in d["leak_sites"]])
check({n: v["bytes"] for n, v in d["summary"]["reachability"].items()}
      == {NAME["definite"]: 1000, NAME["indirect"]: 0, NAME["possible"]: 1002,
          NAME["reachable"]: 1001, NAME["unknown"]: 0}
      and d["summary"]["leaked_bytes"] == 3003 and d["summary"]["leak_sites"] == 3,
      "report json: bytes per class in the summary, every class counted in the total")
d = report_json(cls, "--show-reachable")
check([x["reachability"] for x in d["leak_sites"]]
      == [NAME["definite"], NAME["possible"], NAME["reachable"]] and d["leak_sites_omitted"] == 0,
      "report json --show-reachable: all three, in AT_REACH's order")
d = report_json(cls, "--show-reachable", "--top", "0")
check(d["leak_sites"] == [] and d["leak_sites_omitted"] == 3, "report --top 0: no site listed")
r = tool("report", cls)
out = r.stdout
heads = re.findall(r"(?m)^(Definitely lost|Indirectly lost|Possibly lost|Still reachable"
                   r"|Reachability unknown)\b(.*)$", out)
check([h for h, _ in heads] == ["Definitely lost", "Possibly lost", "Still reachable"]
      and heads[2][1].startswith(": 1001 B in 1 block at 1 site (not listed: --show-reachable"),
      "report text: definitely lost, possibly lost with stacks, still reachable one line (%s)"
      % heads)
summary = re.findall(r"(?m)^ +(definitely lost|indirectly lost|possibly lost|still reachable"
                     r"|reachability unknown): (.*)$", out)
check([s for s, _ in summary] == [LABEL[k] for _, _, k, _, _, _ in REACH]
      and summary[0][1] == "1000 B in 1 block at 1 site" and summary[1][1] == "0 B in 0 blocks"
      and summary[3][1] == "1001 B in 1 block at 1 site",
      "report text: a leak summary line per class, in AT_REACH's order (%s)" % summary)
sections = out.split("\nPossibly lost")
check(len(sections) == 2 and "leaky_site" in sections[0].split("Definitely lost", 1)[1]
      and "leaky_site" in sections[1].split("\nStill reachable")[0],
      "report text: definitely and possibly lost sites are shown with their stacks")
r = tool("report", cls, "--show-reachable")
check("Still reachable, by allocation site" in r.stdout and "#3  1001 B" in r.stdout,
      "report text --show-reachable: still reachable sites listed in full")

# SARIF: the class in the message and the properties; not-gated classes are notes.
res = json.loads(tool("report", cls, "--format", "sarif").stdout)["runs"][0]["results"]
check([(x["properties"]["reachability"], x["level"]) for x in res]
      == [(NAME["definite"], "warning"), (NAME["possible"], "note")]
      and res[0]["message"]["text"].startswith("definitely lost: 1000 bytes")
      and res[1]["message"]["text"].startswith("possibly lost: 1002 bytes"),
      "sarif: class in properties and message; possibly lost is a note; still reachable omitted")
res = json.loads(tool("report", cls, "--format", "sarif", "--show-reachable").stdout)["runs"][0]["results"]
fps = [x["partialFingerprints"]["alloctraceStack/v3"] for x in res]
check(len(res) == 3 and res[2]["level"] == "note" and len(set(fps)) == 3,
      "sarif --show-reachable: still reachable as a note; one site in three classes is three "
      "results (%s)" % fps)

# JUnit: a failing case for each gated class, a passing one with output for the others.
x = junit(cls)
cases = x.findall(".//testcase")
leak_cases = [(c.get("classname"), c.find("failure") is not None) for c in cases
              if c.get("classname").startswith("alloctrace.leak")]
check(leak_cases == [("alloctrace.leak." + NAME["definite"], True),
                     ("alloctrace.leak." + NAME["possible"], False)]
      and x.get("failures") == "1" and "possibly lost" in cases[1].find("system-out").text
      and {p.get("name"): p.get("value") for p in x.iter("property")}["still_reachable_bytes"]
      == "1001", "junit: classes in the case names, only gated classes fail (%s)" % leak_cases)
x = junit(classify(leak, "reachable.db", {1000: "reachable", 1001: "reachable", 1002: "reachable"}))
check([c.get("name") for c in x.findall(".//testcase")][0] == "no leaks listed"
      and x.get("failures") == "0", "junit: only still reachable leaks: nothing fails")

# check: the gated classes by default; --leak-kinds changes the set.
code, j = check_json(cls)
lk = j["categories"]["leaks"]
check(code == 1 and failed_classes(j) == [NAME["definite"]] and (lk["blocks"], lk["bytes"])
      == (1, 1000) and lk["reachability"][NAME["possible"]]["checked"] is False
      and lk["reachability"][NAME["possible"]]["bytes"] == 1002
      and lk["reachability"][NAME["definite"]]["failed"] is True,
      "check: by default only definitely lost of these counts (%s)" % lk)
code, r = status(cls)
lines = re.findall(r"(?m)^    (definitely lost|indirectly lost|possibly lost|still reachable"
                   r"|reachability unknown) +(FAIL|ok|-) +(.*)$", r.stdout)
check([(c, s) for c, s, _ in lines] == [("definitely lost", "FAIL"), ("indirectly lost", "ok"),
                                        ("possibly lost", "-"), ("still reachable", "-"),
                                        ("reachability unknown", "ok")]
      and lines[2][2].endswith("(not in --leak-kinds)") and "1002 B" in lines[2][2],
      "check text: a line per class, what it counted and what not (%s)" % lines)
check("leak, definitely lost: 1000 bytes" in r.stdout and "1002 bytes" not in r.stdout.split(
      "\n\n", 1)[1], "check text: only the failing class is listed as a failure")
for kinds, expect, classes in [("none", 0, []), ("possible", 1, [NAME["possible"]]),
                               ("reachable", 1, [NAME["reachable"]]),
                               ("possible,reachable", 1, [NAME["possible"], NAME["reachable"]]),
                               ("indirect,unknown", 0, []),
                               ("all", 1, sorted(NAME[k] for k in ("definite", "possible",
                                                                  "reachable")))]:
    code, j = check_json(cls, "--leak-kinds", kinds)
    check(code == expect and failed_classes(j) == sorted(classes),
          "check --leak-kinds %s: exit %d, failing %s" % (kinds, code, failed_classes(j)))
code, r = status(cls, "--leak-kinds", "definite", "--fail-on", "mismatch")
check(code == 0, "check: --fail-on without leaks: no class fails")

# Limits count the classes counted; KIND=N limits one class.
for opts, expect in [(["--max-leaked-bytes", "1000"], 0), (["--max-leaked-bytes", "999"], 1),
                     (["--max-leaked-blocks", "1"], 0), (["--max-leaked-blocks", "0"], 1),
                     (["--leak-kinds", "all", "--max-leaked-bytes", "3003"], 0),
                     (["--leak-kinds", "all", "--max-leaked-bytes", "3002"], 1),
                     (["--leak-kinds", "all", "--max-leaked-blocks", "3"], 0),
                     (["--max-leaked-bytes", "definite=1000"], 0),
                     (["--max-leaked-bytes", "definite=999"], 1),
                     (["--max-leaked-blocks", "definite=1"], 0),
                     (["--leak-kinds", "all", "--max-leaked-bytes", "definite=1000"], 1),
                     (["--leak-kinds", "all", "--max-leaked-bytes", "definite=1K",
                       "--max-leaked-bytes", "possible=1002", "--max-leaked-bytes",
                       "reachable=1001"], 0),
                     (["--leak-kinds", "all", "--max-leaked-bytes", "definite=1K",
                       "--max-leaked-bytes", "possible=1002", "--max-leaked-bytes",
                       "reachable=1000"], 1),
                     (["--leak-kinds", "all", "--max-leaked-bytes", "definite=1K",
                       "--max-leaked-bytes", "3003"], 0),
                     (["--leak-kinds", "all", "--max-leaked-bytes", "definite=1K",
                       "--max-leaked-bytes", "3002"], 1)]:
    code, j = check_json(cls, *opts)
    check(code == expect, "check %s: exit %d (%s)" % (" ".join(opts), expect, failed_classes(j)))
code, j = check_json(cls, "--leak-kinds", "all", "--max-leaked-bytes", "definite=1000")
check(failed_classes(j) == [NAME["possible"], NAME["reachable"]]
      and j["categories"]["leaks"]["reachability"][NAME["definite"]]["max_leaked_bytes"] == 1000,
      "check: a class with a limit of its own is tolerated up to it, one without fails")

# Suppressions: leak: matches every class, leak[KINDS]: only those.
for supp, opts, expect, classes in [
        ("leak[definite]:leaky_site\n", [], 0, []),
        ("leak[definite]:leaky_site\n", ["--leak-kinds", "all"], 1,
         [NAME["possible"], NAME["reachable"]]),
        ("leak[possible,reachable]:leaky_site\n", [], 1, [NAME["definite"]]),
        ("leak[possible,reachable]:leaky_site\n", ["--leak-kinds", "all"], 1, [NAME["definite"]]),
        ("leak:leaky_site\n", ["--leak-kinds", "all"], 0, []),
        ("*:leaky_site\n", ["--leak-kinds", "all"], 0, [])]:
    f = write("r.supp", supp)
    code, j = check_json(cls, "--suppressions", f, *opts)
    check(code == expect and failed_classes(j) == classes and not j["unused_suppressions"],
          "suppression %s %s: exit %d, failing %s" % (supp.strip(), " ".join(opts), expect,
                                                       failed_classes(j)))
code, j = check_json(cls, "--suppressions", write("r.supp", "leak[definite]:leaky_site\n"),
                     "--leak-kinds", "all")
check(j["categories"]["leaks"]["reachability"][NAME["definite"]]["suppressed"] == 1
      and j["categories"]["leaks"]["reachability"][NAME["possible"]]["suppressed"] == 0,
      "suppression leak[definite]: counted as suppressed in that class only")
code, r = status(leak, "--suppressions", write("r.supp", "leak[indirect]:leaky_site\n"))
check(code == 1 and "matched nothing" in r.stderr,
      "suppression leak[indirect]: does not match the unknown leak, and is stale")
for bad in ("leak[bogus]:x\n", "leak[]:x\n", "mismatch[definite]:x\n", "leak[definite:x\n",
            "leak[none]:x\n"):
    code, r = status(cls, "--suppressions", write("bad.supp", bad))
    check(code == 2 and r.stderr.startswith("alloctrace: ") and "bad.supp:1" in r.stderr
          and r.stderr.count("\n") == 1, "suppression %s: a usage error, one line" % bad.strip())

# Baselines are per class: the same site in another class is a new problem.
reach_all = classify(leak, "reach-all.db", {1000: "reachable", 1001: "reachable", 1002: "reachable"})
cls2 = classify(leak2, "classes2.db", {1000: "definite", 1001: "reachable", 1002: "possible"})
for trace, base, opts, expect, what in [
        (cls2, cls, ["--leak-kinds", "all"], 0, "the same sites in the same classes pass"),
        (cls, reach_all, [], 1, "still reachable in the baseline does not excuse definitely lost"),
        (cls, reach_all, ["--leak-kinds", "reachable"], 0,
         "still reachable in both: excused"),
        (cls, noscan, [], 1, "an unscanned baseline does not excuse definitely lost"),
        (noscan, cls, [], 1, "a scanned baseline does not excuse unknown"),
        (leak2, leak, [], 0, "unknown in both: excused")]:
    code, j = check_json(trace, "--baseline", base, *opts)
    check(code == expect, "baseline %s against %s %s: %s (exit %d)"
          % (trace, base, " ".join(opts), what, code))
code, j = check_json(cls2, "--baseline", cls, "--leak-kinds", "all")
check([j["categories"]["leaks"]["reachability"][NAME[k]]["in_baseline"]
       for k in ("definite", "possible", "reachable")] == [1, 1, 1],
      "baseline: each class counts what the baseline excused")

for argv in (["--leak-kinds", "bogus"], ["--leak-kinds", ""], ["--leak-kinds", "definite,"],
             ["--leak-kinds", "definite,all"], ["--max-leaked-bytes", "bogus=1"],
             ["--max-leaked-bytes", "definite=x"], ["--max-leaked-bytes", "possible=1"],
             ["--leak-kinds", "none", "--max-leaked-bytes", "1"]):
    r = tool("check", cls, *argv)
    check(r.returncode == 2 and r.stdout == "" and r.stderr.startswith("alloctrace: check: ")
          and "\n" in r.stderr, "check %s: usage error (2): %s" % (" ".join(argv),
                                                                r.stderr.split("\n")[0]))

# A class the scan does not have (a newer or hostile trace) is unknown, never a guess.
odd = classify(leak, "odd.db", {})
sql(odd, "INSERT INTO reachability SELECT alloc_seq, 99 FROM leaks")
d = report_json(odd)
code, j = check_json(odd)
check([x["reachability"] for x in d["leak_sites"]] == ["unknown"] and failed_classes(j)
      == ["unknown"], "a class code vocab.h does not have reads as unknown, and is gated")

# A killed program: no scan; its leaks are unknown, with their stacks, and gated.
killed = os.path.join(work, "killed.db")
p = subprocess.Popen([alloctrace, "run", "-q", "-o", killed, "--force", "--", prog, "kill"],
                     stdout=subprocess.PIPE, text=True, cwd=work)
line = p.stdout.readline().split()
os.kill(int(line[1]), signal.SIGKILL)
p.communicate(timeout=120)
d = report_json("killed.db")
check(d["program"]["end"] == "died" and {x["reachability"] for x in d["leak_sites"]} == {"unknown"}
      and d["summary"]["reachability"]["unknown"]["blocks"] >= 1000
      and any(f["function"] == "keep_site" for x in d["leak_sites"]
              for f in x["allocated_at"]["frames"]),
      "killed: every leak is unknown, with its stack")
r = tool("report", "killed.db")
check("Reachability unknown, by allocation site" in r.stdout and "the program died" in r.stdout,
      "killed: report says the program died before its memory could be scanned")
code, r = status("killed.db")
check(code == 1 and "reachability unknown FAIL" in r.stdout, "killed: check fails on unknown")

# run --check counts the classes --leak-kinds names.
for kinds, expect in [("all", 86), ("none", 0)]:
    r = subprocess.run([alloctrace, "run", "--check", "--leak-kinds", kinds, "-o",
                        os.path.join(work, "rc.db"), "--force", "--", prog, "leak"],
                       capture_output=True, text=True, cwd=work, timeout=120)
    by_class = re.search(r"(?m)^alloctrace: {3}leaked by reachability: (%s) \d+ blocks?, "
                         % "|".join(LABEL.values()), r.stderr)
    check(r.returncode == expect and "leaked 3 blocks" in r.stderr and by_class is not None,
          "run --check --leak-kinds %s: exit %d, the summary has the leaks by class (%s)"
          % (kinds, expect, r.stderr.strip()[-160:]))
r = subprocess.run([alloctrace, "run", "--check", "--leak-kinds", "nonsense", "--", prog, "leak"],
                   capture_output=True, text=True, cwd=work, timeout=120)
check(r.returncode == 2 and r.stderr.count("\n") == 1 and "--leak-kinds" in r.stderr
      and "leaked" not in r.stdout, "run --leak-kinds nonsense: one line, exit 2, nothing run")

# The HTML page carries the classes (viewer tests check what it shows).
hd = html_data(cls)
check([(c["name"], c["kind"], c["label"], c["gated"], c["color"]) for c in hd["reach"]]
      == [(n, k, l, g, c) for n, _, k, l, g, c in REACH],
      "html: the page's classes are vocab.h's, in its order")
check(sorted((hd["reach"][s[5]]["name"], s[2]) for s in hd["leak_sites"])
      == [(NAME["definite"], 1000), (NAME["possible"], 1002), (NAME["reachable"], 1001)],
      "html: every leak site row carries its class, still reachable ones included")
check({c["name"]: (c["blocks"], c["bytes"]) for c in hd["reach"]}[NAME["possible"]] == (1, 1002),
      "html: blocks and bytes per class")

# ---- usage -----------------------------------------------------------------------------------------------
for argv in (["report"], ["report", leak, "--format", "pdf"], ["report", leak, "--top", "x"],
             ["report", leak, leak2, "--format", "json"], ["report", leak, "--color", "sometimes"],
             ["query", leak],
             ["query", leak, "SELECT 1", "--format", "xml"]):
    r = tool(*argv)
    check(r.returncode == 2, "%s: usage error (2)" % " ".join(argv))

if not update:
    shutil.rmtree(work, ignore_errors=True)
finish()
