/* Backtrace capture with libunwind.
 *
 * at__backtrace() fills `frames` with up to `depth` return addresses, the
 * first being the return address into the caller of the function that
 * called at__backtrace() plus `skip` further frames dropped.  It never
 * allocates.  Cost: about 170 ns at depth 20 on the reference machine
 * (libunwind's fast trace with its per-thread cache).
 */
#ifndef AT_BACKTRACE_H
#define AT_BACKTRACE_H

#include <stdint.h>

void at__backtrace_init(void);
int at__backtrace(uintptr_t *frames, int depth, int skip);

/* fork(): libunwind takes locks of its own that nobody else can take
 * (pthread mutexes around its memory pools, on every cache miss and on a
 * thread's first and last backtrace; glibc's loader lock through
 * dl_iterate_phdr, which glibc 2.36 does not reset in a child).  So the
 * prepare handler closes a gate instead: at__backtrace_fork_prepare()
 * waits until no thread is inside libunwind and keeps new ones out (they
 * wait at the gate, holding no lock of the tracer) until parent or child
 * opens it again.  Each at__backtrace() marks its thread inside and
 * outside with plain stores into a slot of the thread's own, the forking
 * thread making them visible with membarrier(2); past 1,024 threads, or
 * without membarrier, with two atomic operations on a shared counter. */
void at__backtrace_fork_prepare(void);
/* The gate itself, for other code that takes locks nobody else can take:
 * the tracer's own dl_iterate_phdr calls (modules.c), which take glibc's
 * loader lock.  Returns what at__unwinder_leave needs. */
int *at__unwinder_enter(void);
void at__unwinder_leave(int *inside);
void at__backtrace_fork_parent(void);
void at__backtrace_fork_child(void);

/* The same by following frame pointers: several times cheaper, and exact
 * for code built with -fno-omit-frame-pointer; a frame without one ends
 * the walk early (or, when the register holds something else, the walk
 * stops at the first link that does not point further up this thread's
 * stack: it never reads outside the stack). */
int at__backtrace_fp(uintptr_t *frames, int depth, int skip);

#endif
