/* One replay of the live heap for the trace model (see trace_heap.h).
 *
 * The replay (lib/trace/replay.h) decides the order of events and where the
 * peak is; this file only adds them up.  Each stack's live bytes at the
 * peak are kept without a second pass: a stack's value at the peak is the
 * value it had after its last change at or before the peak, saved lazily
 * when it next changes after it (or at the end).
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "trace_heap.h"

/* A stack's running state during the replay. */
typedef struct live_state {
    int64_t bytes, blocks;
    int64_t stamp; /* event number of its last change, -1 none */
} live_state;

typedef struct by_id {
    long long id;
    size_t index;
    UT_hash_handle hh;
} by_id;

struct tm_heap_index {
    size_t *dense;  /* stacks.id -> index + 1 when the ids are dense (they are 1..N) */
    int64_t ndense;
    by_id *hash;    /* the others */
    live_state *state;
    size_t cap;
};

static void *xrealloc_array(void *p, size_t n, size_t elem)
{
    size_t bytes;
    if (__builtin_mul_overflow(n ? n : 1, elem, &bytes))
        bytes = SIZE_MAX; /* tm_xrealloc fails, and says so */
    return tm_xrealloc(p, bytes);
}

static size_t add_entry(tm_heap *h, long long id)
{
    struct tm_heap_index *ix = h->index;
    if (h->nstacks == ix->cap) {
        ix->cap = ix->cap ? 2 * ix->cap : 1024;
        h->stacks = xrealloc_array(h->stacks, ix->cap, sizeof *h->stacks);
        ix->state = xrealloc_array(ix->state, ix->cap, sizeof *ix->state);
    }
    size_t k = h->nstacks++;
    memset(&h->stacks[k], 0, sizeof h->stacks[k]);
    h->stacks[k].id = id;
    ix->state[k] = (live_state){0, 0, -1};
    if (id >= 0 && id < ix->ndense) {
        ix->dense[id] = k + 1;
    } else {
        by_id *e = tm_xrealloc(NULL, sizeof *e);
        e->id = id;
        e->index = k;
        HASH_ADD(hh, ix->hash, id, sizeof e->id, e);
    }
    return k;
}

/* Index of stack `id`'s entry, or -1. */
static long long find_entry(const tm_heap *h, long long id)
{
    const struct tm_heap_index *ix = h->index;
    if (!ix)
        return -1;
    if (id >= 0 && id < ix->ndense)
        return (long long)ix->dense[id] - 1;
    by_id *e;
    HASH_FIND(hh, ix->hash, &id, sizeof id, e);
    return e ? (long long)e->index : -1;
}

const tm_stack_heap *tm__heap_find(const tm_heap *h, long long id)
{
    long long k = find_entry(h, id);
    return k < 0 ? NULL : &h->stacks[k];
}

tm_stack_heap *tm__heap_entry(tm_heap *h, long long id)
{
    long long k = find_entry(h, id);
    return &h->stacks[k >= 0 ? (size_t)k : add_entry(h, id)];
}

/* ---- the pass ------------------------------------------------------------------------------ */

typedef struct scan {
    tm_heap *h;
    int64_t span, events, peak_event;
    int64_t last_id; /* the stack of the last event, and its index (-1 none) */
    long long last;
    tm_point lo[TM_TIME_BUCKETS], hi[TM_TIME_BUCKETS];
    unsigned char used[TM_TIME_BUCKETS];
    tm_point end;
    int any;
    /* An aggregated trace (lib/trace/aggregate.h): the rows are only part
     * of the lifetimes, so the peak is meta's (peak_seq: its rows are all
     * there) and the timeline the stored one. */
    int aggregated;
    int64_t peak_seq;
} scan;

static int size_class(int64_t size)
{
    if (size <= 1)
        return 0;
    return 64 - __builtin_clzll((unsigned long long)(size - 1));
}

static int align_class(int64_t align)
{
    if (align <= 1)
        return 0;
    int c = 64 - __builtin_clzll((unsigned long long)align) - 1;
    return (align & (align - 1)) ? c + 1 : c; /* not a power of two: the next one */
}

/* Bytes lost when `size` is rounded up to a multiple of `align`. */
static int64_t padding(int64_t size, int64_t align)
{
    if (size < 0 || align <= 1 || (align & (align - 1)))
        return 0;
    int64_t up;
    if (__builtin_add_overflow(size, align - 1, &up))
        return 0;
    return (up & ~(align - 1)) - size;
}

static void stack_change(scan *sc, size_t k, int64_t dbytes, int64_t dblocks)
{
    live_state *st = &sc->h->index->state[k];
    if (st->stamp <= sc->peak_event) {
        sc->h->stacks[k].peak_bytes = st->bytes;
        sc->h->stacks[k].peak_blocks = st->blocks;
    }
    st->bytes = tm_sat_add(st->bytes, dbytes);
    st->blocks += dblocks;
    st->stamp = sc->events;
}

