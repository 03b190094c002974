/* The background writer: drains record buffers into the SQLite trace.
 *
 * Relies on buffers.c for the queue and on SQLite.  One transaction per
 * batch of buffers (every full buffer present when the writer wakes, or
 * whatever is there after 50 ms), prepared statements throughout, one row
 * per allocation lifetime.  A batch's lifetimes are inserted in sequence
 * order, not in the order of their releases: appending to the end of the
 * table's B-tree is SQLite's cheapest insert and leaves its pages full,
 * where inserting into the middle splits pages that then stay partly
 * empty.  Each stack and each distinct frame address is written once.  A
 * SQLite error (disk full, file removed) is remembered and returned by
 * at_tracer_close(); the writer keeps draining so that the traced program
 * is never blocked by a trace that can no longer be written.
 *
 * At close (at__writer_finish): the blocks still live become rows without
 * a release (the leaks), the module map is recorded, and the trace is
 * completed like every other (complete.h: symbols, runtime blocks,
 * indexes, views, meta, finished = 1).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <alloctrace/alloctrace.h>

#include "at_uthash.h"
#include "clock.h"
#include "complete.h"
#include "modules.h"
#include "rowbatch.h"
#include "run_protocol.h"
#include "schema.h"
#include "sqlw.h"
#include "tracer_internal.h"

enum { TAKE_TIMEOUT_MS = 50, TIMELINE_PERIOD_NS = 10 * 1000 * 1000 };

typedef struct frame_entry {
    uintptr_t ip;
    int64_t id;
    UT_hash_handle hh;
} frame_entry;

/* A lifetime waiting for its batch to be sorted: its sequence number and
 * its index in the batch. */
typedef struct batch_key {
    uint64_t seq;
    uint64_t index;
} batch_key;

/* Lifetimes are held back this many at most before being sorted and
 * written (1.75 MiB with their keys); more hardly fills pages better. */
enum { BATCH_MAX = 16384 };

/* The columns of `lifetimes`, as the row batch shows them. */
#define LIFETIME_COLUMNS "seq, ptr, size, info, thread, stack, t, free_dseq, free_dt, free_thread"
enum { LIFETIME_NCOLS = 10 };

typedef struct writer {
    at_tracer *t;
    sqlite3 *db;
    sqlite3_stmt *lifetime, *finding, *stack, *frame, *stack_frame, *thread, *timeline;
    sqlite3_stmt *frame_lookup, *release_layout;
    sqlite3_stmt *lifetime_batch; /* INSERT ... SELECT from `rows` */
    at_rowbatch rows;             /* a sorted batch's column values */
    at_rec_lifetime *batch; /* lifetimes not yet written, in arrival order */
    batch_key *keys, *scratch;
    size_t nbatch, cap_batch;
    frame_entry *frames;
    int frames_incomplete;
    int64_t next_frame_id;
    uint64_t last_sample_ns;
    int error; /* first error; also copied to the tracer's writer_error */
} writer;

static void fail(writer *w, int rc)
{
    if (rc && !w->error)
        w->error = rc;
    if (rc && w->t && !w->t->writer_error)
        w->t->writer_error = rc;
}

static void step(writer *w, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        fail(w, AT_E_DB);
        if (getenv(AT_ENV_DEBUG))
            fprintf(stderr, "alloctrace: %s\n", sqlite3_errmsg(w->db));
    }
    sqlite3_reset(st); /* every statement binds all its parameters each time */
}

static void exec(writer *w, const char *sql)
{
    fail(w, at__sql_exec(w->db, sql));
}

