/* The C library's allocator behind the trait, with Rust's System rule:
 * plain malloc/calloc/realloc only when their guaranteed alignment is
 * enough, posix_memalign otherwise. */
#include <alloctrace/backends.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* malloc's blocks are aligned to max_align_t only when the size is at least
 * that large; a 1-byte request may come back 1-aligned in principle, hence
 * the align <= size half of the rule. */
static int plain_malloc_ok(at_layout l)
{
    return l.align <= AT_SYSTEM_MIN_ALIGN && l.align <= l.size;
}

static void *aligned(at_layout l)
{
    void *p = NULL;
    size_t align = l.align < sizeof(void *) ? sizeof(void *) : l.align;
    int saved = errno;
    int rc = posix_memalign(&p, align, l.size);
    errno = saved;
    return rc == 0 ? p : NULL;
}

static void *sys_alloc(void *ctx, at_layout l)
{
    (void)ctx;
    return plain_malloc_ok(l) ? malloc(l.size) : aligned(l);
}

static void *sys_alloc_zeroed(void *ctx, at_layout l)
{
    (void)ctx;
    if (plain_malloc_ok(l))
        return calloc(1, l.size);
    void *p = aligned(l);
    if (p)
        memset(p, 0, l.size);
    return p;
}

static void sys_dealloc(void *ctx, void *ptr, at_layout l)
{
    (void)ctx;
    (void)l;
    free(ptr);
}

static void *sys_realloc(void *ctx, void *ptr, at_layout old, size_t new_size)
{
    (void)ctx;
    at_layout fresh = {new_size, old.align};
    if (plain_malloc_ok(fresh))
        return realloc(ptr, new_size);
    void *p = aligned(fresh);
    if (!p)
        return NULL;
    memcpy(p, ptr, old.size < new_size ? old.size : new_size);
    free(ptr);
    return p;
}

static const at_allocator_ops system_ops = {
    .alloc = sys_alloc,
    .dealloc = sys_dealloc,
    .alloc_zeroed = sys_alloc_zeroed,
    .realloc = sys_realloc,
    .name = "system",
};

at_allocator at_system_allocator(void)
{
    return (at_allocator){&system_ops, NULL};
}
