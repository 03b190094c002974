/* The tracing allocator: an at_allocator that decorates another.
 *
 * Like SQLite's fault-injecting allocator, it keeps the inner allocator and
 * forwards to it, recording around each call through tracer.c's hot path.
 * Allocations are recorded after the backend returns (the pointer is only
 * known then); releases are recorded before the block goes back, so an
 * address reused by another thread at once still pairs correctly.
 */
#include <stdlib.h>

#include <alloctrace/alloctrace.h>

#include "tracer_internal.h"

struct at_traced_backend {
    struct at_traced_backend *next;
    at_tracer *tracer;
    at_allocator inner;
};

/* Frames of this file between the user's call and tracer.c: the op itself. */
enum { SKIP = 1 };

static at_layout layout_of(const at_block_info *b)
{
    return (at_layout){(size_t)b->size, (size_t)1 << b->align_log2};
}

static void *traced_alloc(void *ctx, at_layout layout)
{
    struct at_traced_backend *tb = ctx;
    void *p = at_alloc(tb->inner, layout);
    if (p)
        at__trace_alloc(tb->tracer, p, layout.size, layout.align, AT_FAMILY_ALLOCATOR,
                        AT_OP_ALLOC, SKIP);
    return p;
}

static void *traced_alloc_zeroed(void *ctx, at_layout layout)
{
    struct at_traced_backend *tb = ctx;
    void *p = at_alloc_zeroed(tb->inner, layout);
    if (p)
        at__trace_alloc(tb->tracer, p, layout.size, layout.align, AT_FAMILY_ALLOCATOR,
                        AT_OP_ALLOC_ZEROED, SKIP);
    return p;
}

static void traced_dealloc(void *ctx, void *ptr, at_layout layout)
{
    struct at_traced_backend *tb = ctx;
    at_block_info actual;
    if (at__trace_release(tb->tracer, ptr, layout.size, layout.align, AT_FAMILY_ALLOCATOR,
                          AT_OP_DEALLOC, &actual, NULL, SKIP))
        at_dealloc(tb->inner, ptr, layout_of(&actual));
}

static void *traced_realloc(void *ctx, void *ptr, at_layout old_layout, size_t new_size)
{
    struct at_traced_backend *tb = ctx;
    at_block_info actual;
    at_rec_lifetime pending;
    if (!at__trace_release(tb->tracer, ptr, old_layout.size, old_layout.align,
                           AT_FAMILY_ALLOCATOR, AT_OP_REALLOC, &actual, &pending, SKIP))
        return NULL;
    at_layout real_old = layout_of(&actual);
    void *p = at_realloc(tb->inner, ptr, real_old, new_size);
    if (!p) {
        at__trace_release_undo(tb->tracer, &actual);
        return NULL;
    }
    at__trace_release_commit(tb->tracer, &pending);
    at__trace_alloc(tb->tracer, p, new_size, real_old.align, AT_FAMILY_ALLOCATOR, AT_OP_REALLOC,
                    SKIP);
    return p;
}

static const at_allocator_ops tracing_ops = {
    .alloc = traced_alloc,
    .dealloc = traced_dealloc,
    .alloc_zeroed = traced_alloc_zeroed,
    .realloc = traced_realloc,
    .name = "tracing",
};

at_allocator at_tracing_allocator(at_tracer *tracer, at_allocator inner)
{
    struct at_traced_backend *tb = calloc(1, sizeof *tb);
    if (!tracer || !tb) {
        /* Cannot decorate: hand back the backend itself, which at least
         * keeps the program working. */
        free(tb);
        return inner;
    }
    tb->tracer = tracer;
    tb->inner = inner;
    pthread_mutex_lock(&tracer->backends_mu);
    tb->next = tracer->backends;
    tracer->backends = tb;
    pthread_mutex_unlock(&tracer->backends_mu);
    return (at_allocator){&tracing_ops, tb};
}

void at__tracing_backends_free(at_tracer *tracer)
{
    while (tracer->backends) {
        struct at_traced_backend *tb = tracer->backends;
        tracer->backends = tb->next;
        free(tb);
    }
}
