/* Unit tests of at_layout (layout.h) and at_strerror (error.h): the
 * invariants, their order of precedence, the arithmetic helpers at every
 * edge, and the Rust-style combinators array and extend.  Most tests are
 * tables of cases. */
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

#include <alloctrace/error.h>
#include <alloctrace/layout.h>

#include "test.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The largest size that still rounds up to a multiple of `align`, and the
 * largest power of two. */
#define MAX_SIZE_FOR(align) (SIZE_MAX - ((size_t)(align) - 1))
#define TOP_ALIGN ((SIZE_MAX >> 1) + 1)
#define ALIGN_62 ((size_t)1 << 62)

_Static_assert(sizeof(size_t) == 8, "these tables assume a 64-bit size_t");

/* A value at_layout functions never produce, to detect writes to *out. */
static const at_layout SENTINEL = {0x5eed, 0xbad};

static int layout_eq(at_layout x, at_layout y)
{
    return x.size == y.size && x.align == y.align;
}

#define ASSERT_LAYOUT(l, sz, al)                                                                   \
    do {                                                                                           \
        at_layout got_ = (l);                                                                      \
        ASSERT_UEQ(got_.size, (sz));                                                               \
        ASSERT_UEQ(got_.align, (al));                                                              \
    } while (0)

/* ---- invariants ------------------------------------------------------------------- */

struct layout_case {
    size_t size;
    size_t align;
    int code;       /* expected from at_layout_check / from_size_align */
    size_t padded;  /* expected at_layout_padded_size, when code == 0 */
    size_t padding; /* expected at_layout_padding_needed, when code == 0 */
};