static int prepare(writer *w)
{
    static const char *sql[] = {
        "INSERT INTO lifetimes VALUES(?,?,?,?,?,?,?,?,?,?)",
        "INSERT INTO findings(kind, seq, time_us, thread, ptr, release_stack, release_size,"
        " release_align, release_family, alloc_seq, alloc_ptr, alloc_stack, alloc_size,"
        " alloc_align, alloc_family, first_free_seq, detail)"
        " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        "INSERT INTO stacks(id, depth) VALUES(?,?)",
        "INSERT INTO frames(id, ip) VALUES(?,?)",
        "INSERT INTO stack_frames(stack, level, frame) VALUES(?,?,?)",
        "INSERT OR REPLACE INTO threads(id, tid, name) VALUES(?,?,?)",
        "INSERT OR REPLACE INTO timeline VALUES(?,?,?,?,?,?,?)",
        "SELECT id FROM frames WHERE ip = ?",
        "INSERT INTO release_layouts VALUES(?,?,?)",
        "INSERT INTO lifetimes SELECT * FROM at_lifetime_batch",
    };
    sqlite3_stmt **out[] = {&w->lifetime,     &w->finding,        &w->stack,
                            &w->frame,        &w->stack_frame,    &w->thread,
                            &w->timeline,     &w->frame_lookup,   &w->release_layout,
                            &w->lifetime_batch};
    if (at__rowbatch_init(&w->rows, w->db, "at_lifetime_batch", LIFETIME_COLUMNS,
                          LIFETIME_NCOLS, BATCH_MAX) != 0)
        return AT_E_DB;
    for (size_t i = 0; i < sizeof sql / sizeof *sql; i++)
        if (sqlite3_prepare_v3(w->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, out[i], NULL) !=
            SQLITE_OK)
            return AT_E_DB;
    return 0;
}

static void finalize(writer *w)
{
    sqlite3_stmt *all[] = {w->lifetime,    w->finding,  w->stack,        w->frame,
                           w->stack_frame, w->thread,   w->timeline,     w->frame_lookup,
                           w->release_layout, w->lifetime_batch};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        sqlite3_finalize(all[i]);
    /* The module stays registered on the connection (SQLite frees it when
     * the connection closes) but must no longer be used. */
    at__rowbatch_destroy(&w->rows);
    free(w->batch);
    free(w->keys);
    free(w->scratch);
    w->batch = NULL;
    w->keys = w->scratch = NULL;
    w->nbatch = w->cap_batch = 0;
    frame_entry *e, *tmp;
    HASH_ITER(hh, w->frames, e, tmp)
    {
        HASH_DEL(w->frames, e);
        at__mem_free(e, sizeof *e);
    }
}

static void bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
    sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

static void bind_opt(sqlite3_stmt *st, int i, int present, uint64_t v)
{
    if (present)
        sqlite3_bind_int64(st, i, (sqlite3_int64)v);
    else
        sqlite3_bind_null(st, i);
}

static const char *family_name(unsigned f)
{
    static const char *names[] = {"allocator", "malloc", "new", "new[]"};
    return f < 4 ? names[f] : "unknown";
}

static const char *finding_name(unsigned k)
{
    switch (k) {
    case AT_FINDING_LAYOUT_MISMATCH:
        return "layout_mismatch";
    case AT_FINDING_MISALIGNED_FREE:
        return "misaligned_free";
    case AT_FINDING_DOUBLE_FREE:
        return "double_free";
    case AT_FINDING_INVALID_FREE:
        return "invalid_free";
    case AT_FINDING_FAMILY_MISMATCH:
        return "family_mismatch";
    }
    return "unknown";
}

/* ---- records ----------------------------------------------------------------- */

/* A lifetime's row of `lifetimes`: v[0..LIFETIME_NCOLS), a bit set in the
 * result for each NULL column.  *odd_layout: the release passed a layout
 * of its own, which goes to release_layouts. */
