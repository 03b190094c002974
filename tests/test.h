/* A tiny test harness: named tests, assertions that print both values and
 * file:line, and a main() that runs every test or the ones named on the
 * command line.
 *
 *   TEST(layout_zero_align) { ASSERT_EQ(at_layout_check(l), AT_E_ALIGN_ZERO); }
 *   TEST_MAIN()
 *
 * A failing assertion ends the whole test program with status 1, after
 * printing the test's name; meson counts each test program as one test.
 */
#ifndef ALLOCTRACE_TEST_H
#define ALLOCTRACE_TEST_H

#ifdef NDEBUG
#error "tests must not be built with NDEBUG"
#endif

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <alloctrace/error.h>
#include <alloctrace/layout.h>

typedef void (*test_fn)(void);
struct test_case {
    const char *name;
    test_fn fn;
};

#define TEST_MAX 256
extern struct test_case test_cases[TEST_MAX];
extern int test_count;
extern const char *test_current;

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void test_register_##name(void)                           \
    {                                                                                              \
        if (test_count < TEST_MAX)                                                                 \
            test_cases[test_count++] = (struct test_case){#name, test_##name};                     \
    }                                                                                              \
    static void test_##name(void)

#define TEST_FAIL(...)                                                                             \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: in test %s: ", __FILE__, __LINE__, test_current);                  \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        exit(1);                                                                                   \
    } while (0)

#define ASSERT_CMP_INT(a, op, b)                                                                   \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (!(a_ op b_))                                                                           \
            TEST_FAIL("ASSERT %s %s %s failed: %lld vs %lld", #a, #op, #b, a_, b_);                \
    } while (0)

#define ASSERT_CMP_UINT(a, op, b)                                                                  \
    do {                                                                                           \
        unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b);             \
        if (!(a_ op b_))                                                                           \
            TEST_FAIL("ASSERT %s %s %s failed: %llu (0x%llx) vs %llu (0x%llx)", #a, #op, #b, a_,   \
                      a_, b_, b_);                                                                 \
    } while (0)

#define ASSERT_EQ(a, b) ASSERT_CMP_INT(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_CMP_INT(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_CMP_INT(a, <, b)
#define ASSERT_LE(a, b) ASSERT_CMP_INT(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_CMP_INT(a, >, b)
#define ASSERT_GE(a, b) ASSERT_CMP_INT(a, >=, b)
#define ASSERT_UEQ(a, b) ASSERT_CMP_UINT(a, ==, b)
#define ASSERT_TRUE(x)                                                                             \
    do {                                                                                           \
        if (!(x))                                                                                  \
            TEST_FAIL("ASSERT_TRUE(%s) failed", #x);                                               \
    } while (0)
#define ASSERT_NULL(p)                                                                             \
    do {                                                                                           \
        const void *p_ = (p);                                                                      \
        if (p_ != NULL)                                                                            \
            TEST_FAIL("ASSERT_NULL(%s) failed: %p", #p, p_);                                       \
    } while (0)
#define ASSERT_NOT_NULL(p)                                                                         \
    do {                                                                                           \
        if ((p) == NULL)                                                                           \
            TEST_FAIL("ASSERT_NOT_NULL(%s) failed", #p);                                           \
    } while (0)
#define ASSERT_STREQ(a, b)                                                                         \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                                       \
            TEST_FAIL("ASSERT_STREQ(%s, %s) failed: \"%s\" vs \"%s\"", #a, #b,                     \
                      a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                     \
    } while (0)
#define ASSERT_ALIGNED(p, align) ASSERT_UEQ((uintptr_t)(p) % (align), 0)

#define TEST_MAIN()                                                                                \
    struct test_case test_cases[TEST_MAX];                                                         \
    int test_count;                                                                                \
    const char *test_current = "(none)";                                                           \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        int ran = 0;                                                                               \
        for (int i = 0; i < test_count; i++) {                                                     \
            int wanted = argc < 2;                                                                 \
            for (int j = 1; j < argc; j++)                                                         \
                wanted |= strcmp(argv[j], test_cases[i].name) == 0;                                \
            if (!wanted)                                                                           \
                continue;                                                                          \
            test_current = test_cases[i].name;                                                     \
            test_cases[i].fn();                                                                    \
            printf("ok - %s\n", test_cases[i].name);                                               \
            ran++;                                                                                 \
        }                                                                                          \
        if (ran == 0) {                                                                            \
            fprintf(stderr, "no test ran\n");                                                      \
            return 1;                                                                              \
        }                                                                                          \
        return 0;                                                                                  \
    }

/* A layout the test knows to be valid. */
static inline at_layout L(size_t size, size_t align)
{
    at_layout l;
    ASSERT_EQ(at_layout_from_size_align(size, align, &l), AT_OK);
    return l;
}

/* A xorshift sequence, the same in every run, for tests that compare a
 * structure with a model over many random operations. */
static inline uint64_t next_random(void)
{
    static uint64_t rng = 0x9e3779b97f4a7c15ULL;
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

#endif