static const struct layout_case layout_cases[] = {
    /* size 0 is valid at every alignment */
    {0, 1, AT_OK, 0, 0},
    {0, 2, AT_OK, 0, 0},
    {0, 8, AT_OK, 0, 0},
    {0, 4096, AT_OK, 0, 0},
    {0, ALIGN_62, AT_OK, 0, 0},
    {0, TOP_ALIGN, AT_OK, 0, 0},
    /* ordinary rounding */
    {1, 1, AT_OK, 1, 0},
    {7, 1, AT_OK, 7, 0},
    {1, 8, AT_OK, 8, 7},
    {6, 8, AT_OK, 8, 2},
    {8, 8, AT_OK, 8, 0},
    {9, 8, AT_OK, 16, 7},
    {10, 8, AT_OK, 16, 6},
    {16, 16, AT_OK, 16, 0},
    {17, 16, AT_OK, 32, 15},
    {100, 64, AT_OK, 128, 28},
    {4097, 4096, AT_OK, 8192, 4095},
    /* huge alignments with small sizes are valid */
    {1, ALIGN_62, AT_OK, ALIGN_62, ALIGN_62 - 1},
    {ALIGN_62, ALIGN_62, AT_OK, ALIGN_62, 0},
    {1, TOP_ALIGN, AT_OK, TOP_ALIGN, TOP_ALIGN - 1},
    {TOP_ALIGN, TOP_ALIGN, AT_OK, TOP_ALIGN, 0},
    {TOP_ALIGN + 1, TOP_ALIGN, AT_E_SIZE_OVERFLOW, 0, 0},
    /* align 1: every size fits */
    {SIZE_MAX, 1, AT_OK, SIZE_MAX, 0},
    {SIZE_MAX - 1, 1, AT_OK, SIZE_MAX - 1, 0},
    /* the largest size that still rounds, one below it, and one past it */
    {MAX_SIZE_FOR(2), 2, AT_OK, MAX_SIZE_FOR(2), 0},
    {MAX_SIZE_FOR(2) - 1, 2, AT_OK, MAX_SIZE_FOR(2), 1},
    {MAX_SIZE_FOR(2) + 1, 2, AT_E_SIZE_OVERFLOW, 0, 0},
    {MAX_SIZE_FOR(8), 8, AT_OK, MAX_SIZE_FOR(8), 0},
    {MAX_SIZE_FOR(8) - 1, 8, AT_OK, MAX_SIZE_FOR(8), 1},
    {MAX_SIZE_FOR(8) - 7, 8, AT_OK, MAX_SIZE_FOR(8), 7},
    {MAX_SIZE_FOR(8) + 1, 8, AT_E_SIZE_OVERFLOW, 0, 0},
    {MAX_SIZE_FOR(16), 16, AT_OK, MAX_SIZE_FOR(16), 0},
    {MAX_SIZE_FOR(16) + 1, 16, AT_E_SIZE_OVERFLOW, 0, 0},
    {MAX_SIZE_FOR(4096), 4096, AT_OK, MAX_SIZE_FOR(4096), 0},
    {MAX_SIZE_FOR(4096) - 1, 4096, AT_OK, MAX_SIZE_FOR(4096), 1},
    {MAX_SIZE_FOR(4096) + 1, 4096, AT_E_SIZE_OVERFLOW, 0, 0},
    {MAX_SIZE_FOR(ALIGN_62), ALIGN_62, AT_OK, MAX_SIZE_FOR(ALIGN_62), 0},
    {MAX_SIZE_FOR(ALIGN_62) + 1, ALIGN_62, AT_E_SIZE_OVERFLOW, 0, 0},
    {SIZE_MAX, 2, AT_E_SIZE_OVERFLOW, 0, 0},
    {SIZE_MAX, 8, AT_E_SIZE_OVERFLOW, 0, 0},
    {SIZE_MAX, 4096, AT_E_SIZE_OVERFLOW, 0, 0},
    {SIZE_MAX, TOP_ALIGN, AT_E_SIZE_OVERFLOW, 0, 0},
    /* align 0, whatever the size: ALIGN_ZERO comes first */
    {0, 0, AT_E_ALIGN_ZERO, 0, 0},
    {1, 0, AT_E_ALIGN_ZERO, 0, 0},
    {8, 0, AT_E_ALIGN_ZERO, 0, 0},
    {SIZE_MAX, 0, AT_E_ALIGN_ZERO, 0, 0},
    /* not a power of two, including with an overflowing size */
    {8, 3, AT_E_ALIGN_NOT_POW2, 0, 0},
    {8, 6, AT_E_ALIGN_NOT_POW2, 0, 0},
    {0, 3, AT_E_ALIGN_NOT_POW2, 0, 0},
    {0, 6, AT_E_ALIGN_NOT_POW2, 0, 0},
    {1, 5, AT_E_ALIGN_NOT_POW2, 0, 0},
    {1, 7, AT_E_ALIGN_NOT_POW2, 0, 0},
    {1, 12, AT_E_ALIGN_NOT_POW2, 0, 0},
    {1, 4097, AT_E_ALIGN_NOT_POW2, 0, 0},
    {1, SIZE_MAX, AT_E_ALIGN_NOT_POW2, 0, 0},
    {1, TOP_ALIGN + 1, AT_E_ALIGN_NOT_POW2, 0, 0},
    {1, ALIGN_62 | 1, AT_E_ALIGN_NOT_POW2, 0, 0},
    {SIZE_MAX, 3, AT_E_ALIGN_NOT_POW2, 0, 0},
    {SIZE_MAX, 6, AT_E_ALIGN_NOT_POW2, 0, 0},
    {SIZE_MAX, SIZE_MAX, AT_E_ALIGN_NOT_POW2, 0, 0},
};

TEST(layout_check_table)
{
    for (size_t i = 0; i < ARRAY_LEN(layout_cases); i++) {
        const struct layout_case *c = &layout_cases[i];
        at_layout l = {c->size, c->align};
        int got = at_layout_check(l);
        if (got != c->code)
            TEST_FAIL("case %zu: at_layout_check({%zu, %zu}) = %d, want %d", i, c->size, c->align,
                      got, c->code);
    }
}

TEST(layout_from_size_align_table)
{
    for (size_t i = 0; i < ARRAY_LEN(layout_cases); i++) {
        const struct layout_case *c = &layout_cases[i];
        at_layout out = SENTINEL;
        int got = at_layout_from_size_align(c->size, c->align, &out);
        if (got != c->code)
            TEST_FAIL("case %zu: at_layout_from_size_align(%zu, %zu) = %d, want %d", i, c->size,
                      c->align, got, c->code);
        if (c->code != AT_OK) {
            if (!layout_eq(out, SENTINEL))
                TEST_FAIL("case %zu: *out written on failure: {%zu, %zu}", i, out.size, out.align);
            continue;
        }
        if (out.size != c->size || out.align != c->align)
            TEST_FAIL("case %zu: *out = {%zu, %zu}, want {%zu, %zu}", i, out.size, out.align,
                      c->size, c->align);
        at_layout u = at_layout_from_size_align_unchecked(c->size, c->align);
        if (!layout_eq(u, out))
            TEST_FAIL("case %zu: unchecked gave {%zu, %zu}", i, u.size, u.align);
    }
}

