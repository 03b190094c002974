/* Unit tests of the allocator trait's dispatchers (allocator.h): the
 * default alloc_zeroed and realloc paths, the use of provided ops, layout
 * validation before any op is called, the Result-style variants, and errno.
 *
 * The allocator under test is written here: it counts every call, records
 * the arguments, fills fresh blocks with garbage (0xAA), and can be told to
 * fail. */
#include <errno.h>
#include <stdint.h>

#include <alloctrace/allocator.h>
#include <alloctrace/error.h>
#include <alloctrace/layout.h>

#include "test.h"

#define GARBAGE 0xAA
#define MAX_LIVE 64

struct counting {
    int alloc_calls, dealloc_calls, zeroed_calls, realloc_calls;
    at_layout last_alloc;     /* layout passed to the last alloc */
    at_layout last_dealloc;   /* layout passed to the last dealloc */
    void *last_dealloc_ptr;
    at_layout last_zeroed;
    void *last_realloc_ptr;
    at_layout last_realloc_old;
    size_t last_realloc_new;
    int fail; /* every op returns NULL while set */
    /* live blocks, to check that every release matches an allocation */
    struct {
        void *ptr;
        at_layout layout;
    } live[MAX_LIVE];
    int nlive;
};

static void live_add(struct counting *c, void *p, at_layout l)
{
    if (c->nlive >= MAX_LIVE)
        TEST_FAIL("too many live blocks in the counting allocator");
    c->live[c->nlive].ptr = p;
    c->live[c->nlive].layout = l;
    c->nlive++;
}

/* Removes `p`, checking that it is live and released with its layout. */
static void live_remove(struct counting *c, void *p, at_layout l)
{
    for (int i = 0; i < c->nlive; i++) {
        if (c->live[i].ptr != p)
            continue;
        if (c->live[i].layout.size != l.size || c->live[i].layout.align != l.align)
            TEST_FAIL("block %p allocated as {%zu, %zu} released as {%zu, %zu}", p,
                      c->live[i].layout.size, c->live[i].layout.align, l.size, l.align);
        c->live[i] = c->live[--c->nlive];
        return;
    }
    TEST_FAIL("release of %p, which is not live", p);
}

static void *raw_alloc(at_layout l)
{
    void *p = NULL;
    size_t align = l.align < sizeof(void *) ? sizeof(void *) : l.align;
    int saved = errno;
    if (posix_memalign(&p, align, l.size ? l.size : 1) != 0)
        p = NULL;
    errno = saved;
    return p;
}

static void *op_alloc(void *ctx, at_layout l)
{
    struct counting *c = ctx;
    c->alloc_calls++;
    c->last_alloc = l;
    if (at_layout_check(l) != AT_OK)
        TEST_FAIL("alloc op received invalid layout {%zu, %zu}", l.size, l.align);
    if (c->fail)
        return NULL;
    void *p = raw_alloc(l);
    if (!p)
        return NULL;
    memset(p, GARBAGE, l.size);
    live_add(c, p, l);
    return p;
}

static void op_dealloc(void *ctx, void *p, at_layout l)
{
    struct counting *c = ctx;
    c->dealloc_calls++;
    c->last_dealloc = l;
    c->last_dealloc_ptr = p;
    if (p == NULL)
        TEST_FAIL("dealloc op called with NULL");
    live_remove(c, p, l);
    int saved = errno;
    free(p);
    errno = saved;
}

static void *op_alloc_zeroed(void *ctx, at_layout l)
{
    struct counting *c = ctx;
    c->zeroed_calls++;
    c->last_zeroed = l;
    if (at_layout_check(l) != AT_OK)
        TEST_FAIL("alloc_zeroed op received invalid layout {%zu, %zu}", l.size, l.align);
    if (c->fail)
        return NULL;
    void *p = raw_alloc(l);
    if (!p)
        return NULL;
    memset(p, 0, l.size);
    live_add(c, p, l);
    return p;
}

