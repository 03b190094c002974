/* The aggregated trace's folding (aggregate.h).
 *
 * An aggregate is keyed by what the `allocations` view would say of a
 * lifetime apart from its addresses, times and thread: allocation stack,
 * release stack, family, alignment, both operations.  Each keeps its
 * count, bytes, bytes lost to rounding, smallest and largest size, the sum
 * of its lifetimes, and two small histograms: by size class (count,
 * bytes, waste, so that the tools' size-by-alignment grid is exact) and
 * by log2 of the lifetime in nanoseconds.  A histogram holds only the
 * classes it met, a handful at most for a site. */
#include <stdlib.h>
#include <string.h>

#include <alloctrace/error.h>

#include "aggregate.h"
#include "at_uthash.h"
#include "complete.h"
#include "schema.h"

typedef struct agg_key {
    uint32_t stack, free_stack;
    uint8_t family, align_log2, alloc_op, free_op;
} agg_key;

typedef struct agg_bucket {
    uint64_t count, bytes, waste;
    uint8_t cls;
} agg_bucket;

typedef struct agg_hist {
    agg_bucket *b;
    uint32_t n, cap;
} agg_hist;

typedef struct agg_entry {
    agg_key key;
    uint64_t count, bytes, waste, min_size, max_size, lifetime_ns;
    uint64_t first_seq, last_free_seq;
    agg_hist sizes, lifetimes;
    UT_hash_handle hh;
} agg_entry;

/* A ring of released lifetimes in the order they came, each waiting for
 * the replay to pass its release. */
typedef struct agg_queue {
    at_rec_lifetime *v;
    size_t head, n, cap; /* cap a power of two */
} agg_queue;

struct at_agg {
    agg_queue waiting;
    at_rec_lifetime *candidates; /* live at the peak so far */
    size_t ncand, cap_cand;
    int64_t cand_peak;           /* the peak seq they were live at */
    agg_entry *entries;
    int nomem;
};

int at__agg_size_class(uint64_t size)
{
    return size <= 1 ? 0 : 64 - __builtin_clzll(size - 1);
}

int at__agg_lifetime_class(uint64_t ns)
{
    return ns == 0 ? 0 : 64 - __builtin_clzll(ns);
}

uint64_t at__agg_padding(uint64_t size, uint64_t align)
{
    if (align <= 1 || (align & (align - 1)) || size > INT64_MAX - align)
        return 0; /* as the tools' replay counts it: sizes are signed there */
    return ((size + align - 1) & ~(align - 1)) - size;
}

at_agg *at__agg_new(void)
{
    return calloc(1, sizeof(at_agg));
}

static void fold_or_row(at_agg *a, const at_rec_lifetime *r,
                        void (*row)(void *arg, const at_rec_lifetime *r), void *arg);

void at__agg_free(at_agg *a)
{
    if (!a)
        return;
    agg_entry *e, *tmp;
    HASH_ITER(hh, a->entries, e, tmp)
    {
        HASH_DEL(a->entries, e);
        free(e->sizes.b);
        free(e->lifetimes.b);
        free(e);
    }
    free(a->waiting.v);
    free(a->candidates);
    free(a);
}

int at__agg_add(at_agg *a, const at_rec_lifetime *r)
{
    agg_queue *q = &a->waiting;
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 4096;
        at_rec_lifetime *v = malloc(cap * sizeof *v);
        if (!v)
            return -1;
        for (size_t i = 0; i < q->n; i++)
            v[i] = q->v[(q->head + i) & (q->cap - 1)];
        free(q->v);
        q->v = v;
        q->head = 0;
        q->cap = cap;
    }
    q->v[(q->head + q->n++) & (q->cap - 1)] = *r;
    return 0;
}

/* Lifetimes held live at the peak at most (5 MiB); past it they are
 * written as rows at once, as a full trace would have them: they stay
 * rows even if a later peak comes. */
enum { HOLD_MAX = 65536 };

static void hold(at_agg *a, const at_rec_lifetime *r,
                 void (*row)(void *arg, const at_rec_lifetime *r), void *arg)
{
    if (a->ncand == HOLD_MAX) {
        row(arg, r);
        return;
    }
    if (a->ncand == a->cap_cand) {
        size_t cap = a->cap_cand ? 2 * a->cap_cand : 256;
        at_rec_lifetime *v = realloc(a->candidates, cap * sizeof *v);
        if (!v) {
            row(arg, r); /* without memory to hold it, a row: nothing is lost */
            return;
        }
        a->candidates = v;
        a->cap_cand = cap;
    }
    a->candidates[a->ncand++] = *r;
}

