/* alloctrace/annotate.h: a program describes its own allocators (pools,
 * arenas, regions, free lists) to alloctrace, so that `alloctrace run`
 * checks their blocks as it checks malloc's (docs/pools.md).
 *
 *   AT_POOL_CREATE(pool, name)            a pool exists; `name` (a C string,
 *                                         may be NULL) is what reports call it
 *   AT_POOL_ALLOC(pool, ptr, size, align) `pool` handed out `ptr`, `size`
 *                                         bytes aligned to `align`
 *   AT_POOL_FREE(pool, ptr, size, align)  `ptr` went back to `pool`
 *   AT_POOL_DESTROY(pool)                 the pool is gone, every block still
 *                                         in it with it (none of them leaks)
 *
 * `pool` is any pointer that names the allocator (its state, usually);
 * `size` and `align` are 0 where the pool does not know them (a free that
 * passes a size or an alignment has it checked against the allocation's;
 * an allocation without an alignment has none checked).  A pool used before
 * any AT_POOL_CREATE is created, unnamed, by its first use.  The calls only
 * record: the pool's memory is the pool's, alloctrace never frees it.
 *
 * Cost when the program does not run under alloctrace: one compare and a
 * branch predicted not taken per macro, and no library at link or run
 * time.  The functions are weak undefined references; the dynamic linker
 * binds them only when liballoctrace_preload.so (loaded by `alloctrace run`)
 * defines them, and otherwise they are NULL and the macros call nothing.
 * That needs code the dynamic linker relocates: a position-independent
 * executable (the default of Debian's and most distributions' gcc and
 * clang) or a shared library, dlopen'ed or not.  In an executable linked
 * with -no-pie the static linker resolves them to NULL itself, and the
 * macros stay off even under alloctrace.
 *
 * The arguments are evaluated only under alloctrace: give the macros none
 * with side effects.  C99 and C++11; the functions may be called from any
 * thread, and from a signal handler never.
 */
#ifndef ALLOCTRACE_ANNOTATE_H
#define ALLOCTRACE_ANNOTATE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Defined by liballoctrace_preload.so only (docs/abi.md).  Call them
 * through the macros, which test that they are there. */
extern void at_pool_create(const void *pool, const char *name) __attribute__((weak));
extern void at_pool_alloc(const void *pool, const void *ptr, size_t size, size_t align)
    __attribute__((weak));
extern void at_pool_free(const void *pool, const void *ptr, size_t size, size_t align)
    __attribute__((weak));
extern void at_pool_destroy(const void *pool) __attribute__((weak));

#ifdef __cplusplus
}
#endif

/* Whether `fn` was bound: a weak function's address, which the compiler
 * may not assume non-null. */
#define AT_ANNOTATE_BOUND_(fn) __builtin_expect(&(fn) != NULL, 0)

#define AT_POOL_CREATE(pool, name)                                                                 \
    do {                                                                                           \
        if (AT_ANNOTATE_BOUND_(at_pool_create))                                                    \
            at_pool_create((pool), (name));                                                        \
    } while (0)

#define AT_POOL_ALLOC(pool, ptr, size, align)                                                      \
    do {                                                                                           \
        if (AT_ANNOTATE_BOUND_(at_pool_alloc))                                                     \
            at_pool_alloc((pool), (ptr), (size), (align));                                         \
    } while (0)

#define AT_POOL_FREE(pool, ptr, size, align)                                                       \
    do {                                                                                           \
        if (AT_ANNOTATE_BOUND_(at_pool_free))                                                      \
            at_pool_free((pool), (ptr), (size), (align));                                          \
    } while (0)

#define AT_POOL_DESTROY(pool)                                                                      \
    do {                                                                                           \
        if (AT_ANNOTATE_BOUND_(at_pool_destroy))                                                   \
            at_pool_destroy((pool));                                                               \
    } while (0)

#endif
