/* The run protocol: how `alloctrace run` (tools/cmd_run.c) and the preload
 * library (preload.c) find each other.  Internal: both sides are built
 * from this tree, so nothing here is a stable interface; docs/cli.md
 * describes it for users.
 *
 * `alloctrace run` creates a spool (spool.h), names the trace, and passes
 * both to PROGRAM through the environment, with the options of the run.
 * The preload library of the process whose pid is AT_ENV_PID writes that
 * spool; every other traced process (a forked child, a child that was
 * executed with AT_ENV_FOLLOW_CHILDREN, an image that replaced PROGRAM by
 * exec, a program run with plain LD_PRELOAD) creates a spool of its own,
 * named after its trace, which `alloctrace run` (children, once PROGRAM has
 * ended) or `alloctrace recover` turns into that trace:
 *
 *   trace of the run              AT_ENV_OUTPUT, else alloctrace.PROG.PID.db
 *   spool `alloctrace run` reads  DIR/.alloctrace.RUNPID.spool  (DIR: the trace's)
 *   trace of another process      TRACE-without-.db.PID.db
 *   its spool                     that trace + .spool
 *
 * Only string formatting here (no allocation beyond snprintf's), so the
 * preload library may call these before and during its own start.
 */
#ifndef AT_RUN_PROTOCOL_H
#define AT_RUN_PROTOCOL_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "spool.h"

/* ---- environment: set by `alloctrace run`, read by the preload library ---- */

#define AT_ENV_SPOOL "ALLOCTRACE_SPOOL"   /* the spool `alloctrace run` reads */
#define AT_ENV_OUTPUT "ALLOCTRACE_OUTPUT" /* the trace of the run */
#define AT_ENV_PID "ALLOCTRACE_PID"       /* the pid that writes AT_ENV_SPOOL */
#define AT_ENV_RUN "ALLOCTRACE_RUN"       /* the pid of `alloctrace run`: in every spool's header */
/* Set by the preload library in the environment of an exec it traces:
 * "PID:TRACE", the trace of the image being replaced (a trace's meta
 * exec_from, when PID is the new image's own). */
#define AT_ENV_EXEC_FROM "ALLOCTRACE_EXEC_FROM"
/* Every trace of the run in this directory, named PROG.PID.db (`alloctrace
 * run --output-dir`; test runners may set it themselves). */
#define AT_ENV_OUTPUT_DIR "ALLOCTRACE_OUTPUT_DIR"
#define AT_ENV_DEPTH "ALLOCTRACE_DEPTH"   /* frames per backtrace, 1..AT_MAX_STACK_DEPTH */
#define AT_ENV_UNWIND "ALLOCTRACE_UNWIND" /* AT_UNWIND_VALUE_FP or _DWARF */
/* AT_FLAG_ON: executed children are traced too; otherwise the library
 * takes itself out of LD_PRELOAD at start. */
#define AT_ENV_FOLLOW_CHILDREN "ALLOCTRACE_FOLLOW_CHILDREN"
/* AT_FLAG_ON: abort at the first bad release, once its record is spooled. */
#define AT_ENV_ABORT_ON_FINDING "ALLOCTRACE_ABORT_ON_FINDING"
/* AT_FLAG_OFF: no reachability scan when the program ends (its leaks are
 * then of reachability unknown). */
#define AT_ENV_LEAK_SCAN "ALLOCTRACE_LEAK_SCAN"
/* AT_FLAG_OFF: releases record no backtrace (allocations.free_stack NULL). */
#define AT_ENV_RELEASE_STACKS "ALLOCTRACE_RELEASE_STACKS"

#define AT_FLAG_ON "1"
#define AT_FLAG_OFF "0"
#define AT_UNWIND_VALUE_FP "fp"
#define AT_UNWIND_VALUE_DWARF "dwarf"

/* ---- environment read by the alloctrace tool and the trace writer only ---- */