static uint32_t lifetime_row(const at_rec_lifetime *r, int64_t *v, int *odd_layout)
{
    int released = r->free_op != AT_OP_NONE;
    uint64_t t_us = r->t / 1000;
    *odd_layout = released && r->free_layout_given &&
                  (r->free_size != r->size || r->free_align_log2 != r->align_log2);
    v[0] = (int64_t)r->seq;
    v[1] = (int64_t)r->ptr;
    v[2] = (int64_t)r->size;
    v[3] = (int64_t)AT_INFO(r->align_log2, r->family, r->alloc_op, r->free_op, *odd_layout);
    v[4] = r->thread;
    v[5] = r->stack;
    v[6] = (int64_t)t_us;
    v[7] = (int64_t)(r->free_seq - r->seq);
    v[8] = (int64_t)(r->free_t / 1000 - t_us);
    v[9] = r->free_thread;
    return (uint32_t)(r->stack == 0) << 5 | (uint32_t)!released << 7 | (uint32_t)!released << 8 |
           (uint32_t)(!released || r->free_thread == r->thread) << 9;
}

static void write_release_layout(writer *w, const at_rec_lifetime *r)
{
    sqlite3_stmt *st = w->release_layout;
    bind_u64(st, 1, r->seq);
    bind_u64(st, 2, r->free_size);
    bind_u64(st, 3, (uint64_t)1 << r->free_align_log2);
    step(w, st);
}

/* One lifetime through its own INSERT: when no batch can be held. */
static void write_lifetime(writer *w, const at_rec_lifetime *r)
{
    sqlite3_stmt *st = w->lifetime;
    int64_t v[LIFETIME_NCOLS];
    int odd_layout;
    uint32_t nulls = lifetime_row(r, v, &odd_layout);
    for (int i = 0; i < LIFETIME_NCOLS; i++)
        bind_opt(st, i + 1, !(nulls >> i & 1), (uint64_t)v[i]);
    step(w, st);
    if (odd_layout)
        write_release_layout(w, r);
}

/* Sorts keys[0..n) by sequence number, using scratch[0..n): a least
 * significant digit radix sort, eight bits a pass, over the bits in which
 * the keys differ (two or three passes when a batch spans a narrow range
 * of sequence numbers, at most five for any trace below 2^40 events),
 * linear however the releases were ordered; nothing at all when they came
 * sorted.  Returns the sorted array: keys or scratch. */
static batch_key *sort_keys(batch_key *keys, batch_key *scratch, size_t n)
{
    uint64_t lo = UINT64_MAX, hi = 0;
    int sorted = 1;
    for (size_t i = 0; i < n; i++) {
        lo = keys[i].seq < lo ? keys[i].seq : lo;
        hi = keys[i].seq > hi ? keys[i].seq : hi;
        sorted &= i == 0 || keys[i - 1].seq <= keys[i].seq;
    }
    if (sorted)
        return keys;
    batch_key *from = keys, *to = scratch;
    for (int shift = 0; shift < 64 && (hi - lo) >> shift; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++)
            count[((from[i].seq - lo) >> shift & 255) + 1]++;
        for (int d = 0; d < 256; d++)
            count[d + 1] += count[d];
        for (size_t i = 0; i < n; i++)
            to[count[(from[i].seq - lo) >> shift & 255]++] = from[i];
        batch_key *t = from;
        from = to;
        to = t;
    }
    return from;
}

/* Writes the lifetimes held back, in sequence order, with one statement:
 * binding ten parameters and stepping a statement per row cost more than
 * SQLite's own work of storing the rows. */
static void flush_lifetimes(writer *w)
{
    if (!w->nbatch)
        return;
    for (size_t i = 0; i < w->nbatch; i++)
        w->keys[i] = (batch_key){w->batch[i].seq, i};
    batch_key *order = sort_keys(w->keys, w->scratch, w->nbatch);
    at__rowbatch_clear(&w->rows);
    for (size_t i = 0; i < w->nbatch; i++) {
        const at_rec_lifetime *r = &w->batch[order[i].index];
        int64_t v[LIFETIME_NCOLS];
        int odd_layout;
        uint32_t nulls = lifetime_row(r, v, &odd_layout);
        int64_t *row = at__rowbatch_add(&w->rows, nulls);
        if (row)
            memcpy(row, v, sizeof v);
        else
            write_lifetime(w, r); /* never: the batch holds BATCH_MAX rows */
        if (odd_layout)
            write_release_layout(w, r);
    }
    step(w, w->lifetime_batch);
    at__rowbatch_clear(&w->rows);
    w->nbatch = 0;
}

