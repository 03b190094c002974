/* Backtrace capture: a thin wrapper over libunwind's unw_backtrace.
 *
 * Relies on libunwind's local-only unwinder, which reads .eh_frame and keeps
 * its caches in memory it maps itself, so it never calls malloc and can run
 * inside an interposed malloc.
 */
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>

#include <alloctrace/tracer.h>

#include "backtrace.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_once(void)
{
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
}

void at__backtrace_init(void)
{
    pthread_once(&once, init_once);
}

/* The gate around libunwind (see backtrace.h): one counter of threads
 * inside per stripe, a thread's stripe chosen once, round robin. */
enum { GATE_STRIPES = 64 };
static struct {
    int inside;
    char pad[64 - sizeof(int)];
} gate_stripes[GATE_STRIPES] __attribute__((aligned(64)));
static int gate_closed;
static unsigned gate_next;
static __thread int gate_stripe __attribute__((tls_model("initial-exec"))) = -1;

int *at__unwinder_enter(void)
{
    if (__builtin_expect(gate_stripe < 0, 0))
        gate_stripe = (int)(__atomic_fetch_add(&gate_next, 1, __ATOMIC_RELAXED) % GATE_STRIPES);
    int *inside = &gate_stripes[gate_stripe].inside;
    for (;;) {
        /* Sequentially consistent on both sides: either the forking thread
         * sees this count, or this thread sees the gate closed. */
        __atomic_add_fetch(inside, 1, __ATOMIC_SEQ_CST);
        if (!__atomic_load_n(&gate_closed, __ATOMIC_SEQ_CST))
            return inside;
        __atomic_sub_fetch(inside, 1, __ATOMIC_RELEASE);
        while (__atomic_load_n(&gate_closed, __ATOMIC_ACQUIRE))
            sched_yield();
    }
}

void at__unwinder_leave(int *inside)
{
    __atomic_sub_fetch(inside, 1, __ATOMIC_RELEASE);
}

void at__backtrace_fork_prepare(void)
{
    __atomic_store_n(&gate_closed, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < GATE_STRIPES; i++)
        while (__atomic_load_n(&gate_stripes[i].inside, __ATOMIC_SEQ_CST))
            sched_yield();
}

void at__backtrace_fork_parent(void)
{
    __atomic_store_n(&gate_closed, 0, __ATOMIC_RELEASE);
}

void at__backtrace_fork_child(void)
{
    /* Only the forking thread goes on, and it was outside libunwind. */
    for (int i = 0; i < GATE_STRIPES; i++)
        gate_stripes[i].inside = 0;
    __atomic_store_n(&gate_closed, 0, __ATOMIC_RELEASE);
}

/* Frames dropped in addition to the caller's `skip`: this function itself
 * (frame 0 of unw_backtrace is the function that calls it). */
enum { OWN_FRAMES = 1, MAX_SKIP = 8 };

__attribute__((noinline)) int at__backtrace(uintptr_t *frames, int depth, int skip)
{
    void *buf[AT_MAX_STACK_DEPTH + OWN_FRAMES + MAX_SKIP];
    if (skip > MAX_SKIP)
        skip = MAX_SKIP;
    if (depth > AT_MAX_STACK_DEPTH)
        depth = AT_MAX_STACK_DEPTH;
    int drop = OWN_FRAMES + skip;
    int *inside = at__unwinder_enter();
    int n = unw_backtrace(buf, depth + drop);
    at__unwinder_leave(inside);
    int got = 0;
    for (int i = drop; i < n; i++)
        frames[got++] = (uintptr_t)buf[i];
    /* Keep the call from being turned into a tail call, which would remove
     * this frame and make the skip count wrong. */
    __asm__ volatile("" ::: "memory");
    return got;
}

/* The calling thread's stack, for bounds on the frame-pointer walk. */
static __thread uintptr_t stack_lo, stack_hi;

static int stack_bounds(void)
{
    if (stack_hi)
        return 1;
    pthread_attr_t attr;
    void *addr;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return 0;
    int ok = pthread_attr_getstack(&attr, &addr, &size) == 0;
    pthread_attr_destroy(&attr);
    if (ok) {
        stack_lo = (uintptr_t)addr;
        stack_hi = (uintptr_t)addr + size;
    }
    return ok;
}

__attribute__((noinline)) int at__backtrace_fp(uintptr_t *frames, int depth, int skip)
{
    if (!stack_bounds())
        return at__backtrace(frames, depth, skip + 1);
    if (depth > AT_MAX_STACK_DEPTH)
        depth = AT_MAX_STACK_DEPTH;
    /* fp[0]: the caller's frame pointer; fp[1]: the return address into
     * the caller.  The first return address is into our caller, which is
     * what at__backtrace counts as frame 1. */
    const uintptr_t *fp = __builtin_frame_address(0);
    int got = 0, seen = 0;
    while (got < depth) {
        uintptr_t here = (uintptr_t)fp;
        if (here < stack_lo || here > stack_hi - 2 * sizeof(uintptr_t) || here % sizeof(uintptr_t))
            break;
        uintptr_t ret = fp[1];
        if (ret < 4096)
            break;
        if (seen++ >= skip)
            frames[got++] = ret;
        const uintptr_t *next = (const uintptr_t *)fp[0];
        if ((uintptr_t)next <= here)
            break; /* frames only go up the stack */
        fp = next;
    }
    __asm__ volatile("" ::: "memory");
    return got;
}
