/* Unit tests of the tracer's live-block table (live.h), against a
 * brute-force model: random inserts, releases, double releases, interior
 * and unknown releases, unreleases and re-inserts of a live address (a
 * displaced block) over a pool of addresses (dense like malloc's, 0
 * included; scattered; sharing their low 32 bits), with each shard's ring
 * of AT_LIVE_TOMBSTONES tombstones modelled exactly: which double frees
 * are still told apart, and with what first release.  foreach gives
 * exactly the live blocks.  Shards of one segment and of many, split and
 * merged again.  Growth to two million blocks; running out of
 * the tracer's memory; two threads releasing the same blocks. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include <alloctrace/error.h>

#include "at_uthash.h" /* at__mix_ptr: scattered addresses */
#include "live.h"
#include "mem.h"
#include "test.h"

enum { M_NONE, M_LIVE, M_RELEASED };

/* Address i of the pool is a block of at most `span` bytes; the pool's
 * blocks never overlap, so an address inside block i is inside no other. */
typedef struct model {
    uintptr_t *addr;
    at_block_info *info;
    uint64_t *tomb_id; /* M_RELEASED: the shard's entombing count then */
    unsigned char *state;
    size_t n, live;
    uint64_t span;
    /* per shard: the ring of pool indices and entombing counts */
    size_t ring[AT_LIVE_SHARDS][AT_LIVE_TOMBSTONES];
    uint64_t ring_id[AT_LIVE_SHARDS][AT_LIVE_TOMBSTONES];
    uint64_t entombed[AT_LIVE_SHARDS];
    uint64_t seq;
} model;

/* Whether the tables the random tests make keep allocation times
 * (at__live_keep_times: 40-byte slots); without, they give `t` back as 0. */
static int keep_times;

static unsigned shard_of(uintptr_t p)
{
    return at__live_shard(p);
}

static void assert_same(const at_block_info *a, const at_block_info *b)
{
    ASSERT_UEQ(a->ptr, b->ptr);
    ASSERT_UEQ(a->size, b->size);
    ASSERT_UEQ(a->seq, b->seq);
    ASSERT_UEQ(a->t, b->t);
    ASSERT_UEQ(a->stack, b->stack);
    ASSERT_UEQ(a->thread, b->thread);
    ASSERT_UEQ(a->align_log2, b->align_log2);
    ASSERT_UEQ(a->family, b->family);
    ASSERT_UEQ(a->op, b->op);
    ASSERT_UEQ(a->free_seq, b->free_seq);
    ASSERT_UEQ(a->free_stack, b->free_stack);
}

static at_block_info random_info(model *m, size_t i)
{
    uint64_t r = next_random();
    return (at_block_info){
        .ptr = m->addr[i],
        .size = 1 + r % m->span,
        .seq = ++m->seq,
        .t = r >> 7,
        .stack = (uint32_t)(r >> 13),
        .thread = (uint32_t)(r >> 29),
        .align_log2 = (uint8_t)(r >> 41) % 13,
        .family = (uint8_t)(r >> 47) % 4,
        .op = (uint8_t)(r >> 53) % 8,
    };
}

static void model_insert(at_live *lt, model *m, size_t i, const at_block_info *b)
{
    at_block_info displaced;
    int r = at__live_insert(lt, b, &displaced);
    if (m->state[i] == M_LIVE) {
        ASSERT_EQ(r, 1);
        assert_same(&displaced, &m->info[i]);
    } else {
        ASSERT_EQ(r, 0);
        m->live++;
    }
    m->info[i] = *b;
    if (!keep_times)
        m->info[i].t = 0;
    m->state[i] = M_LIVE;
}

static void model_entomb(model *m, size_t i, uint64_t free_seq, uint32_t free_stack)
{
    unsigned s = shard_of(m->addr[i]);
    uint64_t id = m->entombed[s]++;
    size_t slot = id % AT_LIVE_TOMBSTONES;
    if (id >= AT_LIVE_TOMBSTONES) {
        size_t old = m->ring[s][slot];
        if (m->state[old] == M_RELEASED && m->tomb_id[old] == m->ring_id[s][slot])
            m->state[old] = M_NONE; /* forgotten */
    }
    m->ring[s][slot] = i;
    m->ring_id[s][slot] = id;
    m->state[i] = M_RELEASED;
    m->tomb_id[i] = id;
    m->info[i].thread = 0; /* a tombstone does not keep the allocating thread */
    m->info[i].free_seq = free_seq;
    m->info[i].free_stack = free_stack;
}