/* Holds a lifetime back until flush_lifetimes; written at once if there
 * is no memory to hold it. */
static void queue_lifetime(writer *w, const at_rec_lifetime *r)
{
    if (w->nbatch == w->cap_batch) {
        if (w->cap_batch == BATCH_MAX)
            flush_lifetimes(w);
        else {
            size_t cap = w->cap_batch ? w->cap_batch * 2 : 1024;
            at_rec_lifetime *b = realloc(w->batch, cap * sizeof *b);
            if (b)
                w->batch = b;
            batch_key *k = b ? realloc(w->keys, cap * sizeof *k) : NULL;
            if (k)
                w->keys = k;
            batch_key *s = k ? realloc(w->scratch, cap * sizeof *s) : NULL;
            if (s) {
                w->scratch = s;
                w->cap_batch = cap;
            }
        }
    }
    if (w->nbatch == w->cap_batch) {
        write_lifetime(w, r);
        return;
    }
    w->batch[w->nbatch++] = *r;
}

static void write_finding(writer *w, const at_rec_finding *f)
{
    sqlite3_stmt *st = w->finding;
    char detail[160];
    switch (f->finding) {
    case AT_FINDING_MISALIGNED_FREE:
        if (f->has_alloc && f->alloc_ptr != f->ptr)
            snprintf(detail, sizeof detail, "pointer is %llu bytes inside a live block of %llu",
                     (unsigned long long)(f->ptr - f->alloc_ptr),
                     (unsigned long long)f->alloc_size);
        else
            snprintf(detail, sizeof detail, "pointer is not a multiple of the alignment %llu",
                     (unsigned long long)1 << f->given_align_log2);
        break;
    case AT_FINDING_DOUBLE_FREE:
        snprintf(detail, sizeof detail, "already released at sequence number %llu",
                 (unsigned long long)f->first_free_seq);
        break;
    case AT_FINDING_INVALID_FREE:
        snprintf(detail, sizeof detail, "pointer was never returned by the traced allocator");
        break;
    case AT_FINDING_FAMILY_MISMATCH:
        snprintf(detail, sizeof detail, "allocated by %s, released as %s",
                 family_name(f->alloc_family), family_name(f->given_family));
        break;
    default:
        snprintf(detail, sizeof detail, "released as (%llu, %llu), allocated as (%llu, %llu)",
                 (unsigned long long)f->given_size, (unsigned long long)1 << f->given_align_log2,
                 (unsigned long long)f->alloc_size, (unsigned long long)1 << f->alloc_align_log2);
    }
    sqlite3_bind_text(st, 1, finding_name(f->finding), -1, SQLITE_STATIC);
    bind_u64(st, 2, f->seq);
    bind_u64(st, 3, f->t / 1000);
    bind_u64(st, 4, f->thread);
    bind_u64(st, 5, f->ptr);
    bind_opt(st, 6, f->release_stack != 0, f->release_stack);
    bind_opt(st, 7, f->given_layout, f->given_size);
    bind_opt(st, 8, f->given_layout, (uint64_t)1 << f->given_align_log2);
    sqlite3_bind_text(st, 9, family_name(f->given_family), -1, SQLITE_STATIC);
    bind_opt(st, 10, f->has_alloc, f->alloc_seq);
    bind_opt(st, 11, f->has_alloc, f->alloc_ptr);
    bind_opt(st, 12, f->has_alloc && f->alloc_stack, f->alloc_stack);
    bind_opt(st, 13, f->has_alloc, f->alloc_size);
    bind_opt(st, 14, f->has_alloc, (uint64_t)1 << f->alloc_align_log2);
    if (f->has_alloc)
        sqlite3_bind_text(st, 15, family_name(f->alloc_family), -1, SQLITE_STATIC);
    bind_opt(st, 16, f->finding == AT_FINDING_DOUBLE_FREE, f->first_free_seq);
    sqlite3_bind_text(st, 17, detail, -1, SQLITE_TRANSIENT);
    step(w, st);
}

