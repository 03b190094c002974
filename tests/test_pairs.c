/* Unit tests of the spool reader's tables of pending pairs (pairs.h),
 * against a plain array: random adds, finds and removes over keys that
 * come in order, scattered, or all equal modulo 2^32; every entry's
 * payload survives the moves of backward-shift deletion and of growth;
 * iteration gives exactly the entries in use; freed entries are reused. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pairs.h"
#include "test.h"

/* The brute-force model: key i of `keys` is in the table iff in[i]. */
typedef struct model {
    uint64_t *keys;
    unsigned char *in;
    size_t n, count;
} model;

static uint64_t payload(uint64_t key)
{
    return key * 0x2545f4914f6cdd1dULL + 7;
}

static void add(at_pairs *t, model *m, size_t i)
{
    at_pair *p = at__pairs_add(t, m->keys[i]);
    ASSERT_NOT_NULL(p);
    p->state = AT_PAIR_ALLOC;
    p->u.a.ptr = payload(m->keys[i]);
    p->u.a.thread = (uint32_t)i;
    m->in[i] = 1;
    m->count++;
}

/* Finds key i, checks it against the model, and removes it if there. */
static void find_remove(at_pairs *t, model *m, size_t i, int remove)
{
    size_t slot = at__pairs_find(t, m->keys[i]);
    if (!m->in[i]) {
        ASSERT_UEQ(slot, SIZE_MAX);
        return;
    }
    ASSERT_TRUE(slot != SIZE_MAX);
    at_pair *p = at__pairs_at(t, slot);
    ASSERT_UEQ(p->seq, m->keys[i]);
    ASSERT_UEQ(p->u.a.ptr, payload(m->keys[i]));
    ASSERT_UEQ(p->u.a.thread, i);
    ASSERT_EQ(p->state, AT_PAIR_ALLOC);
    if (remove) {
        at__pairs_remove(t, slot);
        m->in[i] = 0;
        m->count--;
        ASSERT_UEQ(at__pairs_find(t, m->keys[i]), SIZE_MAX);
    }
}

/* Every key of the model found or not as it says, and iteration gives the
 * entries in use, each once. */
static void check_all(at_pairs *t, model *m)
{
    ASSERT_UEQ(t->count, m->count);
    for (size_t i = 0; i < m->n; i++)
        find_remove(t, m, i, 0);
    unsigned char *seen = calloc(m->n, 1);
    ASSERT_NOT_NULL(seen);
    size_t k = 0;
    uint32_t cursor = 0;
    at_pair *p;
    while ((p = at__pairs_next(t, &cursor))) {
        size_t i = p->u.a.thread;
        ASSERT_TRUE(i < m->n && m->in[i] && !seen[i]);
        ASSERT_UEQ(p->seq, m->keys[i]);
        seen[i] = 1;
        k++;
    }
    ASSERT_UEQ(k, m->count);
    free(seen);
}

static void run_random(uint64_t (*key)(size_t), size_t n, size_t ops)
{
    model m = {.keys = malloc(n * sizeof(uint64_t)), .in = calloc(n, 1), .n = n};
    ASSERT_TRUE(m.keys && m.in);
    for (size_t i = 0; i < n; i++)
        m.keys[i] = key(i);
    at_pairs t = {0};
    for (size_t k = 0; k < ops; k++) {
        size_t i = next_random() % n;
        if (m.in[i])
            find_remove(&t, &m, i, next_random() % 4 != 0);
        else if (next_random() % 8 == 0)
            find_remove(&t, &m, i, 0); /* a miss */
        else
            add(&t, &m, i);
        if (k % (ops / 4) == 0)
            check_all(&t, &m);
    }
    check_all(&t, &m);
    /* everything out in random order, then the table is empty */
    for (size_t k = 0; k < n; k++) {
        size_t i = (k * 2654435761u + 12345) % n;
        if (m.in[i])
            find_remove(&t, &m, i, 1);
    }
    for (size_t i = 0; i < n; i++)
        if (m.in[i])
            find_remove(&t, &m, i, 1);
    check_all(&t, &m);
    ASSERT_UEQ(t.count, 0);
    at__pairs_free(&t);
    free(m.keys);
    free(m.in);
}

static uint64_t in_order(size_t i)
{
    return i + 1;
}

static uint64_t scattered(size_t i)
{
    return payload(i) ^ (uint64_t)i << 40;
}

static uint64_t same_low_bits(size_t i)
{
    return (uint64_t)i << 32 | 0x1234u;
}

TEST(pairs_random_keys_in_order)
{
    run_random(in_order, 50000, 400000);
}

TEST(pairs_random_keys_scattered)
{
    run_random(scattered, 50000, 400000);
}

TEST(pairs_random_keys_sharing_low_bits)
{
    run_random(same_low_bits, 20000, 100000);
}

/* A large table filled in order and emptied in another order, as the
 * reader's table is by a program holding many blocks; freed entries are
 * reused before new pages are taken. */
