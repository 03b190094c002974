/* The live heap replayed from the lifetimes (see replay.h).
 *
 * One ordered scan of `lifetimes` (no sort: seq is its rowid) gives the
 * allocations in sequence order; each release waits in a radix heap keyed
 * by its free_seq until the scan reaches an allocation with a larger seq,
 * or one with the same seq (the tie rule: releases first).  About linear
 * in the number of lifetimes: ten million in a second or two.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <alloctrace/error.h>

#include "complete.h"
#include "replay.h"
#include "schema.h"
#include "sqlw.h"

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* ---- pending releases: a radix heap -------------------------------------------
 * Keys only ever grow (a release comes after its allocation, and is taken
 * once the scan has reached it).  A key sits in the bucket of the highest
 * bit in which it differs from the last key taken (bucket 0: equal to it);
 * taking refills bucket 0 from the lowest non-empty bucket, whose keys all
 * move to lower buckets, so each key moves a few times at most: about
 * three times faster than a binary heap over ten million releases.  Each
 * bucket keeps its smallest key, so looking at the smallest costs nothing. */

typedef struct pending {
    int64_t free_seq, free_time, size, stack;
} pending;

typedef struct rheap {
    pending *b[65];
    size_t n[65], cap[65];
    int64_t bmin[65];
    uint64_t mask; /* bit k - 1 set: bucket k (1..64) is not empty */
    size_t size;
    int64_t last;
    int nomem;
} rheap;

static void rheap_put(rheap *h, pending p)
{
    uint64_t x = (uint64_t)p.free_seq ^ (uint64_t)h->last;
    int k = x ? 64 - __builtin_clzll(x) : 0;
    if (h->n[k] == h->cap[k]) {
        size_t cap = h->cap[k] ? h->cap[k] * 2 : 64;
        pending *nb = realloc(h->b[k], cap * sizeof *nb);
        if (!nb) {
            h->nomem = 1;
            return;
        }
        h->b[k] = nb;
        h->cap[k] = cap;
    }
    if (h->n[k] == 0 || p.free_seq < h->bmin[k])
        h->bmin[k] = p.free_seq;
    h->b[k][h->n[k]++] = p;
    if (k)
        h->mask |= 1ull << (k - 1);
}

/* Keys below the last one taken would break the order: none should come
 * (releases follow their allocation), a hostile trace's are clamped. */
static void rheap_push(rheap *h, pending p)
{
    if (p.free_seq < h->last)
        p.free_seq = h->last;
    size_t before = h->size;
    rheap_put(h, p);
    if (!h->nomem)
        h->size = before + 1;
}

/* The smallest key; the heap must not be empty. */
static int64_t rheap_min(const rheap *h)
{
    return h->n[0] ? h->last : h->bmin[__builtin_ctzll(h->mask) + 1];
}

/* Takes an element with the smallest key; the heap must not be empty. */
static pending rheap_pop(rheap *h)
{
    if (!h->n[0]) {
        int k = __builtin_ctzll(h->mask) + 1;
        h->last = h->bmin[k];
        size_t n = h->n[k];
        h->n[k] = 0;
        h->mask &= ~(1ull << (k - 1));
        for (size_t i = 0; i < n; i++)
            rheap_put(h, h->b[k][i]); /* to a bucket below k, never k: no growth fails */
    }
    h->size--;
    return h->b[0][--h->n[0]];
}

static void rheap_free(rheap *h)
{
    for (int k = 0; k < 65; k++)
        free(h->b[k]);
}

/* ---- the replay ------------------------------------------------------------------ */

typedef struct replay {
    at_replay_fn *fn;
    void *arg;
    at_replay_state s;
    at_replay_peak peak;
    rheap h;
} replay;

/* `shared`: another event of the same seq follows (an allocation, or a
 * release only a hostile trace has): this one is no point of the
 * timeline. */
static void do_release(replay *r, pending p, int shared)
{
    r->s.seq = p.free_seq;
    r->s.time_us = p.free_time;
    r->s.live_bytes = sat_add(r->s.live_bytes, -p.size);
    r->s.live_blocks--;
    r->s.free_calls++;
    if (r->fn) {
        at_replay_event e = {.is_alloc = 0, .point = !shared, .size = p.size, .stack = p.stack,
                             .after = r->s};
        r->fn(r->arg, &e);
    }
}

