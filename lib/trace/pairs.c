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

/* ---- pending allocations (at_pending) --------------------------------------- */

/* An allocation in a page, its seq the slot's: 24 bytes.  `w0` holds the
 * address (48 bits: a user-space address on the 64-bit machines Linux
 * runs on), align_log2 (6), family (5) and op (5); `w1` the size (40 bits)
 * and the thread (24); `w2` the stack (32) and the allocation's time as
 * nanoseconds after the page's `t0` (signed, 32 bits: +-2.1 s).  An
 * allocation whose fields do not fit goes to the hash: a block of 1 TiB
 * or more, the 16 millionth thread, a page whose allocations are seconds
 * apart.  keep_live 2 M: the reader's pages 64 -> 48 MB. */
typedef struct dense {
    uint64_t w0, w1, w2;
} dense;

_Static_assert(sizeof(dense) == 24, "a pending allocation in a page is 24 bytes");

struct at_pending_page {
    uint64_t used[AT_PENDING_PAGE / 64]; /* which slots hold an allocation */
    uint32_t count;
    uint64_t t0; /* the time of the allocation that made the page */
    struct at_pending_page *next_spare;
    dense e[AT_PENDING_PAGE];
};

/* A page holding fewer than SPARSE allocations once OLD_PAGES newer pages
 * exist gives them to the hash: a page costs at most 96 bytes per
 * allocation it holds (an entry of the hash about 60).  Sequence numbers
 * beyond 16 per allocation read (plus 2^24) are not given pages: only a
 * corrupt spool has them, and the page array stays bounded by the input. */
enum { SPARSE = AT_PENDING_PAGE / 4, OLD_PAGES = 4, MAX_SPARE = 8 };

#define LOW(n) ((((uint64_t)1) << (n)) - 1)

/* Whether the fields fit a page's entry, but for the time (time_fits). */
static int fits(const at_pair *a)
{
    return a->u.a.ptr >> 48 == 0 && a->u.a.size >> 40 == 0 && a->u.a.thread >> 24 == 0 &&
           a->u.a.align_log2 < 64 && a->u.a.family < 32 && a->u.a.op < 32;
}

static int time_fits(const at_pending_page *g, uint64_t t)
{
    int64_t d = (int64_t)(t - g->t0);
    return d >= INT32_MIN && d <= INT32_MAX;
}

static void dense_set(const at_pending_page *g, dense *d, const at_pair *a)
{
    d->w0 = a->u.a.ptr | (uint64_t)a->u.a.align_log2 << 48 | (uint64_t)a->u.a.family << 54 |
            (uint64_t)a->u.a.op << 59;
    d->w1 = a->u.a.size | (uint64_t)a->u.a.thread << 40;
    d->w2 = a->u.a.stack | (uint64_t)(uint32_t)(a->u.a.t - g->t0) << 32; /* time_fits: +-2^31 */
}

static void dense_get(const at_pending_page *g, const dense *d, uint64_t seq, at_pair *a)
{
    memset(a, 0, sizeof *a);
    a->seq = seq;
    a->state = AT_PAIR_ALLOC;
    a->u.a.ptr = d->w0 & LOW(48);
    a->u.a.align_log2 = (uint8_t)(d->w0 >> 48 & 63);
    a->u.a.family = (uint8_t)(d->w0 >> 54 & 31);
    a->u.a.op = (uint8_t)(d->w0 >> 59 & 31);
    a->u.a.size = d->w1 & LOW(40);
    a->u.a.thread = (uint32_t)(d->w1 >> 40);
    a->u.a.stack = (uint32_t)d->w2;
    a->u.a.t = g->t0 + (uint64_t)(int64_t)(int32_t)(uint32_t)(d->w2 >> 32);
}

static int hash_put(at_pairs *h, const at_pair *a)
{
    at_pair *e = at__pairs_add(h, a->seq);
    if (!e)
        return -1;
    *e = *a;
    return 0;
}

