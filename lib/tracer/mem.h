/* The tracer's own memory.
 *
 * Everything the tracer keeps on the hot path (live-block entries, interned
 * stacks, uthash bucket arrays, record buffers) comes from here, never from
 * malloc: the tracer may itself be the process's malloc (preload), and it
 * must never call the allocator it traces.  Blocks come from mmap'd chunks,
 * carved into power-of-two size classes with one free list per class.
 *
 * Contract: at__mem_free() takes the size passed to at__mem_alloc().  Both
 * are thread-safe.  at__mem_alloc() returns NULL (never aborts) when the
 * system refuses memory or when the fault-injection budget is spent.
 */
#ifndef AT_MEM_H
#define AT_MEM_H

#include <stddef.h>
#include <stdint.h>

void *at__mem_alloc(size_t size);
void *at__mem_calloc(size_t size);
void at__mem_free(void *ptr, size_t size);

/* Fault injection for tests: after `n` more successful allocations every
 * at__mem_alloc fails, until at__mem_fail_after(-1) disarms it. */
void at__mem_fail_after(long n);

/* fork(): the pool's lock (and the region table's, inside it), taken last by the prepare handler (it nests
 * inside every other lock of the tracer and takes none itself) and
 * released after the fork in the parent and in the child. */
void at__mem_lock(void);
void at__mem_unlock(void);

/* The ranges the tracer has mapped for itself, and others it names (the
 * spool's mapping): fn(lo, hi) for each; returns how many.  The caller
 * holds at__mem_lock (the reachability scan, with every other thread
 * stopped), so the table cannot change under it. */
void at__mem_note_region(const void *lo, size_t size);
void at__mem_forget_region(const void *lo);
size_t at__mem_each_region(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg);
/* Ranges the table had no room for (the scan counts them as roots). */
uint64_t at__mem_unregistered(void);

/* Freed blocks of the live table's sizes keep their pages, for reuse, up
 * to this many bytes (and twice those in use); past that they go back. */
#define AT_MEM_KEEP ((size_t)64 << 20)

/* Bytes currently mapped for the tracer's own use (pages given back not
 * counted). */
size_t at__mem_mapped(void);

#endif
