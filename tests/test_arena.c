/* Unit tests of the arena backend (backends.h): alignment from aligned and
 * unaligned buffers, bounds, exhaustion and recovery, giving back the most
 * recent block, realloc in place and by moving, buffers too small for the
 * context, zeroed blocks over reused dirty bytes, and at_arena_used. */
#include <stdalign.h>
#include <stdint.h>

#include <alloctrace/allocator.h>
#include <alloctrace/backends.h>
#include <alloctrace/error.h>
#include <alloctrace/layout.h>

#include "test.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define BUF_SIZE (1 << 16)

static alignas(64) unsigned char buf[BUF_SIZE];

static void *const UNTOUCHED = (void *)(uintptr_t)0x5eed0;

/* A fresh arena over buf + offset, the buffer first filled with `dirt`. */
static at_allocator fresh(size_t offset, size_t capacity, unsigned char dirt)
{
    memset(buf, dirt, sizeof buf);
    return at_arena_allocator(buf + offset, capacity);
}

/* Checks that [p, p + size) lies inside [base, base + cap). */
static void check_inside(const void *p, size_t size, const void *base, size_t cap)
{
    uintptr_t b = (uintptr_t)base, q = (uintptr_t)p;
    if (q < b || q - b > cap || size > cap - (q - b))
        TEST_FAIL("block %p+%zu is outside the arena buffer %p+%zu", p, size, base, cap);
}

static void fill(void *p, size_t n, unsigned seed)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(seed * 3 + i * 7);
}

static void check_fill(const void *p, size_t n, unsigned seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(seed * 3 + i * 7))
            TEST_FAIL("byte %zu of %p is 0x%02x, want 0x%02x", i, p, b[i],
                      (unsigned char)(seed * 3 + i * 7));
}

static void check_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            TEST_FAIL("byte %zu of zeroed block %p is 0x%02x", i, p, b[i]);
}

/* ---- alignment and bounds ----------------------------------------------------------- */

static void alignment_sweep(size_t offset)
{
    size_t cap = BUF_SIZE - offset;
    at_allocator a = fresh(offset, cap, 0x11);
    unsigned char *base = buf + offset;
    /* sizes that leave the bump pointer misaligned for the next request */
    static const size_t sizes[] = {1, 3, 5, 0, 7, 13};
    unsigned seed = 0;
    void *ptrs[2 * 13 * ARRAY_LEN(sizes)];
    at_layout lays[ARRAY_LEN(ptrs)];
    size_t n = 0;
    /* every alignment up to 4096, then the small ones again: the padding
     * wasted by the sweep stays well below the buffer's size */
    for (int round = 0; round < 2; round++) {
        for (unsigned shift = 0; shift <= (round == 0 ? 12u : 8u); shift++) {
            size_t align = (size_t)1 << shift;
            for (size_t s = 0; s < ARRAY_LEN(sizes); s++) {
                at_layout l = L(sizes[s], align);
                size_t used_before = at_arena_used(a);
                void *p = at_alloc(a, l);
                if (p == NULL) {
                    /* only a zero-size request may come back NULL */
                    if (l.size != 0)
                        TEST_FAIL("arena at buf+%zu: {%zu, %zu} failed with %zu used", offset,
                                  l.size, l.align, used_before);
                    continue;
                }
                if ((uintptr_t)p % align != 0)
                    TEST_FAIL("arena at buf+%zu: {%zu, %zu} gave misaligned %p", offset, l.size,
                              l.align, p);
                check_inside(p, l.size, base, cap);
                ASSERT_GE(at_arena_used(a), used_before + l.size);
                fill(p, l.size, seed);
                ptrs[n] = p;
                lays[n] = l;
                n++;
                seed++;
            }
        }
    }
    /* nothing overlapped: every block kept its pattern */
    for (size_t i = 0; i < n; i++)
        check_fill(ptrs[i], lays[i].size, (unsigned)i);
    /* live non-NULL zero-size blocks are unique too */
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (ptrs[i] == ptrs[j] && (lays[i].size == 0 || lays[j].size == 0))
                TEST_FAIL("arena at buf+%zu returned %p twice (blocks %zu {%zu, %zu} and %zu "
                          "{%zu, %zu})",
                          offset, ptrs[i], i, lays[i].size, lays[i].align, j, lays[j].size,
                          lays[j].align);
}

TEST(arena_alignment_aligned_buffer)
{
    alignment_sweep(0);
}