static void write_mark(writer *w, const at_rec_var *h, const unsigned char *payload)
{
    uint64_t seq, t;
    if (h->count < 17)
        return;
    memcpy(&seq, payload, 8);
    memcpy(&t, payload + 8, 8);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(w->db, "INSERT OR REPLACE INTO marks VALUES(?,?,?,?)", -1, &st, NULL) !=
        SQLITE_OK) {
        fail(w, AT_E_DB);
        return;
    }
    bind_u64(st, 1, seq);
    bind_u64(st, 2, t / 1000);
    bind_u64(st, 3, h->id);
    sqlite3_bind_text(st, 4, (const char *)payload + 16, (int)strnlen((const char *)payload + 16, h->count - 16),
                      SQLITE_TRANSIENT);
    step(w, st);
    sqlite3_finalize(st);
}

static void write_buffer(writer *w, const at_buf *b)
{
    size_t off = 0;
    while (off < b->used) {
        const unsigned char *p = b->data + off;
        if (*p == AT_REC_LIFETIME) {
            at_rec_lifetime r;
            memcpy(&r, p, sizeof r);
            queue_lifetime(w, &r);
            off += sizeof r;
        } else if (*p == AT_REC_FINDING) {
            at_rec_finding f;
            memcpy(&f, p, sizeof f);
            write_finding(w, &f);
            off += sizeof f;
        } else if (*p == AT_REC_MARK) {
            at_rec_var h;
            memcpy(&h, p, sizeof h);
            write_mark(w, &h, p + sizeof h);
            off += h.size;
        } else {
            fail(w, AT_E_IO); /* cannot happen: a corrupt buffer */
            return;
        }
    }
}

/* The id of frame `ip`, inserting it on first sight.  The in-memory map is
 * the fast path; if it ever failed to remember a frame (the tracer's memory
 * ran out), the table itself is asked before inserting. */
static int64_t frame_id(writer *w, uintptr_t ip)
{
    frame_entry *e;
    HASH_FIND(hh, w->frames, &ip, sizeof ip, e);
    if (e)
        return e->id;
    int64_t id = 0;
    if (w->frames_incomplete) {
        bind_u64(w->frame_lookup, 1, ip);
        if (sqlite3_step(w->frame_lookup) == SQLITE_ROW)
            id = sqlite3_column_int64(w->frame_lookup, 0);
        sqlite3_reset(w->frame_lookup);
    }
    if (!id) {
        id = ++w->next_frame_id;
        sqlite3_bind_int64(w->frame, 1, id);
        bind_u64(w->frame, 2, ip);
        step(w, w->frame);
    }
    e = at__mem_alloc(sizeof *e);
    int oom = !e;
    if (e) {
#undef uthash_nonfatal_oom
#define uthash_nonfatal_oom(obj) (oom = 1)
        e->ip = ip;
        e->id = id;
        HASH_ADD(hh, w->frames, ip, sizeof e->ip, e);
        if (oom)
            at__mem_free(e, sizeof *e);
    }
    if (oom)
        w->frames_incomplete = 1;
    return id;
}

static void write_stack(writer *w, uint32_t id, const uintptr_t *frames, uint32_t depth)
{
    sqlite3_bind_int64(w->stack, 1, id);
    sqlite3_bind_int64(w->stack, 2, depth);
    step(w, w->stack);
    for (uint32_t i = 0; i < depth; i++) {
        int64_t f = frame_id(w, frames[i]);
        sqlite3_bind_int64(w->stack_frame, 1, id);
        sqlite3_bind_int64(w->stack_frame, 2, i);
        sqlite3_bind_int64(w->stack_frame, 3, f);
        step(w, w->stack_frame);
    }
}

