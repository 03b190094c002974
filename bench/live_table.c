/* The live-block table alone (lib/tracer/live.c), as the hot path uses
 * it: N blocks inserted at the addresses malloc gives them, then released
 * in allocation order or in a random order, after a warm-up round.
 * Prints the thread's CPU time per operation, so that other load on the
 * machine counts less than in a wall-clock measure.  Run on purpose
 * (bench/live_bench.sh measures the whole traced program).
 *
 *   live_table N ROUNDS
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "live.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    size_t n = (size_t)atol(argv[1]);
    int rounds = atoi(argv[2]);
    if (n < 2 || rounds < 1 || rounds > 64)
        return 2;
    char **blocks = malloc(n * sizeof *blocks);
    size_t *order = malloc(n * sizeof *order);
    if (!blocks || !order)
        return 1;
    for (size_t i = 0; i < n; i++)
        blocks[i] = malloc(24);
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t j = (size_t)(x % (i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    double ins[64], seq_rel[64], rnd_rel[64];
    at_live lt;
    at__live_init(&lt);
    uint64_t s = 0;
    for (int r = 0; r <= rounds; r++) {
        for (int shuffled = 0; shuffled < 2; shuffled++) {
            double t0 = cpu_now();
            for (size_t i = 0; i < n; i++) {
                at_block_info b = {.ptr = (uintptr_t)blocks[i], .size = 24, .seq = ++s, .stack = 1};
                at_block_info d;
                if (at__live_insert(&lt, &b, &d) < 0)
                    return 1;
            }
            double t1 = cpu_now();
            for (size_t i = 0; i < n; i++) {
                at_block_info out;
                uintptr_t p = (uintptr_t)blocks[shuffled ? order[i] : i];
                if (at__live_release(&lt, p, ++s, 1, &out) != AT_LIVE_FOUND)
                    return 1;
            }
            double t2 = cpu_now();
            if (r > 0) {
                ins[r - 1] = (t1 - t0) * 1e9 / (double)n;
                (shuffled ? rnd_rel : seq_rel)[r - 1] = (t2 - t1) * 1e9 / (double)n;
            }
        }
    }
    qsort(ins, (size_t)rounds, sizeof *ins, cmp);
    qsort(seq_rel, (size_t)rounds, sizeof *ins, cmp);
    qsort(rnd_rel, (size_t)rounds, sizeof *ins, cmp);
    printf("%zu blocks, median of %d rounds, ns of thread CPU per operation:\n", n, rounds);
    printf("  insert %.1f  release in order %.1f  release shuffled %.1f\n", ins[rounds / 2],
           seq_rel[rounds / 2], rnd_rel[rounds / 2]);
    at__live_destroy(&lt);
    return 0;
}
