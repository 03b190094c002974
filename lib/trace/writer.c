/* The SQLite sink: a tracer that writes its trace file from a background
 * thread of the traced process (at_tracer_open in tracer.h).
 *
 * The hot path appends records to per-thread buffers from a bounded pool
 * (tracer/buffers.h); the writer thread drains them, one transaction per
 * batch (every full buffer present when it wakes, or whatever is there
 * after 50 ms), through the row writers of rows.c.  A lifetime travels as
 * one record, appended when the block is released.  With
 * abort_on_finding, the thread that met a bad release waits until the
 * writer has committed everything up to it.  A SQLite error is remembered
 * and returned by at_tracer_close(); the writer keeps draining so that the
 * traced program is never blocked by a trace that can no longer be
 * written.
 *
 * At close (finish): the blocks still live become rows without a release
 * (the leaks), the module map is recorded, and the trace is completed like
 * every other (complete.h: the replay, symbols, runtime blocks, sites,
 * indexes, views, meta, finished = 1).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <alloctrace/alloctrace.h>

#include "buffers.h"
#include "clock.h"
#include "complete.h"
#include "schema.h"
#include "sqlw.h"
#include "tracer_internal.h"
#include "writer.h"

enum {
    BUF_SIZE = 256 * 1024,
    DEFAULT_BUFFER_LIMIT = 16 * 1024 * 1024,
    TAKE_TIMEOUT_MS = 50,
};

typedef struct sqlite_sink {
    at_tracer *t;
    at_bufq q;
    sqlite3 *db;
    at_sqlw *w; /* made by the writer thread, reused by finish */
    char *path;
    pthread_t thread;
    int error; /* the first error met by the writer */
    int argc;
    char **argv;

    /* abort_on_finding: the writer acknowledges it wrote up to a request. */
    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cv;
    uint64_t sync_request, sync_done;
} sqlite_sink;

static sqlite_sink *sink_of(at_tracer *t)
{
    return t->sink_state;
}

static void remember(sqlite_sink *k, int rc)
{
    if (rc && !k->error)
        k->error = rc;
}

/* ---- the sink's operations (tracer_internal.h) ------------------------------ */

static void sqlite_alloc(at_thread *th, const at_block_info *b, uint8_t op)
{
    (void)th;
    (void)b;
    (void)op; /* the lifetime is written whole when it ends, or at close */
}

static void sqlite_release(at_thread *th, const at_rec_lifetime *l)
{
    at__append(th, l, sizeof *l);
}

static at_buf *sqlite_get_buffer(at_tracer *t)
{
    return at__bufq_get(&sink_of(t)->q);
}

static void sqlite_submit_buffer(at_tracer *t, at_buf *b)
{
    at__bufq_submit(&sink_of(t)->q, b);
}

/* Waits until the writer has committed every buffer submitted so far,
 * the calling thread's included. */
static void sqlite_sync(at_tracer *t, at_thread *th)
{
    sqlite_sink *k = sink_of(t);
    if (th->buf) {
        at__bufq_submit(&k->q, th->buf);
        th->buf = NULL;
    }
    pthread_mutex_lock(&k->sync_mu);
    uint64_t mine = ++k->sync_request;
    pthread_mutex_unlock(&k->sync_mu);
    pthread_mutex_lock(&k->q.mu);
    pthread_cond_signal(&k->q.work);
    pthread_mutex_unlock(&k->q.mu);
    pthread_mutex_lock(&k->sync_mu);
    while (k->sync_done < mine && !k->error)
        pthread_cond_wait(&k->sync_cv, &k->sync_mu);
    pthread_mutex_unlock(&k->sync_mu);
}

static void sqlite_lock(at_tracer *t)
{
    sqlite_sink *k = sink_of(t);
    pthread_mutex_lock(&k->sync_mu);
    at__bufq_lock(&k->q);
}

static void sqlite_unlock(at_tracer *t)
{
    sqlite_sink *k = sink_of(t);
    at__bufq_unlock(&k->q);
    pthread_mutex_unlock(&k->sync_mu);
}

static int sqlite_close(at_tracer *t);

static const at_sink_ops sqlite_sink_ops = {
    .alloc = sqlite_alloc,
    .release = sqlite_release,
    .get_buffer = sqlite_get_buffer,
    .submit_buffer = sqlite_submit_buffer,
    .sync = sqlite_sync,
    .lock = sqlite_lock,
    .unlock = sqlite_unlock,
    .close = sqlite_close,
};

/* ---- the writer thread -------------------------------------------------------- */

static void write_buffer(sqlite_sink *k, const at_buf *b)
{
    size_t off = 0;
    while (off < b->used) {
        const unsigned char *p = b->data + off;
        size_t n = at__record_size(p, b->used - off);
        if (n == 0) {
            remember(k, AT_E_IO); /* cannot happen: a corrupt buffer */
            return;
        }
        at__sqlw_record(k->w, p); /* END: the tracer itself is read at close */
        off += n;
    }
}