TEST(arena_alignment_unaligned_buffer)
{
    alignment_sweep(3);
    alignment_sweep(1);
    alignment_sweep(7);
    alignment_sweep(17);
}

TEST(arena_alignment_alloc_zeroed_and_try)
{
    at_allocator a = fresh(3, BUF_SIZE - 3, 0xFF);
    for (unsigned shift = 0; shift <= 12; shift++) {
        size_t align = (size_t)1 << shift;
        at_layout l = L(5 + shift, align);
        void *z = at_alloc_zeroed(a, l);
        ASSERT_NOT_NULL(z);
        ASSERT_ALIGNED(z, align);
        check_inside(z, l.size, buf + 3, BUF_SIZE - 3);
        check_zero(z, l.size);
        void *out = UNTOUCHED;
        ASSERT_EQ(at_try_alloc(a, l, &out), AT_OK);
        ASSERT_TRUE(out != UNTOUCHED);
        ASSERT_ALIGNED(out, align);
        check_inside(out, l.size, buf + 3, BUF_SIZE - 3);
        out = UNTOUCHED;
        ASSERT_EQ(at_try_alloc_zeroed(a, l, &out), AT_OK);
        ASSERT_ALIGNED(out, align);
        check_zero(out, l.size);
    }
}

TEST(arena_bounds_exact_heap_buffer)
{
    /* A heap buffer of exactly `cap` bytes: filling the arena with small
     * writes must stay inside it (valgrind and ASan see any overrun). */
    static const size_t caps[] = {4096 + 3, 1000, 513};
    for (size_t c = 0; c < ARRAY_LEN(caps); c++) {
        unsigned char *heap = malloc(caps[c]);
        ASSERT_NOT_NULL(heap);
        at_allocator a = at_arena_allocator(heap, caps[c]);
        size_t got = 0;
        for (;;) {
            at_layout l = L(1 + got % 5, (size_t)1 << (got % 4));
            void *p = at_alloc(a, l);
            if (p == NULL)
                break;
            ASSERT_ALIGNED(p, l.align);
            check_inside(p, l.size, heap, caps[c]);
            memset(p, 0x77, l.size);
            got++;
            ASSERT_LT(got, caps[c]);
        }
        ASSERT_GT(got, 0);
        ASSERT_LE(at_arena_used(a), caps[c]);
        /* still failing cleanly, and a 1-byte block may or may not fit */
        ASSERT_NULL(at_alloc(a, L(caps[c], 1)));
        free(heap);
    }
}

/* ---- exhaustion -------------------------------------------------------------------- */

TEST(arena_exhaustion_and_recovery)
{
    at_allocator a = fresh(0, BUF_SIZE, 0);
    /* the context lives in the buffer, so the whole capacity never fits */
    ASSERT_NULL(at_alloc(a, L(BUF_SIZE, 1)));
    ASSERT_NULL(at_alloc(a, L(BUF_SIZE + 1, 1)));

    void *big = at_alloc(a, L(BUF_SIZE / 2, 16));
    ASSERT_NOT_NULL(big);
    size_t used = at_arena_used(a);
    ASSERT_GE(used, BUF_SIZE / 2);

    /* a second half does not fit: NULL, AT_E_NOMEM, and nothing changed */
    ASSERT_NULL(at_alloc(a, L(BUF_SIZE / 2, 16)));
    ASSERT_NULL(at_alloc_zeroed(a, L(BUF_SIZE / 2, 16)));
    void *out = UNTOUCHED;
    ASSERT_EQ(at_try_alloc(a, L(BUF_SIZE / 2, 16), &out), AT_E_NOMEM);
    ASSERT_TRUE(out == UNTOUCHED);
    ASSERT_EQ(at_try_alloc_zeroed(a, L(BUF_SIZE / 2, 16), &out), AT_E_NOMEM);
    ASSERT_TRUE(out == UNTOUCHED);
    ASSERT_UEQ(at_arena_used(a), used);

    /* the arena still works: a smaller request succeeds */
    void *small = at_alloc(a, L(1024, 8));
    ASSERT_NOT_NULL(small);
    ASSERT_ALIGNED(small, 8);
    check_inside(small, 1024, buf, BUF_SIZE);
    ASSERT_GE(at_arena_used(a), used + 1024);

    /* fill up completely with 256-byte blocks, then 1-byte blocks */
    int blocks = 0;
    while (at_alloc(a, L(256, 1)) != NULL)
        blocks++;
    ASSERT_GT(blocks, 0);
    while (at_alloc(a, L(1, 1)) != NULL)
        blocks++;
    size_t full = at_arena_used(a);
    ASSERT_LE(full, BUF_SIZE);
    ASSERT_NULL(at_alloc(a, L(1, 1)));
    ASSERT_EQ(at_try_alloc(a, L(1, 1), &out), AT_E_NOMEM);
    ASSERT_TRUE(out == UNTOUCHED);
    ASSERT_UEQ(at_arena_used(a), full);
}