static void *op_realloc(void *ctx, void *p, at_layout old, size_t new_size)
{
    struct counting *c = ctx;
    c->realloc_calls++;
    c->last_realloc_ptr = p;
    c->last_realloc_old = old;
    c->last_realloc_new = new_size;
    at_layout nl = {new_size, old.align};
    if (at_layout_check(old) != AT_OK || at_layout_check(nl) != AT_OK)
        TEST_FAIL("realloc op received invalid layout {%zu, %zu} -> %zu", old.size, old.align,
                  new_size);
    if (c->fail)
        return NULL;
    void *q = raw_alloc(nl);
    if (!q)
        return NULL;
    memset(q, GARBAGE, new_size);
    memcpy(q, p, old.size < new_size ? old.size : new_size);
    live_remove(c, p, old);
    free(p);
    live_add(c, q, nl);
    return q;
}

/* Only the two required operations: every default path is exercised. */
static const at_allocator_ops minimal_ops = {
    .alloc = op_alloc,
    .dealloc = op_dealloc,
    .name = "counting-minimal",
};

/* Every operation provided. */
static const at_allocator_ops full_ops = {
    .alloc = op_alloc,
    .dealloc = op_dealloc,
    .alloc_zeroed = op_alloc_zeroed,
    .realloc = op_realloc,
    .name = "counting-full",
};

static at_allocator make(const at_allocator_ops *ops, struct counting *c)
{
    memset(c, 0, sizeof *c);
    return (at_allocator){ops, c};
}

#define ASSERT_LAYOUT_IS(l, sz, al)                                                                \
    do {                                                                                           \
        at_layout got_ = (l);                                                                      \
        ASSERT_UEQ(got_.size, (sz));                                                               \
        ASSERT_UEQ(got_.align, (al));                                                              \
    } while (0)

static void fill(void *p, size_t n, unsigned seed)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(seed + i * 7);
}

static void check_fill(const void *p, size_t n, unsigned seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(seed + i * 7))
            TEST_FAIL("byte %zu of %p is 0x%02x, want 0x%02x", i, p, b[i],
                      (unsigned char)(seed + i * 7));
}

static void check_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            TEST_FAIL("byte %zu of %p is 0x%02x, want 0", i, p, b[i]);
}

static void check_value(const void *p, size_t n, unsigned char v)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != v)
            TEST_FAIL("byte %zu of %p is 0x%02x, want 0x%02x", i, p, b[i], v);
}

static void *const UNTOUCHED = (void *)(uintptr_t)0x5eed0;

/* ---- plain alloc / dealloc ---------------------------------------------------------- */

TEST(alloc_forwards_layout_and_pointer)
{
    struct counting c;
    at_allocator a = make(&minimal_ops, &c);
    static const size_t sizes[] = {0, 1, 24, 100, 4096};
    static const size_t aligns[] = {1, 8, 64, 4096};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (size_t j = 0; j < sizeof aligns / sizeof aligns[0]; j++) {
            at_layout l = L(sizes[i], aligns[j]);
            int calls = c.alloc_calls;
            void *p = at_alloc(a, l);
            ASSERT_NOT_NULL(p);
            ASSERT_EQ(c.alloc_calls, calls + 1);
            ASSERT_LAYOUT_IS(c.last_alloc, sizes[i], aligns[j]);
            ASSERT_ALIGNED(p, aligns[j]);
            /* the dispatcher returns the op's block untouched */
            check_value(p, sizes[i], GARBAGE);
            int dcalls = c.dealloc_calls;
            at_dealloc(a, p, l);
            ASSERT_EQ(c.dealloc_calls, dcalls + 1);
            ASSERT_TRUE(c.last_dealloc_ptr == p);
            ASSERT_LAYOUT_IS(c.last_dealloc, sizes[i], aligns[j]);
        }
    }
    ASSERT_EQ(c.nlive, 0);
    ASSERT_EQ(c.zeroed_calls, 0);
    ASSERT_EQ(c.realloc_calls, 0);
}

