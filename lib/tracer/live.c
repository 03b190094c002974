/* The live-block table (see live.h).
 *
 * Each shard is an open-addressing table: linear probing from the slot
 * the pointer's window and granule name (home_of), the entries inline (a lookup that hits costs
 * one cache miss, where uthash's chains cost several once a shard held
 * thousands of blocks), backward-shift deletion so that no deleted-slot
 * markers accumulate.  A slot is empty, a live block or a tombstone
 * (`state`); the key is the block's address, any value, 0 included.
 *
 * A small shard is one segment that doubles when three quarters of its
 * slots are used (live blocks and tombstones), up to SEG_SLOTS.  Past
 * that the shard is a directory of segments chosen by the hash's bits
 * below the shard's (extendible hashing): a full segment is split in two
 * by the next bit, the directory doubled when the segment used all its
 * bits.  An insert thus moves at most one segment's entries (4096), however
 * large the table, and growing touches only the memory the table keeps:
 * doubling a whole table maps the new one while the old one is still
 * there, and a page's first touch is dear (on this project's VMs, 384 MiB
 * of new pages took 1.5-2.5 s to touch; bench/live_bench.sh 2000000: 227k
 * page faults with doubling, 138k with segments, 156k with uthash).  A
 * segment an eighth full is merged with its buddy when both fit in a
 * quarter of one, and the last one halves: a program that freed its
 * blocks gets the memory back.
 *
 * A tombstone's free_seq is kept in its ring slot, not in the entry: a
 * tombstone always has one (its entry is deleted when the slot is reused),
 * and the entry stays small.  The entry keeps the low 32 bits of the
 * ring position it was entombed at instead, so that reusing a ring slot
 * deletes its tombstone only if the address was not handed out (and
 * perhaps released again) since: every tombstone was entombed within the
 * last AT_LIVE_TOMBSTONES releases of its shard, so 32 bits tell them
 * apart.
 */
#include <string.h>

#include <alloctrace/error.h>
#include <alloctrace/tracer.h> /* at_family */
#include <alloctrace/vocab.h>

#include "at_uthash.h" /* at__mix_ptr */
#include "live.h"
#include "mem.h"

enum { SLOT_EMPTY = 0, SLOT_LIVE = 1, SLOT_RELEASED = 2 };
enum { INITIAL_SLOTS = 64, SEG_SLOTS = 4096 };

/* Where an address goes.  The hash is of the address's 256-byte window
 * (WINDOW_SHIFT): it chooses the shard, the segment and a base slot, and
 * the address's 16-byte granule within its window is added to the base.
 * Blocks an allocator hands out one after another (glibc's bins, any
 * slab) thus sit in neighbouring slots, so that a program allocating or
 * releasing in address order touches a line or two per window instead of
 * a line per block (bench/live_table 2000000, side by side: in-order
 * release 230-248 -> 116-120 ns, insert 289-301 -> 221-226).  The price
 * is denser runs: blocks 16 bytes apart fill a window's 16 slots in a
 * row, 5 slots from home on average where a hash per address gave 0.4;
 * 512-byte windows gave 9.8 (678 at most). */
enum { WINDOW_SHIFT = 8, GRANULE_SHIFT = 4 };

static uint64_t key_hash(uintptr_t ptr)
{
    return at__mix_ptr(ptr >> WINDOW_SHIFT << GRANULE_SHIFT); /* it drops the granule bits */
}

static uint64_t home_of(uintptr_t ptr, uint64_t h, uint64_t mask)
{
    return (h + ((ptr >> GRANULE_SHIFT) & ((1u << (WINDOW_SHIFT - GRANULE_SHIFT)) - 1))) & mask;
}