/* Records the heap after an event at time t in its bucket. */
static void observe(scan *sc, const at_replay_state *after)
{
    tm_point p = {after->time_us, after->live_bytes, after->live_blocks};
    int64_t t = p.time_us, b = 0;
    sc->any = 1;
    sc->end = p;
    if (sc->span > 0 && t > 0)
        b = t >= sc->span ? TM_TIME_BUCKETS - 1
                          : (int64_t)((double)t / (double)sc->span * TM_TIME_BUCKETS);
    if (b >= TM_TIME_BUCKETS)
        b = TM_TIME_BUCKETS - 1;
    if (!sc->used[b]) {
        sc->used[b] = 1;
        sc->lo[b] = sc->hi[b] = p;
    } else {
        if (p.bytes < sc->lo[b].bytes)
            sc->lo[b] = p;
        if (p.bytes > sc->hi[b].bytes)
            sc->hi[b] = p;
    }
}

static void on_event(void *arg, const at_replay_event *e)
{
    scan *sc = arg;
    tm_heap *h = sc->h;
    if (sc->last < 0 || e->stack != sc->last_id) {
        long long k = find_entry(h, e->stack);
        sc->last = k >= 0 ? k : (long long)add_entry(h, e->stack);
        sc->last_id = e->stack;
    }
    size_t k = (size_t)sc->last;
    sc->events++;
    if (!e->is_alloc) {
        stack_change(sc, k, -e->size, -1);
        if (e->point && !sc->aggregated)
            observe(sc, &e->after);
        return;
    }
    stack_change(sc, k, e->size, 1);
    tm_stack_heap *s = &h->stacks[k];
    int64_t pad = padding(e->size, e->align);
    s->bytes = tm_sat_add(s->bytes, e->size);
    s->count++;
    s->waste = tm_sat_add(s->waste, pad);
    tm_layout_cell *c = &h->layout[size_class(e->size) * TM_ALIGN_CLASSES + align_class(e->align)];
    c->count++;
    c->bytes = tm_sat_add(c->bytes, e->size);
    c->waste = tm_sat_add(c->waste, pad);
    h->waste = tm_sat_add(h->waste, pad);
    if (sc->aggregated ? e->after.seq == sc->peak_seq : e->new_peak)
        sc->peak_event = sc->events;
    if (!sc->aggregated)
        observe(sc, &e->after);
}

/* The timeline: the start, per bucket its low and high in time order,
 * the end. */
static void timeline_points(tm_heap *h, const scan *sc)
{
    h->timeline = xrealloc_array(NULL, 2 * TM_TIME_BUCKETS + 2, sizeof *h->timeline);
    if (!sc->any)
        return;
    h->timeline[h->ntimeline++] = (tm_point){0, 0, 0};
    for (int b = 0; b < TM_TIME_BUCKETS; b++) {
        if (!sc->used[b])
            continue;
        tm_point a = sc->lo[b], z = sc->hi[b];
        if (a.time_us > z.time_us) {
            tm_point tmp = a;
            a = z;
            z = tmp;
        }
        h->timeline[h->ntimeline++] = a;
        if (z.time_us != a.time_us || z.bytes != a.bytes)
            h->timeline[h->ntimeline++] = z;
    }
    h->timeline[h->ntimeline++] = sc->end;
    /* Times of different threads interleave roughly: keep them ascending. */
    for (size_t i = 1; i < h->ntimeline; i++)
        if (h->timeline[i].time_us < h->timeline[i - 1].time_us)
            h->timeline[i].time_us = h->timeline[i - 1].time_us;
    h->last_time_us = sc->end.time_us;
}

static long long one_int(sqlite3 *db, const char *sql, long long dflt, int *failed)
{
    sqlite3_stmt *st = NULL;
    long long v = dflt;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(st, 0);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        *failed = 1;
    sqlite3_finalize(st);
    return v;
}

/* An aggregated trace's stored timeline, point by point. */
static int stored_timeline(scan *sc, sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT time_us, live_bytes, live_blocks FROM timeline"
                                    " ORDER BY seq", -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        at_replay_state p = {.time_us = sqlite3_column_int64(st, 0),
                             .live_bytes = sqlite3_column_int64(st, 1),
                             .live_blocks = sqlite3_column_int64(st, 2)};
        observe(sc, &p);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* An aggregated trace's folded lifetimes (the tables `aggregates` and
 * `aggregate_sizes`): each site's count, bytes and waste, and the layout
 * grid, as their rows would have given them. */