static void write_new_stacks(writer *w)
{
    for (at_stack *s = at__stacks_take_unwritten(&w->t->stacks); s; s = s->next_unwritten)
        write_stack(w, s->id, s->frames, s->depth);
}

static void write_thread_row(writer *w, uint32_t id, int64_t tid, const char *name)
{
    sqlite3_bind_int64(w->thread, 1, id);
    sqlite3_bind_int64(w->thread, 2, tid);
    sqlite3_bind_text(w->thread, 3, name, -1, SQLITE_TRANSIENT);
    step(w, w->thread);
}

static void write_thread(writer *w, const at_thread *th)
{
    write_thread_row(w, th->id, th->tid, th->name);
}

static void write_new_threads(writer *w)
{
    at_thread *th = __atomic_exchange_n(&w->t->threads_unwritten, NULL, __ATOMIC_ACQUIRE);
    for (; th; th = th->next_unwritten)
        write_thread(w, th);
}

static void write_timeline(writer *w, uint64_t now_ns)
{
    at_tracer_stats s;
    at_tracer_get_stats(w->t, &s);
    sqlite3_stmt *st = w->timeline;
    bind_u64(st, 1, __atomic_load_n(&w->t->seq, __ATOMIC_RELAXED));
    bind_u64(st, 2, (now_ns - w->t->start_ns) / 1000);
    bind_u64(st, 3, s.live_bytes);
    bind_u64(st, 4, s.live_blocks);
    bind_u64(st, 5, s.alloc_calls);
    bind_u64(st, 6, s.alloc_bytes);
    bind_u64(st, 7, s.free_calls);
    step(w, st);
    w->last_sample_ns = now_ns;
}

/* ---- the thread --------------------------------------------------------------- */

static writer *writer_new(at_tracer *t, sqlite3 *db)
{
    writer *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->t = t;
    w->db = db;
    if (prepare(w)) {
        finalize(w);
        free(w);
        return NULL;
    }
    return w;
}

static writer *the_writer(at_tracer *t);

void *at__writer_main(void *arg)
{
    at_tracer *t = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    at__untraced = 1; /* SQLite's own allocations are not the program's */
    writer *w = the_writer(t);
    for (;;) {
        pthread_mutex_lock(&t->sync_mu);
        uint64_t req = t->sync_request;
        pthread_mutex_unlock(&t->sync_mu);

        at_buf *list = at__bufq_take(&t->q, TAKE_TIMEOUT_MS);
        int stopping = t->q.stop; /* read after take: nothing is submitted after stop */
        if (w) {
            exec(w, "BEGIN");
            write_new_threads(w);
            write_new_stacks(w);
            for (at_buf *b = list; b; b = b->next)
                write_buffer(w, b);
            flush_lifetimes(w);
            uint64_t now = at__now_ns();
            if (now - w->last_sample_ns >= TIMELINE_PERIOD_NS)
                write_timeline(w, now);
            exec(w, "COMMIT");
            if (t->writer_error && sqlite3_get_autocommit(w->db) == 0)
                sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
        } else {
            t->writer_error = AT_E_NOMEM;
        }
        at__bufq_recycle(&t->q, list);

        pthread_mutex_lock(&t->sync_mu);
        t->sync_done = req;
        pthread_cond_broadcast(&t->sync_cv);
        pthread_mutex_unlock(&t->sync_mu);
        if (stopping && !list)
            break;
    }
    return NULL;
}

/* The writer's state lives as long as the tracer; it is made by the writer
 * thread and reused by at__writer_finish. */
static writer *the_writer(at_tracer *t)
{
    if (!t->writer_state)
        t->writer_state = writer_new(t, t->db);
    return t->writer_state;
}

static void write_leak(const at_block_info *b, void *arg)
{
    at_rec_lifetime r;
    at__lifetime_from_block(&r, b);
    queue_lifetime(arg, &r);
}

/* The command line the trace records: the options' argv, else the
 * process's own, from /proc/self/cmdline. */
