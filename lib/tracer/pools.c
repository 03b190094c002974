/* The program's own pools (pools.h): a table of pools by the pointer that
 * names them, each with a live table of its blocks.
 *
 * Relies on live.c (a pool's blocks; the malloc block holding one),
 * tracer.c (stacks, sequence numbers, findings) and the sink, as the hot
 * path does.  Nothing here is on malloc's path: a program without
 * annotations never gets here, and the malloc hot path is unchanged.
 * Backtraces are taken before pools_mu is, and records appended after it
 * is released (tracer.c's fork order: no lock of the tracer is held
 * around a backtrace).
 *
 * A pool's live table costs what the malloc one does for its size (live.h:
 * 64 shards, each a segment of 64 slots once used, and a ring of 1,024
 * tombstones once a block is released): about 8 KiB for the table itself,
 * up to ~1.7 MiB for a pool with many blocks.  That is the price of
 * checking a pool's frees exactly as malloc's are.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "at_uthash.h" /* at__mix_ptr */
#include "clock.h"
#include "mem.h"
#include "pools.h"

enum {
    POOL_BUCKETS = 256,
    NAME_MAX_BYTES = 128, /* a name is kept to 127 bytes */
    /* A pool whose blocks this many times in a row lie in no malloc block
     * (memory of its own: mmap, a static array) is no longer searched: a
     * miss walks the whole live table. */
    CHUNK_MISSES_MAX = 64,
};

/* In a pool's live table, `family` says whether the allocation stated its
 * alignment (the family itself is AT_FAMILY_POOL, put back on the way out). */
enum { ALIGN_STATED = 0, ALIGN_UNSTATED = 1 };

typedef struct at_pool {
    struct at_pool *next; /* its bucket's chain */
    uintptr_t key;        /* the program's pointer */
    uint32_t id;
    uint32_t create_stack;
    uint64_t create_seq, create_t;
    unsigned chunk_misses;
    at_block_info chunk; /* the malloc block that held its last block (seq 0: none) */
    char name[NAME_MAX_BYTES];
    at_live blocks;
} at_pool;

typedef struct at_pools {
    at_pool *buckets[POOL_BUCKETS];
    uint32_t next_id;
} at_pools;

static uint64_t now_ns(at_tracer *t)
{
    return at__fast_now_ns(&t->clock) - t->start_ns;
}

/* ---- the table of pools (pools_mu held) --------------------------------------- */

static at_pool **link_of(at_pools *ps, uintptr_t key)
{
    at_pool **l = &ps->buckets[at__mix_ptr(key) & (POOL_BUCKETS - 1)];
    while (*l && (*l)->key != key)
        l = &(*l)->next;
    return l;
}

static at_pools *pools_of(at_tracer *t)
{
    if (!t->pools)
        t->pools = at__mem_calloc(sizeof *t->pools);
    return t->pools;
}

/* The pool named `key`, or NULL. */
static at_pool *find_pool(at_tracer *t, uintptr_t key)
{
    return t->pools ? *link_of(t->pools, key) : NULL;
}

/* A new pool named `key` (none is), or NULL without memory. */
static at_pool *new_pool(at_tracer *t, uintptr_t key, const char *name)
{
    at_pools *ps = pools_of(t);
    at_pool *p = ps ? at__mem_calloc(sizeof *p) : NULL;
    if (!p)
        return NULL;
    at__live_init(&p->blocks);
    if (at__live_keeps_times(&t->live))
        at__live_keep_times(&p->blocks);
    p->key = key;
    p->id = ++ps->next_id;
    if (name) {
        strncpy(p->name, name, sizeof p->name - 1);
        p->name[sizeof p->name - 1] = '\0';
    }
    at_pool **l = link_of(ps, key);
    *l = p;
    return p;
}

/* Takes pool `key` out of the table: it is the caller's now. */
static at_pool *unlink_pool(at_tracer *t, uintptr_t key)
{
    if (!t->pools)
        return NULL;
    at_pool **l = link_of(t->pools, key);
    at_pool *p = *l;
    if (p)
        *l = p->next;
    return p;
}

static void free_pool(at_pool *p)
{
    at__live_destroy(&p->blocks);
    at__mem_free(p, sizeof *p);
}

/* The seq of the live malloc block holding `ptr`, 0 for none: the one that
 * held the pool's last block if it still does, else a search. */