TEST(arena_huge_requests_fail_without_wrapping)
{
    at_allocator a = fresh(0, BUF_SIZE, 0);
    void *first = at_alloc(a, L(100, 8));
    ASSERT_NOT_NULL(first);
    size_t used = at_arena_used(a);
    const struct {
        size_t size, align;
    } huge[] = {
        {SIZE_MAX / 2, 1},
        {SIZE_MAX, 1},
        {SIZE_MAX - 4095, 4096},
        {SIZE_MAX - 15, 16},
        {1, (size_t)1 << 62},
        {SIZE_MAX - (uintptr_t)buf, 1}, /* would end exactly at the top of the address space */
        {SIZE_MAX - (uintptr_t)buf + 1, 1}, /* would wrap to exactly 0 */
    };
    for (size_t i = 0; i < ARRAY_LEN(huge); i++) {
        at_layout l = L(huge[i].size, huge[i].align);
        ASSERT_NULL(at_alloc(a, l));
        ASSERT_NULL(at_alloc_zeroed(a, l));
        void *out = UNTOUCHED;
        ASSERT_EQ(at_try_alloc(a, l, &out), AT_E_NOMEM);
        ASSERT_TRUE(out == UNTOUCHED);
        ASSERT_UEQ(at_arena_used(a), used);
    }
    /* an alignment no address inside the rest of the buffer satisfies (the
     * check skips the rare address-space layouts where one does) */
    static const unsigned shifts[] = {17, 20, 30, 40};
    for (size_t i = 0; i < ARRAY_LEN(shifts); i++) {
        uintptr_t align = (uintptr_t)1 << shifts[i];
        uintptr_t from = (uintptr_t)first + 100, to = (uintptr_t)buf + BUF_SIZE;
        if (from / align != to / align)
            continue; /* a multiple of align lies in (from, to] */
        at_layout l = L(1, align);
        ASSERT_NULL(at_alloc(a, l));
        void *out = UNTOUCHED;
        ASSERT_EQ(at_try_alloc(a, l, &out), AT_E_NOMEM);
        ASSERT_TRUE(out == UNTOUCHED);
        ASSERT_UEQ(at_arena_used(a), used);
    }
    /* realloc of the most recent block to a huge size fails, block intact */
    fill(first, 100, 4);
    ASSERT_NULL(at_realloc(a, first, L(100, 8), SIZE_MAX - 7));
    ASSERT_NULL(at_realloc(a, first, L(100, 8), SIZE_MAX / 2));
    void *out = UNTOUCHED;
    ASSERT_EQ(at_try_realloc(a, first, L(100, 8), SIZE_MAX - 7, &out), AT_E_NOMEM);
    ASSERT_TRUE(out == UNTOUCHED);
    ASSERT_UEQ(at_arena_used(a), used);
    check_fill(first, 100, 4);
    /* and a normal request still works */
    ASSERT_NOT_NULL(at_alloc(a, L(64, 64)));
}

/* ---- dealloc ------------------------------------------------------------------------ */