static void do_alloc(replay *r, int64_t seq, int64_t t, int64_t size, int64_t align,
                     int64_t stack)
{
    /* The tie rule: releases at this very seq first. */
    while (r->h.size && rheap_min(&r->h) <= seq) {
        pending p = rheap_pop(&r->h);
        do_release(r, p, p.free_seq == seq || (r->h.size && rheap_min(&r->h) == p.free_seq));
    }
    r->s.seq = seq;
    r->s.time_us = t;
    r->s.live_bytes = sat_add(r->s.live_bytes, size);
    r->s.live_blocks++;
    r->s.alloc_calls++;
    r->s.alloc_bytes = sat_add(r->s.alloc_bytes, size);
    int new_peak = r->s.live_bytes > r->peak.bytes;
    if (new_peak)
        r->peak = (at_replay_peak){r->s.live_bytes, r->s.live_blocks, seq, t};
    if (r->fn) {
        at_replay_event e = {.is_alloc = 1, .point = 1, .new_peak = new_peak, .size = size,
                             .align = align, .stack = stack, .after = r->s};
        r->fn(r->arg, &e);
    }
}

int at__replay(sqlite3 *db, at_replay_fn *fn, void *arg, at_replay_peak *peak,
               at_replay_state *end)
{
    replay *r = calloc(1, sizeof *r);
    if (!r)
        return AT_E_NOMEM;
    r->fn = fn;
    r->arg = arg;
    /* NULLs become values no row holds, so that each column is read once. */
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT seq, t, size, " AT_SQL_INFO_ALIGN("info") ","
                                " coalesce(stack, 0), coalesce(free_dseq, -9223372036854775808),"
                                " coalesce(free_dt, 0) FROM lifetimes"
                                /* the program's heap: a pool's blocks lie in it */
                                " WHERE NOT " AT_SQL_INFO_POOL("info") " ORDER BY seq",
                                -1, &st, NULL);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        if ((rc = sqlite3_step(st)) != SQLITE_ROW)
            break;
        int64_t seq = sqlite3_column_int64(st, 0);
        int64_t t = sqlite3_column_int64(st, 1);
        int64_t size = sqlite3_column_int64(st, 2);
        int64_t stack = sqlite3_column_int64(st, 4);
        if (size < 0)
            size = 0;
        do_alloc(r, seq, t, size, sqlite3_column_int64(st, 3), stack);
        int64_t dseq = sqlite3_column_int64(st, 5);
        if (dseq != INT64_MIN)
            rheap_push(&r->h, (pending){sat_add(seq, dseq > 0 ? dseq : 0),
                                        sat_add(t, sqlite3_column_int64(st, 6)), size, stack});
        if (r->h.nomem)
            break;
    }
    sqlite3_finalize(st);
    int err = r->h.nomem ? AT_E_NOMEM : rc == SQLITE_DONE ? 0 : AT_E_DB;
    while (!err && r->h.size) {
        pending p = rheap_pop(&r->h);
        do_release(r, p, r->h.size && rheap_min(&r->h) == p.free_seq);
    }
    if (peak)
        *peak = r->peak;
    if (end)
        *end = r->s;
    rheap_free(&r->h);
    free(r);
    return err;
}

static int meta_int(sqlite3 *db, at_meta_key key, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int found = 0;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, at__meta_name(key), -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER) {
            *out = sqlite3_column_int64(st, 0);
            found = 1;
        }
    }
    sqlite3_finalize(st);
    return found;
}

int at__replay_stored_peak(sqlite3 *db, at_replay_peak *peak)
{
    at_replay_peak p = {0};
    /* peak_blocks came with the replay: a trace that has it has the rest,
     * all computed by at__replay_store. */
    if (!meta_int(db, AT_META_PEAK_BLOCKS, &p.blocks) ||
        !meta_int(db, AT_META_PEAK_BYTES, &p.bytes) || !meta_int(db, AT_META_PEAK_SEQ, &p.seq) ||
        !meta_int(db, AT_META_PEAK_TIME_US, &p.time_us))
        return 0;
    *peak = p;
    return 1;
}

/* ---- the stored timeline ------------------------------------------------------------ */

typedef struct sampler {
    at_replay_state *points; /* the timeline's points, written by write_points */
    size_t n, cap;
    at_replay_state last; /* the last point, kept or not */
    int unwritten;
    int64_t last_written_t; /* -1: nothing kept yet */
    at_replay_state peak;   /* the state at the peak so far */
    int nomem;
} sampler;

static void keep_point(sampler *s, const at_replay_state *p)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        at_replay_state *v = realloc(s->points, cap * sizeof *v);
        if (!v) {
            s->nomem = 1;
            return;
        }
        s->points = v;
        s->cap = cap;
    }
    s->points[s->n++] = *p;
}