TEST(layout_padded_size_and_padding_table)
{
    for (size_t i = 0; i < ARRAY_LEN(layout_cases); i++) {
        const struct layout_case *c = &layout_cases[i];
        if (c->code != AT_OK)
            continue;
        at_layout l = {c->size, c->align};
        size_t padded = at_layout_padded_size(l);
        size_t padding = at_layout_padding_needed(l);
        size_t padding_for_own = at_layout_padding_needed_for(l, c->align);
        at_layout pad = at_layout_pad_to_align(l);
        if (padded != c->padded)
            TEST_FAIL("case %zu {%zu, %zu}: padded_size = %zu, want %zu", i, c->size, c->align,
                      padded, c->padded);
        if (padding != c->padding)
            TEST_FAIL("case %zu {%zu, %zu}: padding_needed = %zu, want %zu", i, c->size, c->align,
                      padding, c->padding);
        if (padding_for_own != c->padding)
            TEST_FAIL("case %zu {%zu, %zu}: padding_needed_for(own align) = %zu, want %zu", i,
                      c->size, c->align, padding_for_own, c->padding);
        if (pad.size != c->padded || pad.align != c->align)
            TEST_FAIL("case %zu {%zu, %zu}: pad_to_align = {%zu, %zu}, want {%zu, %zu}", i,
                      c->size, c->align, pad.size, pad.align, c->padded, c->align);
        /* the padded layout is itself valid and already padded */
        ASSERT_EQ(at_layout_check(pad), AT_OK);
        ASSERT_UEQ(at_layout_padding_needed(pad), 0);
        ASSERT_UEQ(c->padded - c->size, c->padding);
    }
}

TEST(layout_out_untouched_on_every_failure)
{
    /* Every failing case, with a few different sentinels. */
    static const at_layout sentinels[] = {{0, 0}, {1, 1}, {SIZE_MAX, SIZE_MAX}};
    for (size_t i = 0; i < ARRAY_LEN(layout_cases); i++) {
        if (layout_cases[i].code == AT_OK)
            continue;
        for (size_t s = 0; s < ARRAY_LEN(sentinels); s++) {
            at_layout out = sentinels[s];
            ASSERT_EQ(at_layout_from_size_align(layout_cases[i].size, layout_cases[i].align, &out),
                      layout_cases[i].code);
            ASSERT_TRUE(layout_eq(out, sentinels[s]));
        }
    }
}

/* ---- padding_needed_for ------------------------------------------------------------- */

struct padding_for_case {
    size_t size, align; /* the layout */
    size_t to;          /* the alignment to reach */
    size_t want;
};

static const struct padding_for_case padding_for_cases[] = {
    {0, 1, 1, 0},
    {0, 1, 4096, 0},
    {1, 1, 1, 0},
    {1, 1, 2, 1},
    {6, 2, 8, 2},
    {8, 8, 16, 8},
    {13, 1, 4, 3},
    {16, 16, 4, 0},  /* a smaller alignment than the layout's */
    {18, 2, 4, 2},   /* a smaller alignment, padding still needed */
    {17, 16, 8, 7},
    {100, 4, 64, 28},
    {4095, 1, 4096, 1},
    {4096, 4096, 4096, 0},
    {1, 1, ALIGN_62, ALIGN_62 - 1},
    {ALIGN_62, 1, ALIGN_62, 0},
    {ALIGN_62 + 1, 1, ALIGN_62, ALIGN_62 - 1},
    {MAX_SIZE_FOR(8), 8, 8, 0},
    {MAX_SIZE_FOR(8), 8, 4, 0},
    {MAX_SIZE_FOR(8) - 1, 1, 8, 1},
    {SIZE_MAX, 1, 1, 0},
};

