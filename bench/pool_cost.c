/* What the annotations of <alloctrace/annotate.h> cost a program that
 * runs without alloctrace: N pairs of a small bump pool's alloc and free,
 * CPU time per pair, built with the macros (-DANNOTATE) or without.
 * bench/pool_cost.sh builds both and runs them side by side.
 *
 *   pool_cost PAIRS
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef ANNOTATE
#include <alloctrace/annotate.h>
#else
#define AT_POOL_ALLOC(pool, ptr, size, align) ((void)0)
#define AT_POOL_FREE(pool, ptr, size, align) ((void)0)
#endif

typedef struct pool {
    char *base;
    size_t used, cap;
} pool;

static __attribute__((noinline)) void *pool_alloc(pool *p, size_t size)
{
    if (p->used + size > p->cap)
        p->used = 0;
    void *r = p->base + p->used;
    p->used += (size + 7) & ~(size_t)7;
    AT_POOL_ALLOC(p, r, size, 8);
    return r;
}

static __attribute__((noinline)) void pool_free(pool *p, void *ptr, size_t size)
{
    (void)p;
    (void)ptr;
    (void)size;
    AT_POOL_FREE(p, ptr, size, 8);
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long pairs = argc > 1 ? atol(argv[1]) : 1000000;
    pool p = {malloc(1 << 16), 0, 1 << 16};
    if (!p.base)
        return 2;
    double t0 = cpu_s();
    for (long i = 0; i < pairs; i++) {
        size_t size = 16 + (size_t)(i & 15);
        volatile char *x = pool_alloc(&p, size);
        *x = (char)i;
        pool_free(&p, (void *)x, size);
    }
    double t1 = cpu_s();
    printf("ns_per_pair=%.2f\n", (t1 - t0) * 1e9 / (double)pairs);
    free(p.base);
    return 0;
}
