/* Rows of the trace (sqlw.h): the statements that store lifetimes,
 * findings, stacks, frames, threads, marks and modules, shared by the
 * in-process writer (writer.c) and the spool reader (spool_reader.c), and
 * the one decoder of the records that both receive alike.
 *
 * Prepared statements throughout, one row per allocation lifetime.  A
 * batch's lifetimes are inserted in sequence order, not in the order of
 * their releases: appending to the end of the table's B-tree is SQLite's
 * cheapest insert and leaves its pages full, where inserting into the
 * middle splits pages that then stay partly empty.  Each node of the call
 * tree, each stack and each distinct frame address is written once.  The first SQLite error (disk
 * full, file removed) is remembered (at__sqlw_error); writing goes on, so
 * that the traced program is never blocked by a trace that can no longer
 * be written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <alloctrace/alloctrace.h>

#include "aggregate.h"
#include "at_uthash.h"
#include "complete.h"
#include "late_runs.h"
#include "module_rows.h"
#include "rowbatch.h"
#include "run_protocol.h"
#include "schema.h"
#include "sqlw.h"
#include "records.h"
#include "replay.h"
#include "tracer_internal.h"


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

/* A lifetime whose allocation is this many sequence numbers or more below
 * the highest one written goes to `lifetimes_late` (schema.h) rather than
 * into the middle of `lifetimes`: a program that frees in no particular
 * order (a hash table's blocks, a shuffled list) otherwise dirtied every
 * page of the table at every commit (keep_live 2 M shuffled: 1.04 M page
 * writes, 17 GB, for a 190 MB trace).  Closer ones land in pages written
 * lately, still in SQLite's cache. */
enum { LATE_DISTANCE = 1 << 18 };

/* The columns of `lifetimes`, as the row batch shows them. */
#define LIFETIME_COLUMNS                                                                           \
    "seq, ptr, size, info, thread, stack, t, free_dseq, free_dt, free_thread, free_stack"
enum { LIFETIME_NCOLS = 11 };
_Static_assert((int)LIFETIME_NCOLS == (int)AT_LATE_COLS, "a run packs the columns of lifetimes");

typedef struct writer {
    sqlite3 *db;
    sqlite3_stmt *lifetime, *finding, *stack, *frame, *node, *thread;
    sqlite3_stmt *frame_lookup, *release_layout, *reach;
    sqlite3_stmt *pool_create, *pool_destroy, *pool_block, *pool_finding;
    sqlite3_stmt *lifetime_batch; /* INSERT ... SELECT from `rows` */
    sqlite3_stmt *late_run;       /* a run into lifetimes_late_runs */
    uint8_t *late_buf;            /* a run, packed (late_runs.h) */
    uint64_t tail;                /* the highest seq in `lifetimes` */
    uint64_t late_rows;           /* lifetimes set aside in lifetimes_late_runs */
    uint64_t folding;             /* lifetimes given to the aggregator */
    at_rowbatch rows;             /* a sorted batch's column values */
    at_rec_lifetime *batch; /* lifetimes not yet written, in arrival order */
    batch_key *keys, *scratch;
    size_t nbatch, cap_batch;
    frame_entry *frames;
    int frames_incomplete;
    int64_t next_frame_id;
    at_replay_log *log; /* at__sqlw_keep_replay_log: every event read */
    at_agg *agg;        /* at__sqlw_aggregate: released lifetimes held for folding */
    int error; /* the first error */
} writer;

