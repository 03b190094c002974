/* Stack interning: each distinct backtrace is stored once and named by a
 * small integer id (0 means "no stack").
 *
 * Stacks share their callers, so they are also kept as a call tree rooted
 * at the outermost frame: a node is (parent node, one return address), and
 * a stack's id is the node of its innermost frame (level 0).  A new stack
 * adds only the nodes not already known.  Nodes are numbered in the order
 * they are made and handed to the trace by ranges of ids; each stack is
 * put on an "unwritten" list once, so the trace receives every node once
 * and, for each stack, one small record naming its node.  The node lookup
 * runs only for a stack seen for the first time, off the fast path.
 *
 * Lookups go first through a small per-thread cache (no lock), then through
 * a sharded open-addressing table keyed by a 64-bit hash of the frames,
 * compared frame by frame on a hash match.  A new stack is put on a lock-free "unwritten" list
 * that the background writer drains into the trace.  Interned stacks are
 * immutable and live until the table is destroyed.
 */
#ifndef AT_STACKS_H
#define AT_STACKS_H

#include <stdint.h>

#include "spinlock.h"

typedef struct at_stack {
    struct at_stack *next_unwritten; /* writer's queue */
    uint64_t hash;
    uint32_t id; /* the node of frames[0] */
    uint32_t depth;
    uintptr_t frames[];
} at_stack;

/* One node of the call tree: the stack made of `ip` and its parent's
 * frames (parent 0: `ip` is an outermost frame).  Nodes are numbered from
 * 1 in the order they are made and kept in that order (at__stacks_node). */
typedef struct at_stack_node {
    uintptr_t ip;
    uint32_t parent, depth;
} at_stack_node;

/* The nodes' index: open addressing, 16-byte slots, four to a cache line.
 * A slot's key is the hash of the node's whole path from the outermost
 * frame, which the frames give for every level before any lookup, so a
 * new stack's levels are fetched at once rather than one miss after the
 * other; the parent, compared too, makes the match exact (stacks.c). */
typedef struct at_node_slot {
    uint64_t path;
    uint32_t parent, id; /* id 0: an empty slot */
} at_node_slot;

/* Nodes by id: CHUNK-sized arrays, made as ids reach them. */
enum { AT_NODE_CHUNK_SHIFT = 14, AT_NODE_CHUNKS = 1 << 14 }; /* 2^28 nodes at most */

typedef struct at_stack_nodes {
    at__spinlock lock; /* taken inside a shard's lock, never the other way round */
    uint32_t nslots; /* power of two */
    at_node_slot *slots;
    at_stack_node **chunks; /* AT_NODE_CHUNKS of them, made as needed */
    uint32_t next_id;
    uint32_t published; /* atomic: nodes below it are complete */
    uint32_t taken;     /* atomic: nodes below it were handed to the trace */
} at_stack_nodes;

enum { AT_STACK_SHARDS = 64, AT_STACK_CACHE = 512 };

/* The last new stack a thread interned, its nodes by level from the
 * outermost: the next new stack shares most of its outer frames (the
 * program's main loop, a compiler's recursion) and walks the call tree
 * only from where it differs. */
enum { AT_STACK_TREE_LEVELS = 128 };

typedef struct at_stack_cache {
    uint64_t hash[AT_STACK_CACHE];
    at_stack *stack[AT_STACK_CACHE];
    uintptr_t tree_ip[AT_STACK_TREE_LEVELS];    /* outermost first */
    uint32_t tree_node[AT_STACK_TREE_LEVELS];
    uint32_t tree_depth;
} at_stack_cache;

/* A slot of a shard's table: the stack's hash beside it, so that a
 * lookup reads one stack only, the one whose hash matches, and growing
 * the table reads no stack at all. */
typedef struct at_stack_slot {
    uint64_t hash; /* 0: an empty slot (hashes are never 0) */
    at_stack *stack;
} at_stack_slot;

typedef struct at_stack_shard {
    at__spinlock lock;
    uint32_t nslots; /* power of two, or 0 */
    uint32_t count;
    at_stack_slot *slots; /* open addressing, linear probing, at most half full */
} at_stack_shard;

typedef struct at_stacks {
    at_stack_shard shards[AT_STACK_SHARDS];
    at_stack_nodes nodes;
    at_stack *unwritten; /* atomic, pushed by any thread */
} at_stacks;

int at__stacks_init(at_stacks *st);
void at__stacks_destroy(at_stacks *st);

/* The id of the stack `frames[0..depth)`, interning it if new; 0 when the
 * tracer's memory is exhausted.  `cache` may be NULL. */
uint32_t at__stacks_intern(at_stacks *st, at_stack_cache *cache, const uintptr_t *frames,
                           uint32_t depth);

/* Takes every stack interned since the last call (a linked list through
 * next_unwritten, newest first). */
at_stack *at__stacks_take_unwritten(at_stacks *st);

/* The nodes made since the last call, ids [*first, *end) (none when
 * equal); a stack's nodes are made before the stack is on its list, so
 * a call after at__stacks_take_unwritten takes them. */
void at__stacks_take_new_nodes(at_stacks *st, uint32_t *first, uint32_t *end);

/* Node `id` (1 up to the end of a range taken, or any id under no lock in
 * a forked child). */
const at_stack_node *at__stacks_node(const at_stacks *st, uint32_t id);

/* fork(): every shard locked in the parent before, unlocked after (in the
 * parent and in the child). */
void at__stacks_lock_all(at_stacks *st);
void at__stacks_unlock_all(at_stacks *st);

/* Every interned stack; no locking (a forked child, alone). */
void at__stacks_foreach(at_stacks *st, void (*fn)(const at_stack *s, void *arg), void *arg);

/* Every node; no locking (a forked child, alone). */
void at__stacks_foreach_node(at_stacks *st,
                             void (*fn)(uint32_t id, const at_stack_node *n, void *arg),
                             void *arg);

#endif
