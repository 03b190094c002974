/* A deterministic program for the aggregated trace's test
 * (aggregate_test.py): churn at several sites and sizes, two heap peaks
 * (the second higher, with churn around it), reallocs, aligned blocks,
 * leaks, and bad releases (a double free, an interior free, an invalid
 * free) and a zero-size request, so that leaks, findings, the peak and
 * every site's totals can be compared between a full trace and an
 * aggregated one of the same run.  `aggregate_prog [N]`: the last churn
 * runs 1000 * N rounds (N = 1 by default), for runs longer than the
 * recorder's replay window, and with N > 1 a last, highest peak of 70,000
 * blocks, more than it holds in memory before writing them as rows. */
#include <stdlib.h>
#include <string.h>

static void *volatile sink;

static __attribute__((noinline)) void *small(size_t n)
{
    return malloc(n);
}

static __attribute__((noinline)) void *big(size_t n)
{
    return calloc(1, n);
}

static __attribute__((noinline)) void churn(int rounds)
{
    for (int i = 0; i < rounds; i++) {
        void *p = small(16 + (size_t)(i % 7) * 24);
        void *q = big(1000 + (size_t)(i % 3) * 500);
        sink = p;
        free(q);
        free(p);
    }
}

/* Holds `n` blocks of `size`, churning between them, then frees them. */
static __attribute__((noinline)) void hill(int n, size_t size)
{
    void **held = malloc((size_t)n * sizeof *held);
    for (int i = 0; i < n; i++) {
        held[i] = small(size);
        if (i % 10 == 0)
            churn(3);
    }
    churn(50);
    for (int i = n - 1; i >= 0; i--)
        free(held[i]);
    free(held);
}

static __attribute__((noinline)) void reallocs(void)
{
    char *s = NULL;
    for (size_t n = 8; n < 20000; n = n * 3 / 2 + 1) {
        s = realloc(s, n);
        memset(s, 'x', n);
    }
    free(s);
    void *a;
    for (int i = 0; i < 40; i++) {
        a = aligned_alloc(64, 128);
        free(a);
        if (posix_memalign(&a, 256, 300) == 0)
            free(a);
    }
}

static __attribute__((noinline)) void leak(int n)
{
    for (int i = 0; i < n; i++)
        sink = small(40 + (size_t)i);
}

static __attribute__((noinline)) void bad_releases(void)
{
    char *p = malloc(64);
    free(p);
    free(p); /* double free */
    char *q = malloc(64);
    free(q + 16); /* interior free */
    free(q);
    static char not_heap[32];
    free(not_heap + 8); /* invalid free */
    sink = malloc(0);   /* zero size, and a leak */
}

int main(int argc, char **argv)
{
    int scale = argc > 1 ? atoi(argv[1]) : 1;
    churn(2000);
    hill(300, 700);
    reallocs();
    leak(5);
    hill(900, 600); /* the higher peak */
    bad_releases();
    churn(1000 * (scale > 0 ? scale : 1));
    if (scale > 1)
        hill(70000, 64); /* the highest peak: more blocks live at it than the recorder holds */
    leak(3);
    return 0;
}