static void exec(sqlite_sink *k, const char *sql)
{
    at__sqlw_exec(k->w, sql);
}

/* One batch: every buffer in `list`, in one transaction. */
static void write_batch(sqlite_sink *k, const at_buf *list)
{
    exec(k, "BEGIN");
    for (const at_buf *b = list; b; b = b->next)
        write_buffer(k, b);
    at__sqlw_flush(k->w);
    exec(k, "COMMIT");
    remember(k, at__sqlw_error(k->w));
    if (k->error && sqlite3_get_autocommit(k->db) == 0)
        sqlite3_exec(k->db, "ROLLBACK", NULL, NULL, NULL);
}

static void *writer_main(void *arg)
{
    sqlite_sink *k = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    k->t->helper_sp = (uintptr_t)__builtin_frame_address(0);
    __atomic_store_n(&k->t->helper_tid, (int32_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
    at__untraced = 1; /* SQLite's own allocations are not the program's */
    k->w = at__sqlw_new(k->db);
    for (;;) {
        pthread_mutex_lock(&k->sync_mu);
        uint64_t req = k->sync_request;
        pthread_mutex_unlock(&k->sync_mu);

        int stopping;
        at_buf *list = at__bufq_take(&k->q, TAKE_TIMEOUT_MS, &stopping);
        if (k->w)
            write_batch(k, list);
        else
            remember(k, AT_E_NOMEM);
        at__bufq_recycle(&k->q, list);

        pthread_mutex_lock(&k->sync_mu);
        k->sync_done = req;
        pthread_cond_broadcast(&k->sync_cv);
        pthread_mutex_unlock(&k->sync_mu);
        if (stopping && !list)
            break;
    }
    return NULL;
}

/* ---- meta ------------------------------------------------------------------------ */

/* The command line the trace records: the options' argv, else the
 * process's own, from /proc/self/cmdline. */
static int write_arguments(sqlite_sink *k)
{
    if (k->argv)
        return at__meta_append_arguments(k->db, k->argv, k->argc, NULL, 0);
    char *cmdline = NULL;
    size_t len = 0;
    FILE *f = fopen("/proc/self/cmdline", "re");
    if (f) {
        char chunk[4096];
        size_t got;
        while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
            char *grown = realloc(cmdline, len + got);
            if (!grown)
                break;
            cmdline = grown;
            memcpy(cmdline + len, chunk, got);
            len += got;
        }
        fclose(f);
    }
    int rc = at__meta_append_arguments(k->db, NULL, 0, cmdline, len);
    free(cmdline);
    return rc;
}

/* The meta rows of a new trace (complete.h), and what only this process
 * knows: its pid, executable and stack depth. */
static int write_start_meta(sqlite_sink *k)
{
    sqlite3 *db = k->db;
    char buf[4096];
    int rc = at__trace_begin(db);
    rc = rc ? rc : at__meta_set_int(db, AT_META_PID, getpid());
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n >= 0) {
        buf[n] = '\0';
        rc = rc ? rc : at__meta_set_text(db, AT_META_EXECUTABLE, buf);
    }
    rc = rc ? rc : at__meta_set_int(db, AT_META_STACK_DEPTH, k->t->depth);
    return rc ? rc : write_arguments(k);
}

/* ---- closing ----------------------------------------------------------------------- */

static void write_leak(const at_block_info *b, void *arg)
{
    at_rec_lifetime r;
    at__lifetime_from_block(&r, b);
    at__sqlw_lifetime(arg, &r);
}

/* Everything after the writer thread has stopped: what only the tracer
 * knows (the blocks still live, as leak rows), then the trace is completed
 * like every other (complete.h).  The module map came as MODULE records,
 * the last of them from at_tracer_close. */
static void finish(sqlite_sink *k)
{
    at_sqlw *w = k->w;
    exec(k, "BEGIN");
    at__live_foreach(&k->t->live, write_leak, w);
    at__sqlw_flush(w);
    exec(k, "COMMIT");
    remember(k, at__sqlw_error(w));
    at_tracer_stats s;
    at_tracer_get_stats(k->t, &s);
    at_trace_end end = {
        .program_end = AT_PROGRAM_END_UNRECORDED,
        .totals_known = 1,
        .duration_us = (int64_t)((at__now_ns() - k->t->start_ns) / 1000),
        .alloc_calls = (int64_t)s.alloc_calls,
        .alloc_bytes = (int64_t)s.alloc_bytes,
        .free_calls = (int64_t)s.free_calls,
        .findings = (int64_t)s.findings,
        .lost_events = (int64_t)s.lost_events,
        .backpressure_waits = (int64_t)k->q.waits,
        .writer_error = k->error,
    };
    remember(k, at__trace_complete(k->db, &end));
}