TEST(pairs_fill_and_drain)
{
    enum { N = 300000 };
    at_pairs t = {0};
    for (uint64_t s = 1; s <= N; s++) {
        at_pair *p = at__pairs_add(&t, s);
        ASSERT_NOT_NULL(p);
        p->state = AT_PAIR_ALLOC;
        p->u.a.size = s * 3;
    }
    ASSERT_UEQ(t.count, N);
    for (uint64_t k = 0; k < N; k++) {
        uint64_t s = (k * 7919) % N + 1; /* 7919 is prime: a permutation */
        size_t slot = at__pairs_find(&t, s);
        ASSERT_TRUE(slot != SIZE_MAX);
        ASSERT_UEQ(at__pairs_at(&t, slot)->u.a.size, s * 3);
        at__pairs_remove(&t, slot);
    }
    ASSERT_UEQ(t.count, 0);
    uint32_t cursor = 0;
    ASSERT_NULL(at__pairs_next(&t, &cursor));
    uint32_t used = t.used;
    for (uint64_t s = N + 1; s <= 2 * N; s++)
        ASSERT_NOT_NULL(at__pairs_add(&t, s));
    ASSERT_UEQ(t.used, used); /* every entry came from the free list */
    ASSERT_UEQ(at__pairs_find(&t, 1), SIZE_MAX);
    ASSERT_TRUE(at__pairs_find(&t, 2 * N) != SIZE_MAX);
    at__pairs_free(&t);
    ASSERT_UEQ(at__pairs_find(&t, 2 * N), SIZE_MAX);
}

static void collect_seq(const at_pair *a, uint64_t nth, void *arg)
{
    struct {
        uint64_t *o;
        size_t n;
    } *st = arg;
    ASSERT_UEQ(nth, st->n);
    st->o[st->n++] = a->seq;
}

/* ---- at_pending: pages by sequence number, the hash behind them ---- */

/* The allocation the tests put for `seq`: every field derived from it,
 * some too wide for a page every so often: sizes of 2^40 and more,
 * families and ops of 32 and more, addresses of 2^48 and more, threads of
 * 2^24 and more, times 8 s after their neighbours'. */
static at_pair pending_alloc(uint64_t seq)
{
    at_pair a;
    memset(&a, 0, sizeof a);
    a.seq = seq;
    a.state = AT_PAIR_ALLOC;
    a.u.a.ptr = seq % 101 == 0 ? payload(seq) | (uint64_t)1 << 63 : 0x7f0000001000 + seq * 48;
    a.u.a.size = seq % 97 == 0 ? (uint64_t)1 << 40 | seq : seq * 24 % 100000;
    a.u.a.t = seq * 1000 + 3 + (seq % 107 == 0 ? (uint64_t)1 << 33 : 0);
    a.u.a.stack = (uint32_t)(seq * 7);
    a.u.a.thread = (uint32_t)(seq % 103 == 0 ? 1u << 24 | seq : seq % 5);
    a.u.a.family = (uint8_t)(seq % 89 == 0 ? 200 : seq % 4);
    a.u.a.op = (uint8_t)(seq % 83 == 0 ? 40 : 1 + seq % 7);
    a.u.a.align_log2 = (uint8_t)(seq % 63);
    return a;
}

static void assert_pending_alloc(const at_pair *a)
{
    at_pair e = pending_alloc(a->seq);
    ASSERT_EQ(a->state, AT_PAIR_ALLOC);
    ASSERT_UEQ(a->u.a.ptr, e.u.a.ptr);
    ASSERT_UEQ(a->u.a.size, e.u.a.size);
    ASSERT_UEQ(a->u.a.t, e.u.a.t);
    ASSERT_UEQ(a->u.a.stack, e.u.a.stack);
    ASSERT_UEQ(a->u.a.thread, e.u.a.thread);
    ASSERT_UEQ(a->u.a.family, e.u.a.family);
    ASSERT_UEQ(a->u.a.op, e.u.a.op);
    ASSERT_UEQ(a->u.a.align_log2, e.u.a.align_log2);
}

typedef struct each_state {
    const unsigned char *in;
    uint64_t n, last, seen;
} each_state;

static void each_one(const at_pair *a, uint64_t nth, void *arg)
{
    each_state *st = arg;
    ASSERT_UEQ(nth, st->seen);
    ASSERT_TRUE(a->seq < st->n && st->in[a->seq]);
    ASSERT_TRUE(st->seen == 0 || a->seq > st->last); /* in sequence order, each once */
    assert_pending_alloc(a);
    st->last = a->seq;
    st->seen++;
}

static void check_pending(const at_pending *p, const unsigned char *in, uint64_t n, uint64_t count)
{
    ASSERT_UEQ(at__pending_count(p), count);
    each_state st = {.in = in, .n = n};
    ASSERT_EQ(at__pending_each(p, each_one, &st), 0);
    ASSERT_UEQ(st.seen, count);
}

