#!/usr/bin/env python3
"""`alloctrace report --format sarif|junit` as CI tools take them: SARIF
that Microsoft's SARIF multitool validates (tests/sarif/package-lock.json
pins it; scripts/setup.sh installs it), with URIs relative to %SRCROOT%
under --source-root (by default the git top level of the current
directory), partialFingerprints distinct per site and the same from run to
run; JUnit whose names are the same from run to run and name the program;
several traces in one document.

    sarif_test.py ALLOCTRACE PRELOAD_PROG PRELOAD_CXX TREE_PROG WORKDIR SOURCE_ROOT SARIF_DIR
"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

from tap import check, finish

alloctrace, prog, cxx, tree, workdir, source_root, sarif_dir = (os.path.abspath(a)
                                                               for a in sys.argv[1:8])
source_root = os.path.realpath(source_root)
work = os.path.join(workdir, "sarif-%d" % os.getpid())
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
FP = "alloctraceStack/v3"


def tool(*argv, cwd=work):
    return subprocess.run([alloctrace, *argv], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def trace(name, *program):
    """A trace (or, for a name ending in "/", a directory of traces) of
    PROGRAM, made by `alloctrace run`."""
    path = os.path.join(work, name)
    r = subprocess.run([alloctrace, "run", "-q", "-o", path, "--force", "--", *program],
                       capture_output=True, text=True, cwd=work, timeout=120)
    if not os.path.exists(path):
        sys.exit("cannot make %s: %s" % (name, r.stderr))
    return path


def sarif(*argv, cwd=work):
    r = tool("report", "--format", "sarif", *argv, cwd=cwd)
    check(r.returncode == 0 and r.stderr == "", "report --format sarif %s: exit 0 (%s)"
          % (" ".join(os.path.basename(a.rstrip("/")) for a in argv), r.stderr.strip()))
    return json.loads(r.stdout)


def junit(*argv):
    r = tool("report", "--format", "junit", *argv)
    check(r.returncode == 0 and r.stderr == "", "report --format junit: exit 0 (%s)"
          % r.stderr.strip())
    return ET.fromstring(r.stdout)


def fingerprints(log):
    return [x["partialFingerprints"][FP] for x in log["runs"][0]["results"]]


leak = [trace("leak%d.db" % i, prog, "leak") for i in (1, 2)]
findings = [trace("findings%d.db" % i, prog, "findings") for i in (1, 2)]
mistakes = [trace("cxx%d.db" % i, cxx, "mistakes") for i in (1, 2)]
# tree_prog: nine leak sites in three functions, and a forked child.
trees = [trace("tree%d/" % i, tree) for i in (1, 2)]
check(all(len(os.listdir(d)) == 2 for d in trees), "tree_prog: two traces (parent, child) a run")
root = ("--source-root", source_root)

# ---- fingerprints ---------------------------------------------------------------------------
for runs in (leak, findings, mistakes, trees):
    logs = [sarif(x, "--show-reachable", *root) for x in runs]
    fps = [fingerprints(x) for x in logs]
    name = os.path.basename(runs[0].rstrip("/"))
    check(fps[0] and len(set(fps[0])) == len(fps[0]),
          "%s: a fingerprint per result, none shared (%d results)" % (name, len(fps[0])), fps[0])
    check(sorted(fps[0]) == sorted(fps[1]),
          "%s: the same fingerprints in a second run of the program" % name, fps)
# Sites that differ only in a line, or in callers below the first frame,
# are distinct results.
tl = sarif(trees[0], "--show-reachable", *root)["runs"][0]["results"]
at_b = [x for x in tl if x["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
        == "tree_leaf_b" and x["ruleId"] == "leak/definitely_lost"]
check(len(at_b) >= 2 and len({x["partialFingerprints"][FP] for x in at_b}) == len(at_b),
      "tree_prog: sites of one leaf at different depths have their own fingerprints (%d)"
      % len(at_b))
log = sarif(findings[0], *root)
# Under another source root the files are the same, the fingerprints too:
# a checkout elsewhere keeps its alerts.
elsewhere = os.path.join(work, "elsewhere")
os.symlink(source_root, elsewhere)
# (realpath'd: a symlink to the root is the root)
check(fingerprints(sarif(findings[0], "--source-root", elsewhere)) == fingerprints(log),
      "fingerprints: --source-root through a symlink gives the same")

# ---- URIs relative to %SRCROOT% ---------------------------------------------------------------
def artifact_locations(value):
    if isinstance(value, dict):
        if "artifactLocation" in value:
            yield value["artifactLocation"]
        for v in value.values():
            yield from artifact_locations(v)
    elif isinstance(value, list):
        for v in value:
            yield from artifact_locations(v)


log = sarif(leak[0], findings[0], mistakes[0], *root)
run = log["runs"][0]
locs = list(artifact_locations(run["results"]))
inside = [a for a in locs if a.get("uriBaseId") == "SRCROOT"]
outside = [a for a in locs if "uriBaseId" not in a]
check(run["originalUriBaseIds"] == {"SRCROOT": {"uri": "file://" + source_root + "/"}},
      "originalUriBaseIds: SRCROOT is the source root, ending in a slash",
      run.get("originalUriBaseIds"))
check(inside and all(not a["uri"].startswith(("/", "file:")) and
                     os.path.isfile(os.path.join(source_root, a["uri"])) for a in inside),
      "files under the root: relative URIs that name files there (%d)" % len(inside),
      [a["uri"] for a in inside][:5])
check({a["uri"] for a in inside} >= {"tests/preload_prog.c", "tests/preload_cxx.cc"},
      "the test programs' sources are tests/preload_prog.c and tests/preload_cxx.cc")
check(all(a["uri"].startswith("file:///") for a in outside),
      "files outside the root: absolute file:// URIs without uriBaseId (%d)" % len(outside),
      [a["uri"] for a in outside][:5])
# A root the sources are not under: every URI absolute.
other = os.path.join(work, "other-root")
os.makedirs(other)
locs = list(artifact_locations(sarif(leak[0], "--source-root", other)["runs"][0]["results"]))
check(locs and all("uriBaseId" not in a and a["uri"].startswith("file:///") for a in locs),
      "--source-root elsewhere: absolute URIs only")
# The default: the git top level of the current directory, else the directory.
repo = os.path.join(work, "repo")
os.makedirs(os.path.join(repo, "sub"))
r = subprocess.run(["git", "init", "-q", repo], capture_output=True, text=True)
check(r.returncode == 0, "git init", r.stderr)
d = sarif(leak[0], cwd=os.path.join(repo, "sub"))
check(d["runs"][0]["originalUriBaseIds"]["SRCROOT"]["uri"] == "file://" + repo + "/",
      "default --source-root: the git top level of the current directory",
      d["runs"][0].get("originalUriBaseIds"))
plain = tempfile.mkdtemp(prefix="alloctrace-sarif-")
try:
    d = sarif(leak[0], cwd=plain)
    check(d["runs"][0]["originalUriBaseIds"]["SRCROOT"]["uri"]
          == "file://" + os.path.realpath(plain) + "/",
          "default --source-root outside git: the current directory")
finally:
    shutil.rmtree(plain)
r = tool("report", leak[0], "--format", "sarif", "--source-root", os.path.join(work, "nowhere"))
check(r.returncode == 2 and r.stdout == "" and len(r.stderr.splitlines()) >= 1
      and "--source-root" in r.stderr.splitlines()[0],
      "--source-root that is no directory: usage error (2)", r.stderr)

# ---- rules ----------------------------------------------------------------------------------
rules = run["tool"]["driver"]["rules"]
ids = [x["id"] for x in rules]
check(len(ids) == len(set(ids)) and all(
    x["shortDescription"]["text"] and x["fullDescription"]["text"] and x["help"]["text"]
    and x["name"].isalnum() for x in rules),
    "rules: distinct ids, each with a name, short and full descriptions and help (%s)" % ids)
check([i for i in ids if i.startswith("leak/")] == ["leak/definitely_lost", "leak/indirectly_lost",
                                                    "leak/possibly_lost", "leak/still_reachable",
                                                    "leak/unknown"]
      and {"layout_mismatch", "family_mismatch", "double_free", "invalid_free",
           "zero_size"} <= set(ids),
      "rules: one per class of leak and one per finding kind")
kinds = {x["ruleId"] for x in run["results"]}
check(all(ids[x["ruleIndex"]] == x["ruleId"] for x in run["results"]) and len(kinds) >= 5,
      "results: ruleIndex names the ruleId; %d kinds in this log (%s)" % (len(kinds), sorted(kinds)))

# ---- Microsoft's SARIF multitool --------------------------------------------------------------
multitool = os.path.join(sarif_dir, "@microsoft", "sarif-multitool-linux", "Sarif.Multitool")
if not os.access(multitool, os.X_OK):
    check(False, "the SARIF multitool is installed (scripts/setup.sh: npm ci in tests/sarif)",
          multitool)
    finish()


def validate(path):
    """The multitool's `validate` on PATH (SARIF's rules and GitHub
    Advanced Security's): its exit status and its findings [(level, id)]."""
    out = path + ".validation.sarif"
    r = subprocess.run([multitool, "validate", path, "-o", out, "--log", "ForceOverwrite",
                        "--rule-kind", "Sarif;Ghas"],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, DOTNET_CLI_TELEMETRY_OPTOUT="1"))
    try:
        v = json.load(open(out, encoding="utf-8-sig"))
    except (OSError, ValueError):
        return r.returncode, None, r.stdout + r.stderr
    vr = v["runs"][0]
    found = [(x.get("level", "warning"), x["ruleId"], x["message"].get("text", x["message"]))
             for x in vr.get("results", [])]
    found += [("error", "notification", n["message"]["text"])
              for inv in vr.get("invocations", [])
              for n in inv.get("toolExecutionNotifications", []) if n.get("level") == "error"]
    return r.returncode, found, r.stdout + r.stderr