static uint64_t chunk_of(at_tracer *t, at_pool *p, uintptr_t ptr)
{
    at_block_info c;
    if (p->chunk.seq && ptr >= p->chunk.ptr && ptr - p->chunk.ptr < p->chunk.size &&
        at__live_find(&t->live, p->chunk.ptr, &c) && c.seq == p->chunk.seq) {
        p->chunk_misses = 0;
        return c.seq;
    }
    if (p->chunk_misses >= CHUNK_MISSES_MAX)
        return 0;
    if (at__live_containing(&t->live, ptr, &c)) {
        p->chunk = c;
        p->chunk_misses = 0;
        return c.seq;
    }
    p->chunk_misses++;
    return 0;
}

/* ---- records ---------------------------------------------------------------------- */

static void record_pool(at_thread *th, const at_pool *p, uint32_t event, uint64_t seq, uint64_t t,
                        uint32_t stack)
{
    unsigned char payload[sizeof(at_rec_pool) + NAME_MAX_BYTES];
    at_rec_pool r = {.ptr = p->key, .seq = seq, .t = t, .event = event, .stack = stack,
                     .thread = th->id};
    size_t n = event == AT_POOL_CREATED ? strlen(p->name) + 1 : 1;
    memcpy(payload, &r, sizeof r);
    memcpy(payload + sizeof r, event == AT_POOL_CREATED ? p->name : "", n);
    at__thread_append_var(th, AT_REC_POOL, p->id, payload, (uint32_t)(sizeof r + n),
                          (uint32_t)n);
}

static void record_ref(at_thread *th, uint8_t what, uint32_t pool, uint64_t seq, uint64_t chunk)
{
    at_rec_pool_ref r = {.kind = AT_REC_POOL_REF, .what = what, .pool = pool, .seq = seq,
                         .chunk = chunk};
    at__thread_append(th, &r, sizeof r);
}

/* A pool's block as the trace sees it (the table's copy says whether its
 * alignment was stated). */
static at_block_info as_traced(const at_block_info *b)
{
    at_block_info x = *b;
    x.family = AT_FAMILY_POOL;
    return x;
}

static void record_block(at_tracer *t, at_thread *th, const at_block_info *b, uint8_t op,
                         uint32_t pool, uint64_t chunk)
{
    at_block_info x = as_traced(b);
    t->sink->alloc(th, &x, op);
    record_ref(th, AT_POOL_REF_BLOCK, pool, b->seq, chunk);
}

/* The release of block `b` at `seq`; `given` the AT_GIVEN_* bits of what
 * it passed, `size` and `align` their values. */
static void record_release(at_tracer *t, at_thread *th, const at_block_info *b, uint64_t seq,
                           uint64_t now, uint32_t stack, uint8_t given, size_t size, size_t align)
{
    at_rec_lifetime rec;
    at_block_info x = as_traced(b);
    at__lifetime_from_block(&rec, &x);
    rec.free_op = AT_OP_DEALLOC;
    rec.free_seq = seq;
    rec.free_t = now;
    rec.free_thread = th->id;
    rec.free_stack = stack;
    rec.free_layout_given = given;
    rec.free_size = given & AT_GIVEN_SIZE ? size : b->size;
    rec.free_align_log2 = !(given & AT_GIVEN_ALIGN) ? b->align_log2
                          : (align & (align - 1))   ? AT_ALIGN_NOT_POW2
                                                    : (uint8_t)at__log2(align);
    t->sink->release(th, &rec);
}

struct ending {
    at_tracer *t;
    at_thread *th;
    uint64_t seq, now;
    uint32_t stack;
};

static void release_by_destroy(const at_block_info *b, void *arg)
{
    struct ending *e = arg;
    record_release(e->t, e->th, b, e->seq, e->now, e->stack, 0, 0, 0);
}

/* Pool `p`, out of the table, is destroyed: its live blocks are released
 * at the destroy's seq, then it is freed. */
static void end_pool(at_tracer *t, at_thread *th, at_pool *p, uint32_t stack)
{
    struct ending e = {t, th, at__next_seq(t), now_ns(t), stack};
    if (th) {
        at__live_foreach(&p->blocks, release_by_destroy, &e);
        record_pool(th, p, AT_POOL_DESTROYED, e.seq, e.now, stack);
    }
    free_pool(p);
}

/* ---- the annotations ---------------------------------------------------------------- */

/* Pool `key`, created unnamed when it is not known (*created then holds
 * its create seq).  pools_mu held. */
static at_pool *pool_for_use(at_tracer *t, uintptr_t key, uint64_t *created)
{
    at_pool *p = find_pool(t, key);
    *created = 0;
    if (!p && (p = new_pool(t, key, NULL)) != NULL) {
        p->create_seq = *created = at__next_seq(t);
        p->create_t = now_ns(t);
    }
    return p;
}

