/* A program linked with its own allocator (built three times: with
 * -ljemalloc, -lmimalloc, -ltcmalloc_minimal; OWN_JEMALLOC, OWN_MIMALLOC or
 * OWN_TCMALLOC says which), for tests/ownmalloc_test.py: every entry point
 * of the malloc family is called with sizes no other code uses, and the
 * allocator's own API checks that it served each block (and that glibc's
 * heap did not grow), so that a run under `alloctrace run` that quietly
 * moved the program to glibc fails.  Then a planted leak (@leak) and a
 * planted wrong-size free_sized (@mismatch).  Prints one line per check
 * group and "ok"; exits 1 at the first failed check.  Its output and exit
 * status must be the same traced and untraced.
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(OWN_JEMALLOC)
#include <jemalloc/jemalloc.h>
#define OWN_NAME "jemalloc"
#elif defined(OWN_MIMALLOC)
#include <mimalloc.h>
#define OWN_NAME "mimalloc"
#elif defined(OWN_TCMALLOC)
#include <gperftools/malloc_extension_c.h>
#define OWN_NAME "tcmalloc"
#else
#error "OWN_JEMALLOC, OWN_MIMALLOC or OWN_TCMALLOC"
#endif

/* glibc 2.36 does not declare the C23 sized frees, and none of the three
 * allocators defines them: untraced they are NULL, traced the preload
 * library's.  free() stands in for them when they are missing. */
void free_sized(void *p, size_t size) __attribute__((weak));
void free_aligned_sized(void *p, size_t align, size_t size) __attribute__((weak));

#define NOINLINE __attribute__((noinline))

static void fail(const char *what)
{
    printf("FAILED: %s\n", what);
    exit(1);
}

static void expect(int ok, const char *what)
{
    if (!ok)
        fail(what);
}

static void sized_free(void *p, size_t size)
{
    if (free_sized)
        free_sized(p, size);
    else
        free(p);
}

static void aligned_sized_free(void *p, size_t align, size_t size)
{
    if (free_aligned_sized)
        free_aligned_sized(p, align, size);
    else
        free(p);
}

/* ---- the allocator's own view -------------------------------------------- */

/* Bytes the allocator says are allocated (jemalloc: by this thread, ever;
 * the others: now, process-wide). */
static uint64_t own_allocated(void)
{
#if defined(OWN_JEMALLOC)
    uint64_t v = 0;
    size_t len = sizeof v;
    if (mallctl("thread.allocated", &v, &len, NULL, 0) != 0)
        fail("mallctl thread.allocated");
    return v;
#elif defined(OWN_MIMALLOC)
    size_t elapsed, user, sys, rss, peak_rss, commit, peak_commit, faults;
    mi_process_info(&elapsed, &user, &sys, &rss, &peak_rss, &commit, &peak_commit, &faults);
    return commit;
#else
    size_t v = 0;
    if (!MallocExtension_GetNumericProperty("generic.current_allocated_bytes", &v))
        fail("generic.current_allocated_bytes");
    return v;
#endif
}

/* jemalloc's stats.allocated, after an epoch bump (every thread's, now). */
#if defined(OWN_JEMALLOC)
static size_t je_stats_allocated(void)
{
    uint64_t epoch = 1;
    size_t len = sizeof epoch;
    mallctl("epoch", &epoch, &len, &epoch, len);
    size_t v = 0;
    len = sizeof v;
    if (mallctl("stats.allocated", &v, &len, NULL, 0) != 0)
        fail("mallctl stats.allocated");
    return v;
}
#endif

/* Whether `p`, of `size` bytes, is the allocator's: its own usable size
 * for it, and (mimalloc, tcmalloc) its ownership test. */
static int own_block(void *p, size_t size)
{
#if defined(OWN_JEMALLOC)
    return sallocx(p, 0) >= size && malloc_usable_size(p) == sallocx(p, 0);
#elif defined(OWN_MIMALLOC)
    return mi_is_in_heap_region(p) && mi_usable_size(p) >= size &&
           malloc_usable_size(p) == mi_usable_size(p);
#else
    return MallocExtension_GetOwnership(p) == MallocExtension_kOwned &&
           MallocExtension_GetAllocatedSize(p) >= size &&
           malloc_usable_size(p) == MallocExtension_GetAllocatedSize(p);
#endif
}

