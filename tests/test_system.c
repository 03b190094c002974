/* Unit tests of the system backend (backends.h): every alignment up to
 * 1 MiB with sizes around the interesting boundaries, zeroed blocks even
 * from dirty memory, realloc on both the libc and the over-aligned paths,
 * huge requests that must fail cleanly, errno, and several threads
 * releasing each other's blocks. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include <alloctrace/allocator.h>
#include <alloctrace/backends.h>
#include <alloctrace/error.h>
#include <alloctrace/layout.h>

#include "test.h"

/* Huge requests must fail with NULL; AddressSanitizer aborts on them
 * instead unless told to return NULL like the C library does. */
#if defined(__SANITIZE_ADDRESS__)
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}
#endif

/* Valgrind reports every size above PTRDIFF_MAX passed to the C library
 * as an error ("fishy value"); under it the huge-request tests keep to
 * sizes below 2^63, which fail just as surely. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef UNDER_VALGRIND
#define UNDER_VALGRIND() 0
#endif

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_ALIGN_SHIFT 20 /* every power of two up to 1 MiB */

static const size_t grid_sizes[] = {0, 1, 7, 8, 15, 16, 17, 100, 4096, 65536, (1u << 20) + 3};

static void *const UNTOUCHED = (void *)(uintptr_t)0x5eed0;

static void fill(void *p, size_t n, unsigned seed)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(seed + i * 13 + (i >> 8));
}

static void check_fill(const void *p, size_t n, unsigned seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(seed + i * 13 + (i >> 8)))
            TEST_FAIL("byte %zu of %p is 0x%02x, want 0x%02x", i, p, b[i],
                      (unsigned char)(seed + i * 13 + (i >> 8)));
}

static void check_zero(const void *p, size_t n, at_layout l)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            TEST_FAIL("byte %zu of zeroed block {%zu, %zu} at %p is 0x%02x", i, l.size, l.align,
                      p, b[i]);
}

/* Checks a fresh block for layout `l`: NULL only for size 0, aligned,
 * writable over its whole size. */
static void check_block(void *p, at_layout l)
{
    if (p == NULL) {
        if (l.size != 0)
            TEST_FAIL("allocation of {%zu, %zu} failed", l.size, l.align);
        return;
    }
    if ((uintptr_t)p % l.align != 0)
        TEST_FAIL("block %p for {%zu, %zu} is misaligned", p, l.size, l.align);
    memset(p, 0x5A, l.size);
}

/* ---- the alignment grid ------------------------------------------------------------- */

TEST(system_alloc_grid)
{
    at_allocator a = at_system_allocator();
    for (size_t s = 0; s < ARRAY_LEN(grid_sizes); s++) {
        for (unsigned shift = 0; shift <= MAX_ALIGN_SHIFT; shift++) {
            at_layout l = L(grid_sizes[s], (size_t)1 << shift);
            void *p = at_alloc(a, l);
            check_block(p, l);
            at_dealloc(a, p, l); /* NULL is ignored */

            void *out = UNTOUCHED;
            int rc = at_try_alloc(a, l, &out);
            if (l.size != 0) {
                ASSERT_EQ(rc, AT_OK);
            } else if (rc != AT_OK) {
                /* a NULL zero-size block is reported as failure */
                ASSERT_EQ(rc, AT_E_NOMEM);
                ASSERT_TRUE(out == UNTOUCHED);
                continue;
            }
            ASSERT_TRUE(out != UNTOUCHED);
            ASSERT_NOT_NULL(out);
            check_block(out, l);
            at_dealloc(a, out, l);
        }
    }
}