everything = os.path.join(work, "everything.sarif")
r = tool("report", "--format", "sarif", "--show-reachable", leak[0], findings[0], mistakes[0],
         trees[0], *root, "-o", everything)
check(r.returncode == 0, "report: leaks of two classes and several finding kinds in one log")
rc, found, out = validate(everything)
errors = [f for f in (found or []) if f[0] == "error"]
check(rc == 0 and found is not None and not errors,
      "multitool validate: no errors (%s)" % ([f[:2] for f in found] if found else out.strip()),
      errors or out)
# It does find errors: a log that breaks the schema fails.
broken = json.load(open(everything))
broken["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
del broken["runs"][0]["results"][0]["message"]
with open(os.path.join(work, "broken.sarif"), "w") as f:
    json.dump(broken, f)
rc, found, out = validate(os.path.join(work, "broken.sarif"))
check(rc != 0 or any(f[0] == "error" for f in (found or [])),
      "multitool validate: a result without a message and with line 0 is an error", found or out)

# ---- several traces: one document ----------------------------------------------------------------
log = sarif(leak[0], findings[0], mistakes[0], *root)
check(len(log["runs"]) == 1 and len(log["runs"][0]["properties"]["traces"]) == 3
      and sorted(fingerprints(log)) == sorted(sum((fingerprints(sarif(x, *root))
                                                   for x in (leak[0], findings[0], mistakes[0])),
                                                  [])),
      "sarif of three traces: one run, the three traces, the results of each")
log = sarif(trees[0], *root)
check(len(log["runs"]) == 1 and len(log["runs"][0]["properties"]["traces"]) == 2
      and {tuple(x["properties"]["traces"]) for x in log["runs"][0]["results"]} == {(0,), (1,)},
      "sarif of a directory (parent, child): one run, results of both")
# A site in two traces is one result (one alert in code scanning), naming both.
one = sarif(leak[0], *root)["runs"][0]["results"]
log = sarif(leak[0], leak[1], *root)
res = log["runs"][0]["results"]
check(len(res) == len(one) and all(x["properties"]["traces"] == [0, 1] for x in res)
      and [x["properties"]["bytes"] for x in res] == [2 * x["properties"]["bytes"] for x in one]
      and all(x["message"]["text"].endswith("(in 2 traced processes)") for x in res),
      "sarif of two traces of one program: a result per site, naming both traces, bytes added",
      [x["message"]["text"] for x in res])
r = tool("report", "--format", "json", leak[0], leak[1])
check(r.returncode == 2 and r.stdout == "", "json of several traces: usage error (2)")


def junit_names(x):
    return [(s.get("name"), [c.get("name") for c in s.iter("testcase")])
            for s in x.iter("testsuite")]


for runs in (leak, findings, mistakes, trees):
    names = [junit_names(junit(x, *root)) for x in runs]
    name = os.path.basename(runs[0].rstrip("/"))
    check(names[0] == names[1], "junit %s: the same names in a second run" % name, names)
    flat = [n for s, cases in names[0] for n in [s] + cases]
    check(all("#" not in n for n in flat) and len(set(names[0][0][1])) == len(names[0][0][1]),
          "junit %s: no ordinals, no two cases of a suite named alike" % name, names[0])
x = junit(leak[0], findings[0], mistakes[0], trees[0], *root)
suites = [s.get("name") for s in x.iter("testsuite")]
check(suites == ["preload_prog leak", "preload_prog findings", "preload_cxx mistakes", "tree_prog",
                 "tree_prog (forked child)"],
      "junit of four traces and a directory: a testsuite each, named after the program and "
      "its arguments", suites)
cases = {s.get("name"): s for s in x.iter("testsuite")}
leak_case = cases["preload_prog leak"].find("testcase")
check(leak_case.get("name") == "definitely lost at leaky_site (preload_prog.c:82)"
      and leak_case.get("file") == "tests/preload_prog.c"
      and leak_case.find("failure") is not None,
      "junit: a leak case named after its class and site, its file relative to the root")
check(int(x.get("tests")) == sum(int(s.get("tests")) for s in x.iter("testsuite"))
      and int(x.get("failures")) == sum(int(s.get("failures")) for s in x.iter("testsuite")),
      "junit: testsuites' totals add up")
pids = set()
for t in (leak[0], findings[0]):
    db = sqlite3.connect(t)
    pids |= {str(v) for (v,) in db.execute("SELECT value FROM meta WHERE key = 'pid'")}
    db.close()
check(not any(p in n for p in pids for n in suites),
      "junit: no pid in the suites' names")

finish()