/* An entry: 32 bytes, two to a cache line (memory touched is time: a
 * page's first touch costs more than the inserts that fill it, 1.7 ms a
 * MB on these machines, a seventh of a traced keep_live 2 M's program
 * time with 40-byte entries).  `seqw` packs the sequence number (57 bits:
 * 2^57 events is years of a billion per second), the family (2 bits), the
 * op (3) and the state (2, the top bits: all-zero memory is empty slots);
 * `sizew` the size (58 bits: no address space holds a larger block) and
 * align_log2 (6).  A tombstone's `thread` holds the low 32 bits of the
 * shard's tomb_pos when it was entombed (no reader of a released block
 * needs the allocating thread).
 *
 * The allocation's time follows the entry (a stride of 40 bytes) only in
 * a table that keeps times (at__live_keep_times): the in-process writer
 * writes a lifetime whole at its release, from the table; the spool's
 * reader has the time from the allocation's record. */
typedef struct at_live_slot {
    uintptr_t ptr;
    uint64_t seqw;
    uint64_t sizew;
    uint32_t stack;
    uint32_t thread; /* tombstones: the tomb position */
} at_live_slot;

_Static_assert(sizeof(at_live_slot) == 32, "a live-table entry is 32 bytes");

enum { STRIDE = sizeof(at_live_slot), STRIDE_TIMED = sizeof(at_live_slot) + sizeof(uint64_t) };

#define SEQ_BITS 57
#define SIZE_BITS 58
#define LOW(n) ((((uint64_t)1) << (n)) - 1)
/* What the packed fields can hold: vocab.h's families and ops fit. */
/* A pool's block is in a live table of its pool's (pools.c), stored there
 * as family 0: only the families of the program's allocator must fit. */
#define AT_X_FIT(id, code, ...)                                                                    \
    _Static_assert(code < 4 || code == AT_FAMILY_POOL, "a family fits in 2 bits");
AT_FAMILIES(AT_X_FIT)
#undef AT_X_FIT
#define AT_X_FIT(id, code, ...) _Static_assert(code < 8, "an op fits in 3 bits");
AT_OPS(AT_X_FIT)
#undef AT_X_FIT

static unsigned slot_state(const at_live_slot *s)
{
    return (unsigned)(s->seqw >> 62);
}

static void set_state(at_live_slot *s, unsigned state)
{
    s->seqw = (s->seqw & LOW(62)) | (uint64_t)state << 62;
}

static uint64_t slot_size(const at_live_slot *s)
{
    return s->sizew & LOW(SIZE_BITS);
}

/* 1 when the table can hold the block's fields (always, for a block a
 * program could have: see at_live_slot). */
static int packable(const at_block_info *b)
{
    return b->seq >> SEQ_BITS == 0 && b->size >> SIZE_BITS == 0 && b->align_log2 < 64 &&
           b->family < 4 && b->op < 8;
}

typedef struct at_live_seg {
    at_live_slot *slots; /* `stride` bytes apart: index with slot_at */
    uint64_t stride;
    uint64_t mask; /* slots - 1 */
    uint64_t used; /* live blocks and tombstones */
    uint32_t depth; /* the directory bits that choose it */
} at_live_seg;

#define TOMB_MASK ((uint64_t)AT_LIVE_TOMBSTONES - 1)

static at_live_slot *slot_at(const at_live_seg *g, uint64_t i)
{
    return (at_live_slot *)((char *)g->slots + i * g->stride);
}

/* The allocation's time, after the entry (tables that keep times). */
static uint64_t *time_of(at_live_slot *s)
{
    return (uint64_t *)(s + 1);
}

static void slot_copy(const at_live_seg *g, at_live_slot *to, const at_live_slot *from)
{
    memcpy(to, from, g->stride);
}

/* SEG_SLOTS, but tests set it smaller so that small tables split and
 * merge (at__live_test_segment_slots). */
static uint64_t seg_slots = SEG_SLOTS;

void at__live_test_segment_slots(uint64_t n)
{
    seg_slots = n ? n : SEG_SLOTS;
}

static at_live_shard *shard_of(at_live *lt, uint64_t h)
{
    return &lt->shards[(h >> 58) & (AT_LIVE_SHARDS - 1)];
}

/* The directory's bits are the hash's right below the shard's; a
 * segment's slot is chosen by its low bits. */
