/* The live-block table (see live.h).
 *
 * Relies on uthash as configured by at_uthash.h (mem.c for memory, a
 * pointer mixer for the hash: uthash's default Jenkins hash is several
 * times slower for an 8-byte key, and a non-fatal out-of-memory path: an
 * entry that cannot be linked is recycled and reported to the caller).
 */
#include <string.h>

#include <alloctrace/error.h>

#include "live.h"
#include "mem.h"

/* A Bloom filter of 2^16 bits per shard (8 KiB, uthash's HASH_BLOOM): an
 * allocation at an address the shard has never held, the common case in a
 * program that builds up millions of live blocks, is told apart without
 * walking a bucket chain of cache misses (bench/live_bench.sh 2000000:
 * 5.49 -> 4.87 s).  Bits are never cleared, so a shard that has seen many
 * addresses falls back to the walk; the filter then costs one test. */
#define HASH_BLOOM 16
#include "at_uthash.h"

/* uthash starts a table with 32 buckets and grows it only when some chain
 * reaches 10 entries, so a shard of a few hundred blocks walked chains of
 * several cache misses on every lookup.  Each shard starts at 256 buckets
 * (4 KiB).  The growth rule stays uthash's: a lower threshold makes the
 * bucket array grow faster than the table (some chain always reaches a
 * small threshold among millions of entries; at 2 it exhausted memory). */
#undef HASH_INITIAL_NUM_BUCKETS
#undef HASH_INITIAL_NUM_BUCKETS_LOG2
#define HASH_INITIAL_NUM_BUCKETS 256U
#define HASH_INITIAL_NUM_BUCKETS_LOG2 8U

enum { STATE_LIVE = 0, STATE_RELEASED = 1 };

/* The handle first and the key (info.ptr) right after it: a lookup reads
 * the handle's hash and the key, one cache line per entry on the chain. */
typedef struct at_live_entry {
    UT_hash_handle hh;
    at_block_info info;
    uint32_t state;
    uint32_t gen; /* bumped each time the entry is reused, for the tomb ring */
} at_live_entry;

static at_live_shard *shard_of(at_live *lt, uintptr_t ptr)
{
    return &lt->shards[(at__mix_ptr(ptr) >> 58) & (AT_LIVE_SHARDS - 1)];
}

int at__live_init(at_live *lt)
{
    memset(lt, 0, sizeof *lt);
    return 0;
}

void at__live_destroy(at_live *lt)
{
    for (int i = 0; i < AT_LIVE_SHARDS; i++) {
        at_live_shard *sh = &lt->shards[i];
        at_live_entry *e, *tmp;
        HASH_ITER(hh, sh->head, e, tmp)
        {
            HASH_DEL(sh->head, e);
            at__mem_free(e, sizeof *e);
        }
        while (sh->spare) {
            e = sh->spare;
            sh->spare = (at_live_entry *)e->hh.next;
            at__mem_free(e, sizeof *e);
        }
        at__mem_free(sh->tombs, AT_LIVE_TOMBSTONES * sizeof *sh->tombs);
    }
    memset(lt, 0, sizeof *lt);
}

static at_live_entry *new_entry(at_live_shard *sh)
{
    at_live_entry *e = sh->spare;
    if (e) {
        sh->spare = (at_live_entry *)e->hh.next;
        return e;
    }
    e = at__mem_alloc(sizeof *e);
    if (e)
        e->gen = 0;
    return e;
}

static void recycle(at_live_shard *sh, at_live_entry *e)
{
    e->gen++;
    e->hh.next = sh->spare;
    sh->spare = e;
}

int at__live_insert(at_live *lt, const at_block_info *info, at_block_info *displaced)
{
    at_live_shard *sh = shard_of(lt, info->ptr);
    int ret = 0;
    at__spin_lock(&sh->lock);
    at_live_entry *e;
    HASH_FIND(hh, sh->head, &info->ptr, sizeof info->ptr, e);
    if (e) {
        /* The address is handed out again: a tombstone is reused in place,
         * a live entry means its release never came through us. */
        if (e->state == STATE_LIVE) {
            *displaced = e->info;
            ret = 1;
        } else {
            sh->live++;
        }
        e->gen++;
        e->info = *info;
        e->state = STATE_LIVE;
        at__spin_unlock(&sh->lock);
        return ret;
    }
    e = new_entry(sh);
    if (!e) {
        at__spin_unlock(&sh->lock);
        return AT_E_NOMEM;
    }
    e->info = *info;
    e->state = STATE_LIVE;
    int oom = 0;
#undef uthash_nonfatal_oom
#define uthash_nonfatal_oom(obj) (oom = 1)
    HASH_ADD(hh, sh->head, info.ptr, sizeof e->info.ptr, e);
    if (oom) {
        recycle(sh, e);
        ret = AT_E_NOMEM;
    } else {
        sh->live++;
    }
    at__spin_unlock(&sh->lock);
    return ret;
}