__attribute__((noinline)) void at__pool_create(at_tracer *t, const void *pool, const char *name,
                                               int skip)
{
    int saved = errno;
    at_thread *th = at__thread_get(t);
    uint32_t stack = at__capture_stack(t, th, skip + 1);
    pthread_mutex_lock(&t->pools_mu);
    at_pool *old = unlink_pool(t, (uintptr_t)pool);
    pthread_mutex_unlock(&t->pools_mu);
    if (old)
        end_pool(t, th, old, stack); /* created twice: the first one ends here */
    at_pool copy;
    pthread_mutex_lock(&t->pools_mu);
    /* Another thread may have used it meanwhile, creating it unnamed. */
    at_pool *p = find_pool(t, (uintptr_t)pool);
    if (p && name && !p->name[0]) {
        strncpy(p->name, name, sizeof p->name - 1);
    } else if (!p && (p = new_pool(t, (uintptr_t)pool, name)) != NULL) {
        p->create_seq = at__next_seq(t);
        p->create_t = now_ns(t);
        p->create_stack = stack;
    }
    if (p)
        memcpy(&copy, p, offsetof(at_pool, blocks));
    pthread_mutex_unlock(&t->pools_mu);
    if (p && th)
        record_pool(th, &copy, AT_POOL_CREATED, copy.create_seq, copy.create_t,
                    copy.create_stack);
    errno = saved;
}

__attribute__((noinline)) void at__pool_alloc(at_tracer *t, const void *pool, void *ptr,
                                              size_t size, size_t align, int skip)
{
    int saved = errno;
    at_thread *th = at__thread_get(t);
    int stated = align && (align & (align - 1)) == 0;
    at_block_info b = {
        .ptr = (uintptr_t)ptr,
        .size = size,
        .stack = at__capture_stack(t, th, skip + 1),
        .thread = th ? th->id : 0,
        .align_log2 = stated ? (uint8_t)at__log2(align) : 0,
        .family = stated ? ALIGN_STATED : ALIGN_UNSTATED,
        .op = AT_OP_ALLOC,
    };
    at_block_info old;
    uint64_t created, chunk = 0;
    at_pool copy;
    pthread_mutex_lock(&t->pools_mu);
    at_pool *p = pool_for_use(t, (uintptr_t)pool, &created);
    b.seq = at__next_seq(t);
    b.t = now_ns(t);
    int r = p ? at__live_insert(&p->blocks, &b, &old) : AT_E_NOMEM;
    if (r >= 0) {
        chunk = chunk_of(t, p, b.ptr);
        memcpy(&copy, p, offsetof(at_pool, blocks));
    }
    pthread_mutex_unlock(&t->pools_mu);
    if (r < 0 || !th) {
        at__trace_untracked(t, 1); /* its release is no finding */
        errno = saved;
        return;
    }
    if (created)
        record_pool(th, &copy, AT_POOL_CREATED, created, copy.create_t, 0);
    if (r == 1) /* handed out again without a release the pool told */
        record_release(t, th, &old, b.seq, b.t, 0, 0, 0, 0);
    record_block(t, th, &b, AT_OP_ALLOC, copy.id, chunk);
    errno = saved;
}

/* The finding a release that found block `b` (stated alignment or not)
 * makes, 0 for none: as at__trace_release's. */
static int layout_finding(const at_block_info *b, uintptr_t ptr, size_t size, size_t align)
{
    int pow2 = (align & (align - 1)) == 0;
    if (align && pow2 && ptr % align != 0)
        return AT_FINDING_MISALIGNED_FREE;
    if (size && size != b->size)
        return AT_FINDING_LAYOUT_MISMATCH;
    if (align && (!pow2 || (b->family == ALIGN_STATED && align != (size_t)1 << b->align_log2)))
        return AT_FINDING_LAYOUT_MISMATCH;
    return 0;
}

static int bad_release_kind(enum at_live_lookup found)
{
    return found == AT_LIVE_RELEASED   ? AT_FINDING_DOUBLE_FREE
           : found == AT_LIVE_INTERIOR ? AT_FINDING_INTERIOR_FREE
                                       : AT_FINDING_INVALID_FREE;
}

