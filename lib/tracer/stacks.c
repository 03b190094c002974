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
    st->next_id = 1;
    return 0;
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
        s->hash = h;
        s->depth = depth;
        memcpy(s->frames, frames, depth * sizeof *frames);
        s->id = __atomic_fetch_add(&st->next_id, 1, __ATOMIC_RELAXED);
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

void at__stacks_lock_all(at_stacks *st)
{
    for (int i = 0; i < AT_STACK_SHARDS; i++)
        at__spin_lock(&st->shards[i].lock);
}

void at__stacks_unlock_all(at_stacks *st)
{
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