static void fail(writer *w, int rc)
{
    if (rc && !w->error)
        w->error = rc;
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
        "INSERT INTO lifetimes VALUES(?,?,?,?,?,?,?,?,?,?,?)",
        "INSERT INTO findings(kind, seq, time_us, thread, ptr, release_stack, release_size,"
        " release_align, release_family, alloc_seq, alloc_ptr, alloc_stack, alloc_size,"
        " alloc_align, alloc_family, first_free_seq, first_free_stack, detail)"
        " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        "INSERT OR IGNORE INTO stacks(id, depth) VALUES(?,?)",
        "INSERT INTO frames(id, ip) VALUES(?,?)",
        "INSERT OR IGNORE INTO stack_nodes(id, parent, frame) VALUES(?,?,?)",
        "INSERT OR REPLACE INTO threads(id, tid, name) VALUES(?,?,?)",
        "SELECT id FROM frames WHERE ip = ?",
        "INSERT INTO release_layouts VALUES(?,?,?)",
        "INSERT INTO lifetimes SELECT * FROM at_lifetime_batch",
        "INSERT OR REPLACE INTO reachability(seq, class) VALUES(?,?)",
        /* A pool's two records may be read in either order (two threads'
         * chunks), and again by a resumed reader: each sets its columns. */
        "INSERT INTO pools(id, name, ptr, created_seq, created_time_us, create_stack)"
        " VALUES(?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET name = excluded.name,"
        " ptr = excluded.ptr, created_seq = excluded.created_seq,"
        " created_time_us = excluded.created_time_us, create_stack = excluded.create_stack",
        "INSERT INTO pools(id, ptr, destroyed_seq, destroyed_time_us, destroy_stack)"
        " VALUES(?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET destroyed_seq = excluded.destroyed_seq,"
        " destroyed_time_us = excluded.destroyed_time_us, destroy_stack = excluded.destroy_stack",
        "INSERT OR REPLACE INTO pool_blocks(seq, pool, chunk) VALUES(?,?,?)",
        "INSERT OR REPLACE INTO pool_findings(seq, pool) VALUES(?,?)",
        "INSERT INTO late.lifetimes_late_runs(rows, data) VALUES(?,?)",
    };
    sqlite3_stmt **out[] = {&w->lifetime,     &w->finding,        &w->stack,
                            &w->frame,        &w->node,           &w->thread,
                            &w->frame_lookup, &w->release_layout, &w->lifetime_batch,
                            &w->reach,        &w->pool_create,    &w->pool_destroy,
                            &w->pool_block,   &w->pool_finding,   &w->late_run};
    if (at__trace_attach_late(w->db, 1) != 0 || at__sql_exec(w->db, AT_SQL_LIFETIMES_LATE) != 0)
        return AT_E_DB;
    sqlite3_stmt *tail;
    if (sqlite3_prepare_v2(w->db, "SELECT coalesce(max(seq), 0) FROM lifetimes", -1, &tail,
                           NULL) != SQLITE_OK)
        return AT_E_DB;
    if (sqlite3_step(tail) == SQLITE_ROW) /* a resumed writer goes on after the rows there */
        w->tail = (uint64_t)sqlite3_column_int64(tail, 0);
    sqlite3_finalize(tail);
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
    sqlite3_stmt *all[] = {w->lifetime,       w->finding,      w->stack,
                           w->frame,          w->node,         w->thread,
                           w->frame_lookup,   w->release_layout, w->lifetime_batch,
                           w->reach,          w->pool_create,  w->pool_destroy,
                           w->pool_block,     w->pool_finding, w->late_run};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        sqlite3_finalize(all[i]);
    /* The module stays registered on the connection (SQLite frees it when
     * the connection closes) but must no longer be used. */
    at__rowbatch_destroy(&w->rows);
    free(w->batch);
    free(w->late_buf);
    w->late_buf = NULL;
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
    switch (f) {
#define AT_X_FAMILY(id, code, name, description)                                                   \
    case code:                                                                                     \
        return name;
        AT_FAMILIES(AT_X_FAMILY)
#undef AT_X_FAMILY
    }
    return "unknown";
}

static const char *finding_name(unsigned k)
{
    switch (k) {
#define AT_X_KIND(id, code, name, label, category, rule, level, color, description)                \
    case code:                                                                                     \
        return name;
        AT_KINDS(AT_X_KIND)
#undef AT_X_KIND
    }
    return "unknown";
}

/* ---- records ----------------------------------------------------------------- */

/* Whether the release passed a layout of its own (one that differs from
 * the allocation's), which goes to release_layouts. */
static int odd_release_layout(const at_rec_lifetime *r)
{
    unsigned given = r->free_layout_given;
    return r->free_op != AT_OP_NONE &&
           (((given & AT_GIVEN_SIZE) && r->free_size != r->size) ||
            ((given & AT_GIVEN_ALIGN) && r->free_align_log2 != r->align_log2));
}