TEST(system_many_live_blocks_grid)
{
    /* Every grid block live at once: blocks must not overlap. */
    enum { N = ARRAY_LEN(grid_sizes) * (MAX_ALIGN_SHIFT + 1) };
    static void *ptrs[N];
    static at_layout lays[N];
    at_allocator a = at_system_allocator();
    size_t n = 0;
    for (size_t s = 0; s < ARRAY_LEN(grid_sizes); s++) {
        for (unsigned shift = 0; shift <= MAX_ALIGN_SHIFT; shift++) {
            at_layout l = L(grid_sizes[s], (size_t)1 << shift);
            void *p = at_alloc(a, l);
            check_block(p, l);
            fill(p, p ? l.size : 0, (unsigned)n);
            ptrs[n] = p;
            lays[n] = l;
            n++;
        }
    }
    /* every block still holds its own pattern */
    for (size_t i = 0; i < n; i++)
        if (ptrs[i])
            check_fill(ptrs[i], lays[i].size, (unsigned)i);
    /* non-NULL zero-size blocks are unique among live blocks */
    for (size_t i = 0; i < n; i++) {
        if (!ptrs[i] || lays[i].size != 0)
            continue;
        for (size_t j = 0; j < n; j++)
            if (j != i && ptrs[j] == ptrs[i])
                TEST_FAIL("zero-size block %p returned twice (entries %zu and %zu)", ptrs[i], i, j);
    }
    for (size_t i = 0; i < n; i++)
        at_dealloc(a, ptrs[i], lays[i]);
}

TEST(system_alloc_zeroed_grid)
{
    at_allocator a = at_system_allocator();
    for (size_t s = 0; s < ARRAY_LEN(grid_sizes); s++) {
        for (unsigned shift = 0; shift <= MAX_ALIGN_SHIFT; shift++) {
            at_layout l = L(grid_sizes[s], (size_t)1 << shift);
            /* dirty the memory the allocator is likely to hand out next */
            void *dirty = at_alloc(a, l);
            check_block(dirty, l);
            if (dirty)
                memset(dirty, 0xFF, l.size);
            at_dealloc(a, dirty, l);

            void *z = at_alloc_zeroed(a, l);
            if (z == NULL && l.size == 0)
                continue;
            ASSERT_NOT_NULL(z);
            ASSERT_ALIGNED(z, l.align);
            check_zero(z, l.size, l);
            memset(z, 0xEE, l.size);
            at_dealloc(a, z, l);

            void *out = UNTOUCHED;
            int rc = at_try_alloc_zeroed(a, l, &out);
            if (rc == AT_E_NOMEM && l.size == 0) {
                ASSERT_TRUE(out == UNTOUCHED);
                continue;
            }
            ASSERT_EQ(rc, AT_OK);
            ASSERT_ALIGNED(out, l.align);
            check_zero(out, l.size, l);
            at_dealloc(a, out, l);
        }
    }
}

TEST(system_alloc_zeroed_reuses_dirty_memory)
{
    /* Many small dirty blocks freed, then zeroed blocks of the same layouts:
     * the allocator's free lists hand back the dirty memory. */
    enum { N = 64 };
    static const size_t aligns[] = {1, 8, 16, 32, 64, 4096};
    static const size_t sizes[] = {8, 24, 48, 200, 1000};
    at_allocator a = at_system_allocator();
    void *blocks[N];
    for (size_t ai = 0; ai < ARRAY_LEN(aligns); ai++) {
        for (size_t si = 0; si < ARRAY_LEN(sizes); si++) {
            at_layout l = L(sizes[si], aligns[ai]);
            for (int i = 0; i < N; i++) {
                blocks[i] = at_alloc(a, l);
                check_block(blocks[i], l);
                memset(blocks[i], 0xC3, l.size);
            }
            for (int i = 0; i < N; i++)
                at_dealloc(a, blocks[i], l);
            for (int i = 0; i < N; i++) {
                blocks[i] = at_alloc_zeroed(a, l);
                ASSERT_NOT_NULL(blocks[i]);
                ASSERT_ALIGNED(blocks[i], l.align);
                check_zero(blocks[i], l.size, l);
            }
            for (int i = 0; i < N; i++)
                at_dealloc(a, blocks[i], l);
        }
    }
}

/* ---- realloc ------------------------------------------------------------------------ */

static void *realloc_checked(at_allocator a, void *p, at_layout old, size_t new_size,
                             unsigned seed)
{
    void *q = at_realloc(a, p, old, new_size);
    if (q == NULL)
        TEST_FAIL("realloc {%zu, %zu} -> %zu failed", old.size, old.align, new_size);
    if ((uintptr_t)q % old.align != 0)
        TEST_FAIL("realloc {%zu, %zu} -> %zu gave misaligned %p", old.size, old.align, new_size,
                  q);
    check_fill(q, old.size < new_size ? old.size : new_size, seed);
    fill(q, new_size, seed); /* writable over its new size */
    return q;
}

