/* Finishing traces, for `run` and `recover`: a spool read into a complete
 * trace, the spools a run's other processes left, and the summary printed
 * after either.  Completing itself is the library's (lib/trace/complete.h). */
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <alloctrace/alloctrace.h>

#include "cli.h"
#include "complete.h"
#include "run_protocol.h"
#include "spool.h"
#include "spool_reader.h"
#include "trace_model.h"

void cli_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "alloctrace: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(EXIT_TOOL);
}

/* "findings N: KIND n, KIND n" by kind, most frequent first. */
static void print_findings(const tm_summary *s)
{
    fprintf(stderr, "\nalloctrace:   findings %lld", s->findings);
    long long left[TM_KINDS];
    memcpy(left, s->by_kind, sizeof left);
    const char *sep = ": ";
    for (;;) {
        int best = -1;
        for (int k = 0; k < TM_KINDS; k++)
            if (left[k] > 0 && (best < 0 || left[k] > left[best]))
                best = k;
        if (best < 0)
            break;
        fprintf(stderr, "%s%s %lld", sep, tm_kind_name((enum tm_kind)best), left[best]);
        left[best] = 0;
        sep = ", ";
    }
    fputc('\n', stderr);
}

/* The leaks by class, those that hold any, on a line of their own:
 * "leaked by reachability: definitely lost 2 blocks, 48 B; still ...". */
static void print_reachability(const tm_summary *s)
{
    const char *sep = "\nalloctrace:   leaked by reachability: ";
    for (int r = 0; r < TM_REACHES; r++) {
        if (s->by_reach[r].blocks == 0)
            continue;
        char b[64];
        cli_bytes(b, sizeof b, s->by_reach[r].bytes);
        fprintf(stderr, "%s%s %lld block%s, %s", sep, tm_reach_label((enum tm_reach)r),
                s->by_reach[r].blocks, s->by_reach[r].blocks == 1 ? "" : "s", b);
        sep = "; ";
    }
}

/* The same figures `alloctrace report` starts with. */
static void print_summary(const char *path, const tm_summary *s)
{
    char b1[64], b2[64], b3[64], b4[64];
    cli_bytes(b1, sizeof b1, s->alloc_bytes);
    cli_bytes(b2, sizeof b2, s->peak_bytes);
    cli_bytes(b3, sizeof b3, s->leaked_bytes);
    cli_bytes(b4, sizeof b4, s->runtime_bytes);
    fprintf(stderr,
            "alloctrace: trace written to %s\n"
            "alloctrace:   allocation calls %lld, frees %lld, bytes allocated %s\n"
            "alloctrace:   peak live heap %s\n"
            "alloctrace:   leaked %lld blocks, %s",
            path, s->alloc_calls, s->free_calls, b1, b2, s->leaked_blocks, b3);
    if (s->runtime_blocks)
        fprintf(stderr, " (set aside: %lld blocks, %s kept by the C/C++ runtime)",
                s->runtime_blocks, b4);
    print_reachability(s);
    print_findings(s);
    if (s->lost_events > 0)
        fprintf(stderr, "alloctrace:   warning: %lld events could not be recorded (a block whose release"
                " was one of them counts as leaked unless the exit scan saw it released)\n",
                s->lost_events);
}

int cli_summarize(const char *path, int quiet, unsigned leak_kinds)
{
    sqlite3 *db;
    if (cli_open_trace(path, &db) != 0)
        return -1;
    tm_trace t;
    int rc = tm_load(&t, db, path, TM_SUMMARY | (quiet ? 0 : TM_PEAK));
    if (rc == 0 && !quiet)
        print_summary(path, &t.sum);
    long long counted = 0;
    for (int r = 0; r < TM_REACHES; r++)
        if ((leak_kinds >> r) & 1u)
            counted = tm_sat_add(counted, t.sum.by_reach[r].blocks);
    for (int k = 0; k < TM_KINDS; k++)
        if (tm_kind_gated((enum tm_kind)k))
            counted = tm_sat_add(counted, t.sum.by_kind[k]);
    int failing = rc == 0 ? counted > 0 : -1;
    if (rc != 0)
        fprintf(stderr, "alloctrace: %s: cannot read the trace\n", path);
    tm_free(&t);
    sqlite3_close(db);
    return failing;
}

static int recover_aggregated;

void cli_recover_aggregate(int on)
{
    recover_aggregated = on;
}

/* The directory part of `path` ("." when none), into `dir`. */
static void dir_of(const char *path, char *dir, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, size, ".");
    else if (slash == path)
        snprintf(dir, size, "/");
    else
        snprintf(dir, size, "%.*s", (int)(slash - path), path);
}

/* What the header of a run's spool names: the trace being written and the
 * one it becomes; 0 when it is not the spool of a run's reader.  `run`
 * names them before the program starts, so a run killed before its reader
 * took the spool's lock is found too (its program ran with no reader). */
static int run_spool_names(const char *spool, char *writing, char *final, size_t size)
{
    at_spool s = {.fd = -1};
    if (at__spool_open(&s, spool) != 0)
        return 0;
    int ok = s.h->writing[0] &&
             memchr(s.h->writing, '\0', sizeof s.h->writing) &&
             memchr(s.h->trace_name, '\0', sizeof s.h->trace_name);
    if (ok) {
        snprintf(writing, size, "%s", s.h->writing);
        snprintf(final, size, "%s", s.h->trace_name[0] ? s.h->trace_name : s.h->writing);
    }
    at__spool_close(&s);
    return ok && !strchr(writing, '/') && !strchr(final, '/');
}

/* Whether a process may still write `spool` (it holds the writer's lock,
 * run_protocol.h: a reused pid does not); a line if so. */
