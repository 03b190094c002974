/* The live-block table: pointer -> what the allocation was.
 *
 * An open-addressing table per shard (shard chosen by the pointer's hash),
 * each behind its own spin lock: linear probing over entries stored inline
 * (the key and the block's fields packed in 32 bytes), backward-shift
 * deletion; a large shard is a directory of segments of bounded size
 * (extendible hashing), so that growing never moves more than one
 * segment's entries.  Tables come from mem.c.  Released
 * blocks stay as tombstones for a while so that a second release of the
 * same pointer is told apart from a pointer that was never allocated: each
 * shard remembers its last AT_LIVE_TOMBSTONES released blocks (until the
 * address is handed out again); older ones are forgotten, and a double free
 * of such an old block is reported as an invalid free.
 */
#ifndef AT_LIVE_H
#define AT_LIVE_H

#include <stdint.h>

#include "spinlock.h"

/* What the table knows about a block; copied in and out by value. */
typedef struct at_block_info {
    uintptr_t ptr;
    uint64_t size;
    uint64_t seq; /* allocation's sequence number */
    uint64_t t;   /* allocation's time, ns since the trace started */
    uint32_t stack;
    uint32_t thread;
    uint8_t align_log2;
    uint8_t family;
    uint8_t op;
    uint64_t free_seq;   /* tombstones only: when it was released */
    uint32_t free_stack; /* tombstones only: where (0: no stack recorded) */
} at_block_info;

/* 64 shards x 1024 tombstones: the last 65,536 releases are remembered.
 * 16 shards measured the same on one and two threads (the most this
 * project's 2-core machines can tell); 64 keep contention low for
 * programs with many allocating threads. */
enum { AT_LIVE_SHARDS = 64, AT_LIVE_TOMBSTONES = 1024 };

/* A shard's directory has at most 2^(AT_LIVE_MAX_DEPTH - 1) entries (of
 * segments of 4096 slots: far more blocks than an address space holds). */
enum { AT_LIVE_MAX_DEPTH = 32 };

struct at_live_seg; /* a segment of a shard's table (live.c) */

/* A slot of the tomb ring: the released address, when and where it was
 * released.  The entry stays in the table as a tombstone until its slot is
 * reused (unless the address was handed out again since). */
typedef struct at_live_tomb {
    uintptr_t ptr;
    uint64_t free_seq;
    uint32_t free_stack;
} at_live_tomb;

typedef struct at_live_shard {
    at__spinlock lock;
    uint32_t stride; /* bytes a slot, live.c */
    struct at_live_seg **dir; /* 2^depth segments, or NULL */
    uint32_t depth;
    struct at_live_seg **retired[AT_LIVE_MAX_DEPTH]; /* the directory of each depth outgrown */
    uint64_t live;
    uint64_t tomb_pos; /* releases entombed so far */
    at_live_tomb *tombs; /* ring of recent releases */
    char pad[64];
} at_live_shard;

typedef struct at_live {
    at_live_shard shards[AT_LIVE_SHARDS];
} at_live;

int at__live_init(at_live *lt);

/* The table keeps each block's allocation time too (8 bytes more a
 * block); called on an empty table, before its first insert.  Without
 * it, the blocks the table gives back have `t` 0. */
void at__live_keep_times(at_live *lt);
int at__live_keeps_times(const at_live *lt);

/* The shard that holds `ptr` (for tests that model the tomb rings). */
unsigned at__live_shard(uintptr_t ptr);

/* Live blocks in the table (exact when the caller holds every shard's
 * lock, at__live_lock_all). */
uint64_t at__live_count(at_live *lt);
void at__live_destroy(at_live *lt);

/* Starts fetching the slot where `ptr` is or would go, so that its cache
 * miss overlaps the caller's work (the backtrace) before the insert or
 * release that follows. */
void at__live_prefetch(at_live *lt, uintptr_t ptr);

/* Records a new live block.  Returns 0, AT_E_NOMEM (the block is then not
 * tracked), or 1 when a live block was already recorded at that address
 * (its releases went unseen); *displaced then receives it. */
int at__live_insert(at_live *lt, const at_block_info *info, at_block_info *displaced);

enum at_live_lookup {
    AT_LIVE_FOUND = 0,   /* was live; now released, *out holds it */
    AT_LIVE_RELEASED,    /* already released: a tombstone, *out holds it */
    AT_LIVE_INTERIOR,    /* inside a live block, *out holds that block */
    AT_LIVE_UNKNOWN,     /* never seen (or forgotten) */
};

/* Looks `ptr` up for a release.  A live block is turned into a tombstone
 * with free_seq and free_stack set, atomically with the lookup, so two threads releasing
 * the same pointer see one AT_LIVE_FOUND and one AT_LIVE_RELEASED.  The
 * interior search walks every shard and is only done on a miss. */
enum at_live_lookup at__live_release(at_live *lt, uintptr_t ptr, uint64_t free_seq,
                                     uint32_t free_stack, at_block_info *out);

/* The live block that starts at `ptr` (1, *out set) or none (0). */
int at__live_find(at_live *lt, uintptr_t ptr, at_block_info *out);

/* The live block that holds address `ptr`, at its start or inside it (1,
 * *out set), or none (0).  A miss walks every shard, as the interior
 * search of at__live_release does. */
int at__live_containing(at_live *lt, uintptr_t ptr, at_block_info *out);

/* Undoes at__live_release after a failed realloc: the block is live again. */
void at__live_unrelease(at_live *lt, const at_block_info *info);

/* Calls fn for every live block; no other thread may use the table. */
void at__live_foreach(at_live *lt, void (*fn)(const at_block_info *, void *), void *arg);

/* The same while other threads use the table: each shard is locked while
 * it is walked, so `fn` must not call into the tracer. */
/* fork(): every shard locked before, unlocked after. */
void at__live_lock_all(at_live *lt);
void at__live_unlock_all(at_live *lt);

void at__live_foreach_locked(at_live *lt, void (*fn)(const at_block_info *, void *), void *arg);

/* Tests: the number of slots (a power of two, at least 64) at which a
 * shard's segments split, for tables made after the call; 0 restores the
 * default (4096). */
void at__live_test_segment_slots(uint64_t n);

#endif
