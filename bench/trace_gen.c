/* Benchmark input: a large trace for bench/report_bench.sh, made through
 * the public API (the tracing allocator over the system allocator).
 *
 *   trace_gen TRACE [ALLOCATIONS [SITES_LOG2]]
 *
 * ALLOCATIONS (default ten million) allocations from 2^SITES_LOG2 (default
 * 2^12 = 4096) distinct call stacks: each allocation walks a path of
 * SITES_LOG2 calls, each either through left() or right(), so every path
 * is its own backtrace.  Blocks stay live in a window whose size rises to
 * about 64000 blocks in the middle of the run and falls again, so the
 * peak is somewhere real; one allocation in a thousand is never released
 * (about ten thousand leaks spread over the sites) and one in a hundred
 * thousand is released with the wrong size (findings).  Deterministic:
 * the same arguments give the same trace.
 *
 * Backtraces are taken with frame pointers, so making the trace takes
 * seconds per million allocations rather than minutes.  Never run by the
 * test suite.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <alloctrace/alloctrace.h>

#define NOINLINE __attribute__((noinline))
#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

enum { WINDOW_MAX = 65536 };

static at_allocator traced;
static volatile unsigned long lefts, rights; /* distinct bodies: never folded into one */

static uint64_t rng_state = 88172645463325252u;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void *walk(unsigned bits, int depth, at_layout l);

/* Two call sites per level: which one a path takes is one bit of the
 * site number.  The KEEP after each call stops tail calls, which would
 * fold the frames away; the counters keep the two bodies different, or
 * identical-code folding would make them one function. */
NOINLINE static void *left(unsigned bits, int depth, at_layout l)
{
    lefts++;
    void *p = walk(bits >> 1, depth - 1, l);
    KEEP(p);
    return p;
}

NOINLINE static void *right(unsigned bits, int depth, at_layout l)
{
    rights++;
    void *p = walk(bits >> 1, depth - 1, l);
    KEEP(p);
    return p;
}

NOINLINE static void *walk(unsigned bits, int depth, at_layout l)
{
    if (depth == 0) {
        void *p = at_alloc(traced, l);
        KEEP(p);
        return p;
    }
    return (bits & 1) ? right(bits, depth, l) : left(bits, depth, l);
}

typedef struct live {
    void *p;
    at_layout l;
} live;

/* Target number of live blocks: a triangle that peaks mid-run. */
static size_t window_at(long i, long n)
{
    double x = (double)i / (double)n, tri = x < 0.5 ? 2 * x : 2 * (1 - x);
    return 1000 + (size_t)(tri * (WINDOW_MAX - 2000));
}

static void release(live *b, int wrong_size)
{
    at_layout l = b->l;
    if (wrong_size)
        l.size += 8; /* a layout mismatch: recorded, and freed with the real layout */
    at_dealloc(traced, b->p, l);
}

static int run(long n, int sites_log2)
{
    static live window[WINDOW_MAX];
    size_t nlive = 0;
    unsigned long frees = 0;
    for (long i = 0; i < n; i++) {
        size_t target = window_at(i, n);
        while (nlive > 0 && nlive >= target) {
            size_t k = (size_t)(rng() % nlive);
            release(&window[k], ++frees % 100000 == 0);
            window[k] = window[--nlive];
        }
        uint64_t r = rng();
        at_layout l = {16 + (size_t)(r % 500), (size_t)8 << ((r >> 20) % 4)};
        unsigned site = (unsigned)(r >> 32) & ((1u << sites_log2) - 1);
        void *p = walk(site, sites_log2, l);
        if (!p)
            return -1;
        if (i % 1000 == 999)
            continue; /* leaked */
        window[nlive++] = (live){p, l};
    }
    while (nlive > 0)
        release(&window[--nlive], 0);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: trace_gen TRACE [ALLOCATIONS [SITES_LOG2]]\n");
        return 2;
    }
    long n = argc > 2 ? atol(argv[2]) : 10000000;
    int sites_log2 = argc > 3 ? atoi(argv[3]) : 12;
    if (n < 1 || sites_log2 < 1 || sites_log2 > 20) {
        fprintf(stderr, "trace_gen: ALLOCATIONS >= 1, SITES_LOG2 1..20\n");
        return 2;
    }
    at_trace_options opts;
    at_trace_options_init(&opts);
    opts.path = argv[1];
    opts.overwrite = 1;
    opts.unwind = AT_UNWIND_FRAME_POINTERS;
    opts.buffer_limit = (size_t)256 << 20;
    at_tracer *tracer;
    int rc = at_tracer_open(&opts, &tracer);
    if (rc) {
        fprintf(stderr, "trace_gen: %s: %s\n", argv[1], at_strerror(rc));
        return 1;
    }
    traced = at_tracing_allocator(tracer, at_system_allocator());
    if (run(n, sites_log2) != 0)
        fprintf(stderr, "trace_gen: out of memory\n");
    rc = at_tracer_close(tracer);
    if (rc) {
        fprintf(stderr, "trace_gen: closing %s: %s\n", argv[1], at_strerror(rc));
        return 1;
    }
    return 0;
}