TEST(arena_dealloc_most_recent_reclaims)
{
    at_allocator a = fresh(0, BUF_SIZE, 0);
    void *keep = at_alloc(a, L(10, 1));
    ASSERT_NOT_NULL(keep);
    fill(keep, 10, 1);

    /* no padding needed: the bytes come back exactly */
    size_t before = at_arena_used(a);
    at_layout l = L(100, 1);
    void *p = at_alloc(a, l);
    ASSERT_NOT_NULL(p);
    ASSERT_UEQ(at_arena_used(a), before + 100);
    at_dealloc(a, p, l);
    ASSERT_UEQ(at_arena_used(a), before);
    /* the same bytes are handed out again */
    void *again = at_alloc(a, l);
    ASSERT_TRUE(again == p);
    at_dealloc(a, again, l);
    ASSERT_UEQ(at_arena_used(a), before);

    /* with alignment padding: the block's bytes come back */
    at_layout la = L(200, 256);
    void *q = at_alloc(a, la);
    ASSERT_NOT_NULL(q);
    ASSERT_ALIGNED(q, 256);
    size_t with = at_arena_used(a);
    ASSERT_GE(with, before + 200);
    at_dealloc(a, q, la);
    size_t after = at_arena_used(a);
    ASSERT_LE(after, with - 200);
    ASSERT_GE(after, before);
    ASSERT_LE(after, before + 255);
    void *q2 = at_alloc(a, la);
    ASSERT_TRUE(q2 == q);
    ASSERT_UEQ(at_arena_used(a), with);
    at_dealloc(a, q2, la);

    /* a block given back while two are live: only the newest reclaims */
    void *s1 = at_alloc(a, L(33, 1));
    void *s2 = at_alloc(a, L(64, 1));
    ASSERT_NOT_NULL(s1);
    ASSERT_NOT_NULL(s2);
    size_t two = at_arena_used(a);
    at_dealloc(a, s2, L(64, 1));
    ASSERT_UEQ(at_arena_used(a), two - 64);

    check_fill(keep, 10, 1);
    at_dealloc(a, NULL, L(10, 1)); /* ignored */
    ASSERT_UEQ(at_arena_used(a), two - 64);
}

TEST(arena_dealloc_older_block_is_noop)
{
    at_allocator a = fresh(0, BUF_SIZE, 0);
    at_layout l = L(128, 16);
    void *older = at_alloc(a, l);
    void *newer = at_alloc(a, l);
    ASSERT_NOT_NULL(older);
    ASSERT_NOT_NULL(newer);
    fill(newer, 128, 9);
    size_t used = at_arena_used(a);

    at_dealloc(a, older, l);
    ASSERT_UEQ(at_arena_used(a), used);
    check_fill(newer, 128, 9);

    /* the older block's bytes are not reused: the next block comes after
     * the newer one */
    void *next = at_alloc(a, l);
    ASSERT_NOT_NULL(next);
    ASSERT_TRUE((unsigned char *)next >= (unsigned char *)newer + 128);
    fill(next, 128, 10);
    check_fill(newer, 128, 9);
}

/* ---- realloc ------------------------------------------------------------------------- */

TEST(arena_realloc_most_recent_in_place)
{
    at_allocator a = fresh(0, BUF_SIZE, 0);
    ASSERT_NOT_NULL(at_alloc(a, L(24, 8)));
    at_layout l = L(100, 8);
    void *p = at_alloc(a, l);
    ASSERT_NOT_NULL(p);
    fill(p, 100, 21);
    size_t used = at_arena_used(a);

    /* grow in place */
    void *q = at_realloc(a, p, l, 1000);
    ASSERT_TRUE(q == p);
    ASSERT_UEQ(at_arena_used(a), used + 900);
    check_fill(q, 100, 21);
    fill(q, 1000, 22);

    /* shrink in place */
    q = at_realloc(a, p, L(1000, 8), 50);
    ASSERT_TRUE(q == p);
    ASSERT_UEQ(at_arena_used(a), used - 50);
    check_fill(q, 50, 22);

    /* through the Result-style dispatcher */
    void *out = UNTOUCHED;
    ASSERT_EQ(at_try_realloc(a, p, L(50, 8), 4000, &out), AT_OK);
    ASSERT_TRUE(out == p);
    ASSERT_UEQ(at_arena_used(a), used + 3900);
    check_fill(out, 50, 22);

    /* growing past the end fails and changes nothing */
    fill(p, 4000, 23);
    out = UNTOUCHED;
    ASSERT_EQ(at_try_realloc(a, p, L(4000, 8), BUF_SIZE, &out), AT_E_NOMEM);
    ASSERT_TRUE(out == UNTOUCHED);
    ASSERT_NULL(at_realloc(a, p, L(4000, 8), BUF_SIZE * 2));
    ASSERT_UEQ(at_arena_used(a), used + 3900);
    check_fill(p, 4000, 23);

    /* the block is still the most recent one: dealloc gives it back */
    at_dealloc(a, p, L(4000, 8));
    ASSERT_UEQ(at_arena_used(a), used - 100);
}

