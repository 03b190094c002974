/* A multi-threaded program that leaks, for tests/recorder_test.py: THREADS
 * threads each make ITERS allocations of assorted sizes, free most of them
 * (some late, from a ring), and leak every 97th through leak_site(); at
 * the end it writes each leaked block's address and size, one a line, to
 * OUT.tmp and renames it to OUT, so a test that killed the program's
 * recorder knows exactly what must be in the trace.
 *
 *     recorder_prog OUT THREADS ITERS [PAUSE_US]
 *
 * PAUSE_US: a pause every 1000 iterations, so the run lasts long enough to
 * be killed at a random moment. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { RING = 256, MAX_THREADS = 64 };

static long iters, pause_us;
static void **leaked[MAX_THREADS];
static size_t *leaked_size[MAX_THREADS];
static long nleaked[MAX_THREADS];

__attribute__((noinline)) static void *leak_site(size_t n)
{
    void *p = malloc(n);
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}

static void *worker(void *arg)
{
    long id = (long)(intptr_t)arg;
    void *ring[RING] = {0};
    leaked[id] = calloc((size_t)iters / 97 + 2, sizeof(void *));
    leaked_size[id] = calloc((size_t)iters / 97 + 2, sizeof(size_t));
    for (long i = 0; i < iters; i++) {
        size_t n = 16 + (size_t)((i * 7919 + id * 31) % 2000);
        if (i % 97 == 0) {
            size_t ls = 5000 + (size_t)id * 8 + (size_t)(i % 7);
            leaked[id][nleaked[id]] = leak_site(ls);
            leaked_size[id][nleaked[id]++] = ls;
            continue;
        }
        void *p = malloc(n);
        memset(p, 1, n < 64 ? n : 64);
        free(ring[i % RING]);
        ring[i % RING] = p;
        if (pause_us && i % 1000 == 999)
            usleep((useconds_t)pause_us);
    }
    for (int k = 0; k < RING; k++)
        free(ring[k]);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    int threads = atoi(argv[2]);
    iters = atol(argv[3]);
    pause_us = argc > 4 ? atol(argv[4]) : 0;
    if (threads < 1 || threads > MAX_THREADS || iters < 1)
        return 2;
    pthread_t t[MAX_THREADS];
    for (long i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return 3;
    for (int i = 0; i < threads; i++) {
        for (long k = 0; k < nleaked[i]; k++)
            fprintf(f, "%ju %zu\n", (uintmax_t)(uintptr_t)leaked[i][k], leaked_size[i][k]);
        free(leaked[i]);
        free(leaked_size[i]);
    }
    fclose(f);
    rename(tmp, argv[1]);
    return 0;
}