TEST(try_alloc_success_sets_out)
{
    struct counting c;
    at_allocator a = make(&minimal_ops, &c);
    void *out = UNTOUCHED;
    ASSERT_EQ(at_try_alloc(a, L(40, 16), &out), AT_OK);
    ASSERT_TRUE(out != UNTOUCHED);
    ASSERT_NOT_NULL(out);
    ASSERT_ALIGNED(out, 16);
    ASSERT_EQ(c.alloc_calls, 1);
    ASSERT_LAYOUT_IS(c.last_alloc, 40, 16);
    at_dealloc(a, out, L(40, 16));
    ASSERT_EQ(c.nlive, 0);
}

TEST(dealloc_null_is_ignored)
{
    struct counting c;
    at_allocator a = make(&full_ops, &c);
    at_dealloc(a, NULL, L(16, 8));
    at_dealloc(a, NULL, L(0, 1));
    at_dealloc(a, NULL, L(4096, 4096));
    ASSERT_EQ(c.dealloc_calls, 0);
    ASSERT_EQ(c.alloc_calls + c.zeroed_calls + c.realloc_calls, 0);
}

/* ---- invalid layouts never reach the ops -------------------------------------------- */

static const struct {
    size_t size, align;
    int code;
} bad_layouts[] = {
    {8, 0, AT_E_ALIGN_ZERO},
    {SIZE_MAX, 0, AT_E_ALIGN_ZERO},
    {8, 3, AT_E_ALIGN_NOT_POW2},
    {8, 6, AT_E_ALIGN_NOT_POW2},
    {SIZE_MAX, 6, AT_E_ALIGN_NOT_POW2},
    {SIZE_MAX, 2, AT_E_SIZE_OVERFLOW},
    {SIZE_MAX - 4094, 4096, AT_E_SIZE_OVERFLOW},
    {SIZE_MAX - 6, 8, AT_E_SIZE_OVERFLOW},
};
#define N_BAD (sizeof bad_layouts / sizeof bad_layouts[0])

TEST(invalid_layout_alloc_returns_null_without_calling_ops)
{
    const at_allocator_ops *tables[] = {&minimal_ops, &full_ops};
    for (size_t t = 0; t < 2; t++) {
        struct counting c;
        at_allocator a = make(tables[t], &c);
        for (size_t i = 0; i < N_BAD; i++) {
            at_layout l = {bad_layouts[i].size, bad_layouts[i].align};
            ASSERT_NULL(at_alloc(a, l));
            ASSERT_NULL(at_alloc_zeroed(a, l));
        }
        ASSERT_EQ(c.alloc_calls, 0);
        ASSERT_EQ(c.zeroed_calls, 0);
        ASSERT_EQ(c.realloc_calls, 0);
        ASSERT_EQ(c.dealloc_calls, 0);
    }
}

TEST(invalid_layout_try_alloc_returns_code)
{
    const at_allocator_ops *tables[] = {&minimal_ops, &full_ops};
    for (size_t t = 0; t < 2; t++) {
        struct counting c;
        at_allocator a = make(tables[t], &c);
        for (size_t i = 0; i < N_BAD; i++) {
            at_layout l = {bad_layouts[i].size, bad_layouts[i].align};
            void *out = UNTOUCHED;
            ASSERT_EQ(at_try_alloc(a, l, &out), bad_layouts[i].code);
            ASSERT_TRUE(out == UNTOUCHED);
            ASSERT_EQ(at_try_alloc_zeroed(a, l, &out), bad_layouts[i].code);
            ASSERT_TRUE(out == UNTOUCHED);
        }
        ASSERT_EQ(c.alloc_calls + c.zeroed_calls + c.realloc_calls + c.dealloc_calls, 0);
    }
}