TEST(layout_padding_needed_for_table)
{
    for (size_t i = 0; i < ARRAY_LEN(padding_for_cases); i++) {
        const struct padding_for_case *c = &padding_for_cases[i];
        at_layout l = {c->size, c->align};
        ASSERT_EQ(at_layout_check(l), AT_OK);
        size_t got = at_layout_padding_needed_for(l, c->to);
        if (got != c->want)
            TEST_FAIL("case %zu: padding_needed_for({%zu, %zu}, %zu) = %zu, want %zu", i, c->size,
                      c->align, c->to, got, c->want);
    }
}

/* ---- AT_LAYOUT_OF / AT_LAYOUT_OF_VAL ------------------------------------------------- */

struct mixed {
    char c;
    double d;
    short s;
};

struct over_aligned {
    alignas(64) unsigned char bytes[3];
};

struct empty_ish {
    char c;
};

#define CHECK_TYPE(T)                                                                              \
    do {                                                                                           \
        at_layout l_ = AT_LAYOUT_OF(T);                                                            \
        ASSERT_UEQ(l_.size, sizeof(T));                                                            \
        ASSERT_UEQ(l_.align, _Alignof(T));                                                         \
        ASSERT_EQ(at_layout_check(l_), AT_OK);                                                     \
    } while (0)

TEST(layout_of_types)
{
    CHECK_TYPE(char);
    CHECK_TYPE(short);
    CHECK_TYPE(int);
    CHECK_TYPE(long long);
    CHECK_TYPE(float);
    CHECK_TYPE(double);
    CHECK_TYPE(long double);
    CHECK_TYPE(void *);
    CHECK_TYPE(max_align_t);
    CHECK_TYPE(struct mixed);
    CHECK_TYPE(struct over_aligned);
    CHECK_TYPE(struct empty_ish);
    CHECK_TYPE(char[7]);
    CHECK_TYPE(struct mixed[3]);

    /* and the values themselves, in case sizeof/_Alignof were swapped */
    ASSERT_LAYOUT(AT_LAYOUT_OF(char), 1, 1);
    ASSERT_LAYOUT(AT_LAYOUT_OF(struct over_aligned), 64, 64);
    ASSERT_LAYOUT(AT_LAYOUT_OF(char[7]), 7, 1);
    ASSERT_LAYOUT(AT_LAYOUT_OF(struct mixed), sizeof(struct mixed), alignof(double));
}

static int side_effects;

static double touch(void)
{
    side_effects++;
    return 1.0;
}

TEST(layout_of_val)
{
    int i = 0;
    struct mixed m = {0};
    struct over_aligned o;
    short arr[5] = {0};
    memset(&o, 0, sizeof o);

    ASSERT_LAYOUT(AT_LAYOUT_OF_VAL(i), sizeof(int), alignof(int));
    ASSERT_LAYOUT(AT_LAYOUT_OF_VAL(m), sizeof(struct mixed), alignof(struct mixed));
    ASSERT_LAYOUT(AT_LAYOUT_OF_VAL(o), 64, 64);
    ASSERT_LAYOUT(AT_LAYOUT_OF_VAL(arr), sizeof(short) * 5, alignof(short));
    ASSERT_LAYOUT(AT_LAYOUT_OF_VAL(m.d), sizeof(double), alignof(double));
    ASSERT_LAYOUT(AT_LAYOUT_OF_VAL(arr[0]), sizeof(short), alignof(short));

    /* the expression is not evaluated */
    side_effects = 0;
    at_layout l1 = AT_LAYOUT_OF_VAL(i++);
    ASSERT_EQ(i, 0);
    ASSERT_LAYOUT(l1, sizeof(int), alignof(int));
    at_layout l2 = AT_LAYOUT_OF_VAL(touch());
    ASSERT_EQ(side_effects, 0);
    ASSERT_LAYOUT(l2, sizeof(double), alignof(double));
    at_layout l3 = AT_LAYOUT_OF_VAL(arr[i++]);
    ASSERT_EQ(i, 0);
    ASSERT_LAYOUT(l3, sizeof(short), alignof(short));
}

/* ---- pad_to_align ------------------------------------------------------------------ */