/* Releases pool address i plus `offset` and checks the answer; when the
 * block was live, undoes the release one time in `undo`. */
static void model_release(at_live *lt, model *m, size_t i, uint64_t offset, unsigned undo)
{
    at_block_info out;
    uint64_t free_seq = ++m->seq;
    uint32_t free_stack = (uint32_t)next_random();
    enum at_live_lookup r = at__live_release(lt, m->addr[i] + offset, free_seq, free_stack, &out);
    if (offset) {
        if (m->state[i] == M_LIVE && offset < m->info[i].size) {
            ASSERT_EQ(r, AT_LIVE_INTERIOR);
            assert_same(&out, &m->info[i]);
        } else {
            ASSERT_EQ(r, AT_LIVE_UNKNOWN);
        }
        return;
    }
    switch (m->state[i]) {
    case M_LIVE:
        ASSERT_EQ(r, AT_LIVE_FOUND);
        assert_same(&out, &m->info[i]);
        model_entomb(m, i, free_seq, free_stack);
        if (undo && next_random() % undo == 0) {
            /* a failed realloc: live again, its ring slot now stale */
            at__live_unrelease(lt, &out);
            m->state[i] = M_LIVE;
            m->info[i].thread = out.thread;
            m->info[i].free_seq = 0;
            m->info[i].free_stack = 0;
            return;
        }
        m->live--;
        break;
    case M_RELEASED:
        ASSERT_EQ(r, AT_LIVE_RELEASED);
        assert_same(&out, &m->info[i]);
        break;
    default:
        ASSERT_EQ(r, AT_LIVE_UNKNOWN);
    }
}

struct seen {
    model *m;
    unsigned char *hit;
    size_t count;
};

static size_t index_of(const model *m, uintptr_t p);

static void see(const at_block_info *b, void *arg)
{
    struct seen *s = arg;
    size_t i = index_of(s->m, b->ptr);
    ASSERT_TRUE(i < s->m->n);
    ASSERT_EQ(s->m->state[i], M_LIVE);
    ASSERT_EQ(s->hit[i], 0);
    assert_same(b, &s->m->info[i]);
    s->hit[i] = 1;
    s->count++;
}

/* foreach (both forms) gives exactly the model's live blocks. */
static void check_all(at_live *lt, model *m, int locked)
{
    struct seen s = {m, calloc(m->n, 1), 0};
    ASSERT_NOT_NULL(s.hit);
    if (locked)
        at__live_foreach_locked(lt, see, &s);
    else
        at__live_foreach(lt, see, &s);
    ASSERT_UEQ(s.count, m->live);
    free(s.hit);
}

/* The pool: addresses of one of three shapes, found back by binary search
 * (they are generated in increasing order). */
static int shape;

static uintptr_t pool_addr(size_t i)
{
    switch (shape) {
    case 0: return (uintptr_t)i * 32; /* dense, from 0 */
    case 1: return ((uintptr_t)i << 20) + ((at__mix_ptr(i << 4) >> 40) & 0xffc0); /* scattered */
    default: return (uintptr_t)i << 32 | 0x1230; /* low 32 bits all the same */
    }
}

static size_t index_of(const model *m, uintptr_t p)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->addr[mid] < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->n && m->addr[lo] == p ? lo : SIZE_MAX;
}