static uint64_t dir_index(uint64_t h, uint32_t depth)
{
    return depth ? (h << 6) >> (64 - depth) : 0;
}

static at_live_seg *seg_of(const at_live_shard *sh, uint64_t h)
{
    return sh->dir[dir_index(h, sh->depth)];
}

/* The slot holding `ptr`, or the empty slot where it would go. */
static uint64_t probe(const at_live_seg *g, uintptr_t ptr, uint64_t h)
{
    uint64_t mask = g->mask;
    for (uint64_t i = home_of(ptr, h, mask);; i = (i + 1) & mask) {
        const at_live_slot *s = slot_at(g, i);
        if (slot_state(s) == SLOT_EMPTY || s->ptr == ptr)
            return i;
    }
}

static void slot_set(const at_live_seg *g, at_live_slot *s, const at_block_info *b)
{
    s->ptr = b->ptr;
    s->seqw = b->seq | (uint64_t)b->family << SEQ_BITS | (uint64_t)b->op << (SEQ_BITS + 2) |
              (uint64_t)SLOT_LIVE << 62;
    if (g->stride == STRIDE_TIMED)
        *time_of(s) = b->t;
    s->sizew = b->size | (uint64_t)b->align_log2 << SIZE_BITS;
    s->stack = b->stack;
    s->thread = b->thread;
}

static void slot_get(const at_live_shard *sh, const at_live_seg *g, at_live_slot *s,
                     at_block_info *b)
{
    int released = slot_state(s) == SLOT_RELEASED;
    *b = (at_block_info){
        .ptr = s->ptr,
        .size = slot_size(s),
        .seq = s->seqw & LOW(SEQ_BITS),
        .t = g->stride == STRIDE_TIMED ? *time_of(s) : 0,
        .stack = s->stack,
        .thread = released ? 0 : s->thread,
        .align_log2 = (uint8_t)(s->sizew >> SIZE_BITS),
        .family = (uint8_t)(s->seqw >> SEQ_BITS & 3),
        .op = (uint8_t)(s->seqw >> (SEQ_BITS + 2) & 7),
        .free_seq = released ? sh->tombs[s->thread & TOMB_MASK].free_seq : 0,
        .free_stack = released ? sh->tombs[s->thread & TOMB_MASK].free_stack : 0,
    };
}

unsigned at__live_shard(uintptr_t ptr)
{
    return (unsigned)(key_hash(ptr) >> 58) & (AT_LIVE_SHARDS - 1);
}

int at__live_init(at_live *lt)
{
    memset(lt, 0, sizeof *lt);
    for (int i = 0; i < AT_LIVE_SHARDS; i++)
        lt->shards[i].stride = STRIDE;
    return 0;
}

void at__live_keep_times(at_live *lt)
{
    for (int i = 0; i < AT_LIVE_SHARDS; i++)
        if (!lt->shards[i].dir) /* an empty table's promise: no shard has segments yet */
            lt->shards[i].stride = STRIDE_TIMED;
}

int at__live_keeps_times(const at_live *lt)
{
    return lt->shards[0].stride == STRIDE_TIMED;
}

static at_live_seg *seg_new(uint64_t cap, uint32_t depth, uint64_t stride)
{
    at_live_seg *g = at__mem_alloc(sizeof *g);
    if (!g)
        return NULL;
    g->slots = at__mem_calloc(cap * stride);
    if (!g->slots) {
        at__mem_free(g, sizeof *g);
        return NULL;
    }
    g->stride = stride;
    g->mask = cap - 1;
    g->used = 0;
    g->depth = depth;
    return g;
}

static void seg_free(at_live_seg *g)
{
    at__mem_free(g->slots, (g->mask + 1) * g->stride);
    at__mem_free(g, sizeof *g);
}

/* The shard's segments, each once: segment of depth d fills 2^(depth-d)
 * consecutive directory entries.  *k starts at 0. */
static at_live_seg *next_seg(const at_live_shard *sh, uint64_t *k)
{
    if (!sh->dir || *k >> sh->depth)
        return NULL;
    at_live_seg *g = sh->dir[*k];
    *k += (uint64_t)1 << (sh->depth - g->depth);
    return g;
}