/* Puts a released entry in the shard's tomb ring, evicting the oldest
 * tombstone if the ring is full and that entry was not reused since. */
static void entomb(at_live_shard *sh, at_live_entry *e)
{
    if (!sh->tombs) {
        sh->tombs = at__mem_calloc(AT_LIVE_TOMBSTONES * sizeof *sh->tombs);
        if (!sh->tombs) {
            /* Without a ring, forget the block now. */
            HASH_DEL(sh->head, e);
            recycle(sh, e);
            return;
        }
    }
    uint32_t pos = sh->tomb_pos++ & (AT_LIVE_TOMBSTONES - 1);
    at_live_tomb *slot = &sh->tombs[pos];
    at_live_entry *old = slot->entry;
    if (old && old->gen == slot->gen && old->state == STATE_RELEASED) {
        HASH_DEL(sh->head, old);
        recycle(sh, old);
    }
    slot->entry = e;
    slot->gen = e->gen;
    /* The next entombing in this shard will read the next slot's entry:
     * start fetching it now, so that miss overlaps other work. */
    at_live_entry *next = sh->tombs[(pos + 1) & (AT_LIVE_TOMBSTONES - 1)].entry;
    if (next)
        __builtin_prefetch(&next->gen, 1);
}

static int find_interior(at_live *lt, uintptr_t ptr, at_block_info *out)
{
    for (int i = 0; i < AT_LIVE_SHARDS; i++) {
        at_live_shard *sh = &lt->shards[i];
        at__spin_lock(&sh->lock);
        for (at_live_entry *e = sh->head; e; e = e->hh.next) {
            if (e->state == STATE_LIVE && ptr > e->info.ptr && ptr - e->info.ptr < e->info.size) {
                *out = e->info;
                at__spin_unlock(&sh->lock);
                return 1;
            }
        }
        at__spin_unlock(&sh->lock);
    }
    return 0;
}

enum at_live_lookup at__live_release(at_live *lt, uintptr_t ptr, uint64_t free_seq,
                                     at_block_info *out)
{
    at_live_shard *sh = shard_of(lt, ptr);
    /* The ring slot a release will use, fetched while the lookup runs (an
     * unlocked peek: at worst the wrong line is fetched). */
    at_live_tomb *ring = __atomic_load_n(&sh->tombs, __ATOMIC_RELAXED);
    if (ring)
        __builtin_prefetch(&ring[__atomic_load_n(&sh->tomb_pos, __ATOMIC_RELAXED) &
                                 (AT_LIVE_TOMBSTONES - 1)],
                           1);
    at__spin_lock(&sh->lock);
    at_live_entry *e;
    HASH_FIND(hh, sh->head, &ptr, sizeof ptr, e);
    if (e && e->state == STATE_LIVE) {
        *out = e->info;
        e->state = STATE_RELEASED;
        e->info.free_seq = free_seq;
        sh->live--;
        entomb(sh, e);
        at__spin_unlock(&sh->lock);
        return AT_LIVE_FOUND;
    }
    if (e) {
        *out = e->info;
        at__spin_unlock(&sh->lock);
        return AT_LIVE_RELEASED;
    }
    at__spin_unlock(&sh->lock);
    return find_interior(lt, ptr, out) ? AT_LIVE_INTERIOR : AT_LIVE_UNKNOWN;
}

void at__live_unrelease(at_live *lt, const at_block_info *info)
{
    at_block_info ignored;
    at__live_insert(lt, info, &ignored);
}

void at__live_foreach(at_live *lt, void (*fn)(const at_block_info *, void *), void *arg)
{
    for (int i = 0; i < AT_LIVE_SHARDS; i++) {
        at_live_shard *sh = &lt->shards[i];
        for (at_live_entry *e = sh->head; e; e = e->hh.next)
            if (e->state == STATE_LIVE)
                fn(&e->info, arg);
    }
}

void at__live_foreach_locked(at_live *lt, void (*fn)(const at_block_info *, void *), void *arg)
{
    for (int i = 0; i < AT_LIVE_SHARDS; i++) {
        at_live_shard *sh = &lt->shards[i];
        at__spin_lock(&sh->lock);
        for (at_live_entry *e = sh->head; e; e = e->hh.next)
            if (e->state == STATE_LIVE)
                fn(&e->info, arg);
        at__spin_unlock(&sh->lock);
    }
}

void at__live_lock_all(at_live *lt)
{
    for (int i = 0; i < AT_LIVE_SHARDS; i++)
        at__spin_lock(&lt->shards[i].lock);
}

void at__live_unlock_all(at_live *lt)
{
    for (int i = AT_LIVE_SHARDS - 1; i >= 0; i--)
        at__spin_unlock(&lt->shards[i].lock);
}