static int producer_running(const char *spool)
{
    at_spool_state st;
    if (at__spool_read_state(spool, &st) != 0 || st.closed || st.exec || st.writer <= 0)
        return 0;
    fprintf(stderr, "alloctrace: process %ld is still running; `alloctrace recover %s` once it"
                    " has ended\n",
            (long)st.writer, spool);
    return 1;
}

int cli_resume_run_spool(const char *spool, int quiet)
{
    char writing[256], final[256], dir[PATH_MAX], from[PATH_MAX + 260], to[PATH_MAX + 260];
    if (!run_spool_names(spool, writing, final, sizeof writing))
        return 1;
    dir_of(spool, dir, sizeof dir);
    snprintf(from, sizeof from, "%s/%s", dir, writing);
    snprintf(to, sizeof to, "%s/%s", dir, final);
    if (producer_running(spool))
        return -1;
    at_spool_reader *r;
    int rc = at__spool_reader_resume(spool, dir, &r);
    if (rc == AT_SPOOL_READER_BUSY) {
        fprintf(stderr, "alloctrace: %s: still being read by its `alloctrace run`\n", spool);
        return -1;
    }
    if (rc == AT_E_ACCESS || rc == AT_E_INVALID) /* no trace committed yet: from the spool */
        rc = at__spool_reader_open(spool, from, 1, &r);
    if (rc == 0)
        rc = at__spool_reader_finish(r, NULL);
    else if (rc == AT_E_EXISTS) /* completed before the reader died */
        rc = 0;
    if (rc) {
        fprintf(stderr, "alloctrace: completing %s: %s\n", from, cli_strerror(rc));
        return -1;
    }
    if (strcmp(from, to) != 0 && rename(from, to) != 0) {
        fprintf(stderr, "alloctrace: %s: cannot rename it to %s: %s\n", from, to, strerror(errno));
        return -1;
    }
    unlink(spool);
    return cli_summarize(to, quiet, tm_reach_gated()) < 0 ? -1 : 0;
}

int cli_resume_runs_of(const char *trace, int quiet)
{
    char dir[PATH_MAX], pattern[PATH_MAX + 32];
    dir_of(trace, dir, sizeof dir);
    snprintf(pattern, sizeof pattern, "%s/" AT_RUN_SPOOL_PREFIX "*" AT_SPOOL_SUFFIX, dir);
    const char *slash = strrchr(trace, '/');
    const char *base = slash ? slash + 1 : trace;
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0)
        return 0;
    int n = 0;
    for (size_t i = 0; i < g.gl_pathc && n >= 0; i++) {
        char writing[256], final[256];
        if (!run_spool_names(g.gl_pathv[i], writing, final, sizeof writing) ||
            strcmp(final, base) != 0)
            continue;
        n = cli_resume_run_spool(g.gl_pathv[i], quiet) == 0 ? n + 1 : -1;
    }
    globfree(&g);
    return n;
}

int cli_recover_spool(const char *spool, const char *output, int force, int quiet)
{
    char path[PATH_MAX];
    if (output)
        snprintf(path, sizeof path, "%s", output);
    else
        at__run_trace_of_spool(path, sizeof path, spool);
    at_spool_reader *r;
    int rc = at__spool_reader_open(spool, path, force, &r);
    if (!rc && recover_aggregated && (rc = at__spool_reader_aggregate(r)) != 0)
        at__spool_reader_abandon(r);
    if (rc) {
        fprintf(stderr, "alloctrace: %s: %s\n", rc == AT_E_INVALID ? spool : path,
                rc == AT_E_INVALID ? "not an alloctrace spool" : cli_strerror(rc));
        return -1;
    }
    rc = at__spool_reader_finish(r, NULL);
    if (rc) {
        fprintf(stderr, "alloctrace: writing %s: %s\n", path, cli_strerror(rc));
        return -1;
    }
    if (cli_summarize(path, quiet, tm_reach_gated()) < 0)
        return -1;
    unlink(spool);
    return 0;
}

/* Whether the spool at `spool` is finished and of this run; a line when
 * its process still runs. */
static int recoverable(const char *spool, const char *dir, pid_t run_pid)
{
    at_spool_state s;
    if (at__spool_read_state(spool, &s) != 0)
        return 0;
    if (dir ? s.run_pid != run_pid : s.run_pid != run_pid && s.run_pid != 0)
        return 0; /* another run's */
    return !producer_running(spool);
}

void cli_recover_children(const char *trace, const char *dir, pid_t run_pid, cli_paths *out)
{
    char pattern[PATH_MAX + 32];
    if (dir)
        snprintf(pattern, sizeof pattern, "%s/*" AT_TRACE_SUFFIX AT_SPOOL_SUFFIX, dir);
    else
        at__run_child_spool_glob(pattern, sizeof pattern, trace);
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0)
        return;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        if (!recoverable(g.gl_pathv[i], dir, run_pid))
            continue;
        char path[PATH_MAX];
        at__run_trace_of_spool(path, sizeof path, g.gl_pathv[i]);
        if (cli_recover_spool(g.gl_pathv[i], NULL, 0, 1) == 0)
            cli_paths_add(out, path);
    }
    globfree(&g);
}

/* Completion's steps as progress on a terminal (trace_model.c draws it). */
static void trace_progress(const char *step)
{
    static const char *current;
    if (!step) {
        tm_progress_done();
        current = NULL;
        return;
    }
    if (step != current)
        tm_progress_start(step);
    current = step;
    tm_progress(-1);
}

void cli_show_progress(void)
{
    at__trace_progress = trace_progress;
}