void at__live_destroy(at_live *lt)
{
    for (int i = 0; i < AT_LIVE_SHARDS; i++) {
        at_live_shard *sh = &lt->shards[i];
        uint64_t k = 0;
        for (at_live_seg *g; (g = next_seg(sh, &k));)
            seg_free(g);
        if (sh->dir)
            at__mem_free(sh->dir, sizeof *sh->dir << sh->depth);
        for (uint32_t d = 0; d < AT_LIVE_MAX_DEPTH; d++)
            if (sh->retired[d])
                at__mem_free(sh->retired[d], sizeof *sh->dir << d);
        at__mem_free(sh->tombs, AT_LIVE_TOMBSTONES * sizeof *sh->tombs);
    }
    memset(lt, 0, sizeof *lt);
}

/* Puts an entry whose key the segment does not hold. */
static void seg_put(at_live_seg *g, const at_live_slot *s)
{
    uint64_t i = home_of(s->ptr, key_hash(s->ptr), g->mask);
    while (slot_state(slot_at(g, i)) != SLOT_EMPTY)
        i = (i + 1) & g->mask;
    slot_copy(g, slot_at(g, i), s);
    g->used++;
}

/* Moves the segment's entries to a new array of `cap` slots.  -1 when out
 * of memory; the old one is then still in place. */
static int seg_resize(at_live_seg *g, uint64_t cap)
{
    at_live_slot *slots = at__mem_calloc(cap * g->stride);
    if (!slots)
        return -1;
    at_live_seg old = *g;
    g->slots = slots;
    g->mask = cap - 1;
    g->used = 0;
    for (uint64_t j = 0; j <= old.mask; j++)
        if (slot_state(slot_at(&old, j)) != SLOT_EMPTY)
            seg_put(g, slot_at(&old, j));
    at__mem_free(old.slots, (old.mask + 1) * old.stride);
    return 0;
}

/* Empties slot i, moving back the entries after it that probed past it. */
static void delete_at(at_live_seg *g, uint64_t i)
{
    uint64_t mask = g->mask;
    for (uint64_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        at_live_slot *s = slot_at(g, j);
        if (slot_state(s) == SLOT_EMPTY)
            break;
        /* s may fill the hole unless its home lies in (i, j] */
        uint64_t home = home_of(s->ptr, key_hash(s->ptr), mask);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            slot_copy(g, slot_at(g, i), s);
            i = j;
        }
    }
    slot_at(g, i)->seqw = 0;
    g->used--;
}

static int make_first(at_live_shard *sh)
{
    at_live_seg **dir = at__mem_alloc(sizeof *dir);
    at_live_seg *g = dir ? seg_new(INITIAL_SLOTS, 0, sh->stride) : NULL;
    if (!g) {
        at__mem_free(dir, sizeof *dir);
        return -1;
    }
    dir[0] = g;
    sh->depth = 0;
    __atomic_store_n(&sh->dir, dir, __ATOMIC_RELEASE); /* at__live_prefetch reads it unlocked */
    return 0;
}

static int grow_dir(at_live_shard *sh)
{
    uint64_t n = (uint64_t)1 << sh->depth;
    if (sh->depth + 1 >= AT_LIVE_MAX_DEPTH)
        return -1;
    at_live_seg **dir = at__mem_alloc(2 * n * sizeof *dir);
    if (!dir)
        return -1;
    for (uint64_t k = 0; k < n; k++)
        dir[2 * k] = dir[2 * k + 1] = sh->dir[k];
    /* The old directory stays (at__live_prefetch may be reading it); the
     * new one is published before its depth, so a reader that sees the
     * depth sees a directory at least that deep. */
    sh->retired[sh->depth] = sh->dir;
    __atomic_store_n(&sh->dir, dir, __ATOMIC_RELEASE);
    __atomic_store_n(&sh->depth, sh->depth + 1, __ATOMIC_RELEASE);
    return 0;
}

