/* Monotonic time for trace events, in nanoseconds.  clock_gettime goes
 * through the vDSO here: about 20 ns, no system call. */
#ifndef AT_CLOCK_H
#define AT_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t at__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The same clock read through the CPU's time-stamp counter, for the hot
 * path: under a hypervisor's clock source (kvm-clock here) clock_gettime
 * costs several times more than rdtsc.  The counter is scaled to
 * CLOCK_MONOTONIC by one calibration made at least 10 ms after the start
 * (a few parts per million); until then, and where the counter is not
 * invariant, clock_gettime is used. */
typedef struct at_fast_clock {
    uint64_t tsc0, ns0;    /* taken together at the start */
    double ns_per_tick;    /* set once calibrated */
    int usable;            /* invariant TSC (x86-64) */
    int calibrated;        /* atomic */
} at_fast_clock;

void at__fast_clock_init(at_fast_clock *c);

/* Calibrates when enough time has passed; called off the hot path. */
void at__fast_clock_tick(at_fast_clock *c);

#if defined(__x86_64__)
#include <x86intrin.h>
static inline uint64_t at__fast_now_ns(const at_fast_clock *c)
{
    if (__atomic_load_n(&c->calibrated, __ATOMIC_ACQUIRE))
        return c->ns0 + (uint64_t)((double)(__rdtsc() - c->tsc0) * c->ns_per_tick);
    return at__now_ns();
}
#else
static inline uint64_t at__fast_now_ns(const at_fast_clock *c)
{
    (void)c;
    return at__now_ns();
}
#endif

#endif
