/* A test-and-test-and-set spin lock for the tracer's short critical sections
 * (a hash lookup, a list push).  Uncontended it costs one atomic exchange
 * and one store; under contention it spins briefly and then yields, so a
 * preempted holder does not burn the other core. */
#ifndef AT_SPINLOCK_H
#define AT_SPINLOCK_H

#include <sched.h>

typedef struct {
    int locked;
} at__spinlock;

#define AT_SPINLOCK_INIT {0}

static inline void at__spin_lock(at__spinlock *l)
{
    for (unsigned spins = 0;; spins++) {
        if (!__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE))
            return;
        while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED)) {
            if (++spins > 64) {
                sched_yield();
                spins = 0;
            } else {
                __builtin_ia32_pause();
            }
        }
    }
}

static inline void at__spin_unlock(at__spinlock *l)
{
    __atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}

#endif
