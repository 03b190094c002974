/* Stack interning (see stacks.h).
 *
 * Relies on mem.c for memory and on the caller for the per-thread cache.
 * Cost on a cache hit: one hash over the frames and one compare, about
 * 10 ns at depth 20; on a miss, one spin lock and a bucket walk.
 */
#include <string.h>

#include "mem.h"
#include "stacks.h"

/* Four independent lanes, so the multiplies overlap instead of forming one
 * chain of `depth` dependent steps; folded together at the end. */
static uint64_t hash_frames(const uintptr_t *frames, uint32_t depth)
{
    const uint64_t k = 0xff51afd7ed558ccdull;
    uint64_t a = 0x9e3779b97f4a7c15ull ^ depth, b = 0xc2b2ae3d27d4eb4full, c = 0x165667b19e3779f9ull,
             d = 0x27d4eb2f165667c5ull;
    uint32_t i = 0;
    for (; i + 4 <= depth; i += 4) {
        a = (a ^ frames[i]) * k;
        b = (b ^ frames[i + 1]) * k;
        c = (c ^ frames[i + 2]) * k;
        d = (d ^ frames[i + 3]) * k;
    }
    for (; i < depth; i++)
        a = (a ^ frames[i]) * k;
    uint64_t h = a ^ (b >> 7 | b << 57) ^ (c >> 19 | c << 45) ^ (d >> 31 | d << 33);
    h ^= h >> 32;
    h *= k;
    h ^= h >> 29;
    return h ? h : 1; /* 0 marks an empty cache slot */
}

static int same(const at_stack *s, uint64_t hash, const uintptr_t *frames, uint32_t depth)
{
    return s->hash == hash && s->depth == depth &&
           memcmp(s->frames, frames, depth * sizeof *frames) == 0;
}

int at__stacks_init(at_stacks *st)
{
    memset(st, 0, sizeof *st);
    st->nodes.next_id = 1;
    return 0;
}

static void destroy_nodes(at_stack_nodes *ns)
{
    for (uint32_t b = 0; b < ns->nbuckets; b++) {
        at_stack_node *n = ns->buckets[b];
        while (n) {
            at_stack_node *next = n->chain;
            at__mem_free(n, sizeof *n);
            n = next;
        }
    }
    at__mem_free(ns->buckets, ns->nbuckets * sizeof *ns->buckets);
}

void at__stacks_destroy(at_stacks *st)
{
    for (int i = 0; i < AT_STACK_SHARDS; i++) {
        at_stack_shard *sh = &st->shards[i];
        for (uint32_t b = 0; b < sh->nbuckets; b++) {
            at_stack *s = sh->buckets[b];
            while (s) {
                at_stack *next = s->chain;
                at__mem_free(s, sizeof *s + s->depth * sizeof(uintptr_t));
                s = next;
            }
        }
        at__mem_free(sh->buckets, sh->nbuckets * sizeof *sh->buckets);
    }
    destroy_nodes(&st->nodes);
    memset(st, 0, sizeof *st);
}

/* Doubles the bucket array when the load passes 1; on failure the table
 * just stays denser. */
static void grow(at_stack_shard *sh)
{
    uint32_t n = sh->nbuckets ? sh->nbuckets * 2 : 64;
    at_stack **b = at__mem_calloc(n * sizeof *b);
    if (!b)
        return;
    for (uint32_t i = 0; i < sh->nbuckets; i++) {
        at_stack *s = sh->buckets[i];
        while (s) {
            at_stack *next = s->chain;
            uint32_t k = (uint32_t)(s->hash >> 6) & (n - 1);
            s->chain = b[k];
            b[k] = s;
            s = next;
        }
    }
    at__mem_free(sh->buckets, sh->nbuckets * sizeof *sh->buckets);
    sh->buckets = b;
    sh->nbuckets = n;
}

/* ---- the call tree ---------------------------------------------------------------- */

static uint64_t hash_node(uint32_t parent, uintptr_t ip)
{
    uint64_t h = ((uint64_t)parent << 32 ^ ip) * 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ h >> 29;
}

static uint32_t node_bucket(uint32_t parent, uintptr_t ip, uint32_t nbuckets)
{
    return (uint32_t)hash_node(parent, ip) & (nbuckets - 1);
}

/* Doubles the bucket array when the load passes 1; on failure the table
 * just stays denser. */
static void grow_nodes(at_stack_nodes *ns)
{
    uint32_t n = ns->nbuckets ? ns->nbuckets * 2 : 1024;
    at_stack_node **b = at__mem_calloc(n * sizeof *b);
    if (!b)
        return;
    for (uint32_t i = 0; i < ns->nbuckets; i++) {
        at_stack_node *x = ns->buckets[i];
        while (x) {
            at_stack_node *next = x->chain;
            uint32_t k = node_bucket(x->parent, x->ip, n);
            x->chain = b[k];
            b[k] = x;
            x = next;
        }
    }
    at__mem_free(ns->buckets, ns->nbuckets * sizeof *ns->buckets);
    ns->buckets = b;
    ns->nbuckets = n;
}

/* The node (parent, ip), made and queued for the writer if new; NULL when
 * the tracer's memory is exhausted.  Under the nodes' lock. */
