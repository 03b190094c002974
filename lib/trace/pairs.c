/* The table of pending pairs (pairs.h). */
#include <stdlib.h>
#include <string.h>

#include "pairs.h"

/* Entries per page: 704 KiB pages, which never move once allocated. */
enum { PAGE_SHIFT = 14, PAGE_ENTRIES = 1u << PAGE_SHIFT };

/* The index grows by doubling once this many slots in 8 are taken: with
 * linear probing a successful search then takes ~2.5 probes at worst,
 * ~1.5 right after a doubling. */
enum { LOAD_EIGHTHS = 6, FIRST_SLOTS = 1024 };

_Static_assert(sizeof(at_pair) == 44, "a pending pair is packed in 44 bytes");

/* Sequence numbers come in order: a full mix (murmur3's finalizer)
 * spreads them and anything a hostile spool sends alike. */
static uint32_t hash_seq(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return (uint32_t)k;
}

static at_pair *entry(const at_pairs *p, uint32_t ref)
{
    return &p->pages[ref >> PAGE_SHIFT][ref & (PAGE_ENTRIES - 1)];
}

static uint32_t slot_ref(uint64_t s)
{
    return (uint32_t)s - 1;
}

/* The slot where a hash's probe starts: the index has at most 2^32 slots,
 * so the hash kept in a slot says where its entry belongs. */
static size_t home(const at_pairs *p, uint64_t s)
{
    return (size_t)(s >> 32) & p->mask;
}

size_t at__pairs_find(const at_pairs *p, uint64_t seq)
{
    if (!p->slots)
        return SIZE_MAX;
    uint32_t h = hash_seq(seq);
    for (size_t i = h & p->mask;; i = (i + 1) & p->mask) {
        uint64_t s = p->slots[i];
        if (s == 0)
            return SIZE_MAX;
        if ((uint32_t)(s >> 32) == h && entry(p, slot_ref(s))->seq == seq)
            return i;
    }
}

at_pair *at__pairs_at(const at_pairs *p, size_t slot)
{
    return entry(p, slot_ref(p->slots[slot]));
}

static void place(uint64_t *slots, size_t mask, uint64_t s)
{
    size_t i = (size_t)(s >> 32) & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = s;
}

/* Doubles the index (or makes the first one); 0 without memory. */
static int grow_index(at_pairs *p)
{
    size_t n = p->slots ? (p->mask + 1) * 2 : FIRST_SLOTS;
    if (n - 1 > UINT32_MAX)
        return 0;
    uint64_t *slots = calloc(n, sizeof *slots);
    if (!slots)
        return 0;
    if (p->slots)
        for (size_t i = 0; i <= p->mask; i++)
            if (p->slots[i])
                place(slots, n - 1, p->slots[i]);
    free(p->slots);
    p->slots = slots;
    p->mask = n - 1;
    return 1;
}

/* A ref for a new entry: the free list's first, or a fresh one; 0 without
 * memory. */
static int new_ref(at_pairs *p, uint32_t *ref)
{
    if (p->unused_head) {
        *ref = p->unused_head - 1;
        p->unused_head = entry(p, *ref)->u.next_unused;
        return 1;
    }
    if (p->used == UINT32_MAX)
        return 0;
    if ((p->used & (PAGE_ENTRIES - 1)) == 0) {
        size_t page = p->used >> PAGE_SHIFT;
        if (page == p->npages) {
            size_t n = p->npages ? p->npages * 2 : 16;
            at_pair **pages = realloc(p->pages, n * sizeof *pages);
            if (!pages)
                return 0;
            memset(pages + p->npages, 0, (n - p->npages) * sizeof *pages);
            p->pages = pages;
            p->npages = n;
        }
        if (!p->pages[page] && !(p->pages[page] = malloc(PAGE_ENTRIES * sizeof(at_pair))))
            return 0;
    }
    *ref = p->used++;
    return 1;
}

at_pair *at__pairs_add(at_pairs *p, uint64_t seq)
{
    if ((!p->slots || (p->count + 1) * 8 > (p->mask + 1) * LOAD_EIGHTHS) && !grow_index(p))
        return NULL;
    uint32_t ref;
    if (!new_ref(p, &ref))
        return NULL;
    place(p->slots, p->mask, (uint64_t)hash_seq(seq) << 32 | ((uint64_t)ref + 1));
    p->count++;
    at_pair *e = entry(p, ref);
    e->seq = seq;
    return e;
}

void at__pairs_remove(at_pairs *p, size_t slot)
{
    uint32_t ref = slot_ref(p->slots[slot]);
    at_pair *e = entry(p, ref);
    e->state = AT_PAIR_UNUSED;
    e->u.next_unused = p->unused_head;
    p->unused_head = ref + 1;
    p->count--;
    /* Backward shift: each entry after the hole that may sit in it (its
     * home is no later than the hole, cyclically) moves in, leaving a hole
     * where it was, until an empty slot ends the run. */
    size_t hole = slot;
    for (size_t j = (slot + 1) & p->mask; p->slots[j]; j = (j + 1) & p->mask) {
        size_t h = home(p, p->slots[j]);
        if (((j - h) & p->mask) >= ((j - hole) & p->mask)) {
            p->slots[hole] = p->slots[j];
            hole = j;
        }
    }
    p->slots[hole] = 0;
}

at_pair *at__pairs_next(const at_pairs *p, uint32_t *cursor)
{
    while (*cursor < p->used) {
        at_pair *e = entry(p, (*cursor)++);
        if (e->state != AT_PAIR_UNUSED)
            return e;
    }
    return NULL;
}

void at__pairs_free(at_pairs *p)
{
    for (size_t i = 0; i < p->npages; i++)
        free(p->pages[i]);
    free(p->pages);
    free(p->slots);
    memset(p, 0, sizeof *p);
}