TEST(arena_realloc_older_block_moves)
{
    at_allocator a = fresh(5, BUF_SIZE - 5, 0);
    at_layout l = L(64, 32);
    void *older = at_alloc(a, l);
    void *newer = at_alloc(a, l);
    ASSERT_NOT_NULL(older);
    ASSERT_NOT_NULL(newer);
    fill(older, 64, 31);
    fill(newer, 64, 32);

    void *moved = at_realloc(a, older, l, 128);
    ASSERT_NOT_NULL(moved);
    ASSERT_TRUE(moved != older);
    ASSERT_ALIGNED(moved, 32);
    check_inside(moved, 128, buf + 5, BUF_SIZE - 5);
    check_fill(moved, 64, 31);
    /* the newer block was not overwritten */
    check_fill(newer, 64, 32);
    ASSERT_TRUE((unsigned char *)moved >= (unsigned char *)newer + 64);

    /* the moved block is the most recent now: it grows in place */
    fill(moved, 128, 33);
    void *again = at_realloc(a, moved, L(128, 32), 512);
    ASSERT_TRUE(again == moved);
    check_fill(again, 128, 33);

    /* a failed move leaves the older block intact */
    fill(newer, 64, 34);
    size_t used = at_arena_used(a);
    void *out = UNTOUCHED;
    ASSERT_EQ(at_try_realloc(a, newer, l, BUF_SIZE, &out), AT_E_NOMEM);
    ASSERT_TRUE(out == UNTOUCHED);
    ASSERT_UEQ(at_arena_used(a), used);
    check_fill(newer, 64, 34);
    check_fill(again, 128, 33);
}

TEST(arena_realloc_keeps_alignment)
{
    at_allocator a = fresh(3, BUF_SIZE - 3, 0);
    for (unsigned shift = 0; shift <= 12; shift++) {
        size_t align = (size_t)1 << shift;
        at_layout l = L(10, align);
        void *p = at_alloc(a, l);
        ASSERT_NOT_NULL(p);
        fill(p, 10, shift);
        void *q = at_realloc(a, p, l, 300);
        ASSERT_NOT_NULL(q);
        ASSERT_ALIGNED(q, align);
        check_fill(q, 10, shift);
        /* an older block of the same alignment, moved */
        void *r = at_alloc(a, L(1, 1));
        ASSERT_NOT_NULL(r);
        void *m = at_realloc(a, q, L(300, align), 400);
        ASSERT_NOT_NULL(m);
        ASSERT_ALIGNED(m, align);
        check_fill(m, 10, shift);
    }
}

/* ---- too small for the context ------------------------------------------------------ */

static void check_dead_arena(at_allocator a)
{
    static const struct {
        size_t size, align;
    } reqs[] = {{0, 1}, {1, 1}, {1, 8}, {16, 16}, {4096, 4096}};
    for (size_t i = 0; i < ARRAY_LEN(reqs); i++) {
        at_layout l = L(reqs[i].size, reqs[i].align);
        void *out = UNTOUCHED;
        ASSERT_NULL(at_alloc(a, l));
        ASSERT_NULL(at_alloc_zeroed(a, l));
        ASSERT_EQ(at_try_alloc(a, l, &out), AT_E_NOMEM);
        ASSERT_TRUE(out == UNTOUCHED);
        ASSERT_EQ(at_try_alloc_zeroed(a, l, &out), AT_E_NOMEM);
        ASSERT_TRUE(out == UNTOUCHED);
    }
}

TEST(arena_capacity_too_small_for_context)
{
    /* exact-size heap buffers so any write outside them is seen */
    static const size_t caps[] = {1, 2, 3, 7, 8};
    for (size_t i = 0; i < ARRAY_LEN(caps); i++) {
        unsigned char *heap = malloc(caps[i]);
        ASSERT_NOT_NULL(heap);
        memset(heap, 0x42, caps[i]);
        at_allocator a = at_arena_allocator(heap, caps[i]);
        check_dead_arena(a);
        /* the same through an unaligned start */
        if (caps[i] > 1) {
            at_allocator b = at_arena_allocator(heap + 1, caps[i] - 1);
            check_dead_arena(b);
        }
        free(heap);
    }
    /* capacity 0 */
    check_dead_arena(at_arena_allocator(buf, 0));
    check_dead_arena(at_arena_allocator(buf + 3, 0));
    /* a buffer that could hold a context if it were aligned, but whose
     * start leaves no room for the aligned context: 8 bytes at buf + 1 */
    check_dead_arena(at_arena_allocator(buf + 1, 8));
}