static int add_aggregates(scan *sc, sqlite3 *db)
{
    tm_heap *h = sc->h;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        db, "SELECT a.stack, a.info & 63, s.class, s.count, s.bytes, s.waste"
            " FROM aggregates a JOIN aggregate_sizes s ON s.aggregate = a.id", -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        long long stack = sqlite3_column_int64(st, 0); /* NULL: 0, as the replay says it */
        int align_log2 = sqlite3_column_int(st, 1), cls = sqlite3_column_int(st, 2);
        long long n = sqlite3_column_int64(st, 3), bytes = sqlite3_column_int64(st, 4);
        long long waste = sqlite3_column_int64(st, 5);
        tm_stack_heap *s = tm__heap_entry(h, stack);
        s->count = tm_sat_add(s->count, n);
        s->bytes = tm_sat_add(s->bytes, bytes);
        s->waste = tm_sat_add(s->waste, waste);
        if (cls >= 0 && cls < TM_SIZE_CLASSES) {
            tm_layout_cell *c = &h->layout[cls * TM_ALIGN_CLASSES + align_log2];
            c->count = tm_sat_add(c->count, n);
            c->bytes = tm_sat_add(c->bytes, bytes);
            c->waste = tm_sat_add(c->waste, waste);
        }
        h->waste = tm_sat_add(h->waste, waste);
        h->lifetimes = tm_sat_add(h->lifetimes, n);
        h->alloc_bytes = tm_sat_add(h->alloc_bytes, bytes);
        h->free_calls = tm_sat_add(h->free_calls, n);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int tm__heap_load(tm_heap *h, sqlite3 *db, long long span_us, at_replay_peak *peak)
{
    memset(h, 0, sizeof *h);
    h->index = tm_xrealloc(NULL, sizeof *h->index);
    memset(h->index, 0, sizeof *h->index);
    h->layout = xrealloc_array(NULL, TM_SIZE_CLASSES * TM_ALIGN_CLASSES, sizeof *h->layout);
    memset(h->layout, 0, TM_SIZE_CLASSES * TM_ALIGN_CLASSES * sizeof *h->layout);
    int failed = 0;
    scan *sc = tm_xrealloc(NULL, sizeof *sc);
    memset(sc, 0, sizeof *sc);
    sc->h = h;
    sc->last = -1;
    sc->peak_event = -1;
    /* The span the buckets divide: the trace's duration, or the last
     * allocation's time when that is later (or the duration unknown). */
    sc->span = span_us;
    long long last_t = one_int(db, "SELECT t FROM lifetimes ORDER BY seq DESC LIMIT 1", 0, &failed);
    if (last_t > sc->span)
        sc->span = last_t;
    /* Stack ids are nodes of the call tree, numbered 1..N in every trace
     * the tracer writes: index them directly (a hash look-up per event is
     * a tenth of the pass). */
    long long max_id = one_int(db, "SELECT max(id) FROM stacks", -1, &failed);
    long long nids = one_int(db, "SELECT count(*) FROM stack_nodes", 0, &failed);
    if (max_id >= 0 && max_id < INT_MAX / 2 && max_id <= 2 * nids + 65536) {
        h->index->ndense = max_id + 1;
        h->index->dense = xrealloc_array(NULL, (size_t)max_id + 1, sizeof *h->index->dense);
        memset(h->index->dense, 0, ((size_t)max_id + 1) * sizeof *h->index->dense);
    }
    at_replay_peak stored;
    sc->aggregated = one_int(db, "SELECT value FROM meta WHERE key = 'aggregated'", 0, &failed) == 1;
    if (sc->aggregated && !at__replay_stored_peak(db, &stored))
        failed = 1;
    sc->peak_seq = sc->aggregated ? stored.seq : -1;
    at_replay_state end = {0};
    if (failed || at__replay(db, on_event, sc, peak, &end) != 0 ||
        (sc->aggregated && stored_timeline(sc, db) != 0)) {
        free(sc);
        return -1;
    }
    if (sc->aggregated && peak)
        *peak = stored;
    for (size_t k = 0; k < h->nstacks; k++) {
        const live_state *st = &h->index->state[k];
        if (st->stamp <= sc->peak_event) {
            h->stacks[k].peak_bytes = st->bytes;
            h->stacks[k].peak_blocks = st->blocks;
        }
    }
    h->lifetimes = end.alloc_calls;
    h->alloc_bytes = end.alloc_bytes;
    h->free_calls = end.free_calls;
    h->live_bytes_end = end.live_bytes;
    h->live_blocks_end = end.live_blocks;
    if (sc->aggregated && add_aggregates(sc, db) != 0) {
        free(sc);
        return -1;
    }
    timeline_points(h, sc);
    free(sc);
    return 0;
}

void tm__heap_free(tm_heap *h)
{
    if (h->index) {
        by_id *e, *tmp;
        HASH_ITER(hh, h->index->hash, e, tmp)
        {
            HASH_DEL(h->index->hash, e);
            free(e);
        }
        free(h->index->dense);
        free(h->index->state);
        free(h->index);
    }
    free(h->stacks);
    free(h->timeline);
    free(h->layout);
    memset(h, 0, sizeof *h);
}
