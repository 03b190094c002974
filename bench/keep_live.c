/* Workload for bench/live_bench.sh: a program that keeps many blocks live
 * at once, as programs with large in-memory structures do.
 *
 *   keep_live BLOCKS SIZE [shuffled]
 *
 * Allocates BLOCKS blocks of SIZE bytes with malloc, touches each, then
 * frees them all in allocation order, or in a random order with
 * `shuffled` (the order fixed by a seed, the same in every run).  Plain malloc/free: it is traced
 * through the preload library by `alloctrace run`, never linked against
 * alloctrace. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s BLOCKS SIZE [shuffled]\n", argv[0]);
        return 2;
    }
    long n = atol(argv[1]);
    size_t size = (size_t)atol(argv[2]);
    if (n < 1 || size < 1)
        return 2;
    char **blocks = malloc((size_t)n * sizeof *blocks);
    if (!blocks)
        return 1;
    for (long i = 0; i < n; i++) {
        blocks[i] = malloc(size);
        if (!blocks[i])
            return 1;
        blocks[i][0] = (char)i;
    }
    if (argc == 4) {
        unsigned long long x = 0x2545f4914f6cdd1dull;
        for (long i = n - 1; i > 0; i--) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            long j = (long)(x % (unsigned long long)(i + 1));
            char *t = blocks[i];
            blocks[i] = blocks[j];
            blocks[j] = t;
        }
    }
    long sum = 0;
    for (long i = 0; i < n; i++)
        sum += blocks[i][0];
    for (long i = 0; i < n; i++)
        free(blocks[i]);
    free(blocks);
    printf("%ld\n", sum);
    return 0;
}