TEST(system_realloc_preserves_content_and_alignment)
{
    /* size sequences that cross the malloc/posix_memalign boundary both ways */
    static const size_t seq[] = {1, 100, 4096, 7, (1u << 20) + 3, 17, 65536, 8, 0, 15, 300};
    at_allocator a = at_system_allocator();
    for (unsigned shift = 0; shift <= MAX_ALIGN_SHIFT; shift++) {
        size_t align = (size_t)1 << shift;
        at_layout cur = L(seq[0], align);
        void *p = at_alloc(a, cur);
        ASSERT_NOT_NULL(p);
        ASSERT_ALIGNED(p, align);
        fill(p, cur.size, shift);
        for (size_t i = 1; i < ARRAY_LEN(seq); i++) {
            if (seq[i] == 0) {
                /* to zero size: may fail with NULL (old block then live)
                 * or give a releasable block */
                void *q = at_realloc(a, p, cur, 0);
                if (q == NULL)
                    continue;
                ASSERT_ALIGNED(q, align);
                p = q;
                cur = L(0, align);
                /* grow back from zero */
                q = at_realloc(a, p, cur, 5);
                ASSERT_NOT_NULL(q);
                ASSERT_ALIGNED(q, align);
                p = q;
                cur = L(5, align);
                fill(p, 5, shift);
                continue;
            }
            p = realloc_checked(a, p, cur, seq[i], shift);
            cur = L(seq[i], align);
        }
        at_dealloc(a, p, cur);
    }
}

TEST(system_realloc_over_aligned_grow)
{
    at_allocator a = at_system_allocator();
    /* the over-aligned path: align 4096 grows from 100 to 1 MiB */
    at_layout l = L(100, 4096);
    void *p = at_alloc(a, l);
    ASSERT_NOT_NULL(p);
    ASSERT_ALIGNED(p, 4096);
    fill(p, 100, 77);
    void *q = realloc_checked(a, p, l, 1u << 20, 77);
    ASSERT_ALIGNED(q, 4096);
    /* and via the Result-style dispatcher, back down and up again */
    void *out = UNTOUCHED;
    ASSERT_EQ(at_try_realloc(a, q, L(1u << 20, 4096), 3000, &out), AT_OK);
    ASSERT_TRUE(out != UNTOUCHED);
    ASSERT_ALIGNED(out, 4096);
    check_fill(out, 3000, 77);
    void *out2 = UNTOUCHED;
    ASSERT_EQ(at_try_realloc(a, out, L(3000, 4096), 70000, &out2), AT_OK);
    ASSERT_ALIGNED(out2, 4096);
    check_fill(out2, 3000, 77);
    at_dealloc(a, out2, L(70000, 4096));

    /* an alignment above max_align_t but a size below it, growing past it */
    at_layout small = L(8, 64);
    p = at_alloc(a, small);
    ASSERT_NOT_NULL(p);
    fill(p, 8, 3);
    q = realloc_checked(a, p, small, 100000, 3);
    q = realloc_checked(a, q, L(100000, 64), 32, 3);
    at_dealloc(a, q, L(32, 64));

    /* a small alignment with size below it (the posix_memalign rule for
     * align > size) growing into malloc territory */
    at_layout tiny = L(1, AT_SYSTEM_MIN_ALIGN);
    p = at_alloc(a, tiny);
    ASSERT_NOT_NULL(p);
    fill(p, 1, 9);
    q = realloc_checked(a, p, tiny, 5000, 9);
    at_dealloc(a, q, L(5000, AT_SYSTEM_MIN_ALIGN));
}

/* ---- huge requests -------------------------------------------------------------------- */

