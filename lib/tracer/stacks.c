/* Stack interning (see stacks.h).
 *
 * Relies on mem.c for memory and on the caller for the per-thread cache.
 * Cost on a cache hit: one hash over the frames and one compare, about
 * 10 ns at depth 20; on a miss, one spin lock, a probe of the shard's
 * slots and one stack compared (a bucket chain cost a miss a link:
 * clang++ -fsyntax-only, 73 k stacks, spent 6% of its samples there).
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
    st->nodes.next_id = st->nodes.published = st->nodes.taken = 1;
    return 0;
}

enum { NODE_CHUNK = 1 << AT_NODE_CHUNK_SHIFT };

static void destroy_nodes(at_stack_nodes *ns)
{
    for (uint32_t c = 0; ns->chunks && c < AT_NODE_CHUNKS; c++)
        if (ns->chunks[c])
            at__mem_free(ns->chunks[c], NODE_CHUNK * sizeof *ns->chunks[c]);
    at__mem_free(ns->chunks, AT_NODE_CHUNKS * sizeof *ns->chunks);
    at__mem_free(ns->slots, ns->nslots * sizeof *ns->slots);
}

void at__stacks_destroy(at_stacks *st)
{
    for (int i = 0; i < AT_STACK_SHARDS; i++) {
        at_stack_shard *sh = &st->shards[i];
        for (uint32_t k = 0; k < sh->nslots; k++) {
            at_stack *s = sh->slots[k].stack;
            if (sh->slots[k].hash)
                at__mem_free(s, sizeof *s + s->depth * sizeof(uintptr_t));
        }
        at__mem_free(sh->slots, sh->nslots * sizeof *sh->slots);
    }
    destroy_nodes(&st->nodes);
    memset(st, 0, sizeof *st);
}

/* A stack's home slot: the hash's bits above the shard's (h & 63) and
 * the per-thread cache's (h >> 20 picks its slot, independently). */
static uint32_t stack_home(uint64_t h, uint32_t nslots)
{
    return (uint32_t)(h >> 6) & (nslots - 1);
}

/* Doubles the slots; -1 (the table as it was) when it cannot. */
static int grow(at_stack_shard *sh)
{
    uint32_t n = sh->nslots ? sh->nslots * 2 : 64;
    if (n < sh->nslots)
        return -1;
    at_stack_slot *v = at__mem_calloc(n * sizeof *v);
    if (!v)
        return -1;
    for (uint32_t i = 0; i < sh->nslots; i++) {
        if (!sh->slots[i].hash)
            continue;
        uint32_t k = stack_home(sh->slots[i].hash, n);
        while (v[k].hash)
            k = (k + 1) & (n - 1);
        v[k] = sh->slots[i];
    }
    at__mem_free(sh->slots, sh->nslots * sizeof *sh->slots);
    sh->slots = v;
    sh->nslots = n;
    return 0;
}

/* ---- the call tree ---------------------------------------------------------------- */

/* The path hash of a node: its parent's, mixed, plus its frame.  For a
 * given parent path the sum differs for every frame, so two nodes with
 * the same parent and the same path hash are the same node: (path,
 * parent) is an exact key.  The mix is a bijection (xor-shift and odd
 * multiply steps), so paths spread over the whole index. */
static uint64_t path_step(uint64_t parent_path, uintptr_t ip)
{
    uint64_t h = parent_path;
    h ^= h >> 31;
    h *= 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    return h + ip;
}

static const uint64_t ROOT_PATH = 0x2545f4914f6cdd1dull;

/* A slot's home: the top bits of the mixed path, so that doubling the
 * index sends home k to 2k or 2k + 1 and the move streams through both
 * arrays in order (with the low bits, each entry moved was a cache miss:
 * a third of the time a compiler spent interning). */
static uint32_t slot_home(uint64_t path, uint32_t nslots)
{
    uint64_t h = path * 0xff51afd7ed558ccdull;
    return (uint32_t)(h >> (64 - __builtin_ctz(nslots)));
}

/* Doubles the index; -1 (the index as it was) when it cannot. */
static int grow_nodes(at_stack_nodes *ns)
{
    uint32_t n = ns->nslots ? ns->nslots * 2 : 4096;
    if (n < ns->nslots)
        return -1;
    at_node_slot *v = at__mem_calloc(n * sizeof *v);
    if (!v)
        return -1;
    for (uint32_t i = 0; i < ns->nslots; i++) {
        const at_node_slot *x = &ns->slots[i];
        if (!x->id)
            continue;
        uint32_t k = slot_home(x->path, n);
        while (v[k].id)
            k = (k + 1) & (n - 1);
        v[k] = *x;
    }
    at__mem_free(ns->slots, ns->nslots * sizeof *ns->slots);
    ns->slots = v;
    ns->nslots = n;
    return 0;
}

static at_stack_node *node_at(const at_stack_nodes *ns, uint32_t id)
{
    return &ns->chunks[id >> AT_NODE_CHUNK_SHIFT][id & (NODE_CHUNK - 1)];
}

const at_stack_node *at__stacks_node(const at_stacks *st, uint32_t id)
{
    return node_at(&st->nodes, id);
}

