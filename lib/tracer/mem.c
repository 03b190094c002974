/* The tracer's own allocator: size classes over mmap'd chunks.
 *
 * It relies only on mmap/munmap, so it can serve the tracer while the
 * tracer is interposed as the process's malloc.  Small blocks (up to 64 KiB)
 * are rounded up to a power of two and kept on per-class free lists; freed
 * small blocks are reused, never returned to the system (the tracer's tables
 * shrink and grow around the same sizes).  They are cut from 1 MiB chunks;
 * past the first four, the chunks are big blocks never freed, so that a
 * tracer with many small blocks has them in huge pages too.  Blocks up to
 * 1 MiB (the live table's segments, 160 KiB each) are carved from 32 MiB
 * regions that ask for transparent huge pages: a table of millions of blocks is touched at
 * random, and with 4 KiB pages a first touch cost a fault per page and
 * most lookups missed the TLB (bench/live_table 2000000: insert 440 ns
 * then, 180-340 now).  Freed, a big block waits on a free list of its size
 * for reuse with its pages, as long as such blocks hold less than
 * AT_MEM_KEEP and twice the big blocks in use; past that its pages go back to
 * the system (MADV_DONTNEED), so a program that freed its blocks gets the
 * memory back; a region none of whose blocks is in use is unmapped whole.
 * Larger blocks are mapped and unmapped one by one, those of 2 MiB or more
 * on a huge page boundary and asking for huge pages.  A first touch of a
 * 4 KiB page costs ~10 us on this project's VMs, of a huge page 0.26 us
 * per 4 KiB: clang++ -fsyntax-only of bench/stl_heavy.cc faulted 22 k
 * pages of the tracer's (the call tree's index doubling to 32 MiB, 25 MiB
 * of stacks), 0.2-0.4 s of its run.
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

enum {
    BIG_MAX = 1 << 20,     /* larger blocks are mapped one by one */
    BIG_REGION = 32 << 20, /* carved into big blocks */
    HUGE_PAGE = 2 << 20,
    BIG_SIZES = 16,   /* distinct sizes with a free list; others are mapped */
    BIG_REGIONS = 64, /* regions at once (2 GiB); past that, mapped */
    PLAIN_CHUNKS = 4, /* the first chunks of small blocks: on 4 KiB pages */
};
/* Freed big blocks of one size: `dirty` ones still hold their pages,
 * `clean` ones gave them back (zero but for the link, when touched). */
struct big_list {
    size_t size;
    struct free_block *dirty, *clean;
};

/* A region: how many of its blocks are in use, how many bytes were carved
 * from it and how many of those have given their pages back. */
struct big_region {
    char *base; /* NULL: a free slot */
    size_t in_use, carved, clean;
};