TEST(realloc_to_invalid_layout_fails_without_calling_ops)
{
    const at_allocator_ops *tables[] = {&minimal_ops, &full_ops};
    for (size_t t = 0; t < 2; t++) {
        struct counting c;
        at_allocator a = make(tables[t], &c);
        at_layout old = L(32, 8);
        void *p = at_alloc(a, old);
        ASSERT_NOT_NULL(p);
        fill(p, 32, 3);
        int before = c.alloc_calls;

        /* new_size with old.align: SIZE_MAX - 6 does not round to 8 */
        ASSERT_NULL(at_realloc(a, p, old, SIZE_MAX - 6));
        ASSERT_NULL(at_realloc(a, p, old, SIZE_MAX));
        void *out = UNTOUCHED;
        ASSERT_EQ(at_try_realloc(a, p, old, SIZE_MAX - 6, &out), AT_E_SIZE_OVERFLOW);
        ASSERT_TRUE(out == UNTOUCHED);
        ASSERT_EQ(at_try_realloc(a, p, old, SIZE_MAX, &out), AT_E_SIZE_OVERFLOW);
        ASSERT_TRUE(out == UNTOUCHED);

        ASSERT_EQ(c.alloc_calls, before);
        ASSERT_EQ(c.realloc_calls, 0);
        ASSERT_EQ(c.dealloc_calls, 0);
        /* the old block is intact and still live */
        check_fill(p, 32, 3);
        ASSERT_EQ(c.nlive, 1);
        at_dealloc(a, p, old);
        ASSERT_EQ(c.nlive, 0);
    }
}

TEST(realloc_with_invalid_old_layout_fails_without_calling_ops)
{
    const at_allocator_ops *tables[] = {&minimal_ops, &full_ops};
    for (size_t t = 0; t < 2; t++) {
        struct counting c;
        at_allocator a = make(tables[t], &c);
        at_layout good = L(32, 8);
        void *p = at_alloc(a, good);
        ASSERT_NOT_NULL(p);
        int before = c.alloc_calls;
        void *out = UNTOUCHED;
        ASSERT_NULL(at_realloc(a, p, (at_layout){32, 0}, 64));
        ASSERT_NULL(at_realloc(a, p, (at_layout){32, 6}, 64));
        ASSERT_EQ(at_try_realloc(a, p, (at_layout){32, 0}, 64, &out), AT_E_ALIGN_ZERO);
        ASSERT_EQ(at_try_realloc(a, p, (at_layout){32, 6}, 64, &out), AT_E_ALIGN_NOT_POW2);
        ASSERT_TRUE(out == UNTOUCHED);
        ASSERT_EQ(c.alloc_calls, before);
        ASSERT_EQ(c.realloc_calls + c.dealloc_calls, 0);
        at_dealloc(a, p, good);
        ASSERT_EQ(c.nlive, 0);
    }
}

/* ---- failure of the op: NULL / AT_E_NOMEM, nothing changed --------------------------- */

TEST(op_failure_gives_null_and_nomem)
{
    const at_allocator_ops *tables[] = {&minimal_ops, &full_ops};
    for (size_t t = 0; t < 2; t++) {
        struct counting c;
        at_allocator a = make(tables[t], &c);
        c.fail = 1;
        ASSERT_NULL(at_alloc(a, L(64, 8)));
        ASSERT_NULL(at_alloc_zeroed(a, L(64, 8)));
        void *out = UNTOUCHED;
        ASSERT_EQ(at_try_alloc(a, L(64, 8), &out), AT_E_NOMEM);
        ASSERT_TRUE(out == UNTOUCHED);
        ASSERT_EQ(at_try_alloc_zeroed(a, L(64, 8), &out), AT_E_NOMEM);
        ASSERT_TRUE(out == UNTOUCHED);
        /* a zero-size request answered with NULL counts as failure too */
        ASSERT_EQ(at_try_alloc(a, L(0, 1), &out), AT_E_NOMEM);
        ASSERT_TRUE(out == UNTOUCHED);
        ASSERT_EQ(at_try_alloc_zeroed(a, L(0, 16), &out), AT_E_NOMEM);
        ASSERT_TRUE(out == UNTOUCHED);
        ASSERT_EQ(c.dealloc_calls, 0);
        ASSERT_EQ(c.nlive, 0);
    }
}