TEST(layout_pad_to_align)
{
    static const struct {
        size_t size, align, want;
    } cases[] = {
        {0, 1, 0},
        {0, 16, 0},
        {1, 1, 1},
        {6, 4, 8},
        {6, 8, 8},
        {10, 8, 16},
        {17, 16, 32},
        {MAX_SIZE_FOR(8), 8, MAX_SIZE_FOR(8)},
        {MAX_SIZE_FOR(8) - 3, 8, MAX_SIZE_FOR(8)},
        {1, ALIGN_62, ALIGN_62},
        {SIZE_MAX, 1, SIZE_MAX},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        at_layout l = {cases[i].size, cases[i].align};
        at_layout p = at_layout_pad_to_align(l);
        if (p.size != cases[i].want || p.align != cases[i].align)
            TEST_FAIL("case %zu: pad_to_align({%zu, %zu}) = {%zu, %zu}, want {%zu, %zu}", i,
                      cases[i].size, cases[i].align, p.size, p.align, cases[i].want,
                      cases[i].align);
        /* idempotent */
        at_layout pp = at_layout_pad_to_align(p);
        ASSERT_TRUE(layout_eq(p, pp));
    }
}

/* ---- array ------------------------------------------------------------------------- */

struct array_case {
    size_t size, align; /* element */
    size_t n;
    int code;
    size_t want_size; /* when code == 0; the alignment is the element's */
};

static const struct array_case array_cases[] = {
    /* n = 0: an empty array keeps the element's alignment */
    {6, 4, 0, AT_OK, 0},
    {1, 1, 0, AT_OK, 0},
    {MAX_SIZE_FOR(8), 8, 0, AT_OK, 0},
    {0, 64, 0, AT_OK, 0},
    /* n = 1: the element padded to its alignment */
    {6, 4, 1, AT_OK, 8},
    {8, 8, 1, AT_OK, 8},
    /* each element padded to its alignment: stride 8 for {6, 4} */
    {6, 4, 3, AT_OK, 24},
    {6, 4, 10, AT_OK, 80},
    {1, 1, 100, AT_OK, 100},
    {4, 4, 5, AT_OK, 20},
    {12, 8, 3, AT_OK, 48},
    {1, 4096, 3, AT_OK, 3 * 4096},
    /* zero-size elements never overflow */
    {0, 1, SIZE_MAX, AT_OK, 0},
    {0, 4096, SIZE_MAX, AT_OK, 0},
    /* the largest arrays that fit, and one element more */
    {1, 1, SIZE_MAX, AT_OK, SIZE_MAX},
    {2, 2, SIZE_MAX / 2, AT_OK, MAX_SIZE_FOR(2)},
    {2, 2, SIZE_MAX / 2 + 1, AT_E_SIZE_OVERFLOW, 0},
    {1, 2, SIZE_MAX / 2, AT_OK, MAX_SIZE_FOR(2)},     /* stride 2 */
    {1, 2, SIZE_MAX / 2 + 1, AT_E_SIZE_OVERFLOW, 0},  /* 1 * n fits, stride * n does not */
    {8, 8, SIZE_MAX / 8, AT_OK, MAX_SIZE_FOR(8)},
    {8, 8, SIZE_MAX / 8 + 1, AT_E_SIZE_OVERFLOW, 0},
    {6, 4, SIZE_MAX / 8, AT_OK, MAX_SIZE_FOR(8)},     /* stride 8 */
    {6, 4, SIZE_MAX / 8 + 1, AT_E_SIZE_OVERFLOW, 0},  /* 6 * n fits, 8 * n does not */
    {MAX_SIZE_FOR(8), 8, 1, AT_OK, MAX_SIZE_FOR(8)},
    {MAX_SIZE_FOR(8), 8, 2, AT_E_SIZE_OVERFLOW, 0},
    {MAX_SIZE_FOR(8) - 7, 8, 1, AT_OK, MAX_SIZE_FOR(8)}, /* the element rounds to the limit */
    {MAX_SIZE_FOR(4096), 4096, 1, AT_OK, MAX_SIZE_FOR(4096)},
    {MAX_SIZE_FOR(4096) - 4095, 4096, 1, AT_OK, MAX_SIZE_FOR(4096)},
    {4096, 4096, SIZE_MAX / 4096, AT_OK, MAX_SIZE_FOR(4096)},
    {4096, 4096, SIZE_MAX / 4096 + 1, AT_E_SIZE_OVERFLOW, 0},
    {1, ALIGN_62, 3, AT_OK, 3 * ALIGN_62},
    {1, ALIGN_62, 4, AT_E_SIZE_OVERFLOW, 0},
    /* products that wrap around to small numbers must still be caught */
    {16, 16, (SIZE_MAX / 16) + 2, AT_E_SIZE_OVERFLOW, 0},  /* 16 * n wraps to 16 */
    {6, 4, ((SIZE_MAX >> 3) + 1) * 2, AT_E_SIZE_OVERFLOW, 0}, /* 8 * n wraps to 0 */
    {2, 2, SIZE_MAX, AT_E_SIZE_OVERFLOW, 0},
    {SIZE_MAX, 1, 2, AT_E_SIZE_OVERFLOW, 0},
    {TOP_ALIGN, 1, 2, AT_E_SIZE_OVERFLOW, 0}, /* exactly SIZE_MAX + 1, wraps to 0 */
};

