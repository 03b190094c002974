/* The program's own pools: allocators that carve blocks out of memory
 * they got elsewhere (usually malloc'd chunks), described by the program
 * with the macros of <alloctrace/annotate.h> (docs/pools.md).
 *
 * Each pool is an allocator of its own: a live table of its own (live.h),
 * keyed by address, so that a pool's block never meets the malloc block at
 * the same address, nor another pool's.  A pool block's lifetime travels as
 * any other (the sink's alloc and release, family AT_FAMILY_POOL), followed
 * by an AT_REC_POOL_REF that names its pool and the malloc block holding it;
 * pools go out as AT_REC_POOL records.  A pool's release is checked as a
 * free is (layout mismatch, misaligned, interior, double and invalid
 * frees, with the same records) and never reaches the allocator: the pool
 * owns the memory, the tracer only records.
 *
 * Contract: every function takes the tracer (never NULL) and is called by
 * the preload library's exported entry points with the thread marked
 * untraced (its own allocations are not the program's); `skip` as for
 * at__trace_alloc.  They take pools_mu (tracer_internal.h) around the
 * change and never call malloc.  A pointer no AT_POOL_CREATE named is a
 * pool created, unnamed, by its first use.  The tracer's memory running
 * out makes a block untracked (counted in lost_events), never a finding.
 */
#ifndef AT_POOLS_H
#define AT_POOLS_H

#include <stddef.h>
#include <stdint.h>

#include "tracer_internal.h"

/* A pool is created (a second create of a live pool destroys it first). */
void at__pool_create(at_tracer *t, const void *pool, const char *name, int skip);

/* `ptr` was handed out by `pool`: `size` bytes, aligned to `align` (0: the
 * pool does not say; its release's alignment is then not checked). */
void at__pool_alloc(at_tracer *t, const void *pool, void *ptr, size_t size, size_t align,
                    int skip);

/* `ptr` was given back to `pool`, with the layout the pool knows (0: not
 * known, each of size and align on its own). */
void at__pool_free(at_tracer *t, const void *pool, void *ptr, size_t size, size_t align,
                   int skip);

/* The pool is gone, and every block still in it with it (released by the
 * destroy, never leaked).  A pool never created is no finding. */
void at__pool_destroy(at_tracer *t, const void *pool, int skip);

/* A forked child's first traced call: every live pool and its blocks go
 * to `th`'s (new) spool, the blocks as AT_OP_INHERITED allocations. */
void at__pools_dump_inherited(at_tracer *t, at_thread *th);

/* The reachability scan (reach.c): the live blocks of every pool, counted
 * and walked (fn(block, arg) for each, its family AT_FAMILY_POOL).  The
 * caller holds pools_mu (the scan holds every lock of the tracer); fn must
 * not call into the tracer.  No pool: 0 and no call. */
uint64_t at__pools_live_count(at_tracer *t);
void at__pools_foreach_block(at_tracer *t, void (*fn)(const at_block_info *, void *), void *arg);

/* Frees every pool's state (at__tracer_free). */
void at__pools_free(at_tracer *t);

#endif