TEST(try_realloc_failure_leaves_old_block)
{
    const at_allocator_ops *tables[] = {&minimal_ops, &full_ops};
    for (size_t t = 0; t < 2; t++) {
        struct counting c;
        at_allocator a = make(tables[t], &c);
        at_layout old = L(100, 32);
        void *p = at_alloc(a, old);
        ASSERT_NOT_NULL(p);
        fill(p, 100, 11);

        c.fail = 1;
        void *out = UNTOUCHED;
        ASSERT_EQ(at_try_realloc(a, p, old, 1000, &out), AT_E_NOMEM);
        ASSERT_TRUE(out == UNTOUCHED);
        ASSERT_EQ(at_try_realloc(a, p, old, 10, &out), AT_E_NOMEM);
        ASSERT_TRUE(out == UNTOUCHED);
        ASSERT_NULL(at_realloc(a, p, old, 1000));
        ASSERT_NULL(at_realloc(a, p, old, 10));
        /* nothing released, content intact */
        ASSERT_EQ(c.dealloc_calls, 0);
        ASSERT_EQ(c.nlive, 1);
        check_fill(p, 100, 11);

        /* and it can still be grown and released normally */
        c.fail = 0;
        ASSERT_EQ(at_try_realloc(a, p, old, 1000, &out), AT_OK);
        ASSERT_NOT_NULL(out);
        ASSERT_TRUE(out != UNTOUCHED);
        ASSERT_ALIGNED(out, 32);
        check_fill(out, 100, 11);
        at_dealloc(a, out, L(1000, 32));
        ASSERT_EQ(c.nlive, 0);
    }
}

/* ---- default alloc_zeroed ----------------------------------------------------------- */

TEST(default_alloc_zeroed_zeroes)
{
    struct counting c;
    at_allocator a = make(&minimal_ops, &c);
    static const size_t sizes[] = {0, 1, 7, 64, 1000, 65536};
    static const size_t aligns[] = {1, 16, 4096};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (size_t j = 0; j < sizeof aligns / sizeof aligns[0]; j++) {
            at_layout l = L(sizes[i], aligns[j]);
            int calls = c.alloc_calls;
            void *p = at_alloc_zeroed(a, l);
            ASSERT_NOT_NULL(p);
            ASSERT_EQ(c.alloc_calls, calls + 1);
            ASSERT_LAYOUT_IS(c.last_alloc, sizes[i], aligns[j]);
            ASSERT_ALIGNED(p, aligns[j]);
            check_zero(p, sizes[i]);
            at_dealloc(a, p, l);

            void *out = UNTOUCHED;
            ASSERT_EQ(at_try_alloc_zeroed(a, l, &out), AT_OK);
            ASSERT_TRUE(out != UNTOUCHED);
            ASSERT_NOT_NULL(out);
            ASSERT_ALIGNED(out, aligns[j]);
            check_zero(out, sizes[i]);
            at_dealloc(a, out, l);
        }
    }
    ASSERT_EQ(c.zeroed_calls, 0);
    ASSERT_EQ(c.nlive, 0);
}

TEST(provided_alloc_zeroed_is_used)
{
    struct counting c;
    at_allocator a = make(&full_ops, &c);
    at_layout l = L(300, 64);
    void *p = at_alloc_zeroed(a, l);
    ASSERT_NOT_NULL(p);
    ASSERT_EQ(c.zeroed_calls, 1);
    ASSERT_EQ(c.alloc_calls, 0);
    ASSERT_LAYOUT_IS(c.last_zeroed, 300, 64);
    check_zero(p, 300);
    at_dealloc(a, p, l);

    void *out = UNTOUCHED;
    ASSERT_EQ(at_try_alloc_zeroed(a, l, &out), AT_OK);
    ASSERT_EQ(c.zeroed_calls, 2);
    ASSERT_EQ(c.alloc_calls, 0);
    check_zero(out, 300);
    at_dealloc(a, out, l);
    ASSERT_EQ(c.nlive, 0);
}

