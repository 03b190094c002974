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
#include <stdint.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <alloctrace/tracer.h>

#include "backtrace.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void gate_init(void);

static void init_once(void)
{
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    gate_init();
}

void at__backtrace_init(void)
{
    pthread_once(&once, init_once);
}

/* The gate around libunwind (see backtrace.h).
 *
 * The fast way, where the kernel has membarrier(2): each thread owns a
 * slot of its own and marks itself inside with plain stores, no atomic
 * read-modify-write and no fence; the forking thread closes the gate and
 * then has the kernel run a full memory barrier on every thread of the
 * process (MEMBARRIER_CMD_PRIVATE_EXPEDITED), after which every thread
 * either is seen inside, and waited for, or sees the gate closed.  That
 * costs the fork a system call and each backtrace nothing measurable.
 * Threads beyond the slots, and every thread where membarrier is missing,
 * count themselves in shared stripes with sequentially consistent atomic
 * operations instead (two locked instructions a backtrace). */
enum { GATE_STRIPES = 64, GATE_SLOTS = 1024 };
typedef struct gate_slot {
    int owner;  /* atomic: 1 while a thread has it */
    int inside; /* written by its owner only */
    char pad[64 - 2 * sizeof(int)];
} gate_slot;
static gate_slot gate_slots[GATE_SLOTS] __attribute__((aligned(64)));
static struct {
    int inside;
    char pad[64 - sizeof(int)];
} gate_stripes[GATE_STRIPES] __attribute__((aligned(64)));
static int gate_closed;
static int gate_fast;  /* membarrier is registered: slots are in use */
static int gate_ready; /* atomic: gate_init has run */
static unsigned gate_next;
static pthread_key_t gate_key; /* its destructor gives a thread's slot back */
/* -1: not chosen yet; >= 0: a slot; <= -2: stripe -(n + 2) */
static __thread int gate_mine __attribute__((tls_model("initial-exec"))) = -1;

static int membarrier(int cmd)
{
    return (int)syscall(__NR_membarrier, cmd, 0, 0);
}

/* Runs in the exiting thread: what it still unwinds from other
 * destructors (a traced malloc there) is counted in a stripe. */
static void release_slot(void *arg)
{
    gate_slot *g = &gate_slots[(intptr_t)arg - 1];
    gate_mine = -2;
    g->inside = 0;
    __atomic_store_n(&g->owner, 0, __ATOMIC_RELEASE);
}

static void gate_init(void)
{
    gate_fast = pthread_key_create(&gate_key, release_slot) == 0 &&
                membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
    __atomic_store_n(&gate_ready, 1, __ATOMIC_RELEASE);
}

/* The calling thread's slot, or a stripe when no slot can be had. */
static void choose(void)
{
    unsigned start = __atomic_fetch_add(&gate_next, 1, __ATOMIC_RELAXED);
    for (unsigned i = 0; gate_fast && i < GATE_SLOTS; i++) {
        unsigned k = (start + i) % GATE_SLOTS;
        int free_ = 0;
        if (__atomic_load_n(&gate_slots[k].owner, __ATOMIC_RELAXED) == 0 &&
            __atomic_compare_exchange_n(&gate_slots[k].owner, &free_, 1, 0, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED)) {
            if (pthread_setspecific(gate_key, (void *)(intptr_t)(k + 1)) == 0) {
                gate_mine = (int)k;
                return;
            }
            __atomic_store_n(&gate_slots[k].owner, 0, __ATOMIC_RELEASE);
            break;
        }
    }
    gate_mine = -2 - (int)(start % GATE_STRIPES);
}

int *at__unwinder_enter(void)
{
    int stripe = 0; /* before gate_init (the preload library's bootstrap) */
    if (__builtin_expect(gate_mine == -1, 0) && __atomic_load_n(&gate_ready, __ATOMIC_ACQUIRE))
        choose();
    if (gate_mine >= 0) {
        int *inside = &gate_slots[gate_mine].inside;
        for (;;) {
            __atomic_store_n(inside, *inside + 1, __ATOMIC_RELAXED);
            /* The compiler keeps the order; the forking thread's membarrier
             * stands for the processor's fence. */
            __atomic_signal_fence(__ATOMIC_SEQ_CST);
            if (!__atomic_load_n(&gate_closed, __ATOMIC_RELAXED))
                return inside;
            __atomic_store_n(inside, *inside - 1, __ATOMIC_RELEASE);
            while (__atomic_load_n(&gate_closed, __ATOMIC_ACQUIRE))
                sched_yield();
        }
    }
    if (gate_mine <= -2)
        stripe = -2 - gate_mine;
    int *inside = &gate_stripes[stripe].inside;
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
    if (gate_mine >= 0)
        __atomic_store_n(inside, *inside - 1, __ATOMIC_RELEASE);
    else
        __atomic_sub_fetch(inside, 1, __ATOMIC_RELEASE);
}

void at__backtrace_fork_prepare(void)
{
    __atomic_store_n(&gate_closed, 1, __ATOMIC_SEQ_CST);
    if (gate_fast && membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0)
        __atomic_store_n(&gate_fast, 0, __ATOMIC_RELAXED); /* cannot happen once registered */
    for (int i = 0; i < GATE_SLOTS; i++)
        while (__atomic_load_n(&gate_slots[i].inside, __ATOMIC_ACQUIRE))
            sched_yield();
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
    /* Only the forking thread goes on, and it was outside libunwind: the
     * other threads' slots are free again.  The child is a new process
     * for membarrier: it registers again, or counts in stripes. */
    for (int i = 0; i < GATE_SLOTS; i++) {
        gate_slots[i].inside = 0;
        if (i != gate_mine)
            gate_slots[i].owner = 0;
    }
    for (int i = 0; i < GATE_STRIPES; i++)
        gate_stripes[i].inside = 0;
    if (gate_fast && membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0) {
        gate_fast = 0;
        if (gate_mine >= 0)
            gate_mine = -1; /* chooses a stripe next time */
    }
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