__attribute__((noinline)) void at__pool_free(at_tracer *t, const void *pool, void *ptr,
                                             size_t size, size_t align, int skip)
{
    int saved = errno;
    at_thread *th = at__thread_get(t);
    uint32_t stack = at__capture_stack(t, th, skip + 1);
    uint8_t given = (uint8_t)((size ? AT_GIVEN_SIZE : 0) | (align ? AT_GIVEN_ALIGN : 0));
    at_block_info b;
    uint64_t created;
    at_pool copy;
    pthread_mutex_lock(&t->pools_mu);
    at_pool *p = pool_for_use(t, (uintptr_t)pool, &created);
    uint64_t seq = at__next_seq(t), now = now_ns(t);
    enum at_live_lookup found =
        p ? at__live_release(&p->blocks, (uintptr_t)ptr, seq, stack, &b) : AT_LIVE_UNKNOWN;
    if (p)
        memcpy(&copy, p, offsetof(at_pool, blocks));
    pthread_mutex_unlock(&t->pools_mu);
    if (!p || !th || (found == AT_LIVE_UNKNOWN && __atomic_load_n(&t->untracked, __ATOMIC_RELAXED))) {
        at__trace_lost(t); /* maybe a block the tracer could not record */
        errno = saved;
        return;
    }
    if (created)
        record_pool(th, &copy, AT_POOL_CREATED, created, copy.create_t, 0);
    int finding = found == AT_LIVE_FOUND ? layout_finding(&b, (uintptr_t)ptr, size, align)
                                         : bad_release_kind(found);
    if (found == AT_LIVE_FOUND)
        record_release(t, th, &b, seq, now, stack, given, size, align);
    if (finding) {
        at_block_info x = as_traced(&b);
        /* the finding record goes out after the pool's ref: an abort on it
         * leaves both in the trace */
        record_ref(th, AT_POOL_REF_FINDING, copy.id, seq, 0);
        at__release_finding(t, th, finding, ptr, size, align, given, AT_FAMILY_POOL, seq, now,
                            found != AT_LIVE_UNKNOWN, &x, stack, skip + 1);
    }
    errno = saved;
}

__attribute__((noinline)) void at__pool_destroy(at_tracer *t, const void *pool, int skip)
{
    int saved = errno;
    at_thread *th = at__thread_get(t);
    uint32_t stack = at__capture_stack(t, th, skip + 1);
    pthread_mutex_lock(&t->pools_mu);
    at_pool *p = unlink_pool(t, (uintptr_t)pool);
    pthread_mutex_unlock(&t->pools_mu);
    if (p)
        end_pool(t, th, p, stack);
    errno = saved;
}

/* ---- fork and close ----------------------------------------------------------------- */

struct inherit {
    at_tracer *t;
    at_thread *th;
    uint32_t pool;
    uint64_t now; /* the child trace's start, as its other inherited blocks (sink_spool.c) */
};

static void inherit_block(const at_block_info *b, void *arg)
{
    struct inherit *in = arg;
    at_block_info c = *b;
    c.t = in->now;
    record_block(in->t, in->th, &c, AT_OP_INHERITED, in->pool, 0);
}

void at__pools_dump_inherited(at_tracer *t, at_thread *th)
{
    if (!t->pools || !th)
        return;
    for (int i = 0; i < POOL_BUCKETS; i++) {
        for (at_pool *p = t->pools->buckets[i]; p; p = p->next) {
            record_pool(th, p, AT_POOL_CREATED, p->create_seq, p->create_t, p->create_stack);
            struct inherit in = {t, th, p->id, now_ns(t)};
            at__live_foreach(&p->blocks, inherit_block, &in);
        }
    }
}

uint64_t at__pools_live_count(at_tracer *t)
{
    uint64_t n = 0;
    for (int i = 0; t->pools && i < POOL_BUCKETS; i++)
        for (at_pool *p = t->pools->buckets[i]; p; p = p->next)
            n += at__live_count(&p->blocks);
    return n;
}

struct each_block {
    void (*fn)(const at_block_info *, void *);
    void *arg;
};

static void each_block_traced(const at_block_info *b, void *arg)
{
    const struct each_block *e = arg;
    at_block_info x = as_traced(b);
    e->fn(&x, e->arg);
}

void at__pools_foreach_block(at_tracer *t, void (*fn)(const at_block_info *, void *), void *arg)
{
    struct each_block e = {fn, arg};
    for (int i = 0; t->pools && i < POOL_BUCKETS; i++)
        for (at_pool *p = t->pools->buckets[i]; p; p = p->next)
            at__live_foreach(&p->blocks, each_block_traced, &e);
}

void at__pools_free(at_tracer *t)
{
    if (!t->pools)
        return;
    for (int i = 0; i < POOL_BUCKETS; i++) {
        while (t->pools->buckets[i]) {
            at_pool *p = t->pools->buckets[i];
            t->pools->buckets[i] = p->next;
            free_pool(p);
        }
    }
    at__mem_free(t->pools, sizeof *t->pools);
    t->pools = NULL;
}