/* Splits full segment `a`, which holds hash `h`, by its next bit: the
 * entries with that bit set go to a new segment.  Deleting them from `a`
 * one by one (backward shift) keeps `a` a valid table; slot i is looked at
 * again after each deletion, since an entry not yet looked at may have
 * moved there (entries only move back, into i or past it). */
static int split(at_live_shard *sh, at_live_seg *a, uint64_t h)
{
    if (a->depth == sh->depth && grow_dir(sh) != 0)
        return -1;
    at_live_seg *b = seg_new(a->mask + 1, a->depth + 1, a->stride);
    if (!b)
        return -1;
    int bit = 57 - (int)a->depth;
    for (uint64_t i = 0; i <= a->mask; i++) {
        while (slot_state(slot_at(a, i)) != SLOT_EMPTY && (key_hash(slot_at(a, i)->ptr) >> bit & 1)) {
            seg_put(b, slot_at(a, i));
            delete_at(a, i);
        }
    }
    a->depth++;
    uint32_t span = sh->depth - a->depth; /* each half fills 2^span entries */
    uint64_t first = dir_index(h, sh->depth) >> (span + 1) << (span + 1);
    for (uint64_t k = 0; k < (uint64_t)1 << span; k++)
        sh->dir[first + ((uint64_t)1 << span) + k] = b;
    return 0;
}

/* After a deletion from `a` (holding hash `h`): an eighth full, it is
 * merged with its buddy if both fit in a quarter of one, or halved if it
 * is the shard's only segment. */
static void shrink(at_live_shard *sh, at_live_seg *a, uint64_t h)
{
    uint64_t cap = a->mask + 1;
    if (8 * a->used >= cap)
        return;
    if (a->depth == 0) {
        if (cap > INITIAL_SLOTS)
            seg_resize(a, cap / 2);
        return;
    }
    uint32_t span = sh->depth - a->depth;
    uint64_t idx = dir_index(h, sh->depth);
    at_live_seg *b = sh->dir[idx ^ ((uint64_t)1 << span)];
    if (b->depth != a->depth || 4 * (a->used + b->used) >= cap)
        return;
    for (uint64_t j = 0; j <= b->mask; j++)
        if (slot_state(slot_at(b, j)) != SLOT_EMPTY)
            seg_put(a, slot_at(b, j));
    a->depth--;
    uint64_t first = idx >> (span + 1) << (span + 1);
    for (uint64_t k = 0; k < (uint64_t)2 << span; k++)
        sh->dir[first + k] = a;
    seg_free(b);
}

/* Room for one more entry in `g`, the segment of hash `h`: grown or
 * split at three quarters.  0, or -1 when out of memory and fuller than
 * 15/16 (fuller than 3/4 is still correct, only slower; a segment is never
 * filled up). */
static int make_room(at_live_shard *sh, at_live_seg *g, uint64_t h)
{
    uint64_t cap = g->mask + 1;
    if (4 * (g->used + 1) <= 3 * cap)
        return 0;
    if (cap < seg_slots ? seg_resize(g, 2 * cap) == 0 : split(sh, g, h) == 0)
        g = seg_of(sh, h);
    cap = g->mask + 1;
    return g->used + 1 > cap - cap / 16 ? -1 : 0;
}

void at__live_prefetch(at_live *lt, uintptr_t ptr)
{
    /* Without the shard's lock: its atomic exchange would wait for the
     * miss this is meant to hide.  What is read may be stale (a segment
     * merged away, slots moved by a resize); the memory stays mapped (old
     * directories are kept, segment headers come from mem.c's small
     * classes) and a prefetch of a wrong address is only a wasted one. */
    uint64_t h = key_hash(ptr);
    at_live_shard *sh = shard_of(lt, h);
    uint32_t depth = __atomic_load_n(&sh->depth, __ATOMIC_ACQUIRE);
    at_live_seg **dir = __atomic_load_n(&sh->dir, __ATOMIC_ACQUIRE);
    if (!dir)
        return;
    at_live_seg *g = __atomic_load_n(&dir[dir_index(h, depth)], __ATOMIC_RELAXED);
    char *slots = (char *)__atomic_load_n(&g->slots, __ATOMIC_RELAXED);
    uint64_t mask = __atomic_load_n(&g->mask, __ATOMIC_RELAXED);
    __builtin_prefetch(slots + home_of(ptr, h, mask) * g->stride, 1);
}

