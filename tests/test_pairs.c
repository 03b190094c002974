/* Unit tests of the spool reader's table of pending pairs (pairs.h),
 * against a plain array: random adds, finds and removes over keys that
 * come in order, scattered, or all equal modulo 2^32; every entry's
 * payload survives the moves of backward-shift deletion and of growth;
 * iteration gives exactly the entries in use; freed entries are reused. */
#include <stdint.h>
#include <stdlib.h>

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

TEST_MAIN()