static int write_arguments(at_tracer *t)
{
    if (t->argv)
        return at__meta_append_arguments(t->db, t->argv, t->argc, NULL, 0);
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
    int rc = at__meta_append_arguments(t->db, NULL, 0, cmdline, len);
    free(cmdline);
    return rc;
}

int at__writer_write_meta(at_tracer *t)
{
    sqlite3 *db = t->db;
    char buf[4096];
    int rc = at__trace_begin(db);
    rc = rc ? rc : at__meta_set_int(db, AT_META_PID, getpid());
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n >= 0) {
        buf[n] = '\0';
        rc = rc ? rc : at__meta_set_text(db, AT_META_EXECUTABLE, buf);
    }
    rc = rc ? rc : at__meta_set_int(db, AT_META_STACK_DEPTH, t->depth);
    return rc ? rc : write_arguments(t);
}

/* Writes what only the tracer knows (threads, the blocks still live as
 * leak rows, a last timeline sample, the module map of this process), then
 * completes the trace (complete.h) and closes it. */
int at__writer_finish(at_tracer *t)
{
    writer *w = the_writer(t);
    if (!w) {
        sqlite3_close(t->db);
        return t->writer_error ? t->writer_error : AT_E_NOMEM;
    }
    exec(w, "BEGIN");
    write_new_threads(w);
    for (at_thread *th = t->threads; th; th = th->next)
        write_thread(w, th); /* names may have changed since */
    write_new_stacks(w);
    at__live_foreach(&t->live, write_leak, w);
    flush_lifetimes(w);
    write_timeline(w, at__now_ns());
    exec(w, "COMMIT");
    fail(w, at__modules_write(w->db));
    finalize(w);
    free(w);
    t->writer_state = NULL;

    at_tracer_stats s;
    at_tracer_get_stats(t, &s);
    at_trace_end end = {
        .program_end = AT_PROGRAM_END_UNRECORDED,
        .totals_known = 1,
        .duration_us = (int64_t)((at__now_ns() - t->start_ns) / 1000),
        .alloc_calls = (int64_t)s.alloc_calls,
        .alloc_bytes = (int64_t)s.alloc_bytes,
        .free_calls = (int64_t)s.free_calls,
        .findings = (int64_t)s.findings,
        .lost_events = (int64_t)s.lost_events,
        .backpressure_waits = (int64_t)t->q.waits,
        .writer_error = t->writer_error,
    };
    int rc = at__trace_complete(t->db, &end);
    if (rc && !t->writer_error)
        t->writer_error = rc;
    if (sqlite3_close(t->db) != SQLITE_OK && !t->writer_error)
        t->writer_error = AT_E_DB;
    t->db = NULL;
    return t->writer_error;
}

/* ---- the same statements, for the spool reader (sqlw.h) ----------------------- */

at_sqlw *at__sqlw_new(sqlite3 *db)
{
    return writer_new(NULL, db);
}

void at__sqlw_free(at_sqlw *w)
{
    if (w) {
        finalize(w);
        free(w);
    }
}

int at__sqlw_error(const at_sqlw *w)
{
    return w->error;
}

void at__sqlw_exec(at_sqlw *w, const char *sql)
{
    exec(w, sql);
}

void at__sqlw_lifetime(at_sqlw *w, const at_rec_lifetime *r)
{
    queue_lifetime(w, r);
}

void at__sqlw_flush(at_sqlw *w)
{
    flush_lifetimes(w);
}

void at__sqlw_finding(at_sqlw *w, const at_rec_finding *f)
{
    write_finding(w, f);
}

void at__sqlw_stack(at_sqlw *w, uint32_t id, const uintptr_t *frames, uint32_t depth)
{
    write_stack(w, id, frames, depth);
}

void at__sqlw_mark(at_sqlw *w, const at_rec_var *h, const unsigned char *payload)
{
    write_mark(w, h, payload);
}

void at__sqlw_thread(at_sqlw *w, uint32_t id, int64_t tid, const char *name)
{
    write_thread_row(w, id, tid, name);
}