TEST(layout_array_table)
{
    for (size_t i = 0; i < ARRAY_LEN(array_cases); i++) {
        const struct array_case *c = &array_cases[i];
        at_layout elem = {c->size, c->align};
        ASSERT_EQ(at_layout_check(elem), AT_OK);
        at_layout out = SENTINEL;
        int got = at_layout_array(elem, c->n, &out);
        if (got != c->code)
            TEST_FAIL("case %zu: at_layout_array({%zu, %zu}, %zu) = %d, want %d", i, c->size,
                      c->align, c->n, got, c->code);
        if (c->code != AT_OK) {
            if (!layout_eq(out, SENTINEL))
                TEST_FAIL("case %zu: *out written on failure: {%zu, %zu}", i, out.size, out.align);
            continue;
        }
        if (out.size != c->want_size || out.align != c->align)
            TEST_FAIL("case %zu: at_layout_array({%zu, %zu}, %zu) = {%zu, %zu}, want {%zu, %zu}",
                      i, c->size, c->align, c->n, out.size, out.align, c->want_size, c->align);
        ASSERT_EQ(at_layout_check(out), AT_OK);
    }
}

TEST(layout_array_matches_c_arrays)
{
    at_layout out = SENTINEL;
    ASSERT_EQ(at_layout_array(AT_LAYOUT_OF(struct mixed), 7, &out), AT_OK);
    ASSERT_LAYOUT(out, sizeof(struct mixed[7]), _Alignof(struct mixed));
    ASSERT_EQ(at_layout_array(AT_LAYOUT_OF(struct over_aligned), 3, &out), AT_OK);
    ASSERT_LAYOUT(out, sizeof(struct over_aligned[3]), 64);
    ASSERT_EQ(at_layout_array(AT_LAYOUT_OF(double), 1000, &out), AT_OK);
    ASSERT_LAYOUT(out, sizeof(double[1000]), _Alignof(double));
}

/* ---- extend ------------------------------------------------------------------------ */

struct extend_case {
    size_t a_size, a_align;
    size_t b_size, b_align;
    int code;
    size_t offset, size, align; /* when code == 0 */
};

