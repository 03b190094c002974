#!/usr/bin/env python3
"""The test-suite recipes of docs/ci.md, run on a small project with a clean
test and a leaking one: meson's --wrapper and a test setup, CMake/ctest
with a launcher, a Makefile.  Each must fail the leaking test only, log its
leak site (function, file:line) and trace, and leave one directory of
traces on which `alloctrace check DIR` gives one verdict naming it.

    ci_recipes_test.py ALLOCTRACE WORKDIR
"""
import glob
import os
import shutil
import subprocess
import sys

from tap import check, finish

alloctrace, workdir = (os.path.abspath(a) for a in sys.argv[1:3])
work = os.path.join(workdir, "ci-recipes-%d" % os.getpid())
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
env = {k: v for k, v in os.environ.items() if not k.startswith("ALLOCTRACE_")}
env["PATH"] = os.path.dirname(alloctrace) + os.pathsep + env.get("PATH", "")

SOURCES = {
    "ok_test.c": """#include <stdlib.h>
int main(void)
{
    void *volatile p = malloc(100);
    free(p);
    return 0;
}
""",
    "leaky_test.c": """#include <stdlib.h>
#include <string.h>
__attribute__((noinline)) static void leaky_helper(void)
{
    char *p = malloc(4242);
    memset(p, 1, 4242);
    __asm__ volatile("" : : "r"(p) : "memory");
}
int main(void)
{
    leaky_helper();
    return 0;
}
""",
    "meson.build": """project('recipes', 'c')
ok = executable('ok_test', 'ok_test.c', c_args : ['-g', '-O0'])
leaky = executable('leaky_test', 'leaky_test.c', c_args : ['-g', '-O0'])
test('ok', ok)
test('leaky', leaky)
alloctrace = find_program('alloctrace', required : false)
if alloctrace.found()
  add_test_setup('alloctrace',
    exe_wrapper : [alloctrace, 'run', '--check', '-q', '--'],
    env : {'ALLOCTRACE_OUTPUT_DIR' : meson.project_build_root() / 'alloctrace'})
endif
""",
    "CMakeLists.txt": """cmake_minimum_required(VERSION 3.20)
project(recipes C)
set(CMAKE_C_FLAGS "-g -O0")
enable_testing()
add_executable(ok_test ok_test.c)
add_executable(leaky_test leaky_test.c)
add_test(NAME ok COMMAND ok_test)
add_test(NAME leaky COMMAND leaky_test)
""",
    "Makefile": """CFLAGS = -g -O0
TESTS = ok_test leaky_test
TRACES = alloctrace-traces

leakcheck: $(TESTS)
\trm -rf $(TRACES)
\tfor t in $(TESTS); do alloctrace run -q --output-dir $(TRACES) -- ./$$t || exit 1; done
\talloctrace check $(TRACES)
""",
}
src = os.path.join(work, "project")
os.makedirs(src)
for name, text in SOURCES.items():
    with open(os.path.join(src, name), "w") as f:
        f.write(text)


def sh(cmd, cwd=src, extra=None):
    return subprocess.run(cmd, cwd=cwd, env=dict(env, **(extra or {})), capture_output=True,
                          text=True, timeout=300)


def judge(name, traces):
    """`alloctrace check DIR`: one verdict, the leaking test's trace named."""
    r = sh([alloctrace, "check", traces])
    fails = [l for l in r.stdout.splitlines() if l.startswith("FAIL ")]
    check(r.returncode == 1 and len(fails) == 1 and "/leaky_test." in fails[0]
          and "1 failed, 1 clean" in r.stdout,
          "%s: check DIR fails once, naming leaky_test (%s)" % (name, fails), r.stdout[-800:])
    leaky = glob.glob(os.path.join(traces, "leaky_test.*.db"))
    check(len(leaky) == 1, "%s: the directory holds leaky_test's trace" % name)
    return leaky[0] if leaky else "?"


def logged(name, text, trace):
    check("leaky_helper" in text and "leaky_test.c:" in text and "4242 B" in text
          and trace in text,
          "%s: the failing test's log names leaky_helper, its file:line, bytes and the trace"
          % name, text[-1500:])


# ---- meson: --wrapper ---------------------------------------------------------------------
mb = os.path.join(src, "mbuild")
r = sh(["meson", "setup", mb])
check(r.returncode == 0, "meson setup", r.stdout + r.stderr)
traces = os.path.join(mb, "alloctrace")
r = sh(["meson", "test", "-C", mb, "-q", "--wrapper", "alloctrace run --check -q --"],
       extra={"ALLOCTRACE_OUTPUT_DIR": traces})
# meson names the log after the wrapper: testlog-alloctrace.txt
logs = glob.glob(os.path.join(mb, "meson-logs", "testlog*.txt"))
testlog = "".join(open(p).read() for p in logs)
check(r.returncode != 0 and "exit status 86" in testlog,
      "meson --wrapper: the leaking test fails with 86", r.stdout[-800:])
check("Ok:                 1" in r.stdout and "Fail:               1" in r.stdout,
      "meson --wrapper: one test passes, one fails", r.stdout[-800:])
trace = judge("meson --wrapper", traces)
logged("meson --wrapper", testlog, trace)

# ---- meson: add_test_setup ---------------------------------------------------------------
shutil.rmtree(traces)
r = sh(["meson", "test", "-C", mb, "-q", "--setup", "alloctrace"])
check("Ok:                 1" in r.stdout and "Fail:               1" in r.stdout,
      "meson --setup alloctrace: one test passes, one fails", r.stdout[-800:])
trace = judge("meson --setup", traces)

# ---- CMake and ctest: the launcher -----------------------------------------------------------
cb = os.path.join(src, "cbuild")
r = sh(["cmake", "-S", src, "-B", cb, "-DCMAKE_CROSSCOMPILING_EMULATOR=alloctrace;run;--check;-q;--"])
check(r.returncode == 0, "cmake configure", r.stdout[-500:] + r.stderr)
r = sh(["cmake", "--build", cb])
check(r.returncode == 0, "cmake --build", r.stdout[-500:] + r.stderr)
traces = os.path.join(cb, "alloctrace")
r = sh(["ctest", "--test-dir", cb, "--output-on-failure"], extra={"ALLOCTRACE_OUTPUT_DIR": traces})
check(r.returncode != 0 and "50% tests passed" in r.stdout and "leaky" in r.stdout,
      "ctest: the leaking test fails, the clean one passes", r.stdout[-800:])
trace = judge("ctest", traces)
logged("ctest --output-on-failure", r.stdout, trace)

# ---- a Makefile ---------------------------------------------------------------------------
r = sh(["make", "leakcheck"])
traces = os.path.join(src, "alloctrace-traces")
check(r.returncode != 0 and "FAILED" in r.stdout and "leaky_helper" in r.stdout,
      "make leakcheck: fails on the leaking test", r.stdout[-800:] + r.stderr[-400:])
judge("make", traces)
r = sh(["make", "leakcheck", "TESTS=ok_test"])
check(r.returncode == 0 and "passed" in r.stdout, "make leakcheck: the clean test alone passes",
      r.stdout[-800:] + r.stderr[-400:])

shutil.rmtree(work, ignore_errors=True)
finish()