/* Allocations put in order (an event in three is one), released at random
 * with a few kept for ever, scattered: every take gives back what was put,
 * a second take nothing; the iteration gives what is pending in sequence
 * order; pages whose allocations were mostly released hand the survivors
 * to the hash and are reused, so that the pages in use stay few. */
TEST(pending_against_a_model)
{
    enum { N = 600000 };
    unsigned char *in = calloc(N, 1);
    ASSERT_NOT_NULL(in);
    at_pending p = {0};
    uint64_t count = 0;
    for (uint64_t seq = 1; seq < N; seq++) {
        if (seq % 3 == 0) {
            at_pair a = pending_alloc(seq);
            ASSERT_EQ(at__pending_put(&p, &a), 0);
            in[seq] = 1;
            count++;
        }
        /* release an earlier allocation now and then; seq % 1000 == 0 live for ever */
        uint64_t back = seq - (next_random() % 30000);
        if (back < seq && back > 0 && in[back] && back % 1000 != 0 && next_random() % 2) {
            at_pair out;
            ASSERT_EQ(at__pending_take(&p, back, &out), 1);
            ASSERT_UEQ(out.seq, back);
            assert_pending_alloc(&out);
            ASSERT_EQ(at__pending_take(&p, back, &out), 0);
            in[back] = 0;
            count--;
        }
        if (seq % 150000 == 0)
            check_pending(&p, in, N, count);
    }
    check_pending(&p, in, N, count);
    /* The old pages are gone: what is left of them is in the hash. */
    size_t pages = 0;
    for (size_t k = 0; k < p.npages; k++)
        pages += p.pages[k] != NULL;
    ASSERT_TRUE(pages <= 12);
    ASSERT_TRUE(p.hash.count >= N / 1000 - 1);
    /* everything out */
    for (uint64_t seq = 1; seq < N; seq++) {
        at_pair out;
        ASSERT_EQ(at__pending_take(&p, seq, &out), in[seq]);
        in[seq] = 0;
    }
    ASSERT_UEQ(at__pending_count(&p), 0);
    at__pending_free(&p);
    free(in);
}

/* Exactly the allocations whose fields are too wide go to the hash; the
 * others live in pages, and come back whole from both. */
TEST(pending_wide_fields_to_the_hash)
{
    enum { N = 20000 };
    at_pending p = {0};
    size_t wide = 0;
    for (uint64_t seq = 1; seq < N; seq++) {
        at_pair a = pending_alloc(seq);
        ASSERT_EQ(at__pending_put(&p, &a), 0);
        wide += seq % 101 == 0 || seq % 97 == 0 || seq % 107 == 0 || seq % 103 == 0 ||
                seq % 89 == 0 || seq % 83 == 0;
    }
    ASSERT_UEQ(p.hash.count, wide);
    ASSERT_UEQ(p.in_pages, N - 1 - wide);
    for (uint64_t seq = 1; seq < N; seq++) {
        at_pair out;
        ASSERT_EQ(at__pending_take(&p, seq, &out), 1);
        assert_pending_alloc(&out);
    }
    ASSERT_UEQ(at__pending_count(&p), 0);
    at__pending_free(&p);
}

/* A page's allocation put twice is refused; numbers far beyond anything
 * read go to the hash (no page array that large), and are still found and
 * iterated in order with the paged ones. */
TEST(pending_duplicates_and_far_numbers)
{
    at_pending p = {0};
    at_pair a = pending_alloc(5);
    ASSERT_EQ(at__pending_put(&p, &a), 0);
    ASSERT_EQ(at__pending_put(&p, &a), 1);
    at_pair far = pending_alloc((uint64_t)1 << 60);
    ASSERT_EQ(at__pending_put(&p, &far), 0);
    ASSERT_UEQ(p.hash.count, 1);
    ASSERT_TRUE(p.npages < 1024);
    at_pair b = pending_alloc(6);
    ASSERT_EQ(at__pending_put(&p, &b), 0);
    ASSERT_UEQ(at__pending_count(&p), 3);
    uint64_t order[3];
    struct {
        uint64_t *o;
        size_t n;
    } st = {order, 0};
    ASSERT_EQ(at__pending_each(&p, collect_seq, &st), 0);
    ASSERT_UEQ(st.n, 3);
    ASSERT_UEQ(order[0], 5);
    ASSERT_UEQ(order[1], 6);
    ASSERT_UEQ(order[2], (uint64_t)1 << 60);
    at_pair out;
    ASSERT_EQ(at__pending_take(&p, (uint64_t)1 << 60, &out), 1);
    assert_pending_alloc(&out);
    ASSERT_EQ(at__pending_take(&p, 7, &out), 0);
    at__pending_free(&p);
    ASSERT_UEQ(at__pending_count(&p), 0);
}

TEST_MAIN()