/* ---- default realloc ---------------------------------------------------------------- */

static void default_realloc_case(size_t old_size, size_t align, size_t new_size, int use_try)
{
    struct counting c;
    at_allocator a = make(&minimal_ops, &c);
    at_layout old = L(old_size, align);
    void *p = at_alloc(a, old);
    ASSERT_NOT_NULL(p);
    fill(p, old_size, (unsigned)old_size);
    ASSERT_EQ(c.alloc_calls, 1);

    void *q;
    if (use_try) {
        q = UNTOUCHED;
        ASSERT_EQ(at_try_realloc(a, p, old, new_size, &q), AT_OK);
        ASSERT_TRUE(q != UNTOUCHED);
    } else {
        q = at_realloc(a, p, old, new_size);
    }
    ASSERT_NOT_NULL(q);
    /* one new allocation with (new_size, old.align) */
    ASSERT_EQ(c.alloc_calls, 2);
    ASSERT_LAYOUT_IS(c.last_alloc, new_size, align);
    /* the old block released with exactly its old layout */
    ASSERT_EQ(c.dealloc_calls, 1);
    ASSERT_TRUE(c.last_dealloc_ptr == p);
    ASSERT_LAYOUT_IS(c.last_dealloc, old_size, align);
    ASSERT_EQ(c.realloc_calls, 0);
    /* min(old, new) bytes copied, the rest is whatever alloc gave */
    ASSERT_ALIGNED(q, align);
    size_t keep = old_size < new_size ? old_size : new_size;
    check_fill(q, keep, (unsigned)old_size);
    if (new_size > keep)
        check_value((unsigned char *)q + keep, new_size - keep, GARBAGE);

    ASSERT_EQ(c.nlive, 1);
    at_dealloc(a, q, L(new_size, align));
    ASSERT_LAYOUT_IS(c.last_dealloc, new_size, align);
    ASSERT_EQ(c.nlive, 0);
}

TEST(default_realloc_grow)
{
    default_realloc_case(100, 8, 200, 0);
    default_realloc_case(1, 1, 4097, 0);
    default_realloc_case(100, 4096, 1 << 16, 0);
    default_realloc_case(0, 16, 64, 0);
    default_realloc_case(100, 8, 200, 1);
    default_realloc_case(24, 64, 1000, 1);
}

TEST(default_realloc_shrink)
{
    default_realloc_case(200, 8, 50, 0);
    default_realloc_case(4096, 4096, 1, 0);
    default_realloc_case(64, 16, 0, 0);
    default_realloc_case(200, 8, 50, 1);
    default_realloc_case(1000, 2, 999, 1);
}

TEST(default_realloc_chain_uses_current_layout)
{
    /* a chain of reallocations: each release gets (new size, old align) */
    struct counting c;
    at_allocator a = make(&minimal_ops, &c);
    static const size_t sizes[] = {10, 100, 30, 5000, 1};
    at_layout cur = L(sizes[0], 128);
    void *p = at_alloc(a, cur);
    ASSERT_NOT_NULL(p);
    fill(p, sizes[0], 99);
    for (size_t i = 1; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *q = at_realloc(a, p, cur, sizes[i]);
        ASSERT_NOT_NULL(q);
        ASSERT_TRUE(c.last_dealloc_ptr == p);
        ASSERT_LAYOUT_IS(c.last_dealloc, cur.size, 128);
        ASSERT_ALIGNED(q, 128);
        size_t keep = cur.size < sizes[i] ? cur.size : sizes[i];
        check_fill(q, keep, 99);
        fill(q, sizes[i], 99);
        cur = L(sizes[i], 128);
        p = q;
    }
    at_dealloc(a, p, cur);
    ASSERT_EQ(c.nlive, 0);
}