static void run_random(int which, size_t n, size_t ops, uint32_t min_depth)
{
    shape = which;
    model *m = calloc(1, sizeof *m);
    ASSERT_NOT_NULL(m);
    m->n = n;
    m->span = 32;
    m->addr = malloc(n * sizeof *m->addr);
    m->info = calloc(n, sizeof *m->info);
    m->tomb_id = calloc(n, sizeof *m->tomb_id);
    m->state = calloc(n, 1);
    ASSERT_TRUE(m->addr && m->info && m->tomb_id && m->state);
    for (size_t i = 0; i < n; i++)
        m->addr[i] = pool_addr(i);
    at_live lt;
    ASSERT_EQ(at__live_init(&lt), 0);
    if (keep_times)
        at__live_keep_times(&lt);
    ASSERT_EQ(at__live_keeps_times(&lt), keep_times);
    for (size_t k = 0; k < ops; k++) {
        size_t i = next_random() % n;
        unsigned what = (unsigned)(next_random() % 16);
        if (what < 7) {
            at_block_info b = random_info(m, i);
            model_insert(&lt, m, i, &b);
        } else if (what < 15) {
            model_release(&lt, m, i, 0, 8);
        } else if (m->state[i] == M_LIVE || k % 4 == 0) {
            /* interior releases, mostly of live blocks (a miss walks
             * every shard) */
            model_release(&lt, m, i, 1 + next_random() % (m->span - 1), 0);
        } else if (k % 64 == 1) {
            /* an address of no block: before the pool, or past its end */
            at_block_info out;
            ASSERT_EQ(at__live_release(&lt, (uintptr_t)0 - 16, 1, 0, &out), AT_LIVE_UNKNOWN);
        }
        if (k % (ops / 4) == 0)
            check_all(&lt, m, (k / (ops / 4)) % 2);
    }
    check_all(&lt, m, 0);
    uint32_t depth = 0;
    for (int s = 0; s < AT_LIVE_SHARDS; s++)
        depth = lt.shards[s].depth > depth ? lt.shards[s].depth : depth;
    ASSERT_GE(depth, min_depth);
    /* every block released, and then again: double frees of the last
     * releases of each shard, unknown for the older ones */
    for (size_t i = 0; i < n; i++)
        model_release(&lt, m, i, 0, 0);
    ASSERT_UEQ(m->live, 0);
    for (size_t i = 0; i < n; i++)
        model_release(&lt, m, i, 0, 0);
    check_all(&lt, m, 1);
    at__live_destroy(&lt);
    free(m->addr);
    free(m->info);
    free(m->tomb_id);
    free(m->state);
    free(m);
}

TEST(live_random_dense_addresses)
{
    run_random(0, 8000, 200000, 0);
}

TEST(live_random_scattered_addresses)
{
    run_random(1, 8000, 200000, 0);
}

TEST(live_random_addresses_sharing_low_bits)
{
    run_random(2, 8000, 200000, 0);
}

/* Segments of 64 slots: every shard splits into many, which split and
 * merge again as the blocks come and go. */
TEST(live_random_small_segments)
{
    at__live_test_segment_slots(64);
    run_random(0, 12000, 150000, 2);
    run_random(2, 12000, 150000, 2);
    at__live_test_segment_slots(0);
}

/* The same with tables that keep times (the in-process writer's), whose
 * slots are 40 bytes: splits, merges and moves carry the time along. */
TEST(live_random_keeping_times)
{
    keep_times = 1;
    run_random(0, 8000, 200000, 0);
    at__live_test_segment_slots(64);
    run_random(2, 12000, 150000, 2);
    at__live_test_segment_slots(0);
    keep_times = 0;
}

/* A small pool, so that every shard's ring wraps many times over the same
 * addresses: tombstones reused, forgotten, reused after being forgotten. */
TEST(live_random_small_pool)
{
    run_random(0, 3000, 400000, 0);
}

/* Two million blocks live at once, as malloc hands them out; every one
 * found with its fields, the table's memory at most 86 bytes per block
 * (32-byte entries, tables at least 3/8 full), given back when the blocks
 * are gone (but for what the tracer's memory keeps for reuse, AT_MEM_KEEP); after every release, exactly the last 1024 releases of each
 * shard are told apart as double frees, with their first release. */
