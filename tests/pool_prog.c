/* A program with a pool allocator of its own, described to alloctrace by
 * the macros of <alloctrace/annotate.h> (tests/pools_test.py).
 *
 * The pool is a bump allocator over malloc'd chunks: its first block lies
 * at its chunk's start, the same address as the malloc block, and its
 * chunk list (in the pool) points at every chunk.  A free only marks the
 * block (the pool never reuses memory); the destroy frees the chunks.
 * Planted, at the lines marked for the test: a double free, a free with
 * the wrong size, a free of a pointer the pool never gave out and a leak
 * (a pool never destroyed); a second pool is destroyed with blocks still
 * in it, which is no leak.  A third pool, "nodes", never destroyed, holds
 * blocks for the exit scan to classify one by one: one a global points to
 * (still reachable), one whose pointer is dropped (definitely lost), one
 * only that lost block points to (indirectly lost), and a malloc block
 * under each of the first and the last; its chunk, which the pool points
 * to, holds them all.  The output is the same traced or not: no addresses
 * are printed.
 *
 * Built twice: pool_prog with the annotations, pool_plain with
 * -DNO_ANNOTATIONS (the same program that never includes the header).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef NO_ANNOTATIONS
#include <alloctrace/annotate.h>
#else
#define AT_POOL_CREATE(pool, name) ((void)0)
#define AT_POOL_ALLOC(pool, ptr, size, align) ((void)0)
#define AT_POOL_FREE(pool, ptr, size, align) ((void)0)
#define AT_POOL_DESTROY(pool) ((void)0)
#endif

enum { CHUNK = 4096, MAX_CHUNKS = 16 };

typedef struct pool {
    const char *name;
    char *chunks[MAX_CHUNKS]; /* every chunk the pool holds */
    int nchunks;
    size_t used; /* bytes used in the last chunk */
    long blocks; /* handed out less given back, as the program told it */
} pool;

static pool *pool_new(const char *name)
{
    pool *p = calloc(1, sizeof *p);
    if (!p)
        exit(2);
    p->name = name;
    p->used = CHUNK; /* the first allocation takes a chunk */
    AT_POOL_CREATE(p, name);
    return p;
}

static __attribute__((noinline)) void *pool_alloc(pool *p, size_t size, size_t align)
{
    size_t a = align ? align : 1;
    size_t at = (p->used + a - 1) & ~(a - 1);
    if (at + size > CHUNK) {
        if (p->nchunks == MAX_CHUNKS || size > CHUNK)
            return NULL;
        p->chunks[p->nchunks++] = malloc(CHUNK);
        if (!p->chunks[p->nchunks - 1])
            exit(2);
        at = 0;
    }
    void *ptr = p->chunks[p->nchunks - 1] + at;
    p->used = at + size;
    p->blocks++;
    AT_POOL_ALLOC(p, ptr, size, align);
    return ptr;
}

static __attribute__((noinline)) void pool_free(pool *p, void *ptr, size_t size, size_t align)
{
    AT_POOL_FREE(p, ptr, size, align);
    p->blocks--;
}

static __attribute__((noinline)) void pool_destroy(pool *p)
{
    AT_POOL_DESTROY(p);
    for (int i = 0; i < p->nchunks; i++)
        free(p->chunks[i]);
    free(p);
}

static pool *frames; /* never destroyed: what it still holds leaks */
static char never_given[64];

static __attribute__((noinline)) void frames_work(void)
{
    frames = pool_new("frames");
    char *a = pool_alloc(frames, 24, 8); /* at the chunk's start */
    memset(a, 1, 24);
    pool_free(frames, a, 24, 8);
    char *leaked = pool_alloc(frames, 32, 16); /* @leak */
    memset(leaked, 2, 32);
    char *twice = pool_alloc(frames, 40, 8); /* @twice_alloc */
    pool_free(frames, twice, 40, 8); /* @first_free */
    pool_free(frames, twice, 40, 8); /* @double_free */
    char *sized = pool_alloc(frames, 48, 8); /* @sized_alloc */
    pool_free(frames, sized, 64, 8); /* @wrong_size */
    pool_free(frames, never_given, 0, 0); /* @invalid_free */
    char *unknown = pool_alloc(frames, 16, 0);
    pool_free(frames, unknown, 16, 0); /* size known, alignment not: checked, fine */
    printf("frames: %ld blocks in %d chunks\n", frames->blocks, frames->nchunks);
}

static pool *nodes; /* never destroyed: the scan classifies its blocks */
static char **kept;

static __attribute__((noinline)) void nodes_work(void)
{
    nodes = pool_new("nodes");
    char *head = pool_alloc(nodes, 16, 8); /* at the chunk's start, given back */
    pool_free(nodes, head, 16, 8);
    kept = pool_alloc(nodes, 24, 8); /* @kept */
    /* a malloc block reachable through a pool block only */
    kept[0] = malloc(8); /* @kept_tail */
    char **lost = pool_alloc(nodes, 32, 8); /* @lost */
    char **child = pool_alloc(nodes, 32, 8); /* @child */
    lost[0] = (char *)child;
    /* and one the lost pool blocks only lead to */
    child[0] = malloc(8); /* @child_tail */
    if (!kept[0] || !child[0])
        exit(2);
    memset(lost + 1, 0, 24);
    memset(child + 1, 0, 24);
    printf("nodes: %ld blocks in %d chunks\n", nodes->blocks, nodes->nchunks);
}

/* The words nodes_work left on the stack below main's frame are no
 * pointer the program keeps: overwritten here. */
static __attribute__((noinline)) void scrub_stack(void)
{
    volatile char scrub[8192];
    for (size_t i = 0; i < sizeof scrub; i++)
        scrub[i] = 0;
}

static __attribute__((noinline)) void scratch_work(void)
{
    pool *scratch = pool_new("scratch");
    unsigned long sum = 0;
    for (int i = 0; i < 200; i++) { /* 200 blocks of 40: two chunks */
        unsigned char *b = pool_alloc(scratch, 40, 8); /* @scratch_alloc */
        b[0] = (unsigned char)i;
        sum += b[0];
    }
    char *first = scratch->chunks[0];
    pool_free(scratch, first, 40, 8); /* the block at the chunk's start */
    printf("scratch: %ld blocks in %d chunks, sum %lu\n", scratch->blocks, scratch->nchunks,
           sum);
    pool_destroy(scratch); /* releases 199 blocks, then frees both chunks */
}

int main(void)
{
    frames_work();
    nodes_work();
    scrub_stack();
    scratch_work();
    void *m = malloc(100);
    free(m);
    printf("done\n");
    return 3; /* a status of its own, compared traced and untraced */
}
