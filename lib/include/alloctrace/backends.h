/* Allocator backends shipped with alloctrace.
 *
 * Each returns an at_allocator by value; the value may be copied freely.
 */
#ifndef ALLOCTRACE_BACKENDS_H
#define ALLOCTRACE_BACKENDS_H

#include <alloctrace/allocator.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The C library's allocator, with Rust's System rule: malloc when
 * align <= AT_SYSTEM_MIN_ALIGN and align <= size, posix_memalign otherwise;
 * calloc for zeroed blocks and realloc for growth when the same condition
 * allows, the trait's default paths otherwise.  Thread-safe. */
#define AT_SYSTEM_MIN_ALIGN _Alignof(max_align_t)
AT_API at_allocator at_system_allocator(void);

/* A bump arena over a caller-provided buffer of `capacity` bytes.  Honours
 * every alignment; an exhausted arena fails with NULL (AT_E_NOMEM from the
 * Result-style dispatchers).  dealloc of the most recently allocated live
 * block gives its bytes back; any other dealloc is a no-op.  realloc of the
 * most recent block grows or shrinks it in place when it fits.
 * Single-threaded.  The returned allocator's context lives inside `buffer`
 * (at its start, suitably aligned), so the arena needs no other memory;
 * buffer must outlive every use, and capacity must hold the context
 * (at_arena_allocator returns an allocator whose every request fails when
 * it does not). */
AT_API at_allocator at_arena_allocator(void *buffer, size_t capacity);

/* Bytes currently in use by an arena (including alignment padding),
 * 0 for an allocator that is not an arena. */
AT_API size_t at_arena_used(at_allocator arena);

#ifdef __cplusplus
}
#endif
#endif
