/* The live-block table (see live.h).
 *
 * Each shard is an open-addressing table: linear probing from the slot
 * the pointer's hash names, the entries inline (a lookup that hits costs
 * one cache miss, where uthash's chains cost several once a shard held
 * thousands of blocks), backward-shift deletion so that no deleted-slot
 * markers accumulate.  A slot is empty, a live block or a tombstone
 * (`state`); the key is the block's address, any value, 0 included.
 *
 * A tombstone's free_seq is kept in its ring slot, not in the entry: a
 * tombstone always has one (its entry is deleted when the slot is reused),
 * and the entry stays 48 bytes.  The entry keeps the low 32 bits of the
 * ring position it was entombed at instead, so that reusing a ring slot
 * deletes its tombstone only if the address was not handed out (and
 * perhaps released again) since: every tombstone was entombed within the
 * last AT_LIVE_TOMBSTONES releases of its shard, so 32 bits tell them
 * apart.
 *
 * A shard's table doubles when three quarters of its slots are used
 * (live blocks and tombstones): one insert then moves that shard's
 * entries, a 64th of the table.  It is halved when releases leave it an
 * eighth full.  Tables of more than 64 KiB are mapped and unmapped by
 * mem.c one by one, so the memory of a table that shrank is given back.
 */
#include <string.h>

#include <alloctrace/error.h>

#include "at_uthash.h" /* at__mix_ptr */
#include "live.h"
#include "mem.h"

enum { SLOT_EMPTY = 0, SLOT_LIVE = 1, SLOT_RELEASED = 2 };
enum { INITIAL_SLOTS = 64 };

typedef struct at_live_slot {
    uintptr_t ptr;
    uint64_t size;
    uint64_t seq;
    uint64_t t;
    uint32_t stack;
    uint32_t thread;
    uint8_t align_log2;
    uint8_t family;
    uint8_t op;
    uint8_t state;
    uint32_t tomb; /* tombstones: the shard's tomb_pos when entombed, low bits */
} at_live_slot;

_Static_assert(sizeof(at_live_slot) == 48, "a live-table entry is 48 bytes");

#define TOMB_MASK ((uint64_t)AT_LIVE_TOMBSTONES - 1)

static at_live_shard *shard_of(at_live *lt, uint64_t h)
{
    return &lt->shards[(h >> 58) & (AT_LIVE_SHARDS - 1)];
}

/* The slot holding `ptr`, or the empty slot where it would go.  The
 * shard has a table. */
static uint64_t probe(const at_live_shard *sh, uintptr_t ptr, uint64_t h)
{
    uint64_t mask = sh->mask;
    for (uint64_t i = h & mask;; i = (i + 1) & mask) {
        const at_live_slot *s = &sh->slots[i];
        if (s->state == SLOT_EMPTY || s->ptr == ptr)
            return i;
    }
}

/* An unlocked peek at where `h` lives, to start fetching it before the
 * lock is taken: at worst (the table is being replaced) the wrong line is
 * fetched; a prefetch never faults. */
static void prefetch_home(const at_live_shard *sh, uint64_t h)
{
    at_live_slot *slots = __atomic_load_n(&sh->slots, __ATOMIC_RELAXED);
    uint64_t mask = __atomic_load_n(&sh->mask, __ATOMIC_RELAXED);
    if (slots)
        __builtin_prefetch(&slots[h & mask], 1);
}

static void slot_set(at_live_slot *s, const at_block_info *b)
{
    s->ptr = b->ptr;
    s->size = b->size;
    s->seq = b->seq;
    s->t = b->t;
    s->stack = b->stack;
    s->thread = b->thread;
    s->align_log2 = b->align_log2;
    s->family = b->family;
    s->op = b->op;
    s->state = SLOT_LIVE;
    s->tomb = 0;
}

static void slot_get(const at_live_shard *sh, const at_live_slot *s, at_block_info *b)
{
    *b = (at_block_info){
        .ptr = s->ptr,
        .size = s->size,
        .seq = s->seq,
        .t = s->t,
        .stack = s->stack,
        .thread = s->thread,
        .align_log2 = s->align_log2,
        .family = s->family,
        .op = s->op,
        .free_seq = s->state == SLOT_RELEASED ? sh->tombs[s->tomb & TOMB_MASK].free_seq : 0,
    };
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
        if (sh->slots)
            at__mem_free(sh->slots, (sh->mask + 1) * sizeof *sh->slots);
        at__mem_free(sh->tombs, AT_LIVE_TOMBSTONES * sizeof *sh->tombs);
    }
    memset(lt, 0, sizeof *lt);
}