static void page_release(at_pending *p, size_t k)
{
    at_pending_page *g = p->pages[k];
    p->pages[k] = NULL;
    if (p->nspare < MAX_SPARE) {
        g->next_spare = p->spare;
        p->spare = g;
        p->nspare++;
    } else {
        free(g);
    }
}

/* Page k's allocations go to the hash and the page is released; without
 * the memory, the page stays as it was. */
static void migrate(at_pending *p, size_t k)
{
    at_pending_page *g = p->pages[k];
    int failed = 0;
    for (size_t w = 0; w < AT_PENDING_PAGE / 64; w++)
        for (uint64_t m = g->used[w]; m && !failed; m &= m - 1) {
            size_t i = w * 64 + (size_t)__builtin_ctzll(m);
            at_pair a;
            dense_get(g, &g->e[i], (uint64_t)k << AT_PENDING_SHIFT | i, &a);
            failed = hash_put(&p->hash, &a) != 0;
        }
    if (failed) {
        for (size_t w = 0; w < AT_PENDING_PAGE / 64; w++)
            for (uint64_t m = g->used[w]; m; m &= m - 1) {
                uint64_t seq = (uint64_t)k << AT_PENDING_SHIFT | (w * 64 + (size_t)__builtin_ctzll(m));
                size_t slot = at__pairs_find(&p->hash, seq);
                if (slot != SIZE_MAX)
                    at__pairs_remove(&p->hash, slot);
            }
        return;
    }
    p->in_pages -= g->count;
    page_release(p, k);
}

static int is_sparse_and_old(const at_pending *p, size_t k)
{
    return p->pages[k] && p->pages[k]->count < SPARSE && k + OLD_PAGES < p->top;
}

/* Page k, made if need be (its times counted from t); NULL without
 * memory or when k is too far. */
static at_pending_page *page_for(at_pending *p, size_t k, uint64_t t)
{
    if (k < p->npages && p->pages[k])
        return p->pages[k];
    if (k >= ((p->puts + ((uint64_t)1 << 24)) * 16) >> AT_PENDING_SHIFT)
        return NULL;
    if (k >= p->npages) {
        size_t n = p->npages ? p->npages : 64;
        while (n <= k)
            n *= 2;
        at_pending_page **pages = realloc(p->pages, n * sizeof *pages);
        if (!pages)
            return NULL;
        memset(pages + p->npages, 0, (n - p->npages) * sizeof *pages);
        p->pages = pages;
        p->npages = n;
    }
    at_pending_page *g = p->spare;
    if (g) {
        p->spare = g->next_spare;
        p->nspare--;
    } else if (!(g = malloc(sizeof *g))) {
        return NULL;
    }
    memset(g->used, 0, sizeof g->used);
    g->count = 0;
    g->t0 = t;
    p->pages[k] = g;
    if (k + 1 > p->top) {
        p->top = k + 1;
        /* the page OLD_PAGES before is now old: if sparse, it goes */
        if (k > OLD_PAGES && is_sparse_and_old(p, k - OLD_PAGES - 1))
            migrate(p, k - OLD_PAGES - 1);
    }
    return g;
}

int at__pending_put(at_pending *p, const at_pair *a)
{
    p->puts++;
    at_pending_page *g = fits(a) ? page_for(p, (size_t)(a->seq >> AT_PENDING_SHIFT), a->u.a.t) : NULL;
    if (!g || !time_fits(g, a->u.a.t))
        return hash_put(&p->hash, a);
    size_t i = (size_t)(a->seq & (AT_PENDING_PAGE - 1));
    uint64_t bit = (uint64_t)1 << (i & 63);
    if (g->used[i / 64] & bit)
        return 1;
    g->used[i / 64] |= bit;
    g->count++;
    p->in_pages++;
    dense_set(g, &g->e[i], a);
    return 0;
}

