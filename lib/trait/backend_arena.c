/* A bump arena over a caller's buffer.  The context sits at the start of
 * the buffer; blocks follow it.  Only the most recent live block can be
 * given back or resized in place, which is all a stack-like user needs and
 * all this backend is for: proving that the tracer decorates any backend. */
#include <alloctrace/backends.h>

#include <stdalign.h>
#include <stdint.h>
#include <string.h>

typedef struct arena {
    uintptr_t start; /* first byte after this header */
    uintptr_t end;   /* one past the buffer */
    uintptr_t top;   /* next free byte */
    uintptr_t last;  /* most recent live block, 0 when none */
    uintptr_t last_prev_top; /* top before `last` was carved, to give it back */
} arena;

static void *arena_alloc(void *ctx, at_layout l)
{
    arena *a = ctx;
    if (!a)
        return NULL;
    /* Round top up to the alignment without overflowing. */
    uintptr_t mask = (uintptr_t)l.align - 1;
    if (a->top > UINTPTR_MAX - mask)
        return NULL;
    uintptr_t p = (a->top + mask) & ~mask;
    /* A zero-size block still takes a byte so that every live block has
     * its own address, as the trait's contract promises. */
    size_t size = l.size ? l.size : 1;
    if (p > a->end || size > a->end - p)
        return NULL;
    a->last_prev_top = a->top;
    a->last = p;
    a->top = p + size;
    return (void *)p;
}

static void arena_dealloc(void *ctx, void *ptr, at_layout l)
{
    arena *a = ctx;
    (void)l;
    if (a && (uintptr_t)ptr == a->last) {
        a->top = a->last_prev_top;
        a->last = 0; /* the block before it is unknown: no further reclaim */
    }
}

static void *arena_realloc(void *ctx, void *ptr, at_layout old, size_t new_size)
{
    arena *a = ctx;
    if (!a)
        return NULL;
    if ((uintptr_t)ptr == a->last) {
        size_t size = new_size ? new_size : 1;
        if (size <= a->end - a->last) {
            a->top = a->last + size;
            return ptr;
        }
        return NULL;
    }
    void *p = arena_alloc(ctx, (at_layout){new_size, old.align});
    if (p)
        memcpy(p, ptr, old.size < new_size ? old.size : new_size);
    return p;
}

static const at_allocator_ops arena_ops = {
    .alloc = arena_alloc,
    .dealloc = arena_dealloc,
    .alloc_zeroed = NULL, /* the trait's default: alloc, then zero */
    .realloc = arena_realloc,
    .name = "arena",
};

at_allocator at_arena_allocator(void *buffer, size_t capacity)
{
    uintptr_t b = (uintptr_t)buffer;
    uintptr_t end = b + capacity;
    uintptr_t h = (b + alignof(arena) - 1) & ~(uintptr_t)(alignof(arena) - 1);
    if (!buffer || end < b || h < b || h > end || end - h < sizeof(arena))
        return (at_allocator){&arena_ops, NULL};
    arena *a = (arena *)h;
    a->start = h + sizeof(arena);
    a->end = end;
    a->top = a->start;
    a->last = 0;
    a->last_prev_top = 0;
    return (at_allocator){&arena_ops, a};
}

size_t at_arena_used(at_allocator alloc)
{
    if (alloc.ops != &arena_ops || !alloc.ctx)
        return 0;
    const arena *a = alloc.ctx;
    return (size_t)(a->top - a->start);
}