#define AT_ENV_PRELOAD "ALLOCTRACE_PRELOAD" /* where `alloctrace run` finds the library */
#define AT_ENV_TIMING "ALLOCTRACE_TIMING"   /* print how long each step of finishing takes */
#define AT_ENV_DEBUG "ALLOCTRACE_DEBUG"     /* print SQLite's message for a failed write */
/* seconds of work before progress shows on a terminal (default 1) */
#define AT_ENV_PROGRESS_AFTER "ALLOCTRACE_PROGRESS_AFTER"
/* For the tests: the spool reader kills its own process (SIGKILL) right
 * after its Nth commit, before it gives that commit's chunks back: the
 * moment a recover must not read a record twice.  "late": right after
 * the first commit that set lifetimes aside in lifetimes_late; "fold":
 * right after the fourth commit past a lifetime folded (run --aggregate). */
#define AT_ENV_FAULT_DIE_AFTER_COMMIT "ALLOCTRACE_FAULT_DIE_AFTER_COMMIT"
/* For the tests: the program's tracer drops every Nth release record it
 * would spool and counts it lost, as when it has no memory for a thread:
 * a release the trace never sees of a block the exit scan finds gone. */
#define AT_ENV_FAULT_DROP_RELEASES "ALLOCTRACE_FAULT_DROP_RELEASES"

/* ---- file names -------------------------------------------------------------- */

#define AT_PRELOAD_NAME "liballoctrace_preload.so"
#define AT_TRACE_SUFFIX ".db"
#define AT_SPOOL_SUFFIX ".spool"
#define AT_RUN_SPOOL_PREFIX ".alloctrace." /* + RUNPID + AT_SPOOL_SUFFIX */

/* The length of `s` without `suffix`, or strlen(s) when it does not end so. */
static inline size_t at__run_stem_len(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0 ? n - k : n;
}

/* The trace of a run without AT_ENV_OUTPUT: alloctrace.PROG.PID.db in the
 * working directory, PROG the last component of the program's path. */
static inline void at__run_default_trace(char *buf, size_t size, const char *prog, pid_t pid)
{
    const char *base = strrchr(prog, '/');
    snprintf(buf, size, "alloctrace.%s.%ld" AT_TRACE_SUFFIX, base ? base + 1 : prog, (long)pid);
}

/* The trace of process `pid` other than the run's own: TRACE-without-.db.PID.db. */
static inline void at__run_child_trace(char *buf, size_t size, const char *trace, pid_t pid)
{
    snprintf(buf, size, "%.*s.%ld" AT_TRACE_SUFFIX, (int)at__run_stem_len(trace, AT_TRACE_SUFFIX),
             trace, (long)pid);
}

/* A trace of its own for process `pid` in the output directory `dir`
 * (AT_ENV_OUTPUT_DIR): DIR/PROG.PID.db, PROG the last component of `prog`. */
static inline void at__run_dir_trace(char *buf, size_t size, const char *dir, const char *prog,
                                     pid_t pid)
{
    const char *base = strrchr(prog, '/');
    size_t d = strlen(dir);
    snprintf(buf, size, "%s%s%s.%ld" AT_TRACE_SUFFIX, dir, d && dir[d - 1] == '/' ? "" : "/",
             base ? base + 1 : prog, (long)pid);
}

/* The `n`th choice (n >= 2) when the trace `trace` exists already (an image
 * exec'd by one of the same name and pid): TRACE-without-.db.N.db. */
static inline void at__run_numbered_trace(char *buf, size_t size, const char *trace, int n)
{
    snprintf(buf, size, "%.*s.%d" AT_TRACE_SUFFIX, (int)at__run_stem_len(trace, AT_TRACE_SUFFIX),
             trace, n);
}

/* The spool a process writes for the trace `trace` (not the run's own). */
static inline void at__run_spool_of(char *buf, size_t size, const char *trace)
{
    snprintf(buf, size, "%s" AT_SPOOL_SUFFIX, trace);
}

/* The trace a spool left by a process becomes: SPOOL without .spool, or
 * SPOOL.db when it is named otherwise. */
static inline void at__run_trace_of_spool(char *buf, size_t size, const char *spool)
{
    size_t stem = at__run_stem_len(spool, AT_SPOOL_SUFFIX);
    if (stem < strlen(spool))
        snprintf(buf, size, "%.*s", (int)stem, spool);
    else
        snprintf(buf, size, "%s" AT_TRACE_SUFFIX, spool);
}