int at__live_insert(at_live *lt, const at_block_info *info, at_block_info *displaced)
{
    if (!packable(info))
        return AT_E_NOMEM;
    uint64_t h = key_hash(info->ptr);
    at_live_shard *sh = shard_of(lt, h);
    at__spin_lock(&sh->lock);
    if (!sh->dir && make_first(sh) != 0) {
        at__spin_unlock(&sh->lock);
        return AT_E_NOMEM;
    }
    at_live_seg *g = seg_of(sh, h);
    at_live_slot *s = slot_at(g, probe(g, info->ptr, h));
    if (slot_state(s) != SLOT_EMPTY) {
        /* The address is handed out again: a tombstone is reused in place,
         * a live entry means its release never came through us. */
        int ret = 0;
        if (slot_state(s) == SLOT_LIVE) {
            slot_get(sh, g, s, displaced);
            ret = 1;
        } else {
            sh->live++;
        }
        slot_set(g, s, info);
        at__spin_unlock(&sh->lock);
        return ret;
    }
    if (make_room(sh, g, h) != 0) {
        at__spin_unlock(&sh->lock);
        return AT_E_NOMEM;
    }
    g = seg_of(sh, h);
    s = slot_at(g, probe(g, info->ptr, h));
    slot_set(g, s, info);
    g->used++;
    sh->live++;
    at__spin_unlock(&sh->lock);
    return 0;
}

/* Turns the live block in slot i of `g`, at `ptr`, into a tombstone in the
 * shard's tomb ring, deleting the ring slot's previous tombstone if it
 * still is one. */
static void entomb(at_live_shard *sh, at_live_seg *g, uint64_t i, uintptr_t ptr, uint64_t h,
                   uint64_t free_seq, uint32_t free_stack)
{
    if (!sh->tombs) {
        sh->tombs = at__mem_calloc(AT_LIVE_TOMBSTONES * sizeof *sh->tombs);
        if (!sh->tombs) {
            /* Without a ring, forget the block now. */
            delete_at(g, i);
            return;
        }
    }
    uint64_t pos = sh->tomb_pos++;
    at_live_tomb *ring = &sh->tombs[pos & TOMB_MASK];
    if (pos >= AT_LIVE_TOMBSTONES) {
        uint64_t oh = key_hash(ring->ptr);
        at_live_seg *og = seg_of(sh, oh);
        uint64_t j = probe(og, ring->ptr, oh);
        const at_live_slot *old = slot_at(og, j);
        if (slot_state(old) == SLOT_RELEASED &&
            old->thread == (uint32_t)(pos - AT_LIVE_TOMBSTONES)) {
            delete_at(og, j);
            shrink(sh, og, oh);
            g = seg_of(sh, h); /* the deletion may have moved it */
            i = probe(g, ptr, h);
        }
    }
    set_state(slot_at(g, i), SLOT_RELEASED);
    slot_at(g, i)->thread = (uint32_t)pos;
    ring->ptr = ptr;
    ring->free_seq = free_seq;
    ring->free_stack = free_stack;
    /* The next entombing in this shard will look up the next ring slot's
     * address: start fetching its slot now, so that miss overlaps other
     * work. */
    if (pos + 1 >= AT_LIVE_TOMBSTONES) {
        uintptr_t np = sh->tombs[(pos + 1) & TOMB_MASK].ptr;
        uint64_t nh = key_hash(np);
        const at_live_seg *ng = seg_of(sh, nh);
        __builtin_prefetch(slot_at(ng, home_of(np, nh, ng->mask)), 1);
    }
}