void at__agg_advance(at_agg *a, int64_t replayed, int64_t peak_seq,
                     void (*row)(void *arg, const at_rec_lifetime *r), void *arg)
{
    /* A new peak lies past every release the replay had passed: what was
     * live at the old one was not at the new one. */
    if (peak_seq != a->cand_peak) {
        for (size_t i = 0; i < a->ncand; i++)
            fold_or_row(a, &a->candidates[i], row, arg);
        a->ncand = 0;
        a->cand_peak = peak_seq;
    }
    agg_queue *q = &a->waiting;
    while (q->n) {
        const at_rec_lifetime *r = &q->v[q->head];
        if (replayed >= 0 && (int64_t)r->free_seq >= replayed)
            break; /* the replay has not passed its release yet */
        if (peak_seq >= 0 && (int64_t)r->seq <= peak_seq && (int64_t)r->free_seq > peak_seq)
            hold(a, r, row, arg);
        else
            fold_or_row(a, r, row, arg);
        q->head = (q->head + 1) & (q->cap - 1);
        q->n--;
    }
}

static int hist_add(agg_hist *h, int cls, uint64_t bytes, uint64_t waste)
{
    for (uint32_t i = 0; i < h->n; i++)
        if (h->b[i].cls == cls) {
            h->b[i].count++;
            h->b[i].bytes += bytes;
            h->b[i].waste += waste;
            return 0;
        }
    if (h->n == h->cap) {
        uint32_t cap = h->cap ? 2 * h->cap : 4;
        agg_bucket *b = realloc(h->b, cap * sizeof *b);
        if (!b)
            return -1;
        h->b = b;
        h->cap = cap;
    }
    h->b[h->n++] = (agg_bucket){1, bytes, waste, (uint8_t)cls};
    return 0;
}

static agg_entry *entry_of(at_agg *a, const at_rec_lifetime *r)
{
    agg_key k;
    memset(&k, 0, sizeof k); /* the padding is hashed too */
    k.stack = r->stack;
    k.free_stack = r->free_stack;
    k.family = r->family;
    k.align_log2 = r->align_log2;
    k.alloc_op = r->alloc_op;
    k.free_op = r->free_op;
    agg_entry *e;
    HASH_FIND(hh, a->entries, &k, sizeof k, e);
    if (e)
        return e;
    if (!(e = calloc(1, sizeof *e)))
        return NULL;
    e->key = k;
    e->min_size = UINT64_MAX;
    e->first_seq = UINT64_MAX;
    HASH_ADD(hh, a->entries, key, sizeof k, e);
    return e;
}

static int fold(at_agg *a, const at_rec_lifetime *r)
{
    agg_entry *e = entry_of(a, r);
    if (!e)
        return -1;
    uint64_t waste = at__agg_padding(r->size, (uint64_t)1 << (r->align_log2 & 63));
    uint64_t ns = r->free_t > r->t ? r->free_t - r->t : 0;
    e->count++;
    e->bytes += r->size;
    e->waste += waste;
    e->lifetime_ns += ns;
    e->min_size = r->size < e->min_size ? r->size : e->min_size;
    e->max_size = r->size > e->max_size ? r->size : e->max_size;
    e->first_seq = r->seq < e->first_seq ? r->seq : e->first_seq;
    e->last_free_seq = r->free_seq > e->last_free_seq ? r->free_seq : e->last_free_seq;
    if (hist_add(&e->sizes, at__agg_size_class(r->size), r->size, waste) ||
        hist_add(&e->lifetimes, at__agg_lifetime_class(ns), r->size, 0))
        return -1;
    return 0;
}

static const char tables_sql[] =
    "CREATE TABLE aggregates(id INTEGER PRIMARY KEY, stack INTEGER, free_stack INTEGER,"
    " info INTEGER NOT NULL, count INTEGER NOT NULL, bytes INTEGER NOT NULL,"
    " waste INTEGER NOT NULL, min_size INTEGER NOT NULL, max_size INTEGER NOT NULL,"
    " lifetime_us INTEGER NOT NULL, first_seq INTEGER NOT NULL, last_free_seq INTEGER NOT NULL);"
    "CREATE TABLE aggregate_sizes(aggregate INTEGER NOT NULL, class INTEGER NOT NULL,"
    " count INTEGER NOT NULL, bytes INTEGER NOT NULL, waste INTEGER NOT NULL,"
    " PRIMARY KEY(aggregate, class)) WITHOUT ROWID;"
    "CREATE TABLE aggregate_lifetimes(aggregate INTEGER NOT NULL, class INTEGER NOT NULL,"
    " count INTEGER NOT NULL, bytes INTEGER NOT NULL,"
    " PRIMARY KEY(aggregate, class)) WITHOUT ROWID;"
    /* Each allocation stack's totals, rows and aggregates together: what
     * `SELECT alloc_stack, count(*), sum(size) FROM allocations GROUP BY 1`
     * gives on a full trace. */
    "CREATE VIEW allocation_totals(stack, count, bytes) AS SELECT stack, sum(n), sum(b) FROM"
    " (SELECT stack, 1 AS n, size AS b FROM lifetimes"
    "  UNION ALL SELECT stack, count, bytes FROM aggregates) GROUP BY stack;";

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : AT_E_DB;
}

