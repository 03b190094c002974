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
    sqlite3_stmt *ins;
    at_replay_state last; /* the last point, written or not */
    int unwritten;
    int64_t last_written_t; /* -1: nothing written yet */
    at_replay_state peak;   /* the state at the peak so far */
    int err;
} sampler;

static void write_point(sampler *s, const at_replay_state *p)
{
    int64_t v[7] = {p->seq, p->time_us, p->live_bytes, p->live_blocks,
                    p->alloc_calls, p->alloc_bytes, p->free_calls};
    for (int i = 0; i < 7; i++)
        sqlite3_bind_int64(s->ins, i + 1, v[i]);
    if (sqlite3_step(s->ins) != SQLITE_DONE)
        s->err = AT_E_DB;
    sqlite3_reset(s->ins);
}

/* The first point, then one each time AT_TIMELINE_PERIOD_US has passed
 * since the last one written. */
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
        write_point(s, &e->after);
        s->last_written_t = e->after.time_us;
        s->unwritten = 0;
    }
}

static void log_run(const at_replay_log *l, replay *r);

/* The replay from the log when there is one, else from the table. */
static int replay_from(sqlite3 *db, const at_replay_log *log, at_replay_fn *fn, void *arg,
                       at_replay_peak *peak)
{
    if (!log)
        return at__replay(db, fn, arg, peak, NULL);
    replay *r = calloc(1, sizeof *r);
    if (!r)
        return AT_E_NOMEM;
    r->fn = fn;
    r->arg = arg;
    log_run(log, r);
    *peak = r->peak;
    free(r);
    return 0;
}

static int store(sqlite3 *db, const at_replay_log *log)
{
    sampler s = {.last_written_t = -1};
    if (at__sql_exec(db, "DELETE FROM timeline") != 0 ||
        sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO timeline VALUES(?,?,?,?,?,?,?)", -1,
                           &s.ins, NULL) != SQLITE_OK) {
        sqlite3_finalize(s.ins);
        return AT_E_DB;
    }
    at_replay_peak peak;
    int err = replay_from(db, log, sample, &s, &peak);
    if (!err && s.unwritten)
        write_point(&s, &s.last); /* the last */
    if (!err && peak.seq > 0)
        write_point(&s, &s.peak); /* replaces the sample of its seq, if there is one */
    sqlite3_finalize(s.ins);
    if (!err)
        err = s.err;
    err = err ? err : at__meta_set_int(db, AT_META_PEAK_BYTES, peak.bytes);
    err = err ? err : at__meta_set_int(db, AT_META_PEAK_BLOCKS, peak.blocks);
    err = err ? err : at__meta_set_int(db, AT_META_PEAK_SEQ, peak.seq);
    return err ? err : at__meta_set_int(db, AT_META_PEAK_TIME_US, peak.time_us);
}

/* ---- the log: the lifetimes a writer wrote, replayed without reading them back --
 * Each event sits at its own sequence number, so walking the array in
 * order replays them: sequence numbers are dense, and placing an event at
 * its index sorts the events for free.  The one seq two events can share
 * (a release at the seq of an allocation: the tie above) keeps the
 * release aside, in `extra`; the walk takes a seq's releases first. */

enum { LOG_NONE = 0, LOG_ALLOC = 1, LOG_FREE = 2 };

typedef struct log_event {
    uint64_t t_kind; /* time in microseconds << 2 | LOG_* */
    int64_t size;
} log_event;

typedef struct log_extra {
    int64_t seq, time_us, size;
} log_extra;

struct at_replay_log {
    log_event *ev; /* indexed by seq; an anonymous mapping of `cap` */
    size_t cap;
    int64_t max; /* the highest seq in ev */
    log_extra *extra;
    size_t nextra, cap_extra;
    int broken; /* memory ran out, or a seq no process reaches */
    uint64_t puts; /* events logged so far */
    uint64_t events_read; /* at__replay_log_events_read */
};

/* How far past the events logged and read so far a seq may be for the
 * array to grow to it: sequence numbers are dense, so a seq far beyond (a
 * corrupt or hostile spool) would only make the array, and the walk over
 * it, huge.  The log is then given up, and completion replays the table
 * instead, whose memory is bounded by the rows.  The events read count
 * too: a program that frees its first block after two million
 * allocations logs a release two million seqs ahead with its first
 * lifetime. */
enum { LOG_SEQ_SLACK = 1 << 20 };

at_replay_log *at__replay_log_new(void)
{
    return calloc(1, sizeof(at_replay_log));
}

void at__replay_log_free(at_replay_log *l)
{
    if (!l)
        return;
    if (l->ev)
        munmap(l->ev, l->cap * sizeof *l->ev);
    free(l->extra);
    free(l);
}