TEST(live_grows_to_millions)
{
    enum { N = 2000000 };
    const uintptr_t base = 0x7f0000001000;
    at_live lt;
    at__live_init(&lt);
    size_t before = at__mem_mapped();
    for (uint64_t i = 0; i < N; i++) {
        at_block_info b = {.ptr = base + 32 * i, .size = 24, .seq = i, .stack = (uint32_t)i};
        at_block_info d;
        ASSERT_EQ(at__live_insert(&lt, &b, &d), 0);
    }
    size_t grown = at__mem_mapped() - before;
    ASSERT_LE(grown, (size_t)N * 32 * 8 / 3 + (1 << 20));
    uint64_t live = 0;
    for (int s = 0; s < AT_LIVE_SHARDS; s++)
        live += lt.shards[s].live;
    ASSERT_UEQ(live, N);
    for (uint64_t k = 0; k < N; k++) {
        uint64_t i = (k * 7919) % N; /* 7919 is prime: a permutation */
        at_block_info out;
        ASSERT_EQ(at__live_release(&lt, base + 32 * i, N + k, (uint32_t)k + 1, &out),
                  AT_LIVE_FOUND);
        ASSERT_UEQ(out.seq, i);
        ASSERT_UEQ(out.stack, (uint32_t)i);
        ASSERT_UEQ(out.size, 24);
        ASSERT_UEQ(out.free_seq, 0);
    }
    /* The last 1024 releases of each shard are double frees; older ones
     * are forgotten (a few checked: an unknown address costs a walk of
     * every shard). */
    uint64_t per_shard[AT_LIVE_SHARDS] = {0}, told = 0, unknown = 0;
    for (uint64_t k = N; k-- > 0;) {
        uint64_t i = (k * 7919) % N;
        unsigned s = at__live_shard(base + 32 * i);
        int recent = per_shard[s]++ < AT_LIVE_TOMBSTONES;
        if (!recent && k % 100000 != 0)
            continue;
        at_block_info out;
        enum at_live_lookup r = at__live_release(&lt, base + 32 * i, 0, 0, &out);
        if (recent) {
            ASSERT_EQ(r, AT_LIVE_RELEASED);
            ASSERT_UEQ(out.seq, i);
            ASSERT_UEQ(out.free_seq, N + k);
            ASSERT_UEQ(out.free_stack, (uint32_t)k + 1);
            told++;
        } else {
            ASSERT_EQ(r, AT_LIVE_UNKNOWN);
            unknown++;
        }
    }
    ASSERT_UEQ(told, (uint64_t)AT_LIVE_SHARDS * AT_LIVE_TOMBSTONES);
    ASSERT_GT(unknown, 10);
    /* the tables shrank back as the tombstones went: what is left holds
     * the 64 x 1024 tombstones, and freed segments kept for reuse */
    ASSERT_LE(at__mem_mapped() - before, grown / 4 + AT_MEM_KEEP);
    at__live_destroy(&lt);
}

/* When the tracer's memory runs out, an insert fails with AT_E_NOMEM and
 * the block is not tracked; what the table holds stays right, and it
 * grows again once memory comes back. */
TEST(live_out_of_memory)
{
    at_live lt;
    at__live_init(&lt);
    at_block_info b = {.ptr = 0x1000, .size = 8}, out, d;
    at__mem_fail_after(0);
    ASSERT_EQ(at__live_insert(&lt, &b, &d), AT_E_NOMEM);
    ASSERT_EQ(at__live_release(&lt, 0x1000, 1, 0, &out), AT_LIVE_UNKNOWN);
    at__mem_fail_after(-1);
    /* one shard's table, then no memory to grow it: it fills past 3/4,
     * never completely */
    uintptr_t p[200];
    int n = 0, failed = 0;
    for (uintptr_t a = 0x1000; n < 200; a += 16)
        if (at__live_shard(a) == 5)
            p[n++] = a;
    at__mem_fail_after(3); /* the directory, the segment, its slots */
    for (int i = 0; i < n; i++) {
        b.ptr = p[i];
        b.seq = (uint64_t)i;
        int r = at__live_insert(&lt, &b, &d);
        ASSERT_TRUE(r == 0 || r == AT_E_NOMEM);
        failed += r != 0;
        if (r)
            p[i] = 0;
    }
    ASSERT_GT(failed, 0);
    ASSERT_LT(failed, n);
    for (int i = 0; i < n; i++)
        if (p[i]) {
            ASSERT_EQ(at__live_release(&lt, p[i], 7, 0, &out), AT_LIVE_FOUND);
            ASSERT_UEQ(out.seq, (uint64_t)i);
        }
    at__mem_fail_after(-1);
    for (int i = 0; i < n; i++) {
        b.ptr = 0x900000 + 64 * (uintptr_t)i;
        ASSERT_EQ(at__live_insert(&lt, &b, &d), 0);
    }
    at__live_destroy(&lt);
}