/* A lifetime's row of `lifetimes`: v[0..LIFETIME_NCOLS), a bit set in the
 * result for each NULL column.  *odd_layout: odd_release_layout(). */
static uint32_t lifetime_row(const at_rec_lifetime *r, int64_t *v, int *odd_layout)
{
    int released = r->free_op != AT_OP_NONE;
    uint64_t t_us = r->t / 1000;
    unsigned given = released ? r->free_layout_given : AT_GIVEN_ALIGN | AT_GIVEN_SIZE;
    *odd_layout = odd_release_layout(r);
    v[0] = (int64_t)r->seq;
    v[1] = (int64_t)r->ptr;
    v[2] = (int64_t)r->size;
    v[3] = (int64_t)(AT_INFO(r->align_log2, r->family, r->alloc_op, r->free_op, *odd_layout) |
                     (given & AT_GIVEN_SIZE ? 0 : (uint64_t)AT_INFO_RELEASE_NO_SIZE) |
                     (given & AT_GIVEN_ALIGN ? 0 : (uint64_t)AT_INFO_RELEASE_NO_ALIGN));
    v[4] = r->thread;
    v[5] = r->stack;
    v[6] = (int64_t)t_us;
    v[7] = (int64_t)(r->free_seq - r->seq);
    v[8] = (int64_t)(r->free_t / 1000 - t_us);
    v[9] = r->free_thread;
    v[10] = r->free_stack;
    return (uint32_t)(r->stack == 0) << 5 | (uint32_t)!released << 7 | (uint32_t)!released << 8 |
           (uint32_t)(!released || r->free_thread == r->thread) << 9 |
           (uint32_t)(!released || r->free_stack == 0) << 10;
}