static at_stack_node *node_of(at_stacks *st, uint32_t parent, uint32_t depth, uintptr_t ip)
{
    at_stack_nodes *ns = &st->nodes;
    if (ns->nbuckets) {
        for (at_stack_node *n = ns->buckets[node_bucket(parent, ip, ns->nbuckets)]; n; n = n->chain)
            if (n->parent == parent && n->ip == ip)
                return n;
    }
    if (ns->count >= ns->nbuckets)
        grow_nodes(ns);
    at_stack_node *n = ns->nbuckets ? at__mem_alloc(sizeof *n) : NULL;
    if (!n)
        return NULL;
    n->ip = ip;
    n->parent = parent;
    n->depth = depth;
    n->id = ns->next_id++;
    uint32_t k = node_bucket(parent, ip, ns->nbuckets);
    n->chain = ns->buckets[k];
    ns->buckets[k] = n;
    ns->count++;
    at_stack_node *head = __atomic_load_n(&st->unwritten_nodes, __ATOMIC_RELAXED);
    do
        n->next_unwritten = head;
    while (!__atomic_compare_exchange_n(&st->unwritten_nodes, &head, n, 1, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
    return n;
}

/* The node of frames[0], walking down from the outermost frame and adding
 * the nodes not known yet; 0 when memory ran out. */
static uint32_t intern_nodes(at_stacks *st, const uintptr_t *frames, uint32_t depth)
{
    at__spin_lock(&st->nodes.lock);
    uint32_t id = 0;
    for (uint32_t level = depth; level-- > 0;) {
        at_stack_node *n = node_of(st, id, depth - level, frames[level]);
        if (!n) {
            id = 0;
            break;
        }
        id = n->id;
    }
    at__spin_unlock(&st->nodes.lock);
    return id;
}

/* ---- whole stacks ------------------------------------------------------------------ */

uint32_t at__stacks_intern(at_stacks *st, at_stack_cache *cache, const uintptr_t *frames,
                           uint32_t depth)
{
    uint64_t h = hash_frames(frames, depth);
    uint32_t slot = (uint32_t)(h >> 20) & (AT_STACK_CACHE - 1);
    if (cache && cache->hash[slot] == h && same(cache->stack[slot], h, frames, depth))
        return cache->stack[slot]->id;

    at_stack_shard *sh = &st->shards[h & (AT_STACK_SHARDS - 1)];
    at__spin_lock(&sh->lock);
    at_stack *s = NULL;
    if (sh->nbuckets) {
        for (s = sh->buckets[(h >> 6) & (sh->nbuckets - 1)]; s; s = s->chain)
            if (same(s, h, frames, depth))
                break;
    }
    if (!s) {
        if (sh->count >= sh->nbuckets)
            grow(sh);
        s = sh->nbuckets ? at__mem_alloc(sizeof *s + depth * sizeof *frames) : NULL;
        if (!s) {
            at__spin_unlock(&sh->lock);
            return 0;
        }
        s->id = intern_nodes(st, frames, depth);
        if (!s->id) {
            at__mem_free(s, sizeof *s + depth * sizeof *frames);
            at__spin_unlock(&sh->lock);
            return 0;
        }
        s->hash = h;
        s->depth = depth;
        memcpy(s->frames, frames, depth * sizeof *frames);
        uint32_t k = (uint32_t)(h >> 6) & (sh->nbuckets - 1);
        s->chain = sh->buckets[k];
        sh->buckets[k] = s;
        sh->count++;
        at_stack *head = __atomic_load_n(&st->unwritten, __ATOMIC_RELAXED);
        do
            s->next_unwritten = head;
        while (!__atomic_compare_exchange_n(&st->unwritten, &head, s, 1, __ATOMIC_RELEASE,
                                            __ATOMIC_RELAXED));
    }
    at__spin_unlock(&sh->lock);
    if (cache) {
        cache->hash[slot] = h;
        cache->stack[slot] = s;
    }
    return s->id;
}

at_stack *at__stacks_take_unwritten(at_stacks *st)
{
    return __atomic_exchange_n(&st->unwritten, NULL, __ATOMIC_ACQUIRE);
}

at_stack_node *at__stacks_take_unwritten_nodes(at_stacks *st)
{
    return __atomic_exchange_n(&st->unwritten_nodes, NULL, __ATOMIC_ACQUIRE);
}

void at__stacks_lock_all(at_stacks *st)
{
    for (int i = 0; i < AT_STACK_SHARDS; i++)
        at__spin_lock(&st->shards[i].lock);
    at__spin_lock(&st->nodes.lock);
}

void at__stacks_unlock_all(at_stacks *st)
{
    at__spin_unlock(&st->nodes.lock);
    for (int i = AT_STACK_SHARDS - 1; i >= 0; i--)
        at__spin_unlock(&st->shards[i].lock);
}

void at__stacks_foreach(at_stacks *st, void (*fn)(const at_stack *s, void *arg), void *arg)
{
    for (int i = 0; i < AT_STACK_SHARDS; i++) {
        const at_stack_shard *sh = &st->shards[i];
        for (uint32_t b = 0; sh->buckets && b < sh->nbuckets; b++)
            for (const at_stack *s = sh->buckets[b]; s; s = s->chain)
                fn(s, arg);
    }
}

void at__stacks_foreach_node(at_stacks *st, void (*fn)(const at_stack_node *n, void *arg),
                             void *arg)
{
    const at_stack_nodes *ns = &st->nodes;
    for (uint32_t b = 0; ns->buckets && b < ns->nbuckets; b++)
        for (const at_stack_node *n = ns->buckets[b]; n; n = n->chain)
            fn(n, arg);
}