TEST(provided_realloc_is_used)
{
    struct counting c;
    at_allocator a = make(&full_ops, &c);
    at_layout old = L(100, 16);
    void *p = at_alloc(a, old);
    ASSERT_NOT_NULL(p);
    fill(p, 100, 5);
    int allocs = c.alloc_calls;

    void *q = at_realloc(a, p, old, 300);
    ASSERT_NOT_NULL(q);
    ASSERT_EQ(c.realloc_calls, 1);
    ASSERT_TRUE(c.last_realloc_ptr == p);
    ASSERT_LAYOUT_IS(c.last_realloc_old, 100, 16);
    ASSERT_UEQ(c.last_realloc_new, 300);
    ASSERT_EQ(c.alloc_calls, allocs);
    ASSERT_EQ(c.dealloc_calls, 0);
    check_fill(q, 100, 5);

    void *out = UNTOUCHED;
    ASSERT_EQ(at_try_realloc(a, q, L(300, 16), 20, &out), AT_OK);
    ASSERT_EQ(c.realloc_calls, 2);
    ASSERT_TRUE(c.last_realloc_ptr == q);
    ASSERT_LAYOUT_IS(c.last_realloc_old, 300, 16);
    ASSERT_UEQ(c.last_realloc_new, 20);
    ASSERT_EQ(c.alloc_calls, allocs);
    ASSERT_EQ(c.dealloc_calls, 0);
    check_fill(out, 20, 5);

    /* a failing realloc op: NULL / AT_E_NOMEM, out untouched, block live */
    c.fail = 1;
    void *out2 = UNTOUCHED;
    ASSERT_EQ(at_try_realloc(a, out, L(20, 16), 4000, &out2), AT_E_NOMEM);
    ASSERT_TRUE(out2 == UNTOUCHED);
    ASSERT_NULL(at_realloc(a, out, L(20, 16), 4000));
    ASSERT_EQ(c.realloc_calls, 4);
    ASSERT_EQ(c.alloc_calls, allocs);
    ASSERT_EQ(c.dealloc_calls, 0);
    check_fill(out, 20, 5);
    c.fail = 0;

    at_dealloc(a, out, L(20, 16));
    ASSERT_EQ(c.nlive, 0);
}

/* ---- errno -------------------------------------------------------------------------- */

TEST(errno_preserved_on_success)
{
    const at_allocator_ops *tables[] = {&minimal_ops, &full_ops};
    for (size_t t = 0; t < 2; t++) {
        struct counting c;
        at_allocator a = make(tables[t], &c);
        at_layout l = L(128, 64);
        void *out = NULL;

        errno = 4242;
        void *p = at_alloc(a, l);
        ASSERT_NOT_NULL(p);
        ASSERT_EQ(errno, 4242);

        void *z = at_alloc_zeroed(a, l);
        ASSERT_NOT_NULL(z);
        ASSERT_EQ(errno, 4242);

        void *q = at_realloc(a, p, l, 1000);
        ASSERT_NOT_NULL(q);
        ASSERT_EQ(errno, 4242);

        ASSERT_EQ(at_try_realloc(a, q, L(1000, 64), 10, &out), AT_OK);
        ASSERT_EQ(errno, 4242);
        at_dealloc(a, out, L(10, 64));
        ASSERT_EQ(errno, 4242);

        ASSERT_EQ(at_try_alloc(a, l, &out), AT_OK);
        ASSERT_EQ(errno, 4242);
        at_dealloc(a, out, l);
        ASSERT_EQ(at_try_alloc_zeroed(a, l, &out), AT_OK);
        ASSERT_EQ(errno, 4242);
        at_dealloc(a, out, l);
        at_dealloc(a, z, l);
        at_dealloc(a, NULL, l);
        ASSERT_EQ(errno, 4242);
        ASSERT_EQ(c.nlive, 0);
    }
}

TEST_MAIN()