static void write_release_layout(writer *w, const at_rec_lifetime *r)
{
    sqlite3_stmt *st = w->release_layout;
    bind_u64(st, 1, r->seq);
    /* a part not passed is NULL in the view whatever is stored here */
    bind_u64(st, 2, r->free_layout_given & AT_GIVEN_SIZE ? r->free_size : r->size);
    /* 0: the alignment passed is not a power of two (AT_ALIGN_NOT_POW2);
     * the release's finding holds its value */
    unsigned align_log2 = r->free_layout_given & AT_GIVEN_ALIGN ? r->free_align_log2 : r->align_log2;
    bind_u64(st, 3, align_log2 == AT_ALIGN_NOT_POW2 ? 0 : (uint64_t)1 << align_log2);
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

static void add_rows(writer *w, const batch_key *order, size_t from, size_t to);
static void write_late_run(writer *w, const batch_key *order, size_t n);

/* Writes the lifetimes held back, in sequence order, with one statement
 * per table (binding ten parameters and stepping a statement per row cost
 * more than SQLite's own work of storing the rows): the late ones, a
 * prefix once sorted, as a run of lifetimes_late_runs, the others to
 * lifetimes. */
static void flush_lifetimes(writer *w)
{
    if (!w->nbatch)
        return;
    for (size_t i = 0; i < w->nbatch; i++)
        w->keys[i] = (batch_key){w->batch[i].seq, i};
    batch_key *order = sort_keys(w->keys, w->scratch, w->nbatch);
    size_t late = 0;
    while (late < w->nbatch && order[late].seq + LATE_DISTANCE <= w->tail)
        late++;
    if (late)
        write_late_run(w, order, late);
    if (late < w->nbatch) {
        add_rows(w, order, late, w->nbatch);
        step(w, w->lifetime_batch);
        if (order[w->nbatch - 1].seq > w->tail)
            w->tail = order[w->nbatch - 1].seq;
    }
    at__rowbatch_clear(&w->rows);
    w->nbatch = 0;
}

/* The row batch holds the lifetimes order[from..to) of the batch. */
static void add_rows(writer *w, const batch_key *order, size_t from, size_t to)
{
    at__rowbatch_clear(&w->rows);
    for (size_t i = from; i < to; i++) {
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
}

/* The lifetimes order[0..n) of the batch, packed into one row of
 * lifetimes_late_runs (late_runs.h); a row each straight into `lifetimes`
 * when there is no memory to pack them (only slower). */
static void write_late_run(writer *w, const batch_key *order, size_t n)
{
    if (!w->late_buf && !(w->late_buf = malloc((size_t)BATCH_MAX * AT_LATE_ROW_MAX))) {
        for (size_t i = 0; i < n; i++)
            write_lifetime(w, &w->batch[order[i].index]);
        return;
    }
    size_t len = 0;
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        const at_rec_lifetime *r = &w->batch[order[i].index];
        int64_t v[LIFETIME_NCOLS];
        int odd_layout;
        uint32_t nulls = lifetime_row(r, v, &odd_layout);
        len += at__late_put(w->late_buf + len, prev, v, nulls);
        prev = (uint64_t)v[0];
        if (odd_layout)
            write_release_layout(w, r);
    }
    sqlite3_bind_int64(w->late_run, 1, (sqlite3_int64)n);
    sqlite3_bind_blob(w->late_run, 2, w->late_buf, (int)len, SQLITE_STATIC);
    step(w, w->late_run);
    w->late_rows += n;
}

/* Holds a lifetime back until flush_lifetimes; written at once if there
 * is no memory to hold it. */
static void queue_row(writer *w, const at_rec_lifetime *r);

/* Whether an aggregated trace may fold the lifetime: released (not by an
 * exec, which ends blocks live at the end), with the allocation's layout
 * or none (a release with its own is a finding's block), and no pool's
 * (pool_blocks names its row). */
static int foldable(const at_rec_lifetime *r)
{
    return r->free_op != AT_OP_NONE && r->free_op != AT_OP_EXEC && !odd_release_layout(r) &&
           r->family != AT_FAMILY_POOL;
}

static void held_row(void *arg, const at_rec_lifetime *r)
{
    queue_row(arg, r);
}

/* An aggregated trace folds what the replay has passed (aggregate.h). */
static void advance_aggregate(writer *w)
{
    if (!w->agg)
        return;
    at_replay_peak peak;
    int64_t peak_seq = at__replay_log_peak(w->log, &peak) == 0 ? peak.seq : -1;
    at__agg_advance(w->agg, at__replay_log_cursor(w->log), peak_seq, held_row, w);
}

static void queue_lifetime(writer *w, const at_rec_lifetime *r)
{
    /* The release, for the replay (the allocation came with its record).
     * A pool's block lies in a malloc'd chunk the heap counts already:
     * the replay (peak, timeline) is the program's heap, without pools. */
    if (w->log && r->free_op != AT_OP_NONE) {
        int64_t seq = (int64_t)(r->free_seq > r->seq ? r->free_seq : r->seq);
        if (r->family == AT_FAMILY_POOL)
            at__replay_log_skip(w->log, seq);
        else /* times as lifetime_row stores them */
            at__replay_log_release(w->log, seq, (int64_t)(r->free_t / 1000), (int64_t)r->size);
    }
    if (w->agg && foldable(r) && at__agg_add(w->agg, r) == 0) {
        w->folding++;
        advance_aggregate(w);
        return;
    }
    queue_row(w, r);
}

/* The lifetime's row, held back for its batch. */
static void queue_row(writer *w, const at_rec_lifetime *r)
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

/* What the call did, for a request's finding: failed (NULL, EINVAL or
 * std::bad_alloc, as the function does) or not. */
static const char *returned(const at_rec_finding *f)
{
    return f->ptr ? "the call returned a block" : "the call failed";
}

/* The findings.detail sentence of a request's finding (at__trace_request). */
static void request_detail(char *detail, size_t n, const at_rec_finding *f)
{
    unsigned long long size = f->given_size, align = f->given_align;
    switch (f->finding) {
    case AT_FINDING_INVALID_ALIGNMENT:
        if (align && (align & (align - 1)) == 0)
            snprintf(detail, n, "alignment %llu is not a multiple of sizeof(void *) (%s)", align,
                     returned(f));
        else
            snprintf(detail, n, "alignment %llu is not a power of two (%s)", align, returned(f));
        break;
    case AT_FINDING_INVALID_SIZE:
        if (align && size > SIZE_MAX - (align - 1))
            snprintf(detail, n, "size %llu rounded up to the alignment %llu overflows (%s)", size,
                     align, returned(f));
        else
            snprintf(detail, n, "size %llu is not a multiple of the alignment %llu (%s)", size,
                     align, returned(f));
        break;
    default: /* realloc(p, 0) frees p and returns NULL */
        snprintf(detail, n, "0 bytes requested (the call returned %s)",
                 f->ptr ? "a block" : "NULL");
    }
}

/* "released as (32, 63), allocated as (32, 64)", with " (63 is not a power
 * of two)" for such an alignment. */
static void layout_detail(char *detail, size_t n, const at_rec_finding *f)
{
    char size[24] = "\u2013", align[24] = "\u2013"; /* an en dash: not passed */
    if (f->given_layout & AT_GIVEN_SIZE)
        snprintf(size, sizeof size, "%llu", (unsigned long long)f->given_size);
    if (f->given_layout & AT_GIVEN_ALIGN)
        snprintf(align, sizeof align, "%llu", (unsigned long long)f->given_align);
    int len = snprintf(detail, n, "released as (%s, %s), allocated as (%llu, %llu)", size, align,
                       (unsigned long long)f->alloc_size,
                       (unsigned long long)1 << f->alloc_align_log2);
    if (f->given_align_log2 == AT_ALIGN_NOT_POW2 && len > 0 && (size_t)len < n)
        snprintf(detail + len, n - (size_t)len, " (%llu is not a power of two)",
                 (unsigned long long)f->given_align);
}

static void write_finding(writer *w, const at_rec_finding *f)
{
    sqlite3_stmt *st = w->finding;
    char detail[160];
    switch (f->finding) {
    case AT_FINDING_INTERIOR_FREE:
        snprintf(detail, sizeof detail, "pointer is %llu bytes inside a live block of %llu",
                 (unsigned long long)(f->ptr - f->alloc_ptr), (unsigned long long)f->alloc_size);
        break;
    case AT_FINDING_MISALIGNED_FREE:
        snprintf(detail, sizeof detail,
                 "the block's address is not a multiple of the alignment %llu it is released with",
                 (unsigned long long)f->given_align);
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
    case AT_FINDING_INVALID_ALIGNMENT:
    case AT_FINDING_INVALID_SIZE:
    case AT_FINDING_ZERO_SIZE:
        request_detail(detail, sizeof detail, f);
        break;
    default:
        layout_detail(detail, sizeof detail, f);
    }
    sqlite3_bind_text(st, 1, finding_name(f->finding), -1, SQLITE_STATIC);
    bind_u64(st, 2, f->seq);
    bind_u64(st, 3, f->t / 1000);
    bind_u64(st, 4, f->thread);
    bind_u64(st, 5, f->ptr);
    bind_opt(st, 6, f->release_stack != 0, f->release_stack);
    bind_opt(st, 7, f->given_layout & AT_GIVEN_SIZE, f->given_size);
    bind_opt(st, 8, f->given_layout & AT_GIVEN_ALIGN, f->given_align);
    sqlite3_bind_text(st, 9, family_name(f->given_family), -1, SQLITE_STATIC);
    bind_opt(st, 10, f->has_alloc, f->alloc_seq);
    bind_opt(st, 11, f->has_alloc, f->alloc_ptr);
    bind_opt(st, 12, f->has_alloc && f->alloc_stack, f->alloc_stack);
    bind_opt(st, 13, f->has_alloc, f->alloc_size);
    bind_opt(st, 14, f->has_alloc, (uint64_t)1 << f->alloc_align_log2);
    if (f->has_alloc)
        sqlite3_bind_text(st, 15, family_name(f->alloc_family), -1, SQLITE_STATIC);
    else /* not the previous finding's (a reset keeps the bindings) */
        sqlite3_bind_null(st, 15);
    bind_opt(st, 16, f->finding == AT_FINDING_DOUBLE_FREE, f->first_free_seq);
    bind_opt(st, 17, f->finding == AT_FINDING_DOUBLE_FREE && f->first_free_stack,
             f->first_free_stack);
    sqlite3_bind_text(st, 18, detail, -1, SQLITE_TRANSIENT);
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

/* A node of the call tree (records.h), its frame inserted on first sight. */
static void write_node(writer *w, const at_rec_node *n)
{
    sqlite3_bind_int64(w->node, 1, n->id);
    if (n->parent)
        sqlite3_bind_int64(w->node, 2, n->parent);
    else
        sqlite3_bind_null(w->node, 2);
    sqlite3_bind_int64(w->node, 3, frame_id(w, (uintptr_t)n->ip));
    step(w, w->node);
}

static void write_stack(writer *w, uint32_t id, uint32_t depth)
{
    sqlite3_bind_int64(w->stack, 1, id);
    sqlite3_bind_int64(w->stack, 2, depth);
    step(w, w->stack);
}

static void write_thread_row(writer *w, uint32_t id, int64_t tid, const char *name)
{
    sqlite3_bind_int64(w->thread, 1, id);
    sqlite3_bind_int64(w->thread, 2, tid);
    sqlite3_bind_text(w->thread, 3, name, -1, SQLITE_TRANSIENT);
    step(w, w->thread);
}

/* ---- records received alike by both writers -------------------------------------- */

size_t at__record_size(const unsigned char *p, size_t avail)
{
    size_t n = 0;
    switch (*p) {
    case AT_REC_LIFETIME: n = sizeof(at_rec_lifetime); break;
    case AT_REC_ALLOC: n = sizeof(at_rec_alloc); break;
    case AT_REC_FREE: n = sizeof(at_rec_free); break;
    case AT_REC_FINDING: n = sizeof(at_rec_finding); break;
    case AT_REC_THREAD: n = sizeof(at_rec_thread); break;
    case AT_REC_END:
    case AT_REC_EXEC:
    case AT_REC_EXEC_FAILED: n = sizeof(at_rec_end); break;
    case AT_REC_NODE: n = sizeof(at_rec_node); break;
    case AT_REC_STACK: n = sizeof(at_rec_stack); break;
    case AT_REC_REACH_END: n = sizeof(at_rec_reach_end); break;
    case AT_REC_POOL_REF: n = sizeof(at_rec_pool_ref); break;
    case AT_REC_POOL:
    case AT_REC_REACH:
    case AT_REC_MODULE:
    case AT_REC_MARK:
    case AT_REC_META: {
        at_rec_var h;
        if (avail < sizeof h)
            return 0;
        memcpy(&h, p, sizeof h);
        n = h.size;
        if (n < sizeof h || h.count > n - sizeof h)
            return 0;
        if (*p == AT_REC_REACH && (h.count > AT_REACH_BATCH || h.count * 8 > n - sizeof h ||
                                   h.id < AT_REACH_DEFINITE || h.id > AT_REACH_REACHABLE))
            return 0;
        if (*p == AT_REC_POOL && (h.count == 0 || h.count > n - sizeof h - sizeof(at_rec_pool)))
            return 0; /* the name's bytes, its NUL included, follow the pool's fields */
        break;
    }
    default:
        return 0;
    }
    return n <= avail ? n : 0;
}

/* A MODULE record's payload: at_rec_module, path, NUL, build id, NUL. */
static void write_module(writer *w, const unsigned char *p, uint32_t n)
{
    at_rec_module m;
    if (n < sizeof m + 2)
        return; /* malformed: a module that cannot be described is left out */
    memcpy(&m, p, sizeof m);
    const char *path = (const char *)p + sizeof m;
    size_t plen = strnlen(path, n - sizeof m);
    const char *build = path + plen + 1;
    if (sizeof m + plen + 1 >= n ||
        strnlen(build, n - sizeof m - plen - 1) == n - sizeof m - plen - 1)
        return; /* not terminated */
    at_module_info info = {path, (uintptr_t)m.base, (uintptr_t)m.start, (uintptr_t)m.end,
                           *build ? build : NULL};
    fail(w, at__modules_insert(w->db, &info));
}

/* The exit scan's classes (records.h): one row per block. */
static void write_reach(writer *w, const at_rec_var *h, const unsigned char *seqs)
{
    for (uint32_t i = 0; i < h->count; i++) {
        uint64_t seq;
        memcpy(&seq, seqs + i * sizeof seq, sizeof seq);
        bind_u64(w->reach, 1, seq);
        sqlite3_bind_int(w->reach, 2, (int)h->id);
        step(w, w->reach);
    }
}

static void write_reach_end(writer *w, const at_rec_reach_end *e)
{
    fail(w, at__meta_set_text(w->db, AT_META_REACH_SCAN, "done"));
    fail(w, at__meta_set_int(w->db, AT_META_REACH_THREADS, e->threads));
    fail(w, at__meta_set_int(w->db, AT_META_REACH_THREADS_UNSTOPPED, e->threads_unstopped));
    fail(w, at__meta_set_int(w->db, AT_META_REACH_SCANNED_BYTES, (int64_t)e->scanned_bytes));
    fail(w, at__meta_set_int(w->db, AT_META_REACH_SKIPPED_BYTES, (int64_t)e->skipped_bytes));
    fail(w, at__meta_set_int(w->db, AT_META_REACH_US, (int64_t)(e->duration_ns / 1000)));
    fail(w, at__meta_set_int(w->db, AT_META_REACH_SEQ, (int64_t)e->scan_seq));
    fail(w, at__meta_set_int(w->db, AT_META_REACH_BLOCKS, (int64_t)e->blocks));
}

/* A pool created or destroyed (records.h): 1, or -1 for an event no
 * tracer writes. */
static int write_pool(writer *w, const at_rec_var *h, const unsigned char *payload)
{
    at_rec_pool e;
    memcpy(&e, payload, sizeof e);
    const char *name = (const char *)payload + sizeof e;
    size_t len = strnlen(name, h->count);
    sqlite3_stmt *st = e.event == AT_POOL_CREATED ? w->pool_create : w->pool_destroy;
    if (e.event != AT_POOL_CREATED && e.event != AT_POOL_DESTROYED)
        return -1;
    int i = 1;
    bind_u64(st, i++, h->id);
    if (e.event == AT_POOL_CREATED) {
        if (len)
            sqlite3_bind_text(st, i++, name, (int)len, SQLITE_TRANSIENT);
        else
            sqlite3_bind_null(st, i++);
    }
    bind_u64(st, i++, e.ptr);
    bind_u64(st, i++, e.seq);
    bind_u64(st, i++, e.t / 1000);
    bind_opt(st, i, e.stack != 0, e.stack);
    step(w, st);
    return 1;
}

/* A pool's block or finding (records.h): 1, or -1 for a kind no tracer
 * writes. */
static int write_pool_ref(writer *w, const at_rec_pool_ref *r)
{
    sqlite3_stmt *st = r->what == AT_POOL_REF_BLOCK ? w->pool_block : w->pool_finding;
    if (r->what != AT_POOL_REF_BLOCK && r->what != AT_POOL_REF_FINDING)
        return -1;
    bind_u64(st, 1, r->seq);
    bind_u64(st, 2, r->pool);
    if (r->what == AT_POOL_REF_BLOCK)
        bind_opt(st, 3, r->chunk != 0, r->chunk);
    step(w, st);
    return 1;
}

int at__sqlw_record(at_sqlw *w, const unsigned char *p)
{
    switch (*p) {
    case AT_REC_LIFETIME: {
        at_rec_lifetime r;
        memcpy(&r, p, sizeof r);
        if (r.align_log2 >= 64 || !at__release_align_ok(r.free_align_log2))
            return -1;
        queue_lifetime(w, &r);
        return 1;
    }
    case AT_REC_FINDING: {
        at_rec_finding f;
        memcpy(&f, p, sizeof f);
        if (!at__release_align_ok(f.given_align_log2) || f.alloc_align_log2 >= 64)
            return -1;
        write_finding(w, &f);
        return 1;
    }
    case AT_REC_THREAD: {
        at_rec_thread t;
        memcpy(&t, p, sizeof t);
        t.name[sizeof t.name - 1] = '\0';
        write_thread_row(w, t.id, t.tid, t.name);
        return 1;
    }
    case AT_REC_NODE: {
        at_rec_node n;
        memcpy(&n, p, sizeof n);
        write_node(w, &n);
        return 1;
    }
    case AT_REC_STACK: {
        at_rec_stack r;
        memcpy(&r, p, sizeof r);
        write_stack(w, r.id, r.depth);
        return 1;
    }
    case AT_REC_MARK: {
        at_rec_var h;
        memcpy(&h, p, sizeof h);
        write_mark(w, &h, p + sizeof h);
        return 1;
    }
    case AT_REC_MODULE: {
        at_rec_var h;
        memcpy(&h, p, sizeof h);
        write_module(w, p + sizeof h, h.count);
        return 1;
    }
    case AT_REC_REACH: {
        at_rec_var h;
        memcpy(&h, p, sizeof h);
        write_reach(w, &h, p + sizeof h);
        return 1;
    }
    case AT_REC_REACH_END: {
        at_rec_reach_end e;
        memcpy(&e, p, sizeof e);
        write_reach_end(w, &e);
        return 1;
    }
    case AT_REC_POOL: {
        at_rec_var h;
        memcpy(&h, p, sizeof h);
        return write_pool(w, &h, p + sizeof h);
    }
    case AT_REC_POOL_REF: {
        at_rec_pool_ref r;
        memcpy(&r, p, sizeof r);
        return write_pool_ref(w, &r);
    }
    }
    return 0;
}

/* ---- sqlw.h ------------------------------------------------------------------- */

at_sqlw *at__sqlw_new(sqlite3 *db)
{
    writer *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->db = db;
    if (prepare(w)) {
        finalize(w);
        free(w);
        return NULL;
    }
    /* Frames already stored (a spool reader resumed over the trace of one
     * that died): ids go on from the last, and the table is asked. */
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT max(id) FROM frames", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0) {
        w->next_frame_id = sqlite3_column_int64(st, 0);
        w->frames_incomplete = 1;
    }
    sqlite3_finalize(st);
    return w;
}

void at__sqlw_free(at_sqlw *w)
{
    if (w) {
        finalize(w);
        at__agg_free(w->agg);
        at__replay_log_free(w->log);
        free(w);
    }
}

void at__sqlw_keep_replay_log(at_sqlw *w)
{
    if (!w->log)
        w->log = at__replay_log_new(); /* none: completion replays the table */
}

void at__sqlw_events_read(at_sqlw *w, uint64_t n)
{
    at__replay_log_events_read(w->log, n);
}

void at__sqlw_alloc_event(at_sqlw *w, const at_rec_alloc *a)
{
    if (!w->log)
        return;
    if (a->family == AT_FAMILY_POOL)
        at__replay_log_skip(w->log, (int64_t)a->seq);
    else
        at__replay_log_alloc(w->log, (int64_t)a->seq, (int64_t)(a->t / 1000), (int64_t)a->size);
    advance_aggregate(w);
}

int at__sqlw_aggregate(at_sqlw *w)
{
    if (!w->log)
        return AT_E_INVALID;
    if (!w->agg && !(w->agg = at__agg_new()))
        return AT_E_NOMEM;
    return 0;
}

void at__sqlw_events_done(at_sqlw *w)
{
    at__replay_log_finish(w->log);
    if (!w->agg)
        return;
    at_replay_peak peak;
    int64_t peak_seq = at__replay_log_peak(w->log, &peak) == 0 ? peak.seq : -1;
    fail(w, at__agg_finish(w->agg, w->db, peak_seq, at__replay_log_late(w->log), held_row, w));
    flush_lifetimes(w);
    at__agg_free(w->agg);
    w->agg = NULL;
}

at_replay_log *at__sqlw_take_replay_log(at_sqlw *w)
{
    at_replay_log *l = w->log;
    w->log = NULL;
    return l;
}

int at__sqlw_error(const at_sqlw *w)
{
    return w->error;
}

uint64_t at__sqlw_late_rows(const at_sqlw *w)
{
    return w->late_rows;
}

uint64_t at__sqlw_folding(const at_sqlw *w)
{
    return w->folding;
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

void at__sqlw_mark(at_sqlw *w, const at_rec_var *h, const unsigned char *payload)
{
    write_mark(w, h, payload);
}

void at__sqlw_thread(at_sqlw *w, uint32_t id, int64_t tid, const char *name)
{
    write_thread_row(w, id, tid, name);
}
