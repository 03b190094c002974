/* Workload for bench/peers_bench.sh: THREADS threads, each allocating and
 * freeing PAIRS blocks one at a time (sizes 16 to 256 bytes), the shape of
 * a program whose allocations are short-lived.  Plain malloc/free: traced
 * through the preload library, never linked against alloctrace.
 *
 *   churn THREADS PAIRS */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static long pairs;

static void *loop(void *arg)
{
    unsigned long x = (unsigned long)arg * 2654435761u + 1;
    long sum = 0;
    for (long i = 0; i < pairs; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        char *p = malloc(16 + (x & 240));
        if (!p)
            abort();
        p[0] = (char)i;
        sum += p[0];
        free(p);
    }
    return (void *)sum;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s THREADS PAIRS\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[1]);
    pairs = atol(argv[2]);
    if (threads < 1 || threads > 64 || pairs < 1)
        return 2;
    pthread_t t[64];
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, loop, (void *)(long)(i + 1)) != 0)
            return 1;
    long sum = 0;
    for (int i = 0; i < threads; i++) {
        void *r;
        pthread_join(t[i], &r);
        sum += (long)r;
    }
    printf("%ld\n", sum);
    return 0;
}