static int write_hist(sqlite3_stmt *st, int64_t id, const agg_hist *h, int with_waste)
{
    int rc = 0;
    for (uint32_t i = 0; !rc && i < h->n; i++) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, h->b[i].cls);
        sqlite3_bind_int64(st, 3, (int64_t)h->b[i].count);
        sqlite3_bind_int64(st, 4, (int64_t)h->b[i].bytes);
        if (with_waste)
            sqlite3_bind_int64(st, 5, (int64_t)h->b[i].waste);
        rc = step_done(st);
    }
    return rc;
}

static void bind_stack(sqlite3_stmt *st, int i, uint32_t stack)
{
    if (stack)
        sqlite3_bind_int64(st, i, stack);
    else
        sqlite3_bind_null(st, i);
}

/* One aggregate's rows; `st` the three INSERTs. */
static int write_entry(sqlite3_stmt *const st[3], int64_t id, const agg_entry *e)
{
    const agg_key *k = &e->key;
    int64_t v[9] = {(int64_t)AT_INFO(k->align_log2, k->family, k->alloc_op, k->free_op, 0),
                    (int64_t)e->count,       (int64_t)e->bytes,
                    (int64_t)e->waste,       (int64_t)e->min_size,
                    (int64_t)e->max_size,    (int64_t)(e->lifetime_ns / 1000),
                    (int64_t)e->first_seq,   (int64_t)e->last_free_seq};
    sqlite3_bind_int64(st[0], 1, id);
    bind_stack(st[0], 2, k->stack);
    bind_stack(st[0], 3, k->free_stack);
    for (int i = 0; i < 9; i++)
        sqlite3_bind_int64(st[0], 4 + i, v[i]);
    int rc = step_done(st[0]);
    rc = rc ? rc : write_hist(st[1], id, &e->sizes, 1);
    return rc ? rc : write_hist(st[2], id, &e->lifetimes, 0);
}

static int write_tables(at_agg *a, sqlite3 *db)
{
    if (sqlite3_exec(db, tables_sql, NULL, NULL, NULL) != SQLITE_OK)
        return AT_E_DB;
    static const char *const sql[3] = {
        "INSERT INTO aggregates VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
        "INSERT INTO aggregate_sizes VALUES(?,?,?,?,?)",
        "INSERT INTO aggregate_lifetimes VALUES(?,?,?,?)",
    };
    sqlite3_stmt *st[3] = {NULL, NULL, NULL};
    int rc = 0;
    for (int i = 0; i < 3 && !rc; i++)
        if (sqlite3_prepare_v2(db, sql[i], -1, &st[i], NULL) != SQLITE_OK)
            rc = AT_E_DB;
    int64_t id = 0;
    for (agg_entry *e = a->entries; e && !rc; e = e->hh.next)
        rc = write_entry(st, ++id, e);
    for (int i = 0; i < 3; i++)
        sqlite3_finalize(st[i]);
    return rc;
}

static void fold_or_row(at_agg *a, const at_rec_lifetime *r,
                        void (*row)(void *arg, const at_rec_lifetime *r), void *arg)
{
    if (fold(a, r) != 0)
        row(arg, r); /* without memory to fold it, a row: nothing is lost */
}

int at__agg_finish(at_agg *a, sqlite3 *db, int64_t peak_seq, uint64_t late,
                   void (*row)(void *arg, const at_rec_lifetime *r), void *arg)
{
    at__agg_advance(a, -1, peak_seq, row, arg);
    for (size_t i = 0; i < a->ncand; i++)
        row(arg, &a->candidates[i]);
    a->ncand = 0;
    int rc = write_tables(a, db);
    rc = rc ? rc : at__meta_set_int(db, AT_META_AGGREGATED, 1);
    return rc || !late ? rc : at__meta_set_int(db, AT_META_REPLAY_LATE_EVENTS, (int64_t)late);
}