/* Room for node `id`: its chunk made if it is the first of it. */
static int node_room(at_stack_nodes *ns, uint32_t id)
{
    uint32_t c = id >> AT_NODE_CHUNK_SHIFT;
    if (c >= AT_NODE_CHUNKS)
        return -1;
    if (!ns->chunks && !(ns->chunks = at__mem_calloc(AT_NODE_CHUNKS * sizeof *ns->chunks)))
        return -1;
    if (!ns->chunks[c] && !(ns->chunks[c] = at__mem_alloc(NODE_CHUNK * sizeof *ns->chunks[c])))
        return -1;
    return 0;
}

/* The id of node (parent, ip) whose path hash is `path`, made if new; 0
 * when memory ran out. */
static uint32_t node_of(at_stack_nodes *ns, uint32_t parent, uint32_t depth, uintptr_t ip,
                        uint64_t path)
{
    uint32_t mask = ns->nslots - 1;
    uint32_t k = slot_home(path, ns->nslots);
    for (; ns->slots[k].id; k = (k + 1) & mask)
        if (ns->slots[k].path == path && ns->slots[k].parent == parent)
            return ns->slots[k].id;
    uint32_t id = ns->next_id;
    if (node_room(ns, id) != 0)
        return 0;
    *node_at(ns, id) = (at_stack_node){.ip = ip, .parent = parent, .depth = depth};
    ns->slots[k] = (at_node_slot){path, parent, id};
    ns->next_id++;
    return id;
}

/* The node of frames[0], walking down from the outermost frame and adding
 * the nodes not known yet; 0 when memory ran out. */
static uint32_t intern_nodes(at_stacks *st, at_stack_cache *cache, const uintptr_t *frames,
                             uint32_t depth)
{
    at_stack_nodes *ns = &st->nodes;
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
    /* Every level's path hash, outermost first (at most the cache's
     * levels at a time: a deeper stack hashes as it goes). */
    uint64_t paths[AT_STACK_TREE_LEVELS];
    uint64_t path = ROOT_PATH;
    for (uint32_t l = 0; l < shared; l++)
        path = path_step(path, frames[depth - 1 - l]);
    at__spin_lock(&ns->lock);
    /* Room for every new node first, the index at most half full: it
     * never fills during a walk.  Nodes so far: ids 1 to next_id - 1. */
    while (2 * ((uint64_t)ns->next_id - 1 + depth - shared) > ns->nslots) {
        if (grow_nodes(ns) != 0) {
            at__spin_unlock(&ns->lock);
            if (cached)
                cache->tree_depth = 0;
            return 0;
        }
    }
    for (uint32_t l = shared; l < depth;) {
        /* a run of levels: their slots fetched together, then walked */
        uint32_t run = depth - l < AT_STACK_TREE_LEVELS ? depth - l : AT_STACK_TREE_LEVELS;
        for (uint32_t j = 0; j < run; j++) {
            path = path_step(path, frames[depth - 1 - (l + j)]);
            paths[j] = path;
            __builtin_prefetch(&ns->slots[slot_home(path, ns->nslots)]);
        }
        for (uint32_t j = 0; j < run; j++, l++) {
            id = node_of(ns, id, l + 1, frames[depth - 1 - l], paths[j]);
            if (!id)
                break;
            if (cached) {
                cache->tree_ip[l] = frames[depth - 1 - l];
                cache->tree_node[l] = id;
            }
        }
        if (!id)
            break;
    }
    __atomic_store_n(&ns->published, ns->next_id, __ATOMIC_RELEASE);
    at__spin_unlock(&ns->lock);
    if (cached)
        cache->tree_depth = id ? depth : 0;
    return id;
}

void at__stacks_take_new_nodes(at_stacks *st, uint32_t *first, uint32_t *end)
{
    at_stack_nodes *ns = &st->nodes;
    uint32_t lo = __atomic_load_n(&ns->taken, __ATOMIC_RELAXED), hi;
    do
        hi = __atomic_load_n(&ns->published, __ATOMIC_ACQUIRE);
    while (hi != lo &&
           !__atomic_compare_exchange_n(&ns->taken, &lo, hi, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
    *first = lo;
    *end = hi;
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
    uint32_t k = 0;
    if (sh->nslots) {
        for (k = stack_home(h, sh->nslots); sh->slots[k].hash; k = (k + 1) & (sh->nslots - 1))
            if (sh->slots[k].hash == h && same(sh->slots[k].stack, h, frames, depth)) {
                s = sh->slots[k].stack;
                break;
            }
    }
    if (!s) {
        /* Grown past half full; denser when it cannot grow, but never
         * full: a probe always ends at an empty slot.  Slot k is where
         * this one ended, or where the grown table's does. */
        if (2 * (sh->count + 1) > sh->nslots && grow(sh) == 0)
            for (k = stack_home(h, sh->nslots); sh->slots[k].hash; k = (k + 1) & (sh->nslots - 1))
                ;
        s = sh->count + 1 < sh->nslots ? at__mem_alloc(sizeof *s + depth * sizeof *frames) : NULL;
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
        sh->slots[k] = (at_stack_slot){h, s};
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
        for (uint32_t k = 0; k < sh->nslots; k++)
            if (sh->slots[k].hash)
                fn(sh->slots[k].stack, arg);
    }
}

void at__stacks_foreach_node(at_stacks *st,
                             void (*fn)(uint32_t id, const at_stack_node *n, void *arg),
                             void *arg)
{
    const at_stack_nodes *ns = &st->nodes;
    for (uint32_t id = 1; id < ns->next_id; id++)
        fn(id, node_at(ns, id), arg);
}