static struct {
    at__spinlock lock;
    struct free_block *free[NCLASSES];
    char *chunk_pos, *chunk_end;
    struct big_list big[BIG_SIZES];
    struct big_region regions[BIG_REGIONS];
    struct big_region *carving; /* the region being carved, or NULL */
    char *big_pos;              /* where in it */
    size_t big_in_use, big_dirty; /* bytes of big blocks in use, freed with their pages */
    unsigned chunks;              /* chunks of small blocks made so far */
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

/* `size` bytes (at least a huge page) mapped on a huge page boundary and
 * asking for huge pages, or MAP_FAILED: mapped with a huge page to spare,
 * the margins unmapped. */
static char *map_on_huge_page(size_t size)
{
    char *p = mmap(NULL, size + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED)
        return p;
    char *aligned = (char *)(((uintptr_t)p + HUGE_PAGE - 1) & ~((uintptr_t)HUGE_PAGE - 1));
    if (aligned > p)
        munmap(p, (size_t)(aligned - p));
    munmap(aligned + size, (size_t)(p + HUGE_PAGE - aligned));
    madvise(aligned, size, MADV_HUGEPAGE); /* a hint: ignored where unavailable */
    return aligned;
}

/* `size` bytes mapped on their own.  A block of a huge page or more
 * starts on a huge page and asks for them: on these VMs a first touch
 * of a 4 KiB page costs ~10 us, of a whole huge page ~0.13 ms (0.26 us a
 * 4 KiB page), and the tables that grow past 2 MiB by doubling (the call
 * tree's index: 32 MiB for clang++'s 944 k nodes, with 31 MiB more on the
 * way there) are touched everywhere. */
static void *map(size_t size)
{
    int saved = errno;
    char *p = size >= HUGE_PAGE ? map_on_huge_page(size)
                                : mmap(NULL, size, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    errno = saved;
    if (p == MAP_FAILED)
        return NULL;
    atomic_fetch_add(&mapped, size);
    region_add((uintptr_t)p, size);
    return p;
}

/* A region of BIG_REGION bytes aligned to a huge page (so that the
 * kernel can back it with huge pages), or NULL.  What it holds counts as
 * mapped as its blocks are carved (and given back). */
static char *map_big_region(void)
{
    char *aligned = map_on_huge_page(BIG_REGION);
    if (aligned == MAP_FAILED)
        return NULL;
    region_add((uintptr_t)aligned, BIG_REGION);
    return aligned;
}

/* The free lists of big blocks of `size`, NULL when BIG_SIZES sizes have
 * them already.  Under pool.lock, as everything below but big_unmap. */
static struct big_list *big_list_of(size_t size)
{
    for (int i = 0; i < BIG_SIZES; i++) {
        if (pool.big[i].size == size)
            return &pool.big[i];
        if (pool.big[i].size == 0) {
            pool.big[i].size = size;
            return &pool.big[i];
        }
    }
    return NULL;
}

static int in_region(const struct big_region *r, const void *p)
{
    return (const char *)p >= r->base && (const char *)p < r->base + BIG_REGION;
}

static struct big_region *big_region_of(const void *p)
{
    for (int i = 0; i < BIG_REGIONS; i++)
        if (pool.regions[i].base && in_region(&pool.regions[i], p))
            return &pool.regions[i];
    return NULL;
}

/* Drops the blocks of region `r` from `*link`'s list; their bytes. */
static size_t unlink_region(struct free_block **link, const struct big_region *r, size_t size)
{
    size_t n = 0;
    while (*link) {
        if (in_region(r, *link)) {
            *link = (*link)->next;
            n += size;
        } else {
            link = &(*link)->next;
        }
    }
    return n;
}

/* Takes the free blocks of region `r` off every list and frees its slot:
 * its base, for the caller to unmap once the lock is released. */
static char *big_drop(struct big_region *r)
{
    for (int i = 0; i < BIG_SIZES; i++) {
        pool.big_dirty -= unlink_region(&pool.big[i].dirty, r, pool.big[i].size);
        unlink_region(&pool.big[i].clean, r, pool.big[i].size);
    }
    atomic_fetch_sub(&mapped, r->carved - r->clean);
    char *base = r->base;
    r->base = NULL;
    return base;
}

static void big_unmap(char *base)
{
    if (!base)
        return;
    int saved = errno;
    region_remove((uintptr_t)base);
    munmap(base, BIG_REGION);
    errno = saved;
}

/* `rounded` bytes carved from the region being carved, or from a new one
 * (the old one's tail is never touched; *unused is the old one if none of
 * its blocks is in use, to unmap); NULL when none can be mapped. */
static void *big_carve(size_t rounded, char **unused)
{
    if (!pool.carving || (size_t)(pool.carving->base + BIG_REGION - pool.big_pos) < rounded) {
        if (pool.carving && pool.carving->in_use == 0)
            *unused = big_drop(pool.carving);
        pool.carving = NULL;
        struct big_region *r = NULL;
        for (int i = 0; i < BIG_REGIONS && !r; i++)
            r = pool.regions[i].base ? NULL : &pool.regions[i];
        char *base = r ? map_big_region() : NULL;
        if (!base)
            return NULL;
        *r = (struct big_region){.base = base};
        pool.carving = r;
        pool.big_pos = base;
    }
    void *p = pool.big_pos;
    pool.big_pos += rounded;
    pool.carving->carved += rounded;
    atomic_fetch_add(&mapped, rounded);
    return p;
}

/* A big block of `rounded` bytes from list `l`, counted in use in its
 * region: reused (dirty first), else carved; *zero says whether it is
 * zero. */
static struct free_block *big_take(struct big_list *l, size_t rounded, int *zero, char **unused)
{
    struct free_block *b = l->dirty;
    struct big_region *r = NULL;
    if (b) {
        l->dirty = b->next;
        pool.big_dirty -= rounded;
        r = big_region_of(b);
        *zero = 0;
    } else if ((b = l->clean) != NULL) {
        l->clean = b->next;
        b->next = NULL; /* the only word written since its pages went back */
        r = big_region_of(b);
        r->clean -= rounded;
        atomic_fetch_add(&mapped, rounded);
        *zero = 1;
    } else {
        b = big_carve(rounded, unused);
        r = b ? pool.carving : NULL;
        *zero = 1;
    }
    if (r) {
        r->in_use++;
        pool.big_in_use += rounded;
    }
    return b;
}

/* A big block of `rounded` bytes (a multiple of 4 KiB): reused, else
 * carved, else mapped on its own.  *zero says whether it is zero. */
static void *big_alloc(size_t rounded, int *zero)
{
    int saved = errno;
    char *unused = NULL;
    at__spin_lock(&pool.lock);
    struct big_list *l = big_list_of(rounded);
    struct free_block *b = l ? big_take(l, rounded, zero, &unused) : NULL;
    at__spin_unlock(&pool.lock);
    big_unmap(unused);
    errno = saved;
    if (b)
        return b;
    *zero = 1;
    return map(rounded);
}

/* Block `b` of region `r` is no longer in use: the region's slot if that
 * was its last (and it is not being carved), for big_unmap. */
static char *big_done(struct big_region *r)
{
    return --r->in_use == 0 && r != pool.carving ? big_drop(r) : NULL;
}

static int too_dirty(void)
{
    return pool.big_dirty > AT_MEM_KEEP && pool.big_dirty > 2 * pool.big_in_use;
}

/* While freed blocks keep too many pages, one of them gives its pages
 * back, outside the lock (it counts as in use meanwhile, so that its
 * region stays).  Called and returns with pool.lock held. */
static void big_trim(void)
{
    while (too_dirty()) {
        struct big_list *l = NULL;
        for (int i = 0; i < BIG_SIZES && !l; i++)
            l = pool.big[i].dirty ? &pool.big[i] : NULL;
        struct free_block *b = l->dirty;
        l->dirty = b->next;
        pool.big_dirty -= l->size;
        struct big_region *r = big_region_of(b);
        r->in_use++;
        at__spin_unlock(&pool.lock);
        int saved = errno;
        madvise(b, l->size, MADV_DONTNEED);
        errno = saved;
        at__spin_lock(&pool.lock);
        b->next = l->clean;
        l->clean = b;
        r->clean += l->size;
        atomic_fetch_sub(&mapped, l->size);
        char *unused = big_done(r);
        at__spin_unlock(&pool.lock);
        big_unmap(unused);
        at__spin_lock(&pool.lock);
    }
}

/* 1 if `ptr` was a big block (now freed), 0 if it was mapped on its own. */
static int big_free(void *ptr, size_t rounded)
{
    struct free_block *b = ptr;
    at__spin_lock(&pool.lock);
    struct big_region *r = big_region_of(ptr);
    if (!r) {
        at__spin_unlock(&pool.lock);
        return 0;
    }
    struct big_list *l = big_list_of(rounded);
    pool.big_in_use -= rounded;
    b->next = l->dirty;
    l->dirty = b;
    pool.big_dirty += rounded;
    char *unused = big_done(r);
    big_trim();
    at__spin_unlock(&pool.lock);
    big_unmap(unused);
    return 1;
}

/* A block larger than the size classes: big, or mapped on its own. */
static void *large_alloc(size_t size, int *zero)
{
    size_t rounded = (size + 4095) & ~(size_t)4095;
    if (rounded < size)
        return NULL;
    if (rounded <= BIG_MAX)
        return big_alloc(rounded, zero);
    *zero = 1;
    return map(rounded);
}

void *at__mem_alloc(size_t size)
{
    if (size == 0)
        size = 1;
    if (!budget_allows())
        return NULL;
    if (size > ((size_t)1 << MAX_SHIFT)) {
        int zero;
        return large_alloc(size, &zero);
    }
    int c = class_of(size);
    size_t csize = (size_t)1 << (c + MIN_SHIFT);
    char *unused = NULL; /* a region to unmap, once unlocked */
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
        /* Past the first PLAIN_CHUNKS, a chunk is a big block that is
         * never freed: carved from a region that asks for huge pages (the
         * stacks of a compiler, 25 MiB of them, faulted in 4 KiB pages
         * cost it 6 k faults).  The first ones are mapped on their own:
         * a small process (the shell scripts of a pyenv shim, which fork
         * and write after forking) touches a few pages of them, and with
         * huge pages from the start the python3 workload of 17 processes
         * ran 15% slower. */
        struct big_list *l = pool.chunks >= PLAIN_CHUNKS ? big_list_of(CHUNK) : NULL;
        int zero;
        char *chunk = l ? (char *)big_take(l, CHUNK, &zero, &unused) : NULL;
        pool.chunks++;
        if (!chunk)
            chunk = map(CHUNK);
        if (!chunk) {
            at__spin_unlock(&pool.lock);
            big_unmap(unused);
            return NULL;
        }
        pool.chunk_pos = chunk;
        pool.chunk_end = chunk + CHUNK;
    }
    void *p = pool.chunk_pos;
    pool.chunk_pos += csize;
    at__spin_unlock(&pool.lock);
    big_unmap(unused);
    return p;
}

void *at__mem_calloc(size_t size)
{
    if (size > ((size_t)1 << MAX_SHIFT)) {
        /* Fresh memory is zero already: clearing it would touch every page
         * of a table that may stay mostly empty. */
        int zero = 1;
        void *p = budget_allows() ? large_alloc(size, &zero) : NULL;
        if (p && !zero)
            memset(p, 0, size);
        return p;
    }
    void *p = at__mem_alloc(size);
    if (p)
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
        if (rounded <= BIG_MAX && big_free(ptr, rounded))
            return;
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
