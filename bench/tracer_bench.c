/* Benchmark: the tracer's added cost per allocation/release pair.
 *
 *   tracer_bench MODE THREADS PAIRS DEPTH [TRACE]
 *
 * MODE is `untraced` (the system backend alone) or `traced` (the tracing
 * allocator over it, writing TRACE).  Each thread first descends DEPTH-2
 * frames of recursion, so the backtraces are about DEPTH deep, then runs
 * PAIRS iterations of alloc + touch + dealloc over eight call sites and a
 * spread of sizes, keeping a small window of blocks live so the
 * allocator does real work.  Prints one line of key=value figures:
 * ns_per_pair for the loop (the hot path, measured per thread, averaged),
 * total_s including at_tracer_close, and for traced runs the trace size in
 * bytes per allocation and how often threads waited for the writer.
 *
 * bench/run.sh runs it side by side and prints the ratios; it is never run
 * by the test suite.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <alloctrace/alloctrace.h>

static at_allocator alloc_under_test;
static long pairs_per_thread;
static int depth;

enum { WINDOW = 64 };

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

/* The loop's CPU time per thread, summed: unlike the wall time it counts
 * neither the time a thread waits for a CPU on a busy machine nor the time
 * it sleeps waiting for the writer to free a buffer: the hot path alone. */
static double loop_cpu_s;
static pthread_mutex_t cpu_mu = PTHREAD_MUTEX_INITIALIZER;

/* Eight distinct call sites, so stacks are interned but not all identical. */
#define SITE(n)                                                                                    \
    __attribute__((noinline)) static void *site##n(at_layout l)                                    \
    {                                                                                              \
        void *p = at_alloc(alloc_under_test, l);                                                   \
        __asm__ volatile("" ::: "memory");                                                         \
        return p;                                                                                  \
    }
SITE(0) SITE(1) SITE(2) SITE(3) SITE(4) SITE(5) SITE(6) SITE(7)
static void *(*const sites[8])(at_layout) = {site0, site1, site2, site3, site4, site5, site6, site7};

__attribute__((noinline)) static double loop(void)
{
    void *live[WINDOW] = {0};
    at_layout lay[WINDOW];
    unsigned x = 12345;
    double t0 = now_s(), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    for (long i = 0; i < pairs_per_thread; i++) {
        x = x * 1103515245u + 12345u;
        unsigned slot = (x >> 16) % WINDOW;
        if (live[slot])
            at_dealloc(alloc_under_test, live[slot], lay[slot]);
        size_t size = 16 + ((x >> 8) & 511);
        lay[slot] = (at_layout){size, (x & 0x100000) ? 64 : 16};
        live[slot] = sites[(x >> 24) & 7](lay[slot]);
        ((char *)live[slot])[0] = 1;
    }
    double t1 = now_s(), c1 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    pthread_mutex_lock(&cpu_mu);
    loop_cpu_s += c1 - c0;
    pthread_mutex_unlock(&cpu_mu);
    for (int s = 0; s < WINDOW; s++)
        if (live[s])
            at_dealloc(alloc_under_test, live[s], lay[s]);
    return t1 - t0;
}

__attribute__((noinline)) static double descend(int n)
{
    if (n <= 0)
        return loop();
    double r = descend(n - 1);
    __asm__ volatile("" ::: "memory");
    return r;
}

static void *thread_main(void *arg)
{
    double *out = arg;
    *out = descend(depth - 2);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s untraced|traced THREADS PAIRS DEPTH [TRACE]\n", argv[0]);
        return 2;
    }
    int traced = strcmp(argv[1], "traced") == 0;
    int threads = atoi(argv[2]);
    pairs_per_thread = atol(argv[3]);
    depth = atoi(argv[4]);
    const char *path = argc > 5 ? argv[5] : "bench.trace.db";
    if (threads < 1 || threads > 64 || pairs_per_thread < 1 || depth < 2)
        return 2;

    double start = now_s();
    at_tracer *tracer = NULL;
    alloc_under_test = at_system_allocator();
    if (traced) {
        at_trace_options o;
        at_trace_options_init(&o);
        o.path = path;
        o.overwrite = 1;
        o.stack_depth = (unsigned)depth + 4;
        /* BENCH_BUFFER_MB: how far the writer may fall behind before
         * threads wait; a large value measures the hot path alone. */
        /* BENCH_UNWIND=fp: frame-pointer backtraces. */
        if (getenv("BENCH_UNWIND") && strcmp(getenv("BENCH_UNWIND"), "fp") == 0)
            o.unwind = AT_UNWIND_FRAME_POINTERS;
        /* BENCH_NO_RELEASE_STACKS=1: releases take no backtrace. */
        if (getenv("BENCH_NO_RELEASE_STACKS"))
            o.no_release_stacks = atoi(getenv("BENCH_NO_RELEASE_STACKS"));
        if (getenv("BENCH_BUFFER_MB"))
            o.buffer_limit = (size_t)atol(getenv("BENCH_BUFFER_MB")) << 20;
        int rc = at_tracer_open(&o, &tracer);
        if (rc) {
            fprintf(stderr, "%s: %s\n", path, at_strerror(rc));
            return 1;
        }
        alloc_under_test = at_tracing_allocator(tracer, alloc_under_test);
    }
    pthread_t th[64];
    double secs[64];
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, thread_main, &secs[i]);
    double loop_s = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        loop_s += secs[i];
    }
    loop_s /= threads;
    at_tracer_stats st = {0};
    if (tracer) {
        at_tracer_get_stats(tracer, &st);
        if (at_tracer_close(tracer) != 0) {
            fprintf(stderr, "closing the trace failed\n");
            return 1;
        }
    }
    double total = now_s() - start;
    printf("mode=%s threads=%d pairs=%ld depth=%d ns_per_pair=%.1f cpu_ns_per_pair=%.1f total_s=%.3f",
           argv[1], threads, pairs_per_thread * threads, depth,
           loop_s * 1e9 / (double)pairs_per_thread,
           loop_cpu_s / threads * 1e9 / (double)pairs_per_thread, total);
    if (tracer) {
        struct stat sb;
        stat(path, &sb);
        printf(" allocs=%llu trace_bytes=%lld bytes_per_alloc=%.1f", (unsigned long long)st.alloc_calls,
               (long long)sb.st_size, (double)sb.st_size / (double)st.alloc_calls);
    }
    printf("\n");
    return 0;
}
