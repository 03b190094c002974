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
    for (uint32_t i = 0; i < ns->nslots; i++)
        if (ns->slots[i].id)
            at__mem_free(ns->slots[i].node, sizeof *ns->slots[i].node);
    at__mem_free(ns->slots, ns->nslots * sizeof *ns->slots);
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

/* Doubles the index when it is half full; on failure the index stays as
 * it is (a node that finds no room is not made). */
static void grow_nodes(at_stack_nodes *ns)
{
    uint32_t n = ns->nslots ? ns->nslots * 2 : 4096;
    if (n < ns->nslots)
        return;
    at_node_slot *v = at__mem_calloc(n * sizeof *v);
    if (!v)
        return;
    for (uint32_t i = 0; i < ns->nslots; i++) {
        const at_node_slot *x = &ns->slots[i];
        if (!x->id)
            continue;
        uint32_t k = (uint32_t)hash_node(x->parent, x->ip) & (n - 1);
        while (v[k].id)
            k = (k + 1) & (n - 1);
        v[k] = *x;
    }
    at__mem_free(ns->slots, ns->nslots * sizeof *ns->slots);
    ns->slots = v;
    ns->nslots = n;
}

/* The id of node (parent, ip), made and queued for the writer if new; 0
 * when memory ran out. */
static uint32_t node_of(at_stacks *st, uint32_t parent, uint32_t depth, uintptr_t ip)
{
    at_stack_nodes *ns = &st->nodes;
    if (2 * (ns->count + 1) > ns->nslots)
        grow_nodes(ns);
    if (2 * (ns->count + 1) > ns->nslots)
        return 0;
    uint32_t k = (uint32_t)hash_node(parent, ip) & (ns->nslots - 1);
    for (; ns->slots[k].id; k = (k + 1) & (ns->nslots - 1))
        if (ns->slots[k].ip == ip && ns->slots[k].parent == parent)
            return ns->slots[k].id;
    at_stack_node *n = at__mem_alloc(sizeof *n);
    if (!n)
        return 0;
    n->ip = ip;
    n->parent = parent;
    n->depth = depth;
    n->id = ns->next_id++;
    ns->slots[k] = (at_node_slot){ip, parent, n->id, n};
    ns->count++;
    at_stack_node *head = __atomic_load_n(&st->unwritten_nodes, __ATOMIC_RELAXED);
    do
        n->next_unwritten = head;
    while (!__atomic_compare_exchange_n(&st->unwritten_nodes, &head, n, 1, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
    return n->id;
}

/* The node of frames[0], walking down from the outermost frame and adding
 * the nodes not known yet; 0 when memory ran out. */
static uint32_t intern_nodes(at_stacks *st, at_stack_cache *cache, const uintptr_t *frames,
                             uint32_t depth)
{
    /* The outer levels this stack shares with the thread's last new one
     * are its nodes already. */
    uint32_t shared = 0, id = 0;
    int cached = cache && depth <= AT_STACK_TREE_LEVELS;
    if (cached) {
        while (shared < depth && shared < cache->tree_depth &&
               cache->tree_ip[shared] == frames[depth - 1 - shared])
            shared++;
        id = shared ? cache->tree_node[shared - 1] : 0;
    }
    at__spin_lock(&st->nodes.lock);
    for (uint32_t level = depth - shared; level-- > 0;) {
        id = node_of(st, id, depth - level, frames[level]);
        if (!id)
            break;
        if (cached) {
            cache->tree_ip[depth - 1 - level] = frames[level];
            cache->tree_node[depth - 1 - level] = id;
        }
    }
    at__spin_unlock(&st->nodes.lock);
    if (cached)
        cache->tree_depth = id ? depth : 0;
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
        s->id = intern_nodes(st, cache, frames, depth);
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
    for (uint32_t i = 0; i < ns->nslots; i++)
        if (ns->slots[i].id)
            fn(ns->slots[i].node, arg);
}
