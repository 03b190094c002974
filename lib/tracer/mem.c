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
}

void at__mem_unlock(void)
{
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
