/* The tracer's own allocator: size classes over mmap'd chunks.
 *
 * It relies only on mmap/munmap, so it can serve the tracer while the
 * tracer is interposed as the process's malloc.  Small blocks (up to 64 KiB)
 * are rounded up to a power of two and kept on per-class free lists; freed
 * small blocks are reused, never returned to the system (the tracer's tables
 * shrink and grow around the same sizes).  Larger blocks are mapped and
 * unmapped one by one.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "mem.h"
#include "spinlock.h"

enum {
    MIN_SHIFT = 4,  /* 16-byte minimum, keeps every block 16-byte aligned */
    MAX_SHIFT = 16, /* 64 KiB: larger requests are mapped directly */
    NCLASSES = MAX_SHIFT - MIN_SHIFT + 1,
    CHUNK = 1 << 20,
};

struct free_block {
    struct free_block *next;
};

static struct {
    at__spinlock lock;
    struct free_block *free[NCLASSES];
    char *chunk_pos, *chunk_end;
} pool;

static atomic_size_t mapped;
static atomic_long fail_budget = -1;

/* Every range the tracer maps (at__mem_each_region): the reachability
 * scan must not take the tracer's own tables, which hold a pointer to
 * every live block, for the program's memory.  A fixed table (512 KiB of
 * bss, touched only as far as it is used): chunks are never unmapped,
 * large blocks free their slot.  A range that finds the table full is
 * counted (at__mem_unregistered) and the scan says so. */
enum { MAX_REGIONS = 1 << 15 };
static struct {
    at__spinlock lock;
    uint32_t used; /* slots [0, used) were ever taken */
    uint64_t unregistered;
    struct {
        uintptr_t lo, hi; /* hi == 0: a free slot */
    } r[MAX_REGIONS];
} regions;

static void region_add(uintptr_t lo, size_t size)
{
    at__spin_lock(&regions.lock);
    uint32_t i = 0;
    while (i < regions.used && regions.r[i].hi != 0)
        i++;
    if (i == regions.used && regions.used < MAX_REGIONS)
        regions.used++;
    if (i < regions.used) {
        regions.r[i].lo = lo;
        regions.r[i].hi = lo + size;
    } else {
        regions.unregistered++;
    }
    at__spin_unlock(&regions.lock);
}

static void region_remove(uintptr_t lo)
{
    at__spin_lock(&regions.lock);
    for (uint32_t i = 0; i < regions.used; i++) {
        if (regions.r[i].lo == lo && regions.r[i].hi != 0) {
            regions.r[i].hi = 0;
            break;
        }
    }
    at__spin_unlock(&regions.lock);
}

void at__mem_note_region(const void *lo, size_t size)
{
    region_add((uintptr_t)lo, size);
}

void at__mem_forget_region(const void *lo)
{
    region_remove((uintptr_t)lo);
}

size_t at__mem_each_region(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg)
{
    size_t n = 0;
    for (uint32_t i = 0; i < regions.used; i++) {
        if (regions.r[i].hi != 0) {
            fn(regions.r[i].lo, regions.r[i].hi, arg);
            n++;
        }
    }
    return n;
}

uint64_t at__mem_unregistered(void)
{
    return regions.unregistered;
}

static int class_of(size_t size)
{
    int shift = MIN_SHIFT;
    while (((size_t)1 << shift) < size)
        shift++;
    return shift - MIN_SHIFT;
}

static int budget_allows(void)
{
    long b = atomic_load_explicit(&fail_budget, memory_order_relaxed);
    while (b >= 0) {
        if (b == 0)
            return 0;
        if (atomic_compare_exchange_weak(&fail_budget, &b, b - 1))
            return 1;
    }
    return 1;
}

static void *map(size_t size)
{
    int saved = errno;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    errno = saved;
    if (p == MAP_FAILED)
        return NULL;
    atomic_fetch_add(&mapped, size);
    region_add((uintptr_t)p, size);
    return p;
}

void *at__mem_alloc(size_t size)
{
    if (size == 0)
        size = 1;
    if (!budget_allows())
        return NULL;
    if (size > ((size_t)1 << MAX_SHIFT)) {
        size_t rounded = (size + 4095) & ~(size_t)4095;
        if (rounded < size)
            return NULL;
        return map(rounded);
    }
    int c = class_of(size);
    size_t csize = (size_t)1 << (c + MIN_SHIFT);
    at__spin_lock(&pool.lock);
    struct free_block *b = pool.free[c];
    if (b) {
        pool.free[c] = b->next;
        at__spin_unlock(&pool.lock);
        return b;
    }
    if ((size_t)(pool.chunk_end - pool.chunk_pos) < csize) {
        /* The tail of the old chunk is given to the smaller classes so that
         * nothing is wasted; chunks are CHUNK-sized and csize divides it. */
        while (pool.chunk_end - pool.chunk_pos >= (1 << MIN_SHIFT)) {
            size_t left = (size_t)(pool.chunk_end - pool.chunk_pos);
            int k = NCLASSES - 1;
            while (((size_t)1 << (k + MIN_SHIFT)) > left)
                k--;
            struct free_block *fb = (struct free_block *)pool.chunk_pos;
            fb->next = pool.free[k];
            pool.free[k] = fb;
            pool.chunk_pos += (size_t)1 << (k + MIN_SHIFT);
        }
        char *chunk = map(CHUNK);
        if (!chunk) {
            at__spin_unlock(&pool.lock);
            return NULL;
        }
        pool.chunk_pos = chunk;
        pool.chunk_end = chunk + CHUNK;
    }
    void *p = pool.chunk_pos;
    pool.chunk_pos += csize;
    at__spin_unlock(&pool.lock);
    return p;
}

void *at__mem_calloc(size_t size)
{
    void *p = at__mem_alloc(size);
    /* A large block is a new mapping, zero already: clearing it would
     * touch every page of a table that may stay mostly empty. */
    if (p && size <= ((size_t)1 << MAX_SHIFT))
        memset(p, 0, size);
    return p;
}

void at__mem_free(void *ptr, size_t size)
{
    if (!ptr)
        return;
    if (size == 0)
        size = 1;
    if (size > ((size_t)1 << MAX_SHIFT)) {
        size_t rounded = (size + 4095) & ~(size_t)4095;
        int saved = errno;
        region_remove((uintptr_t)ptr);
        munmap(ptr, rounded);
        errno = saved;
        atomic_fetch_sub(&mapped, rounded);
        return;
    }
    int c = class_of(size);
    struct free_block *b = ptr;
    at__spin_lock(&pool.lock);
    b->next = pool.free[c];
    pool.free[c] = b;
    at__spin_unlock(&pool.lock);
}

void at__mem_lock(void)
{
    at__spin_lock(&pool.lock);
    at__spin_lock(&regions.lock);
}

void at__mem_unlock(void)
{
    at__spin_unlock(&regions.lock);
    at__spin_unlock(&pool.lock);
}

void at__mem_fail_after(long n)
{
    atomic_store(&fail_budget, n);
}

size_t at__mem_mapped(void)
{
    return atomic_load(&mapped);
}