int at__pending_take(at_pending *p, uint64_t seq, at_pair *out)
{
    size_t k = (size_t)(seq >> AT_PENDING_SHIFT);
    at_pending_page *g = k < p->npages ? p->pages[k] : NULL;
    size_t i = (size_t)(seq & (AT_PENDING_PAGE - 1));
    uint64_t bit = (uint64_t)1 << (i & 63);
    if (g && (g->used[i / 64] & bit)) {
        dense_get(g, &g->e[i], seq, out);
        g->used[i / 64] &= ~bit;
        g->count--;
        p->in_pages--;
        if (g->count == 0)
            page_release(p, k);
        else if (is_sparse_and_old(p, k))
            migrate(p, k);
        return 1;
    }
    size_t slot = at__pairs_find(&p->hash, seq);
    if (slot == SIZE_MAX || at__pairs_at(&p->hash, slot)->state != AT_PAIR_ALLOC)
        return 0;
    *out = *at__pairs_at(&p->hash, slot);
    at__pairs_remove(&p->hash, slot);
    return 1;
}

int at__pending_peek(const at_pending *p, uint64_t seq, at_pair *out)
{
    size_t k = (size_t)(seq >> AT_PENDING_SHIFT);
    const at_pending_page *g = k < p->npages ? p->pages[k] : NULL;
    size_t i = (size_t)(seq & (AT_PENDING_PAGE - 1));
    if (g && (g->used[i / 64] & ((uint64_t)1 << (i & 63)))) {
        dense_get(g, &g->e[i], seq, out);
        return 1;
    }
    size_t slot = at__pairs_find(&p->hash, seq);
    if (slot == SIZE_MAX)
        return 0;
    *out = *at__pairs_at(&p->hash, slot);
    return 1;
}

static size_t hash_allocs(const at_pairs *h)
{
    size_t n = 0;
    uint32_t cursor = 0;
    for (at_pair *e; (e = at__pairs_next(h, &cursor));)
        n += e->state == AT_PAIR_ALLOC;
    return n;
}

size_t at__pending_count(const at_pending *p)
{
    return p->in_pages + hash_allocs(&p->hash);
}

static int by_seq(const void *a, const void *b)
{
    uint64_t x = (*(at_pair *const *)a)->seq, y = (*(at_pair *const *)b)->seq;
    return (x > y) - (x < y);
}

int at__pending_each(const at_pending *p, void (*fn)(const at_pair *, uint64_t nth, void *),
                     void *arg)
{
    size_t n = hash_allocs(&p->hash), j = 0;
    at_pair **sorted = n ? malloc(n * sizeof *sorted) : NULL;
    if (n && !sorted)
        return -1;
    uint32_t cursor = 0;
    for (at_pair *e; (e = at__pairs_next(&p->hash, &cursor));)
        if (e->state == AT_PAIR_ALLOC)
            sorted[j++] = e;
    if (n)
        qsort(sorted, n, sizeof *sorted, by_seq);
    uint64_t nth = 0;
    j = 0;
    for (size_t k = 0; k < p->top; k++) {
        const at_pending_page *g = p->pages[k];
        if (!g)
            continue;
        for (size_t w = 0; w < AT_PENDING_PAGE / 64; w++)
            for (uint64_t m = g->used[w]; m; m &= m - 1) {
                uint64_t seq = (uint64_t)k << AT_PENDING_SHIFT | (w * 64 +
                               (size_t)__builtin_ctzll(m));
                while (j < n && sorted[j]->seq < seq)
                    fn(sorted[j++], nth++, arg);
                at_pair a;
                dense_get(g, &g->e[seq & (AT_PENDING_PAGE - 1)], seq, &a);
                fn(&a, nth++, arg);
            }
    }
    while (j < n)
        fn(sorted[j++], nth++, arg);
    free(sorted);
    return 0;
}

void at__pending_free(at_pending *p)
{
    for (size_t k = 0; k < p->npages; k++)
        free(p->pages[k]);
    free(p->pages);
    while (p->spare) {
        at_pending_page *g = p->spare;
        p->spare = g->next_spare;
        free(g);
    }
    at__pairs_free(&p->hash);
    memset(p, 0, sizeof *p);
}