/* The array grows with mremap: pages the kernel adds are zero already (no
 * memset over tens of MiB), and transparent huge pages, where the system
 * allows them on request, cut the page faults of filling it 512-fold. */
static int log_grow(at_replay_log *l, int64_t seq)
{
    if (seq <= 0 || seq >= (int64_t)1 << 40)
        return -1;
    size_t cap = l->cap ? l->cap : (size_t)1 << 17;
    while (cap <= (size_t)seq)
        cap *= 2;
    size_t old_bytes = l->cap * sizeof *l->ev, bytes = cap * sizeof *l->ev;
    void *v = l->ev ? mremap(l->ev, old_bytes, bytes, MREMAP_MAYMOVE)
                    : mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (v == MAP_FAILED)
        return -1;
    madvise(v, bytes, MADV_HUGEPAGE); /* a hint: ignored where unavailable */
    l->ev = v;
    l->cap = cap;
    return 0;
}

static void log_aside(at_replay_log *l, int64_t seq, int64_t time_us, int64_t size)
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
    l->extra[l->nextra++] = (log_extra){seq, time_us, size};
}

static void log_put(at_replay_log *l, int64_t seq, int kind, int64_t time_us, int64_t size)
{
    l->puts++;
    if (l->broken || seq <= 0 || (uint64_t)seq > 4 * (l->puts + l->events_read) + LOG_SEQ_SLACK ||
        ((size_t)seq >= l->cap && log_grow(l, seq) != 0)) {
        l->broken = 1;
        return;
    }
    log_event *e = &l->ev[seq];
    int held = (int)(e->t_kind & 3);
    if (held == LOG_NONE) {
        *e = (log_event){(uint64_t)time_us << 2 | (uint64_t)kind, size};
        if (seq > l->max)
            l->max = seq;
    } else if (kind == LOG_FREE) {
        log_aside(l, seq, time_us, size);
    } else if (held == LOG_FREE) { /* the allocation takes the slot, the release waits aside */
        log_aside(l, seq, (int64_t)(e->t_kind >> 2), e->size);
        *e = (log_event){(uint64_t)time_us << 2 | LOG_ALLOC, size};
    } else {
        l->broken = 1; /* two allocations at one seq: not a trace a tracer writes */
    }
}

void at__replay_log_lifetime(at_replay_log *l, int64_t seq, int64_t time_us, int64_t size,
                             int64_t free_seq, int64_t free_time_us)
{
    if (!l)
        return;
    if (size < 0)
        size = 0;
    log_put(l, seq, LOG_ALLOC, time_us, size);
    if (free_seq >= 0)
        log_put(l, free_seq > seq ? free_seq : seq, LOG_FREE, free_time_us, size);
}

void at__replay_log_events_read(at_replay_log *l, uint64_t n)
{
    if (l && n > l->events_read)
        l->events_read = n;
}

static int by_seq(const void *a, const void *b)
{
    const log_extra *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The same replay as at__replay's, from the log: at each seq the releases
 * kept aside, then the slot's event. */
static void log_run(const at_replay_log *l, replay *r)
{
    if (l->nextra) /* qsort wants a pointer even for no element */
        qsort(l->extra, l->nextra, sizeof *l->extra, by_seq);
    size_t x = 0;
    for (int64_t seq = 1; seq <= l->max; seq++) {
        const log_event *e = &l->ev[seq];
        int kind = (int)(e->t_kind & 3);
        for (; x < l->nextra && l->extra[x].seq == seq; x++) {
            int more = kind != LOG_NONE || (x + 1 < l->nextra && l->extra[x + 1].seq == seq);
            do_release(r, (pending){seq, l->extra[x].time_us, l->extra[x].size, 0}, more);
        }
        if (kind == LOG_ALLOC)
            do_alloc(r, seq, (int64_t)(e->t_kind >> 2), e->size, 0, 0);
        else if (kind == LOG_FREE)
            do_release(r, (pending){seq, (int64_t)(e->t_kind >> 2), e->size, 0}, 0);
    }
}

int at__replay_log_peak(const at_replay_log *l, at_replay_peak *peak)
{
    if (!l || l->broken)
        return -1;
    replay *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    log_run(l, r);
    *peak = r->peak;
    free(r);
    return 0;
}

int at__replay_store(sqlite3 *db)
{
    return store(db, NULL);
}

int at__replay_log_usable(const at_replay_log *l)
{
    return l && !l->broken;
}

int at__replay_log_store(const at_replay_log *l, sqlite3 *db)
{
    return store(db, at__replay_log_usable(l) ? l : NULL);
}