/* The spool `alloctrace run` (pid `run_pid`) creates and reads: in the
 * directory of `trace` (the working directory when it has none). */
static inline void at__run_reader_spool(char *buf, size_t size, const char *trace, pid_t run_pid)
{
    const char *slash = strrchr(trace, '/');
    int dir = slash ? (int)(slash - trace + 1) : 0;
    snprintf(buf, size, "%.*s" AT_RUN_SPOOL_PREFIX "%ld" AT_SPOOL_SUFFIX, dir, trace,
             (long)run_pid);
}

/* A glob(3) pattern matching the spools of the other processes of the
 * run whose trace is `trace`. */
static inline void at__run_child_spool_glob(char *buf, size_t size, const char *trace)
{
    snprintf(buf, size, "%.*s.*" AT_TRACE_SUFFIX AT_SPOOL_SUFFIX,
             (int)at__run_stem_len(trace, AT_TRACE_SUFFIX), trace);
}

/* ---- who still writes a spool ------------------------------------------------------ */

/* The byte of a spool that each process writing it holds a lock on: the
 * header's second (the recorder's is the first, spool.c).  A POSIX record
 * lock (F_SETLK), not an open file description's: it belongs to the
 * process, so a forked child (which writes a spool of its own) or a vfork
 * child does not hold its parent's, and it goes when the process exits
 * or execs (the spool's descriptor is close-on-exec), however it ends.
 * `alloctrace recover` tests it: a pid, which may be reused, is never
 * asked. */
static inline struct flock at__run_writer_byte(short type)
{
    return (struct flock){.l_type = type, .l_whence = SEEK_SET, .l_start = 1, .l_len = 1};
}

/* Called by the process that writes the spool open at `fd`; 0 or -1
 * (errno is kept). */
static inline int at__run_hold_spool(int fd)
{
    int saved = errno;
    struct flock l = at__run_writer_byte(F_RDLCK);
    int rc = fcntl(fd, F_SETLK, &l);
    errno = saved;
    return rc;
}

/* The pid of a process that holds the writer's lock of the spool open at
 * `fd` (any, when several do), 0 when none does; -1 when the test fails
 * (then nothing is known). */
static inline pid_t at__run_spool_writer(int fd)
{
    struct flock l = at__run_writer_byte(F_WRLCK);
    if (fcntl(fd, F_OFD_GETLK, &l) != 0)
        return -1;
    return l.l_type == F_UNLCK ? 0 : l.l_pid > 0 ? l.l_pid : -1;
}

/* ---- the spool's header, as the tool reads it ----------------------------------- */

/* What the header of a spool says about its producer (spool.h). */
typedef struct at_spool_state {
    pid_t producer_pid; /* 0 until a producer attached */
    int closed;         /* the producer wrote its END record */
    int exec;           /* the producer's image called exec and that exec did not fail */
    pid_t run_pid;      /* the `alloctrace run` of the run, or 0 */
    pid_t writer;       /* a process that still writes it (at__run_spool_writer), or 0 */
} at_spool_state;

/* Reads the header of the spool at `path`; 0, or at__spool_open's
 * negative code (AT_E_INVALID: not a spool). */
static inline int at__spool_read_state(const char *path, at_spool_state *out)
{
    at_spool s = {.fd = -1, .windowed = 1}; /* the header is all it reads */
    int rc = at__spool_open(&s, path);
    if (rc)
        return rc;
    out->producer_pid = (pid_t)__atomic_load_n(&s.h->producer_pid, __ATOMIC_ACQUIRE);
    out->closed = (int)__atomic_load_n(&s.h->closed, __ATOMIC_ACQUIRE);
    out->exec = __atomic_load_n(&s.h->exec_seq, __ATOMIC_ACQUIRE) != 0;
    out->run_pid = (pid_t)__atomic_load_n(&s.h->run_pid, __ATOMIC_ACQUIRE);
    out->writer = at__run_spool_writer(s.fd);
    if (out->writer < 0) /* not known: taken as the producer still writing */
        out->writer = out->producer_pid > 0 ? out->producer_pid : 1;
    at__spool_close(&s);
    return 0;
}

#endif