/* The first point, then one each time AT_TIMELINE_PERIOD_US has passed
 * since the last one kept: one a period of the run's time at most, so
 * that the points take memory by how long the program ran, not by how
 * many calls it made. */
static void sample(void *arg, const at_replay_event *e)
{
    sampler *s = arg;
    if (e->new_peak)
        s->peak = e->after;
    if (!e->point)
        return;
    s->last = e->after;
    s->unwritten = 1;
    if (s->last_written_t < 0 || e->after.time_us - s->last_written_t >= AT_TIMELINE_PERIOD_US) {
        keep_point(s, &e->after);
        s->last_written_t = e->after.time_us;
        s->unwritten = 0;
    }
}

static int write_point(sqlite3_stmt *ins, const at_replay_state *p)
{
    int64_t v[7] = {p->seq, p->time_us, p->live_bytes, p->live_blocks,
                    p->alloc_calls, p->alloc_bytes, p->free_calls};
    for (int i = 0; i < 7; i++)
        sqlite3_bind_int64(ins, i + 1, v[i]);
    int rc = sqlite3_step(ins);
    sqlite3_reset(ins);
    return rc == SQLITE_DONE ? 0 : AT_E_DB;
}

/* Replaces the timeline table with the points kept, then the last, then
 * the peak (which replaces the sample of its seq, if there is one), and
 * writes meta's peak_* keys. */
static int write_points(sqlite3 *db, const sampler *s, const at_replay_peak *peak)
{
    if (s->nomem)
        return AT_E_NOMEM;
    sqlite3_stmt *ins = NULL;
    if (at__sql_exec(db, "DELETE FROM timeline") != 0 ||
        sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO timeline VALUES(?,?,?,?,?,?,?)", -1,
                           &ins, NULL) != SQLITE_OK) {
        sqlite3_finalize(ins);
        return AT_E_DB;
    }
    int err = 0;
    for (size_t i = 0; i < s->n && !err; i++)
        err = write_point(ins, &s->points[i]);
    if (!err && s->unwritten)
        err = write_point(ins, &s->last);
    if (!err && peak->seq > 0)
        err = write_point(ins, &s->peak);
    sqlite3_finalize(ins);
    err = err ? err : at__meta_set_int(db, AT_META_PEAK_BYTES, peak->bytes);
    err = err ? err : at__meta_set_int(db, AT_META_PEAK_BLOCKS, peak->blocks);
    err = err ? err : at__meta_set_int(db, AT_META_PEAK_SEQ, peak->seq);
    return err ? err : at__meta_set_int(db, AT_META_PEAK_TIME_US, peak->time_us);
}

/* The replay from the table. */
static int store(sqlite3 *db)
{
    sampler s = {.last_written_t = -1};
    at_replay_peak peak;
    int err = at__replay(db, sample, &s, &peak, NULL);
    err = err ? err : write_points(db, &s, &peak);
    free(s.points);
    return err;
}

/* ---- the log: the replay while the lifetimes are written ------------------------
 * A writer that sees every event as it reads it (the spool reader) feeds
 * each one here: an allocation when its record is read, a release when
 * it is paired.  Events are placed in a ring indexed by sequence number
 * and replayed as soon as every seq before them is in, so the replay
 * runs along with the writer and keeps only a window of events, however
 * long the run: the memory is the ring, the releases that share a seq
 * with another event (a heap), and the timeline's points (one a period of
 * the run's time).  Records come roughly in seq order (the reader reads
 * chunks oldest first); seqs no event of the heap has (a pool's blocks, a
 * bad release, a record lost) stay empty, and the replay passes them only
 * when the window is full.  An event whose seq was passed already is
 * late: it is replayed where the replay stands, and counted; a full
 * trace is then replayed from its table at completion instead, exactly,
 * and the ring grows so that it happens less. */

enum { LOG_NONE = 0, LOG_ALLOC = 1, LOG_FREE = 2, LOG_SKIP = 3 };

typedef struct log_event {
    uint64_t t_kind; /* time in microseconds << 2 | LOG_* */
    int64_t size;
} log_event;

typedef struct log_extra {
    int64_t seq, time_us, size;
} log_extra;

/* The ring's slots: at first, and at most (grown by late events). */
enum { LOG_MIN_SLOTS = 1 << 18, LOG_MAX_SLOTS = 1 << 22 };

/* How far past the events logged and read so far a seq may be: sequence
 * numbers are dense, so a seq far beyond (a corrupt or hostile spool)
 * would only make the replay walk a huge empty range.  The log is then
 * given up, and completion replays the table instead, whose memory is
 * bounded by the rows. */
enum { LOG_SEQ_SLACK = 1 << 20 };