static int find_interior(at_live *lt, uintptr_t ptr, at_block_info *out)
{
    for (int i = 0; i < AT_LIVE_SHARDS; i++) {
        at_live_shard *sh = &lt->shards[i];
        at__spin_lock(&sh->lock);
        uint64_t k = 0;
        for (at_live_seg *g; (g = next_seg(sh, &k));) {
            for (uint64_t j = 0; j <= g->mask; j++) {
                at_live_slot *s = slot_at(g, j);
                if (slot_state(s) == SLOT_LIVE && ptr > s->ptr && ptr - s->ptr < slot_size(s)) {
                    slot_get(sh, g, s, out);
                    at__spin_unlock(&sh->lock);
                    return 1;
                }
            }
        }
        at__spin_unlock(&sh->lock);
    }
    return 0;
}

enum at_live_lookup at__live_release(at_live *lt, uintptr_t ptr, uint64_t free_seq,
                                     uint32_t free_stack, at_block_info *out)
{
    uint64_t h = key_hash(ptr);
    at_live_shard *sh = shard_of(lt, h);
    /* The ring slot a release will use, fetched while the lookup runs (an
     * unlocked peek: at worst the wrong line is fetched). */
    at_live_tomb *ring = __atomic_load_n(&sh->tombs, __ATOMIC_RELAXED);
    if (ring)
        __builtin_prefetch(&ring[__atomic_load_n(&sh->tomb_pos, __ATOMIC_RELAXED) & TOMB_MASK], 1);
    at__spin_lock(&sh->lock);
    if (sh->dir) {
        at_live_seg *g = seg_of(sh, h);
        uint64_t i = probe(g, ptr, h);
        at_live_slot *s = slot_at(g, i);
        if (slot_state(s) == SLOT_LIVE) {
            slot_get(sh, g, s, out);
            sh->live--;
            entomb(sh, g, i, ptr, h, free_seq, free_stack);
            at__spin_unlock(&sh->lock);
            return AT_LIVE_FOUND;
        }
        if (slot_state(s) == SLOT_RELEASED) {
            slot_get(sh, g, s, out);
            at__spin_unlock(&sh->lock);
            return AT_LIVE_RELEASED;
        }
    }
    at__spin_unlock(&sh->lock);
    return find_interior(lt, ptr, out) ? AT_LIVE_INTERIOR : AT_LIVE_UNKNOWN;
}

int at__live_find(at_live *lt, uintptr_t ptr, at_block_info *out)
{
    uint64_t h = key_hash(ptr);
    at_live_shard *sh = shard_of(lt, h);
    int hit = 0;
    at__spin_lock(&sh->lock);
    if (sh->dir) {
        at_live_seg *g = seg_of(sh, h);
        at_live_slot *s = slot_at(g, probe(g, ptr, h));
        if (slot_state(s) == SLOT_LIVE) {
            slot_get(sh, g, s, out);
            hit = 1;
        }
    }
    at__spin_unlock(&sh->lock);
    return hit;
}

int at__live_containing(at_live *lt, uintptr_t ptr, at_block_info *out)
{
    return at__live_find(lt, ptr, out) || find_interior(lt, ptr, out);
}

void at__live_unrelease(at_live *lt, const at_block_info *info)
{
    at_block_info ignored;
    at__live_insert(lt, info, &ignored);
}

static void foreach_in(at_live_shard *sh, void (*fn)(const at_block_info *, void *), void *arg)
{
    uint64_t k = 0;
    for (at_live_seg *g; (g = next_seg(sh, &k));) {
        for (uint64_t j = 0; j <= g->mask; j++) {
            if (slot_state(slot_at(g, j)) == SLOT_LIVE) {
                at_block_info b;
                slot_get(sh, g, slot_at(g, j), &b);
                fn(&b, arg);
            }
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

uint64_t at__live_count(at_live *lt)
{
    uint64_t n = 0;
    for (int i = 0; i < AT_LIVE_SHARDS; i++)
        n += __atomic_load_n(&lt->shards[i].live, __ATOMIC_RELAXED);
    return n;
}