static const struct extend_case extend_cases[] = {
    /* Rust's Layout::extend example: u8 then u32 */
    {1, 1, 4, 4, AT_OK, 4, 8, 4},
    /* already aligned: no padding */
    {4, 4, 4, 4, AT_OK, 4, 8, 4},
    {4, 4, 1, 1, AT_OK, 4, 5, 4},
    /* the end is not padded */
    {8, 8, 1, 1, AT_OK, 8, 9, 8},
    {1, 1, 1, 1, AT_OK, 1, 2, 1},
    /* extending by a larger alignment */
    {4, 4, 8, 8, AT_OK, 8, 16, 8},
    {1, 1, 16, 64, AT_OK, 64, 80, 64},
    {65, 64, 1, 4096, AT_OK, 4096, 4097, 4096},
    /* extending by a smaller alignment keeps the first one */
    {3, 16, 2, 2, AT_OK, 4, 6, 16},
    {6, 8, 4, 4, AT_OK, 8, 12, 8},
    /* zero sizes */
    {0, 1, 0, 1, AT_OK, 0, 0, 1},
    {0, 8, 0, 16, AT_OK, 0, 0, 16},
    {1, 1, 0, 8, AT_OK, 8, 8, 8},
    {0, 4, 12, 4, AT_OK, 0, 12, 4},
    /* at the limits, still fitting */
    {SIZE_MAX - 1, 1, 1, 1, AT_OK, SIZE_MAX - 1, SIZE_MAX, 1},
    {MAX_SIZE_FOR(8) - 8, 8, 8, 8, AT_OK, MAX_SIZE_FOR(8) - 8, MAX_SIZE_FOR(8), 8},
    {1, 1, 1, ALIGN_62, AT_OK, ALIGN_62, ALIGN_62 + 1, ALIGN_62},
    /* overflow: the end of `a` rounded up to b.align overflows */
    {SIZE_MAX, 1, 0, 2, AT_E_SIZE_OVERFLOW, 0, 0, 0},
    {SIZE_MAX, 1, 1, 1, AT_E_SIZE_OVERFLOW, 0, 0, 0},
    {SIZE_MAX - 2, 1, 1, 8, AT_E_SIZE_OVERFLOW, 0, 0, 0},
    {TOP_ALIGN + 1, 1, 0, TOP_ALIGN, AT_E_SIZE_OVERFLOW, 0, 0, 0},
    /* overflow: the offset fits, the result is too big for its alignment */
    {ALIGN_62 + 1, 1, 1, TOP_ALIGN, AT_E_SIZE_OVERFLOW, 0, 0, 0},
    /* overflow: offset + b.size wraps */
    {MAX_SIZE_FOR(8), 8, 8, 8, AT_E_SIZE_OVERFLOW, 0, 0, 0},
    {1, 1, MAX_SIZE_FOR(8), 8, AT_E_SIZE_OVERFLOW, 0, 0, 0},
    {TOP_ALIGN, 1, TOP_ALIGN, 1, AT_E_SIZE_OVERFLOW, 0, 0, 0},
    /* overflow: the sum fits in size_t but cannot be rounded to the result's
     * alignment */
    {5, 8, SIZE_MAX - 10, 1, AT_E_SIZE_OVERFLOW, 0, 0, 0},
    {1, 1, MAX_SIZE_FOR(4096) - 1, 1, AT_OK, 1, MAX_SIZE_FOR(4096), 1},
    {1, 4096, MAX_SIZE_FOR(4096), 1, AT_E_SIZE_OVERFLOW, 0, 0, 0},
    {1, 4096, MAX_SIZE_FOR(4096) - 1, 1, AT_OK, 1, MAX_SIZE_FOR(4096), 4096},
    {4096, 4096, MAX_SIZE_FOR(4096) - 4096, 1, AT_OK, 4096, MAX_SIZE_FOR(4096), 4096},
    {4096, 4096, MAX_SIZE_FOR(4096) - 4095, 1, AT_E_SIZE_OVERFLOW, 0, 0, 0},
};

TEST(layout_extend_table)
{
    for (size_t i = 0; i < ARRAY_LEN(extend_cases); i++) {
        const struct extend_case *c = &extend_cases[i];
        at_layout a = {c->a_size, c->a_align};
        at_layout b = {c->b_size, c->b_align};
        ASSERT_EQ(at_layout_check(a), AT_OK);
        ASSERT_EQ(at_layout_check(b), AT_OK);

        at_layout out = SENTINEL;
        size_t offset = 0xdeadbeef;
        int got = at_layout_extend(a, b, &out, &offset);
        if (got != c->code)
            TEST_FAIL("case %zu: extend({%zu, %zu}, {%zu, %zu}) = %d, want %d", i, a.size, a.align,
                      b.size, b.align, got, c->code);
        if (c->code != AT_OK) {
            if (!layout_eq(out, SENTINEL))
                TEST_FAIL("case %zu: *out written on failure: {%zu, %zu}", i, out.size, out.align);
        } else {
            if (offset != c->offset || out.size != c->size || out.align != c->align)
                TEST_FAIL("case %zu: extend({%zu, %zu}, {%zu, %zu}) = {%zu, %zu} offset %zu, "
                          "want {%zu, %zu} offset %zu",
                          i, a.size, a.align, b.size, b.align, out.size, out.align, offset, c->size,
                          c->align, c->offset);
            ASSERT_EQ(at_layout_check(out), AT_OK);
        }

        /* the same without an offset pointer */
        at_layout out2 = SENTINEL;
        ASSERT_EQ(at_layout_extend(a, b, &out2, NULL), c->code);
        if (c->code == AT_OK)
            ASSERT_TRUE(layout_eq(out2, out));
        else
            ASSERT_TRUE(layout_eq(out2, SENTINEL));
    }
}