TEST(system_huge_requests_fail_cleanly)
{
    at_allocator a = at_system_allocator();
    static const struct {
        size_t size, align;
    } huge[] = {
        {SIZE_MAX / 2, 1},
        {SIZE_MAX / 2, 8},
        {SIZE_MAX / 2, 16},
        {SIZE_MAX / 2, 4096},
        {SIZE_MAX / 2 - 4095, 4096},
        {(SIZE_MAX >> 1) - 8191, 4096},
        {SIZE_MAX - 4095, 4096},
        {SIZE_MAX - 8191, 4096},
        {SIZE_MAX - 15, 16},
        {SIZE_MAX, 1},
        {(SIZE_MAX >> 2) + 1, 1u << 20},
    };
    for (size_t i = 0; i < ARRAY_LEN(huge); i++) {
        at_layout l = L(huge[i].size, huge[i].align);
        if (l.size > PTRDIFF_MAX && UNDER_VALGRIND())
            continue;
        ASSERT_NULL(at_alloc(a, l));
        ASSERT_NULL(at_alloc_zeroed(a, l));
        void *out = UNTOUCHED;
        ASSERT_EQ(at_try_alloc(a, l, &out), AT_E_NOMEM);
        ASSERT_TRUE(out == UNTOUCHED);
        ASSERT_EQ(at_try_alloc_zeroed(a, l, &out), AT_E_NOMEM);
        ASSERT_TRUE(out == UNTOUCHED);
    }
    /* invalid layouts are rejected before reaching the C library */
    void *out = UNTOUCHED;
    ASSERT_EQ(at_try_alloc(a, (at_layout){SIZE_MAX - 4094, 4096}, &out), AT_E_SIZE_OVERFLOW);
    ASSERT_EQ(at_try_alloc(a, (at_layout){16, 0}, &out), AT_E_ALIGN_ZERO);
    ASSERT_EQ(at_try_alloc(a, (at_layout){16, 24}, &out), AT_E_ALIGN_NOT_POW2);
    ASSERT_TRUE(out == UNTOUCHED);
    ASSERT_NULL(at_alloc(a, (at_layout){SIZE_MAX, 2}));
}

TEST(system_huge_realloc_keeps_old_block)
{
    at_allocator a = at_system_allocator();
    static const size_t aligns[] = {1, 8, 16, 64, 4096};
    for (size_t i = 0; i < ARRAY_LEN(aligns); i++) {
        at_layout l = L(100, aligns[i]);
        void *p = at_alloc(a, l);
        ASSERT_NOT_NULL(p);
        fill(p, 100, (unsigned)i);
        void *out = UNTOUCHED;
        ASSERT_EQ(at_try_realloc(a, p, l, SIZE_MAX / 2, &out), AT_E_NOMEM);
        ASSERT_TRUE(out == UNTOUCHED);
        if (!UNDER_VALGRIND())
            ASSERT_NULL(at_realloc(a, p, l, SIZE_MAX - (aligns[i] - 1)));
        ASSERT_NULL(at_realloc(a, p, l, SIZE_MAX / 2));
        ASSERT_NULL(at_realloc(a, p, l, SIZE_MAX / 2 - (aligns[i] - 1)));
        /* invalid new layout */
        if (aligns[i] > 1)
            ASSERT_EQ(at_try_realloc(a, p, l, SIZE_MAX, &out), AT_E_SIZE_OVERFLOW);
        ASSERT_TRUE(out == UNTOUCHED);
        /* the old block is live and intact: grow it for real, then free */
        check_fill(p, 100, (unsigned)i);
        void *q = realloc_checked(a, p, l, 200, (unsigned)i);
        at_dealloc(a, q, L(200, aligns[i]));
    }
}

/* ---- errno ------------------------------------------------------------------------- */

TEST(system_errno_preserved_on_success)
{
    at_allocator a = at_system_allocator();
    static const size_t aligns[] = {1, 16, 64, 4096};
    static const size_t sizes[] = {1, 100, 100000};
    for (size_t i = 0; i < ARRAY_LEN(aligns); i++) {
        for (size_t j = 0; j < ARRAY_LEN(sizes); j++) {
            at_layout l = L(sizes[j], aligns[i]);
            errno = 777;
            void *p = at_alloc(a, l);
            ASSERT_NOT_NULL(p);
            ASSERT_EQ(errno, 777);
            void *z = at_alloc_zeroed(a, l);
            ASSERT_NOT_NULL(z);
            ASSERT_EQ(errno, 777);
            void *q = at_realloc(a, p, l, sizes[j] * 3);
            ASSERT_NOT_NULL(q);
            ASSERT_EQ(errno, 777);
            void *r = at_realloc(a, q, L(sizes[j] * 3, aligns[i]), 1);
            ASSERT_NOT_NULL(r);
            ASSERT_EQ(errno, 777);
            at_dealloc(a, r, L(1, aligns[i]));
            at_dealloc(a, z, l);
            ASSERT_EQ(errno, 777);
        }
    }
}