struct at_replay_log {
    log_event *ring; /* an anonymous mapping of `cap` slots, seq & (cap - 1) */
    size_t cap;
    int64_t cursor; /* every seq below has been replayed */
    int64_t hi;     /* the highest seq placed */
    size_t filled;  /* slots holding an event */
    log_extra *extra; /* a min-heap by seq */
    size_t nextra, cap_extra;
    replay r;
    sampler s;
    uint64_t late;
    int broken; /* memory ran out, or a seq no process reaches */
    uint64_t puts; /* events logged so far */
    uint64_t events_read; /* at__replay_log_events_read */
};

static log_event *ring_map(size_t cap)
{
    void *v = mmap(NULL, cap * sizeof(log_event), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (v == MAP_FAILED)
        return NULL;
    madvise(v, cap * sizeof(log_event), MADV_HUGEPAGE); /* a hint */
    return v;
}

at_replay_log *at__replay_log_new(void)
{
    at_replay_log *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->cap = LOG_MIN_SLOTS;
    l->ring = ring_map(l->cap);
    if (!l->ring) {
        free(l);
        return NULL;
    }
    l->cursor = 1;
    l->r.fn = sample;
    l->r.arg = &l->s;
    l->s.last_written_t = -1;
    return l;
}

void at__replay_log_free(at_replay_log *l)
{
    if (!l)
        return;
    munmap(l->ring, l->cap * sizeof *l->ring);
    free(l->extra);
    free(l->s.points);
    rheap_free(&l->r.h);
    free(l);
}

static int extra_before(const log_extra *a, const log_extra *b)
{
    return a->seq < b->seq;
}

static void extra_push(at_replay_log *l, int64_t seq, int64_t time_us, int64_t size)
{
    if (l->nextra == l->cap_extra) {
        size_t cap = l->cap_extra ? 2 * l->cap_extra : 64;
        log_extra *v = realloc(l->extra, cap * sizeof *v);
        if (!v) {
            l->broken = 1;
            return;
        }
        l->extra = v;
        l->cap_extra = cap;
    }
    size_t i = l->nextra++;
    l->extra[i] = (log_extra){seq, time_us, size};
    while (i > 0 && extra_before(&l->extra[i], &l->extra[(i - 1) / 2])) {
        log_extra t = l->extra[i];
        l->extra[i] = l->extra[(i - 1) / 2];
        l->extra[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static log_extra extra_pop(at_replay_log *l)
{
    log_extra top = l->extra[0];
    l->extra[0] = l->extra[--l->nextra];
    for (size_t i = 0;;) {
        size_t c = 2 * i + 1, m = i;
        if (c < l->nextra && extra_before(&l->extra[c], &l->extra[m]))
            m = c;
        if (c + 1 < l->nextra && extra_before(&l->extra[c + 1], &l->extra[m]))
            m = c + 1;
        if (m == i)
            break;
        log_extra t = l->extra[i];
        l->extra[i] = l->extra[m];
        l->extra[m] = t;
        i = m;
    }
    return top;
}

/* Replays seq `l->cursor`: the releases kept aside at it, then its slot's
 * event; then moves on. */
static void replay_next(at_replay_log *l)
{
    int64_t seq = l->cursor;
    log_event *e = &l->ring[(size_t)seq & (l->cap - 1)];
    int kind = (int)(e->t_kind & 3);
    while (l->nextra && l->extra[0].seq <= seq) {
        log_extra x = extra_pop(l);
        int more = kind == LOG_ALLOC || kind == LOG_FREE ||
                   (l->nextra && l->extra[0].seq == x.seq);
        do_release(&l->r, (pending){seq, x.time_us, x.size, 0}, more);
    }
    if (kind == LOG_ALLOC)
        do_alloc(&l->r, seq, (int64_t)(e->t_kind >> 2), e->size, 0, 0);
    else if (kind == LOG_FREE)
        do_release(&l->r, (pending){seq, (int64_t)(e->t_kind >> 2), e->size, 0}, 0);
    if (kind != LOG_NONE) {
        *e = (log_event){0, 0};
        l->filled--;
    }
    l->cursor++;
}

/* Replays every seq below `to`, the empty ones passed. */
static void replay_to(at_replay_log *l, int64_t to)
{
    while (l->cursor < to) {
        if (l->filled == 0 && (l->nextra == 0 || l->extra[0].seq >= to)) {
            l->cursor = to; /* nothing in between */
            break;
        }
        if (l->filled == 0 && l->extra[0].seq > l->cursor)
            l->cursor = l->extra[0].seq;
        replay_next(l);
    }
}

/* A late event, replayed where the replay stands. */
static void replay_late(at_replay_log *l, int kind, int64_t time_us, int64_t size)
{
    l->late++;
    int64_t at = l->cursor - 1;
    if (kind == LOG_ALLOC)
        do_alloc(&l->r, at, time_us, size, 0, 0);
    else
        do_release(&l->r, (pending){at, time_us, size, 0}, 0);
    /* a bigger window, for the events still to come */
    if (l->cap < LOG_MAX_SLOTS) {
        log_event *v = ring_map(2 * l->cap);
        if (!v)
            return;
        for (int64_t seq = l->cursor; seq <= l->hi; seq++)
            v[(size_t)seq & (2 * l->cap - 1)] = l->ring[(size_t)seq & (l->cap - 1)];
        munmap(l->ring, l->cap * sizeof *l->ring);
        l->ring = v;
        l->cap *= 2;
    }
}

static void log_put(at_replay_log *l, int64_t seq, int kind, int64_t time_us, int64_t size)
{
    l->puts++;
    if (l->broken)
        return;
    if (seq <= 0 || (uint64_t)seq > 4 * (l->puts + l->events_read) + LOG_SEQ_SLACK) {
        l->broken = 1;
        return;
    }
    if (seq < l->cursor) {
        if (kind != LOG_SKIP)
            replay_late(l, kind, time_us, size);
        return;
    }
    if (seq - l->cursor >= (int64_t)l->cap)
        replay_to(l, seq - (int64_t)l->cap + 1); /* the window is full */
    if (seq > l->hi)
        l->hi = seq;
    log_event *e = &l->ring[(size_t)seq & (l->cap - 1)];
    int held = (int)(e->t_kind & 3);
    if (held == LOG_NONE || held == LOG_SKIP) {
        if (held == LOG_NONE)
            l->filled++;
        if (held == LOG_NONE || kind != LOG_SKIP)
            *e = (log_event){(uint64_t)time_us << 2 | (uint64_t)kind, size};
    } else if (kind == LOG_SKIP) {
        /* an event holds it already */
    } else if (kind == LOG_FREE) {
        extra_push(l, seq, time_us, size);
    } else if (held == LOG_FREE) { /* the allocation takes the slot, the release waits aside */
        extra_push(l, seq, (int64_t)(e->t_kind >> 2), e->size);
        *e = (log_event){(uint64_t)time_us << 2 | LOG_ALLOC, size};
    } else {
        l->broken = 1; /* two allocations at one seq: not a trace a tracer writes */
        return;
    }
    /* In order: replay as far as every seq is in, short of the highest: a
     * release at the seq of an allocation (a block whose address came
     * back without a release seen) is read just before the allocation. */
    while (l->cursor < l->hi && (l->ring[(size_t)l->cursor & (l->cap - 1)].t_kind & 3))
        replay_next(l);
}

void at__replay_log_alloc(at_replay_log *l, int64_t seq, int64_t time_us, int64_t size)
{
    if (l)
        log_put(l, seq, LOG_ALLOC, time_us, size < 0 ? 0 : size);
}

void at__replay_log_release(at_replay_log *l, int64_t free_seq, int64_t time_us, int64_t size)
{
    if (l)
        log_put(l, free_seq, LOG_FREE, time_us, size < 0 ? 0 : size);
}

void at__replay_log_skip(at_replay_log *l, int64_t seq)
{
    if (l)
        log_put(l, seq, LOG_SKIP, 0, 0);
}

void at__replay_log_events_read(at_replay_log *l, uint64_t n)
{
    if (l && n > l->events_read)
        l->events_read = n;
}

int64_t at__replay_log_cursor(const at_replay_log *l)
{
    return l && !l->broken ? l->cursor : -1;
}

void at__replay_log_finish(at_replay_log *l)
{
    if (l && !l->broken)
        replay_to(l, l->hi + 1);
}

int at__replay_log_peak(const at_replay_log *l, at_replay_peak *peak)
{
    if (!l || l->broken)
        return -1;
    *peak = l->r.peak;
    return 0;
}

uint64_t at__replay_log_late(const at_replay_log *l)
{
    return l ? l->late : 0;
}

int at__replay_store(sqlite3 *db)
{
    return store(db);
}

int at__replay_log_usable(const at_replay_log *l)
{
    return l && !l->broken && !l->late && !l->r.h.nomem;
}

int at__replay_log_store(const at_replay_log *l, sqlite3 *db)
{
    if (!at__replay_log_usable(l))
        return store(db);
    return write_points(db, &l->s, &l->r.peak);
}
