/* The viewer's time filter and axes (tests/viewer/range_test.mjs): two
 * bursts 300 ms apart.  The first keeps 100 blocks of 1 MiB (still
 * reachable) and loses 3 of 100 B, the second keeps 50 of 1 MiB and loses
 * 2 of 200 B; the heap peaks above 150 MiB.  One block is aligned to 64.
 * Each burst releases one block twice (a finding per burst: the filter
 * keeps the second's only; the tracer does not pass the second release on).
 * Only the C library's
 * allocator, as in any program.
 *
 *   phases_prog
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

void *phase_one_big(size_t n);
void *phase_two_big(size_t n);
void phase_one_lost(size_t n);
void phase_two_lost(size_t n);
void phase_one_double(void);
void phase_two_double(void);

static void *phase_kept[150];

NOINLINE void *phase_one_big(size_t n)
{
    void *p = malloc(n);
    memset(p, 1, n);
    return p;
}

NOINLINE void *phase_two_big(size_t n)
{
    void *p = malloc(n);
    memset(p, 2, n);
    return p;
}

NOINLINE void phase_one_lost(size_t n)
{
    void *volatile p = malloc(n);
    memset(p, 0, n);
    p = NULL;
}

NOINLINE void phase_two_lost(size_t n)
{
    void *volatile p = malloc(n);
    memset(p, 0, n);
    p = NULL;
}

NOINLINE void phase_one_double(void)
{
    void *volatile p = malloc(24);
    free(p);
    free(p);
}

NOINLINE void phase_two_double(void)
{
    void *volatile p = malloc(48);
    free(p);
    free(p);
}

int main(void)
{
    void *aligned = aligned_alloc(64, 640); /* one over-aligned block: the layout view shows */
    KEEP(aligned);
    free(aligned);
    for (int i = 0; i < 100; i++)
        phase_kept[i] = phase_one_big(1 << 20);
    for (int i = 0; i < 3; i++)
        phase_one_lost(100);
    phase_one_double();
    usleep(300000);
    for (int i = 0; i < 50; i++)
        phase_kept[100 + i] = phase_two_big(1 << 20);
    for (int i = 0; i < 2; i++)
        phase_two_lost(200);
    phase_two_double();
    KEEP(phase_kept);
    puts("phases");
    return 0;
}
