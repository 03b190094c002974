/* Backtrace capture: a thin wrapper over libunwind's unw_backtrace.
 *
 * Relies on libunwind's local-only unwinder, which reads .eh_frame and keeps
 * its caches in memory it maps itself, so it never calls malloc and can run
 * inside an interposed malloc.
 */
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <pthread.h>

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
    int n = unw_backtrace(buf, depth + drop);
    int got = 0;
    for (int i = drop; i < n; i++)
        frames[got++] = (uintptr_t)buf[i];
    /* Keep the call from being turned into a tail call, which would remove
     * this frame and make the skip count wrong. */
    __asm__ volatile("" ::: "memory");
    return got;
}