/* ---- threads -------------------------------------------------------------------------- */

enum { THREADS = 4, ITERS = 4000, SLOTS = 256 };

/* A shared pool of blocks: each thread puts its blocks in, and takes out
 * and releases blocks that other threads allocated. */
struct block {
    void *ptr;
    at_layout layout;
    unsigned owner;
};

static struct {
    pthread_mutex_t lock;
    struct block slots[SLOTS];
    long cross_frees;
    int failed;
    char failure[256];
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void pool_fail(const char *what, const void *p)
{
    pthread_mutex_lock(&pool.lock);
    if (!pool.failed) {
        pool.failed = 1;
        snprintf(pool.failure, sizeof pool.failure, "%s (%p)", what, p);
    }
    pthread_mutex_unlock(&pool.lock);
}

static int block_ok(const struct block *b)
{
    const unsigned char *c = b->ptr;
    if ((uintptr_t)b->ptr % b->layout.align != 0)
        return 0;
    for (size_t i = 0; i < b->layout.size; i++)
        if (c[i] != (unsigned char)(b->owner * 31 + b->layout.size + i))
            return 0;
    return 1;
}

static void *thread_main(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    at_allocator a = at_system_allocator();
    unsigned rng = 2463534242u ^ (id * 0x9E3779B9u);
    for (int it = 0; it < ITERS; it++) {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        size_t align = (size_t)1 << (rng % 13); /* 1 .. 4096 */
        size_t size = 1 + (rng >> 8) % 2000;
        struct block nb = {NULL, {size, align}, id};
        if (rng & 0x10000)
            nb.ptr = at_alloc_zeroed(a, nb.layout);
        else
            nb.ptr = at_alloc(a, nb.layout);
        if (nb.ptr == NULL) {
            pool_fail("allocation failed", NULL);
            return NULL;
        }
        unsigned char *c = nb.ptr;
        for (size_t i = 0; i < size; i++)
            c[i] = (unsigned char)(id * 31 + size + i);

        /* swap it into a slot; release what was there */
        size_t slot = (rng >> 4) % SLOTS;
        pthread_mutex_lock(&pool.lock);
        struct block old = pool.slots[slot];
        pool.slots[slot] = nb;
        if (old.ptr && old.owner != id)
            pool.cross_frees++;
        pthread_mutex_unlock(&pool.lock);

        if (old.ptr) {
            if (!block_ok(&old)) {
                pool_fail("a block was corrupted while live", old.ptr);
                return NULL;
            }
            /* sometimes resize a foreign block before releasing it */
            if ((rng & 0x300) == 0x300) {
                size_t new_size = old.layout.size * 2 + 1;
                void *q = at_realloc(a, old.ptr, old.layout, new_size);
                if (q == NULL) {
                    pool_fail("realloc failed", old.ptr);
                    return NULL;
                }
                old.ptr = q;
                /* the old contents survive */
                if ((uintptr_t)q % old.layout.align != 0 || !block_ok(&old)) {
                    pool_fail("realloc lost content or alignment", q);
                    return NULL;
                }
                old.layout.size = new_size;
            }
            at_dealloc(a, old.ptr, old.layout);
        }
    }
    return NULL;
}

TEST(system_threads_cross_thread_frees)
{
    pthread_t th[THREADS];
    for (unsigned i = 0; i < THREADS; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, thread_main, (void *)(uintptr_t)(i + 1)), 0);
    for (unsigned i = 0; i < THREADS; i++)
        ASSERT_EQ(pthread_join(th[i], NULL), 0);
    if (pool.failed)
        TEST_FAIL("%s", pool.failure);
    ASSERT_GT(pool.cross_frees, 0);

    /* the survivors, allocated by any thread, released here */
    at_allocator a = at_system_allocator();
    for (size_t i = 0; i < SLOTS; i++) {
        if (!pool.slots[i].ptr)
            continue;
        ASSERT_TRUE(block_ok(&pool.slots[i]));
        at_dealloc(a, pool.slots[i].ptr, pool.slots[i].layout);
        pool.slots[i].ptr = NULL;
    }
}

TEST_MAIN()
