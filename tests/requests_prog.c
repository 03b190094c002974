/* Every invalid request of the C allocation functions the preload library
 * wraps, each printed with what it gave: NULL or a block, errno, and for
 * posix_memalign its result and whether *out was written.  requests_test.py
 * runs it with and without alloctrace and compares the output.
 *
 *   requests_prog requests   the requests (safe natively)
 *   requests_prog interior   free() of a pointer inside a live block (traced
 *                            only: glibc aborts on it)
 *   requests_prog zero       three zero-size requests and nothing else wrong
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void show(const char *what, void *p, int err)
{
    printf("%s: %s errno=%d\n", what, p ? "block" : "NULL", err);
    free(p);
}

/* errno cleared first, read right after the call. */
#define TRY(expr)                                                                                  \
    do {                                                                                           \
        errno = 0;                                                                                 \
        void *p_ = (expr);                                                                         \
        show(#expr, p_, errno);                                                                    \
    } while (0)

static void try_posix_memalign(size_t align, size_t size)
{
    void *p = &p; /* a marker: glibc leaves *out alone when it fails */
    errno = 0;
    int rc = posix_memalign(&p, align, size);
    int err = errno;
    printf("posix_memalign(%zu, %zu): rc=%d errno=%d out=%s\n", align, size, rc, err,
           p == (void *)&p ? "untouched" : p ? "block" : "NULL");
    if (rc == 0)
        free(p);
}

static void requests(void)
{
    /* volatile: the compiler must not know the values (it would warn, or
     * fold the calls away) */
    volatile size_t max = SIZE_MAX, zero = 0;
    TRY(malloc(zero));
    TRY(malloc(max));
    TRY(calloc(zero, 8));
    TRY(calloc(8, zero));
    TRY(calloc(max, 2));
    TRY(realloc(NULL, zero));
    TRY(realloc(malloc(8), zero));
    TRY(reallocarray(NULL, max, 2));
    TRY(reallocarray(NULL, zero, 2));
    TRY(memalign(zero, 8));
    TRY(memalign(3, 8));
    TRY(memalign(24, 8));
    TRY(memalign(4097, 8));
    TRY(memalign(max / 2 + 2, 8));
    TRY(memalign(max / 2 + 1, 8));
    TRY(memalign(64, zero));
    TRY(aligned_alloc(zero, 8));
    TRY(aligned_alloc(3, 8));
    TRY(aligned_alloc(64, 8));
    TRY(aligned_alloc(64, 100));
    TRY(aligned_alloc(64, zero));
    TRY(aligned_alloc(max, 8));
    TRY(valloc(zero));
    TRY(pvalloc(zero));
    TRY(valloc(max));
    TRY(pvalloc(max));
    static const size_t aligns[] = {0, 1, 2, 4, 8, 12, 24, 63, 64, SIZE_MAX / 2 + 1, SIZE_MAX};
    for (size_t i = 0; i < sizeof aligns / sizeof *aligns; i++)
        try_posix_memalign(aligns[i], 8);
    try_posix_memalign(64, 0);
    try_posix_memalign(64, max);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "requests") == 0) {
        requests();
    } else if (strcmp(mode, "zero") == 0) {
        volatile size_t zero = 0;
        free(malloc(zero));
        free(calloc(zero, 4));
        free(realloc(malloc(4), zero));
        puts("zero");
    } else if (strcmp(mode, "interior") == 0) {
        char *volatile p = malloc(64);
        char *volatile inside = p + 16;
        free(inside);
        free(p);
    } else {
        fprintf(stderr, "usage: requests_prog requests|interior|zero\n");
        return 2;
    }
    return 0;
}