/* Moves the shard's entries to a new table of `cap` slots (the first one
 * when it has none).  -1 when out of memory; the old table is then still
 * in place. */
static int resize(at_live_shard *sh, uint64_t cap)
{
    at_live_slot *slots = at__mem_calloc(cap * sizeof *slots);
    if (!slots)
        return -1;
    uint64_t mask = cap - 1;
    if (sh->slots) {
        for (uint64_t j = 0; j <= sh->mask; j++) {
            const at_live_slot *s = &sh->slots[j];
            if (s->state == SLOT_EMPTY)
                continue;
            uint64_t i = at__mix_ptr(s->ptr) & mask;
            while (slots[i].state != SLOT_EMPTY)
                i = (i + 1) & mask;
            slots[i] = *s;
        }
        at__mem_free(sh->slots, (sh->mask + 1) * sizeof *slots);
    }
    __atomic_store_n(&sh->slots, slots, __ATOMIC_RELAXED);
    __atomic_store_n(&sh->mask, mask, __ATOMIC_RELAXED);
    return 0;
}

/* Empties slot i, moving back the entries after it that probed past it. */
static void delete_at(at_live_shard *sh, uint64_t i)
{
    uint64_t mask = sh->mask;
    for (uint64_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        at_live_slot *s = &sh->slots[j];
        if (s->state == SLOT_EMPTY)
            break;
        /* s may fill the hole unless its home lies in (i, j] */
        uint64_t home = at__mix_ptr(s->ptr) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            sh->slots[i] = *s;
            i = j;
        }
    }
    sh->slots[i].state = SLOT_EMPTY;
    sh->used--;
}

int at__live_insert(at_live *lt, const at_block_info *info, at_block_info *displaced)
{
    uint64_t h = at__mix_ptr(info->ptr);
    at_live_shard *sh = shard_of(lt, h);
    prefetch_home(sh, h);
    at__spin_lock(&sh->lock);
    at_live_slot *s = sh->slots ? &sh->slots[probe(sh, info->ptr, h)] : NULL;
    if (s && s->state != SLOT_EMPTY) {
        /* The address is handed out again: a tombstone is reused in place,
         * a live entry means its release never came through us. */
        int ret = 0;
        if (s->state == SLOT_LIVE) {
            slot_get(sh, s, displaced);
            ret = 1;
        } else {
            sh->live++;
        }
        slot_set(s, info);
        at__spin_unlock(&sh->lock);
        return ret;
    }
    uint64_t cap = s ? sh->mask + 1 : 0;
    if (4 * (sh->used + 1) > 3 * cap) {
        if (resize(sh, s ? 2 * cap : INITIAL_SLOTS) == 0)
            s = &sh->slots[probe(sh, info->ptr, h)];
        else if (!s || sh->used + 1 > cap - cap / 16) {
            /* Out of memory: fuller than 3/4 is still correct (slower), but
             * a table is never filled up. */
            at__spin_unlock(&sh->lock);
            return AT_E_NOMEM;
        }
    }
    slot_set(s, info);
    sh->used++;
    sh->live++;
    at__spin_unlock(&sh->lock);
    return 0;
}

/* Turns the live block in slot i, at `ptr`, into a tombstone in the
 * shard's tomb ring, deleting the ring slot's previous tombstone if it
 * still is one. */
