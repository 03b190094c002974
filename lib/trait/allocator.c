/* Dispatchers for the allocator trait: validate the layout, call the op,
 * and supply GlobalAlloc's provided behaviour for the optional ops. */
#include <alloctrace/allocator.h>

#include <string.h>

void *at_alloc(at_allocator a, at_layout layout)
{
    if (at_layout_check(layout) != AT_OK)
        return NULL;
    return a.ops->alloc(a.ctx, layout);
}

void *at_alloc_zeroed(at_allocator a, at_layout layout)
{
    if (at_layout_check(layout) != AT_OK)
        return NULL;
    if (a.ops->alloc_zeroed)
        return a.ops->alloc_zeroed(a.ctx, layout);
    void *p = a.ops->alloc(a.ctx, layout);
    if (p && layout.size)
        memset(p, 0, layout.size);
    return p;
}

void at_dealloc(at_allocator a, void *ptr, at_layout layout)
{
    if (ptr)
        a.ops->dealloc(a.ctx, ptr, layout);
}

void *at_realloc(at_allocator a, void *ptr, at_layout old_layout, size_t new_size)
{
    at_layout new_layout;
    if (at_layout_check(old_layout) != AT_OK ||
        at_layout_from_size_align(new_size, old_layout.align, &new_layout) != AT_OK)
        return NULL;
    if (a.ops->realloc)
        return a.ops->realloc(a.ctx, ptr, old_layout, new_size);
    /* GlobalAlloc::realloc's provided body. */
    void *fresh = a.ops->alloc(a.ctx, new_layout);
    if (!fresh)
        return NULL;
    size_t n = old_layout.size < new_size ? old_layout.size : new_size;
    if (n)
        memcpy(fresh, ptr, n);
    a.ops->dealloc(a.ctx, ptr, old_layout);
    return fresh;
}

static int result(void *p, void **out)
{
    if (!p)
        return AT_E_NOMEM;
    *out = p;
    return AT_OK;
}

int at_try_alloc(at_allocator a, at_layout layout, void **out)
{
    int rc = at_layout_check(layout);
    return rc != AT_OK ? rc : result(at_alloc(a, layout), out);
}

int at_try_alloc_zeroed(at_allocator a, at_layout layout, void **out)
{
    int rc = at_layout_check(layout);
    return rc != AT_OK ? rc : result(at_alloc_zeroed(a, layout), out);
}

int at_try_realloc(at_allocator a, void *ptr, at_layout old_layout, size_t new_size,
                   void **out)
{
    at_layout new_layout;
    int rc = at_layout_check(old_layout);
    if (rc == AT_OK)
        rc = at_layout_from_size_align(new_size, old_layout.align, &new_layout);
    return rc != AT_OK ? rc : result(at_realloc(a, ptr, old_layout, new_size), out);
}