/* Two threads release the same blocks at once: each block is found by
 * exactly one of them, and the other sees its tombstone. */
struct racer {
    at_live *lt;
    uint64_t found, released;
};

enum { RACE_N = 20000 };

static void *race(void *arg)
{
    struct racer *r = arg;
    for (uintptr_t i = 0; i < RACE_N; i++) {
        at_block_info out;
        enum at_live_lookup k = at__live_release(r->lt, 0x10000 + 48 * i, i, 0, &out);
        r->found += k == AT_LIVE_FOUND;
        r->released += k == AT_LIVE_RELEASED;
    }
    return NULL;
}

TEST(live_concurrent_releases)
{
    at_live lt;
    at__live_init(&lt);
    for (uintptr_t i = 0; i < RACE_N; i++) {
        at_block_info b = {.ptr = 0x10000 + 48 * i, .size = 48}, d;
        ASSERT_EQ(at__live_insert(&lt, &b, &d), 0);
    }
    struct racer a = {&lt, 0, 0}, b = {&lt, 0, 0};
    pthread_t ta, tb;
    ASSERT_EQ(pthread_create(&ta, NULL, race, &a), 0);
    ASSERT_EQ(pthread_create(&tb, NULL, race, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ASSERT_UEQ(a.found + b.found, RACE_N);
    /* fewer releases per shard than its ring holds: none forgotten */
    ASSERT_UEQ(a.released + b.released, RACE_N);
    at__live_destroy(&lt);
}

/* Every field at the largest value an entry holds comes back as it went
 * in, live and as a tombstone (the time only from a table that keeps
 * times); a block whose fields an entry cannot hold
 * (a size of 2^58 or more, a sequence number of 2^57 or more) is not
 * tracked: AT_E_NOMEM, and its address stays unknown. */
static void widest_fields(int times)
{
    at_live lt;
    at__live_init(&lt);
    if (times)
        at__live_keep_times(&lt);
    at_block_info b = {
        .ptr = UINTPTR_MAX - 7,
        .size = ((uint64_t)1 << 58) - 1,
        .seq = ((uint64_t)1 << 57) - 1,
        .t = UINT64_MAX,
        .stack = UINT32_MAX,
        .thread = UINT32_MAX,
        .align_log2 = 63,
        .family = 3,
        .op = 7,
    }, d, out;
    ASSERT_EQ(at__live_insert(&lt, &b, &d), 0);
    ASSERT_EQ(at__live_release(&lt, b.ptr, 12345, UINT32_MAX, &out), AT_LIVE_FOUND);
    if (!times)
        b.t = 0; /* not kept */
    assert_same(&out, &b);
    at_block_info tomb = b;
    tomb.thread = 0;
    tomb.free_seq = 12345;
    tomb.free_stack = UINT32_MAX;
    ASSERT_EQ(at__live_release(&lt, b.ptr, 12346, 0, &out), AT_LIVE_RELEASED);
    assert_same(&out, &tomb);
    at_block_info big = b;
    big.ptr = 0x1000;
    big.size = (uint64_t)1 << 58;
    ASSERT_EQ(at__live_insert(&lt, &big, &d), AT_E_NOMEM);
    big.size = 16;
    big.seq = (uint64_t)1 << 57;
    ASSERT_EQ(at__live_insert(&lt, &big, &d), AT_E_NOMEM);
    ASSERT_EQ(at__live_release(&lt, 0x1000, 1, 0, &out), AT_LIVE_UNKNOWN);
    ASSERT_UEQ(at__live_count(&lt), 0);
    at__live_destroy(&lt);
}

TEST(live_widest_fields)
{
    widest_fields(0);
    widest_fields(1);
}

TEST_MAIN()