static void entomb(at_live_shard *sh, uint64_t i, uintptr_t ptr, uint64_t h, uint64_t free_seq)
{
    if (!sh->tombs) {
        sh->tombs = at__mem_calloc(AT_LIVE_TOMBSTONES * sizeof *sh->tombs);
        if (!sh->tombs) {
            /* Without a ring, forget the block now. */
            delete_at(sh, i);
            return;
        }
    }
    uint64_t pos = sh->tomb_pos++;
    at_live_tomb *ring = &sh->tombs[pos & TOMB_MASK];
    if (pos >= AT_LIVE_TOMBSTONES) {
        uint64_t j = probe(sh, ring->ptr, at__mix_ptr(ring->ptr));
        const at_live_slot *old = &sh->slots[j];
        if (old->state == SLOT_RELEASED && old->tomb == (uint32_t)(pos - AT_LIVE_TOMBSTONES)) {
            delete_at(sh, j);
            /* A table an eighth full is halved (a quarter full then): a
             * program that freed its blocks gets the memory back, and an
             * unknown address's walk of every table stays short. */
            uint64_t cap = sh->mask + 1;
            if (cap > INITIAL_SLOTS && 8 * sh->used < cap)
                resize(sh, cap / 2);
            i = probe(sh, ptr, h); /* the deletion may have moved it */
        }
    }
    sh->slots[i].state = SLOT_RELEASED;
    sh->slots[i].tomb = (uint32_t)pos;
    ring->ptr = ptr;
    ring->free_seq = free_seq;
    /* The next entombing in this shard will look up the next ring slot's
     * address: start fetching its home slot now, so that miss overlaps
     * other work. */
    if (pos + 1 >= AT_LIVE_TOMBSTONES)
        __builtin_prefetch(
            &sh->slots[at__mix_ptr(sh->tombs[(pos + 1) & TOMB_MASK].ptr) & sh->mask], 1);
}

static int find_interior(at_live *lt, uintptr_t ptr, at_block_info *out)
{
    for (int i = 0; i < AT_LIVE_SHARDS; i++) {
        at_live_shard *sh = &lt->shards[i];
        at__spin_lock(&sh->lock);
        for (uint64_t j = 0; sh->slots && j <= sh->mask; j++) {
            const at_live_slot *s = &sh->slots[j];
            if (s->state == SLOT_LIVE && ptr > s->ptr && ptr - s->ptr < s->size) {
                slot_get(sh, s, out);
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
    uint64_t h = at__mix_ptr(ptr);
    at_live_shard *sh = shard_of(lt, h);
    prefetch_home(sh, h);
    /* The ring slot a release will use, fetched while the lookup runs (an
     * unlocked peek: at worst the wrong line is fetched). */
    at_live_tomb *ring = __atomic_load_n(&sh->tombs, __ATOMIC_RELAXED);
    if (ring)
        __builtin_prefetch(&ring[__atomic_load_n(&sh->tomb_pos, __ATOMIC_RELAXED) & TOMB_MASK], 1);
    at__spin_lock(&sh->lock);
    if (sh->slots) {
        uint64_t i = probe(sh, ptr, h);
        at_live_slot *s = &sh->slots[i];
        if (s->state == SLOT_LIVE) {
            slot_get(sh, s, out);
            sh->live--;
            entomb(sh, i, ptr, h, free_seq);
            at__spin_unlock(&sh->lock);
            return AT_LIVE_FOUND;
        }
        if (s->state == SLOT_RELEASED) {
            slot_get(sh, s, out);
            at__spin_unlock(&sh->lock);
            return AT_LIVE_RELEASED;
        }
    }
    at__spin_unlock(&sh->lock);
    return find_interior(lt, ptr, out) ? AT_LIVE_INTERIOR : AT_LIVE_UNKNOWN;
}

void at__live_unrelease(at_live *lt, const at_block_info *info)
{
    at_block_info ignored;
    at__live_insert(lt, info, &ignored);
}

static void foreach_in(at_live_shard *sh, void (*fn)(const at_block_info *, void *), void *arg)
{
    for (uint64_t j = 0; sh->slots && j <= sh->mask; j++) {
        if (sh->slots[j].state == SLOT_LIVE) {
            at_block_info b;
            slot_get(sh, &sh->slots[j], &b);
            fn(&b, arg);
        }
    }
}

void at__live_foreach(at_live *lt, void (*fn)(const at_block_info *, void *), void *arg)
{
    for (int i = 0; i < AT_LIVE_SHARDS; i++)
        foreach_in(&lt->shards[i], fn, arg);
}

void at__live_foreach_locked(at_live *lt, void (*fn)(const at_block_info *, void *), void *arg)
{
    for (int i = 0; i < AT_LIVE_SHARDS; i++) {
        at_live_shard *sh = &lt->shards[i];
        at__spin_lock(&sh->lock);
        foreach_in(sh, fn, arg);
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