/* glibc's own heap in use: what the allocator serves is not in it. */
static size_t glibc_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* ---- every entry point ---------------------------------------------------- */

enum { PAIRS = 1000, BIG = 64, BIG_SIZE = 1 << 20 };

static void entry_points(void)
{
    void *p[8];
    p[0] = malloc(1111);
    p[1] = calloc(3, 111); /* 333 */
    p[2] = realloc(malloc(2222), 4321);
    expect(posix_memalign(&p[3], 64, 2000) == 0, "posix_memalign");
    p[4] = aligned_alloc(128, 1280);
    p[5] = memalign(256, 3000);
    p[6] = valloc(5000);
    p[7] = malloc(640);
    static const size_t sizes[8] = {1111, 333, 4321, 2000, 1280, 3000, 5000, 640};
    static const size_t aligns[8] = {16, 16, 16, 64, 128, 256, 4096, 16};
    for (int i = 0; i < 8; i++) {
        expect(p[i] != NULL, "an entry point returned NULL");
        expect(own_block(p[i], sizes[i]), "a block is not the allocator's");
        expect((uintptr_t)p[i] % aligns[i] == 0, "a block is not aligned");
    }
    for (size_t i = 0; i < 333; i++)
        expect(((unsigned char *)p[1])[i] == 0, "calloc's block is not zeroed");
    free(p[0]);
    free(p[1]);
    free(p[2]);
    free(p[3]);
    aligned_sized_free(p[4], 128, 1280);
    free(p[5]);
    free(p[6]);
    sized_free(p[7], 640);
    printf(OWN_NAME ": every entry point served by it\n");
}

/* PAIRS malloc/free pairs of 1234 bytes, and BIG blocks of 1 MiB live at
 * once: the allocator counts them, glibc's heap does not grow. */
static void volume(void)
{
    size_t glibc_before = glibc_in_use();
    for (int i = 0; i < PAIRS; i++) {
        char *q = malloc(1234);
        expect(q != NULL && own_block(q, 1234), "a 1234-byte block is not the allocator's");
        q[i % 1234] = 1;
        free(q);
    }
    uint64_t before = own_allocated();
#if defined(OWN_JEMALLOC)
    size_t je_before = je_stats_allocated();
#endif
    static void *big[BIG];
    for (int i = 0; i < BIG; i++) {
        big[i] = malloc(BIG_SIZE);
        expect(big[i] != NULL && own_block(big[i], BIG_SIZE), "a 1 MiB block is not the allocator's");
        memset(big[i], 1, BIG_SIZE);
    }
    uint64_t after = own_allocated();
    expect(after - before >= (uint64_t)BIG * BIG_SIZE, "the allocator did not count the blocks");
#if defined(OWN_JEMALLOC)
    /* Less exact: it counts freed blocks in the thread cache until they
     * are flushed, which the 64 allocations may do. */
    expect(je_stats_allocated() - je_before >= (size_t)(BIG - 1) * BIG_SIZE,
           "jemalloc's stats.allocated did not count the blocks");
#endif
    expect(glibc_in_use() - glibc_before < (size_t)BIG_SIZE, "glibc's heap grew");
    for (int i = 0; i < BIG; i++)
        free(big[i]);
    printf(OWN_NAME ": counted %d MiB that glibc never saw\n", BIG);
}

/* ---- planted bugs ---------------------------------------------------------- */

/* Not static, so their names are in every symbol table. */
void *kept;
void *leaky_site(void);
void mismatch_site(void);

NOINLINE void *leaky_site(void)
{
    return malloc(777); /* @leak */
}

NOINLINE void mismatch_site(void)
{
    void *p = malloc(96);
    kept = p; /* reachable until the free */
    kept = NULL;
    if (free_sized) free_sized(p, 80); else free(p); /* @mismatch */
}

int main(void)
{
    entry_points();
    volume();
    void *leak = leaky_site();
    expect(own_block(leak, 777), "the leaked block is not the allocator's");
    leak = NULL;
    mismatch_site();
    printf("ok\n");
    return 0;
}
