/* A program whose trace every view must read the same way, run under
 * `alloctrace run` by report_test.py and the viewer tests.  Built with
 * optimization, so that loops really unroll.
 *
 *   views_prog peak    p = malloc(1000); __libc_free(p); q = malloc(1000);
 *                      r = malloc(3000); free(r); free(q): 4000 B were live
 *                      at once (q's allocation closes p's lifetime as
 *                      "vanished" at q's own sequence number)
 *   views_prog sites   one leaking line reached through four return
 *                      addresses (an unrolled loop) and through two (a
 *                      function called twice from one line), and a double
 *                      free in an unrolled loop: 2 leak sites, 1 finding site
 *
 * It writes nothing to stdout (a stdio buffer would be one more block).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

/* glibc's own free, which the preload library does not interpose. */
extern void __libc_free(void *p);

/* Not static, so their names are in every symbol table. */
void *leak_here(size_t n);
void unrolled_leaks(void);
void pair(void *a, void *b);
void called_twice(void);
void double_free_here(void *p);
void unrolled_double_frees(void);

NOINLINE void *leak_here(size_t n)
{
    void *p = malloc(n); /* the one leaking line */
    KEEP(p);
    return p;
}

NOINLINE void unrolled_leaks(void)
{
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        leak_here(100);
}

NOINLINE void pair(void *a, void *b)
{
    KEEP(a);
    KEEP(b);
}

NOINLINE void called_twice(void)
{
    pair(leak_here(10), leak_here(10));
}

NOINLINE void double_free_here(void *p)
{
    free(p);
}

NOINLINE void unrolled_double_frees(void)
{
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) {
        void *d = malloc(24);
        KEEP(d);
        free(d);
        double_free_here(d);
    }
}

static int peak(void)
{
    char *p = malloc(1000);
    KEEP(p);
    __libc_free(p);
    char *q = malloc(1000);
    KEEP(q);
    if (q != p)
        return 3; /* the test needs the address handed out again */
    char *r = malloc(3000);
    KEEP(r);
    free(r);
    free(q);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "peak") == 0)
        return peak();
    if (strcmp(mode, "sites") == 0) {
        unrolled_leaks();
        called_twice();
        unrolled_double_frees();
        return 0;
    }
    static const char usage[] = "usage: views_prog peak|sites\n";
    if (write(2, usage, sizeof usage - 1) < 0)
        return 2;
    return 2;
}