static void free_sink(sqlite_sink *k)
{
    if (k->argv) {
        for (int i = 0; i < k->argc; i++)
            free(k->argv[i]);
        free(k->argv);
    }
    at__sqlw_free(k->w);
    at__bufq_destroy(&k->q);
    pthread_mutex_destroy(&k->sync_mu);
    pthread_cond_destroy(&k->sync_cv);
    free(k->path);
    free(k);
}

static int sqlite_close(at_tracer *t)
{
    sqlite_sink *k = sink_of(t);
    at__bufq_stop(&k->q);
    pthread_join(k->thread, NULL);
    if (k->w)
        finish(k);
    else
        remember(k, AT_E_NOMEM);
    at__sqlw_free(k->w);
    k->w = NULL;
    if (sqlite3_close(k->db) != SQLITE_OK)
        remember(k, AT_E_DB);
    int rc = k->error;
    free_sink(k);
    at__tracer_free(t);
    return rc;
}

/* ---- opening ------------------------------------------------------------------------ */

int at__create_trace_file(const char *path, int overwrite)
{
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (S_ISLNK(st.st_mode))
            return AT_E_SYMLINK;
        if (!overwrite)
            return AT_E_EXISTS;
        if (!S_ISREG(st.st_mode))
            return AT_E_ACCESS;
        if (unlink(path) != 0)
            return AT_E_ACCESS;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return AT_E_EXISTS;
        if (errno == ELOOP)
            return AT_E_SYMLINK;
        return AT_E_ACCESS;
    }
    close(fd);
    /* A new trace starts with no late rows (schema.h, TRACE-late): a late
     * file beside it is a dead run's whose trace is gone, and its rows
     * merged into this one failed the completion on lifetimes.seq. */
    at__trace_remove_late(path);
    return 0;
}

static char **copy_argv(int argc, char *const *argv)
{
    char **copy = calloc((size_t)argc + 1, sizeof *copy);
    if (!copy)
        return NULL;
    for (int i = 0; i < argc; i++) {
        copy[i] = strdup(argv[i] ? argv[i] : "");
        if (!copy[i]) {
            while (i--)
                free(copy[i]);
            free(copy);
            return NULL;
        }
    }
    return copy;
}

static int open_db(sqlite_sink *k)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(k->path, &k->db, flags, NULL) != SQLITE_OK)
        return AT_E_DB;
    sqlite3_extended_result_codes(k->db, 1);
    int rc = at__sql_exec(k->db, "PRAGMA synchronous=OFF;"
                                 "PRAGMA cache_size=-16384;"
                                 "PRAGMA user_version=" AT_STRINGIFY(AT_SCHEMA_VERSION) ";"
                                 "BEGIN;");
    if (rc == 0)
        rc = at__schema_create(k->db);
    if (rc == 0)
        rc = write_start_meta(k);
    if (rc == 0)
        rc = at__sql_exec(k->db, "COMMIT;");
    return rc;
}

static sqlite_sink *new_sink(at_tracer *t, const at_trace_options *opts)
{
    sqlite_sink *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->t = t;
    pthread_mutex_init(&k->sync_mu, NULL);
    pthread_cond_init(&k->sync_cv, NULL);
    at__bufq_init(&k->q, BUF_SIZE, opts->buffer_limit ? opts->buffer_limit : DEFAULT_BUFFER_LIMIT);
    k->path = strdup(opts->path);
    if (opts->argv && opts->argc > 0) {
        k->argc = opts->argc;
        k->argv = copy_argv(opts->argc, opts->argv);
    }
    if (!k->path || (opts->argv && opts->argc > 0 && !k->argv)) {
        free_sink(k);
        return NULL;
    }
    return k;
}

int at_tracer_open(const at_trace_options *opts, at_tracer **out)
{
    if (!opts || !out || !opts->path || !*opts->path || opts->stack_depth > AT_MAX_STACK_DEPTH)
        return AT_E_INVALID;
    int rc = at__create_trace_file(opts->path, opts->overwrite);
    if (rc)
        return rc;
    at_tracer *t;
    rc = at__tracer_new(opts, &t);
    if (rc) {
        unlink(opts->path);
        return rc;
    }
    sqlite_sink *k = new_sink(t, opts);
    rc = k ? open_db(k) : AT_E_NOMEM;
    if (rc == 0) {
        t->sink = &sqlite_sink_ops;
        t->sink_state = k;
        /* a lifetime is written whole at its release, from the table */
        at__live_keep_times(&t->live);
        if (pthread_create(&k->thread, NULL, writer_main, k) != 0)
            rc = AT_E_THREAD;
    }
    if (rc) {
        if (k) {
            sqlite3_close(k->db);
            free_sink(k);
        }
        unlink(opts->path);
        at__tracer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}