/* Building a C struct's layout field by field, as Rust's documentation
 * does, gives the compiler's offsets, size and alignment. */
struct fields {
    char a;
    int b;
    short c;
    double d;
    char e;
    struct over_aligned f;
    char g;
};

TEST(layout_extend_builds_c_struct)
{
    const struct {
        at_layout field;
        size_t offset;
    } fields[] = {
        {AT_LAYOUT_OF(char), offsetof(struct fields, a)},
        {AT_LAYOUT_OF(int), offsetof(struct fields, b)},
        {AT_LAYOUT_OF(short), offsetof(struct fields, c)},
        {AT_LAYOUT_OF(double), offsetof(struct fields, d)},
        {AT_LAYOUT_OF(char), offsetof(struct fields, e)},
        {AT_LAYOUT_OF(struct over_aligned), offsetof(struct fields, f)},
        {AT_LAYOUT_OF(char), offsetof(struct fields, g)},
    };
    at_layout acc = at_layout_from_size_align_unchecked(0, 1);
    for (size_t i = 0; i < ARRAY_LEN(fields); i++) {
        size_t off = SIZE_MAX;
        at_layout next = SENTINEL;
        ASSERT_EQ(at_layout_extend(acc, fields[i].field, &next, &off), AT_OK);
        if (off != fields[i].offset)
            TEST_FAIL("field %zu: offset %zu, want %zu", i, off, fields[i].offset);
        ASSERT_UEQ(next.size, off + fields[i].field.size);
        acc = next;
    }
    ASSERT_UEQ(acc.align, _Alignof(struct fields));
    ASSERT_LT(acc.size, sizeof(struct fields)); /* not padded at the end */
    at_layout whole = at_layout_pad_to_align(acc);
    ASSERT_LAYOUT(whole, sizeof(struct fields), _Alignof(struct fields));
}

/* ---- at_strerror ------------------------------------------------------------------- */

static const int known_codes[] = {
    AT_OK,        AT_E_ALIGN_ZERO, AT_E_ALIGN_NOT_POW2, AT_E_SIZE_OVERFLOW,
    AT_E_NOMEM,   AT_E_INVALID,    AT_E_EXISTS,         AT_E_SYMLINK,
    AT_E_ACCESS,  AT_E_IO,         AT_E_DB,             AT_E_THREAD,
};

TEST(strerror_known_codes_distinct)
{
    for (size_t i = 0; i < ARRAY_LEN(known_codes); i++) {
        const char *s = at_strerror(known_codes[i]);
        if (s == NULL || s[0] == '\0')
            TEST_FAIL("at_strerror(%d) is NULL or empty", known_codes[i]);
        /* stable: the same static string every time */
        ASSERT_TRUE(at_strerror(known_codes[i]) == s);
        for (size_t j = 0; j < i; j++) {
            const char *t = at_strerror(known_codes[j]);
            if (strcmp(s, t) == 0)
                TEST_FAIL("at_strerror(%d) and at_strerror(%d) are both \"%s\"", known_codes[i],
                          known_codes[j], s);
        }
    }
}

TEST(strerror_unknown_codes)
{
    static const int unknown[] = {1, 2, 42, -12, -13, -100, -1000, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < ARRAY_LEN(unknown); i++) {
        const char *s = at_strerror(unknown[i]);
        if (s == NULL || s[0] == '\0')
            TEST_FAIL("at_strerror(%d) is NULL or empty", unknown[i]);
        /* a generic sentence with no number in it */
        if (strpbrk(s, "0123456789") != NULL)
            TEST_FAIL("at_strerror(%d) = \"%s\" contains a number", unknown[i], s);
        /* and not the description of a real error */
        for (size_t j = 0; j < ARRAY_LEN(known_codes); j++)
            if (strcmp(s, at_strerror(known_codes[j])) == 0)
                TEST_FAIL("at_strerror(%d) = \"%s\", the same as for known code %d", unknown[i], s,
                          known_codes[j]);
    }
}

TEST_MAIN()
