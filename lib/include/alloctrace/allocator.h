/* The allocator trait: a const table of operations and a context pointer.
 *
 * Modelled on Rust's std::alloc::GlobalAlloc.  The contract, for every
 * implementation and every caller:
 *
 *  - Every request carries a valid at_layout (see layout.h).  The
 *    dispatchers below check it: the GlobalAlloc-style ones return NULL for
 *    an invalid layout, the Result-style ones return the layout's error code.
 *    Implementations may assume the layout they receive is valid.
 *  - A returned block is at least layout.size bytes long and its address is
 *    a multiple of layout.align.
 *  - dealloc() must receive a pointer this allocator returned and not yet
 *    released, together with the very layout the block was allocated with
 *    (for a block produced by realloc, the old alignment and the new size).
 *    Anything else is undefined for the backend; the tracing allocator is
 *    the tool that catches it.
 *  - Zero-size requests are allowed: the allocator returns either NULL
 *    (treated as failure by the Result-style dispatchers) or a unique
 *    pointer that must be released like any other block.
 *  - NULL from alloc, alloc_zeroed or realloc means the request failed and
 *    nothing changed: after a failed realloc the old block is still live
 *    with its old layout.  dealloc(NULL, ...) is never called by the
 *    dispatchers (they ignore a NULL pointer).
 *  - Thread safety is a property of the backend and is stated in its
 *    header: the system backend and the tracing allocator may be called
 *    from any number of threads at once, and a block may be released on a
 *    different thread than the one that allocated it; the arena backend is
 *    single-threaded.
 *  - Operations must not clobber errno on success.
 *
 * The ops table:
 *  - alloc and dealloc are required.
 *  - alloc_zeroed is optional; when NULL the dispatcher calls alloc and
 *    zeroes the block.
 *  - realloc is optional; when NULL the dispatcher allocates
 *    (new_size, old.align), copies min(old.size, new_size) bytes and
 *    deallocates the old block.  new_size together with old.align must form
 *    a valid layout.
 *  - name is a short, static, human-readable name (may be NULL).
 */
#ifndef ALLOCTRACE_ALLOCATOR_H
#define ALLOCTRACE_ALLOCATOR_H

#include <alloctrace/error.h>
#include <alloctrace/export.h>
#include <alloctrace/layout.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct at_allocator_ops {
    void *(*alloc)(void *ctx, at_layout layout);
    void (*dealloc)(void *ctx, void *ptr, at_layout layout);
    void *(*alloc_zeroed)(void *ctx, at_layout layout);
    void *(*realloc)(void *ctx, void *ptr, at_layout old_layout, size_t new_size);
    const char *name;
} at_allocator_ops;

typedef struct at_allocator {
    const at_allocator_ops *ops;
    void *ctx;
} at_allocator;

/* GlobalAlloc style: NULL on failure (invalid layout or out of memory). */
AT_API void *at_alloc(at_allocator a, at_layout layout);
AT_API void *at_alloc_zeroed(at_allocator a, at_layout layout);
AT_API void at_dealloc(at_allocator a, void *ptr, at_layout layout);
AT_API void *at_realloc(at_allocator a, void *ptr, at_layout old_layout, size_t new_size);

/* Result style: 0 and *out set, or a layout error code, or AT_E_NOMEM; *out
 * is untouched on failure.  at_try_realloc leaves the old block live when it
 * fails. */
AT_API int at_try_alloc(at_allocator a, at_layout layout, void **out);
AT_API int at_try_alloc_zeroed(at_allocator a, at_layout layout, void **out);
AT_API int at_try_realloc(at_allocator a, void *ptr, at_layout old_layout, size_t new_size,
                          void **out);

#ifdef __cplusplus
}
#endif
#endif