/* ---- zeroed over reused dirty bytes ---------------------------------------------------- */

TEST(arena_zeroed_after_reclaim)
{
    at_allocator a = fresh(0, BUF_SIZE, 0xDD);
    ASSERT_NOT_NULL(at_alloc(a, L(8, 8)));

    /* dirty a block, give it back, ask for zeroed bytes at the same place */
    at_layout l = L(256, 16);
    void *p = at_alloc(a, l);
    ASSERT_NOT_NULL(p);
    memset(p, 0xEE, 256);
    at_dealloc(a, p, l);
    void *z = at_alloc_zeroed(a, l);
    ASSERT_TRUE(z == p);
    check_zero(z, 256);
    at_dealloc(a, z, l);

    /* different layout over the same dirty bytes */
    void *d = at_alloc(a, L(1024, 1));
    ASSERT_NOT_NULL(d);
    memset(d, 0xAB, 1024);
    at_dealloc(a, d, L(1024, 1));
    void *z2 = at_alloc_zeroed(a, L(500, 64));
    ASSERT_NOT_NULL(z2);
    ASSERT_ALIGNED(z2, 64);
    check_zero(z2, 500);
    void *out = UNTOUCHED;
    ASSERT_EQ(at_try_alloc_zeroed(a, L(300, 2), &out), AT_OK);
    check_zero(out, 300);

    /* shrink in place, then zeroed bytes right after the shrunk block */
    void *s = at_alloc(a, L(2000, 8));
    ASSERT_NOT_NULL(s);
    memset(s, 0xCC, 2000);
    ASSERT_TRUE(at_realloc(a, s, L(2000, 8), 16) == s);
    void *z3 = at_alloc_zeroed(a, L(1500, 4));
    ASSERT_NOT_NULL(z3);
    check_zero(z3, 1500);
}

/* ---- at_arena_used and independent arenas ----------------------------------------------- */

TEST(arena_used_of_non_arena_is_zero)
{
    ASSERT_UEQ(at_arena_used(at_system_allocator()), 0);
}

TEST(arena_used_counts_padding)
{
    at_allocator a = fresh(0, BUF_SIZE, 0);
    ASSERT_NOT_NULL(at_alloc(a, L(1, 1)));
    size_t before = at_arena_used(a);
    void *p = at_alloc(a, L(1, 1024));
    ASSERT_NOT_NULL(p);
    /* the padding up to p is counted: used grows by the distance between
     * the previous end and p, plus the size */
    size_t after = at_arena_used(a);
    ASSERT_GE(after, before + 1);
    void *next = at_alloc(a, L(1, 1));
    ASSERT_NOT_NULL(next);
    ASSERT_TRUE(next == (unsigned char *)p + 1);
    ASSERT_UEQ(at_arena_used(a), after + 1);
    /* a block at an aligned address after a 1-byte block needs padding */
    ASSERT_GT(after - before, 1);
}

TEST(arena_copies_share_state_and_arenas_are_independent)
{
    at_allocator a = at_arena_allocator(buf, BUF_SIZE / 2);
    at_allocator b = at_arena_allocator(buf + BUF_SIZE / 2, BUF_SIZE / 2);
    at_allocator a_copy = a;
    size_t ua = at_arena_used(a), ub = at_arena_used(b);

    void *pa = at_alloc(a_copy, L(100, 4));
    ASSERT_NOT_NULL(pa);
    check_inside(pa, 100, buf, BUF_SIZE / 2);
    ASSERT_UEQ(at_arena_used(a), ua + 100);
    ASSERT_UEQ(at_arena_used(b), ub);

    void *pb = at_alloc(b, L(300, 4));
    ASSERT_NOT_NULL(pb);
    check_inside(pb, 300, buf + BUF_SIZE / 2, BUF_SIZE / 2);
    ASSERT_UEQ(at_arena_used(a), ua + 100);
    ASSERT_UEQ(at_arena_used(b), ub + 300);

    at_dealloc(a, pa, L(100, 4));
    ASSERT_UEQ(at_arena_used(a_copy), ua);
    ASSERT_UEQ(at_arena_used(b), ub + 300);

    /* re-creating an arena over the same buffer starts it afresh */
    at_allocator b2 = at_arena_allocator(buf + BUF_SIZE / 2, BUF_SIZE / 2);
    ASSERT_UEQ(at_arena_used(b2), ub);
}

TEST_MAIN()
