/* The reachability scan (reach.h): the blocks, the roots, the marking.
 *
 * Marking follows valgrind's memcheck, so that both give a block the same
 * class: roots and registers first, a pointer to a block's start from a
 * root or a reachable block makes it reachable, any other pointer into it
 * (or one from a possibly lost block) possibly lost, and a block whose
 * state rises is scanned again.  Then every block still unreached, in
 * address order, leads a clique: what it reaches and nothing reached
 * before is indirectly lost, and a former leader that a later one reaches
 * joins that one's clique.  The leaders are definitely lost.
 *
 * The pools' blocks (pools.h) are a second set, looked up before the
 * malloc blocks: they lie inside malloc'd chunks, and a word pointing into
 * one is the pool block's.  Both sets share the mark stack (a pool block's
 * id there is its index plus the number of malloc blocks) and the clique
 * pass walks them together in address order.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <alloctrace/error.h>

#include "clock.h"
#include "mem.h"
#include "pools.h"
#include "reach.h"
#include "tracer_internal.h"

enum { S_UNREACHED = 0, S_POSSIBLE = 1, S_REACHABLE = 2, S_INDIRECT = 3 };
enum { PAGE_SHIFT = 12, NO_CLIQUE = -1 };
#define HUGE_MAPPING ((uintptr_t)256 << 30)

/* The blocks as a lookup table: sorted starts, plus an open-addressing
 * table from each page a block covers to the first block covering it, so
 * that a word that points into no block costs one probe.  Blocks of more
 * than BIG_PAGES pages are kept aside and searched when the probe fails. */
enum { BIG_PAGES = 256 };

typedef struct blockset {
    at_reach_block *b;
    uint8_t *st;
    size_t n;
    uintptr_t lo, hi; /* lowest start, highest end */
    uint64_t *pages;  /* (page << 1 | 1) keys; 0 free */
    uint32_t *first;
    size_t pmask, pages_bytes;
    uint32_t *big;
    size_t nbig, big_bytes;
} blockset;

typedef struct scan {
    blockset heap; /* malloc's blocks (the pools' chunks among them) */
    blockset pool; /* the pools' blocks */
    uintptr_t lo, hi; /* the lowest start and highest end of both */
    uint32_t *stack; /* the mark stack: each block at most twice */
    size_t top, stack_bytes;
    uint32_t *possible; /* blocks found possibly lost, scanned once no other is left */
    size_t ptop;
    const at_vmas *vmas;
    int direct; /* blocks may be read in place */
    uint64_t scanned, skipped;
    char *buf; /* roots are copied here */
    size_t buf_bytes;
    int pagemap; /* /proc/self/pagemap, or -1 */
    uint64_t untouched; /* root bytes never written, not read */
    uintptr_t *vtables; /* VT_SLOTS answers of looks_like_vtable, or NULL */
} scan;

/* looks_like_vtable's answers, direct-mapped by address: a program's
 * objects point to a few thousand vtables, and each answer costs a
 * system call (the word is read through process_vm_readv).  A slot holds
 * the address with its answer in bit 0 (addresses are word-aligned). */
enum { VT_SLOTS = 1 << 14 };

static size_t mix(uint64_t page)
{
    page *= 0x9E3779B97F4A7C15ull;
    return (size_t)(page >> 17);
}

static size_t span_pages(const at_reach_block *b)
{
    uint64_t size = b->size ? b->size : 1;
    return (size_t)(((b->start + size - 1) >> PAGE_SHIFT) - (b->start >> PAGE_SHIFT) + 1);
}

static void page_put(blockset *s, uint64_t page, uint32_t idx)
{
    uint64_t key = page << 1 | 1;
    for (size_t h = mix(page) & s->pmask;; h = (h + 1) & s->pmask) {
        if (s->pages[h] == key)
            return; /* a lower block covers it already */
        if (s->pages[h] == 0) {
            s->pages[h] = key;
            s->first[h] = idx;
            return;
        }
    }
}

static int page_get(const blockset *s, uint64_t page, uint32_t *idx)
{
    uint64_t key = page << 1 | 1;
    for (size_t h = mix(page) & s->pmask;; h = (h + 1) & s->pmask) {
        if (s->pages[h] == key) {
            *idx = s->first[h];
            return 1;
        }
        if (s->pages[h] == 0)
            return 0;
    }
}

static int index_blocks(blockset *s)
{
    size_t npages = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t k = span_pages(&s->b[i]);
        if (k > BIG_PAGES)
            s->nbig++;
        else
            npages += k;
    }
    size_t cap = 1024;
    while (cap < npages * 2)
        cap *= 2;
    s->pmask = cap - 1;
    s->pages_bytes = cap * (sizeof *s->pages + sizeof *s->first);
    s->pages = at__reach_map(s->pages_bytes);
    s->big_bytes = (s->nbig + 1) * sizeof *s->big;
    s->big = at__reach_map(s->big_bytes);
    if (!s->pages || !s->big)
        return AT_E_NOMEM;
    s->first = (uint32_t *)(s->pages + cap);
    size_t nb = 0;
    for (size_t i = 0; i < s->n; i++) {
        const at_reach_block *b = &s->b[i];
        size_t k = span_pages(b);
        if (k > BIG_PAGES) {
            s->big[nb++] = (uint32_t)i;
            continue;
        }
        for (size_t p = 0; p < k; p++)
            page_put(s, (b->start >> PAGE_SHIFT) + p, (uint32_t)i);
    }
    if (s->n) {
        s->lo = s->b[0].start;
        for (size_t i = 0; i < s->n; i++) {
            uintptr_t end = s->b[i].start + (s->b[i].size ? s->b[i].size : 1);
            if (end > s->hi)
                s->hi = end;
        }
    }
    return 0;
}

static int contains(const at_reach_block *b, uintptr_t w)
{
    return w >= b->start && w - b->start < (b->size ? b->size : 1);
}

/* The block `w` points into, or -1. */
static long find_block(const blockset *s, uintptr_t w)
{
    if (w < s->lo || w >= s->hi)
        return -1;
    uint32_t first;
    if (page_get(s, w >> PAGE_SHIFT, &first)) {
        /* The last block starting at or below w, among those from
         * `first` on: at most one page's worth of starts past it, and
         * mostly a few, so galloping from `first` (1, 2, 4... blocks on)
         * before halving keeps to a cache line or two. */
        size_t lo = first, hi = s->n, limit = lo + 4098 < hi ? lo + 4098 : hi;
        for (size_t step = 1;; step *= 2) {
            size_t probe = lo + step;
            if (probe >= limit) {
                hi = limit;
                break;
            }
            if (s->b[probe].start > w) {
                hi = probe;
                break;
            }
            lo = probe;
        }
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (s->b[mid].start <= w)
                lo = mid;
            else
                hi = mid;
        }
        if (contains(&s->b[lo], w))
            return (long)lo;
    }
    for (size_t i = 0; i < s->nbig; i++)
        if (contains(&s->b[s->big[i]], w))
            return (long)s->big[i];
    return -1;
}

/* ---- reading a block's words ----------------------------------------------------- */

/* The word at `addr` of a live block, if it can be read safely. */
static int peek(const scan *s, uintptr_t addr, uintptr_t *out)
{
    if (s->direct && at__vmas_readable_anon(s->vmas, addr, addr + sizeof *out)) {
        memcpy(out, (const void *)addr, sizeof *out);
        return 1;
    }
    return at__reach_copy(addr, out, sizeof *out) == 0;
}

static int vtable_uncached(const scan *s, uintptr_t p)
{
    const at_vma *m = at__vmas_find(s->vmas, p);
    if (!m || !m->read || m->write || m->anon)
        return 0;
    uintptr_t fn;
    if (at__reach_copy(p, &fn, sizeof fn) != 0)
        return 0;
    const at_vma *code = at__vmas_find(s->vmas, fn);
    return fn == 0 || (code && code->exec && !code->write);
}

static int looks_like_vtable(const scan *s, uintptr_t p)
{
    if (p < 4096 || (p & (sizeof p - 1)))
        return 0;
    if (!s->vtables)
        return vtable_uncached(s, p);
    uintptr_t *slot = &s->vtables[(p * 0x9e3779b97f4a7c15ull) >> 50];
    if ((*slot & ~(uintptr_t)1) != p)
        *slot = p | (uintptr_t)vtable_uncached(s, p);
    return (int)(*slot & 1);
}

/* valgrind's heuristics (its default, --leak-check-heuristics=all): an
 * interior pointer that is how a program normally holds the block.  The
 * layouts are those of libstdc++'s reference-counted std::string, a
 * 64-bit length prefix (sqlite's), new[] of elements with a destructor
 * (a count first) and a second base class's part of an object. */
static int heuristic_start(const scan *s, const at_reach_block *b, uintptr_t w)
{
    uintptr_t w0, w1;
    size_t W = sizeof(uintptr_t);
    if (w == b->start + 3 * W && peek(s, b->start + W, &w1) && 3 * W + w1 + 1 == b->size &&
        peek(s, b->start, &w0) && w0 <= w1)
        return 1; /* std::string: length, capacity, refcount, characters */
    if (w == b->start + W && b->size >= W && peek(s, b->start, &w0) && w0 > 0 &&
        ((b->size - W) == w0 || (b->size - W) % w0 == 0))
        return 1; /* a length or an element count first */
    if ((w & (W - 1)) == 0 && w != b->start && peek(s, w, &w1) && peek(s, b->start, &w0) &&
        looks_like_vtable(s, w1) && looks_like_vtable(s, w0))
        return 1; /* multiple inheritance */
    return 0;
}

/* glibc's arena keeps pointers to chunk headers (its top chunk, its bins),
 * and a header is the last word of the block before it: a word pointing
 * exactly there is the allocator's, not the program's. */
static int chunk_header_of_next(const at_reach_block *b, uintptr_t w)
{
    uint64_t chunk = (b->size + 8 + 15) & ~(uint64_t)15;
    if (chunk < 32)
        chunk = 32;
    return w == b->start - 16 + chunk;
}

/* ---- marking ----------------------------------------------------------------- */

/* A block's place on the mark stack: its index among the malloc blocks,
 * or the number of those plus its index among the pool blocks. */
static blockset *set_of(scan *s, size_t id, size_t *i)
{
    if (id < s->heap.n) {
        *i = id;
        return &s->heap;
    }
    *i = id - s->heap.n;
    return &s->pool;
}

static void push(scan *s, size_t id)
{
    s->stack[s->top++] = (uint32_t)id;
}

static void push_possible(scan *s, size_t id)
{
    s->possible[s->ptop++] = (uint32_t)id;
}

/* Block i of `set` (id on the stack), which word w points into.  glibc's
 * chunk headers are malloc's blocks' only. */
static void mark_in(scan *s, blockset *set, long i, size_t id, uintptr_t w, int prior_definite,
                    int from_root)
{
    const at_reach_block *b = &set->b[i];
    uint8_t *st = &set->st[i];
    if (*st == S_REACHABLE)
        return;
    int start = w == b->start;
    if (!start && from_root && set == &s->heap && chunk_header_of_next(b, w))
        return;
    if (!start)
        start = heuristic_start(s, b, w);
    if (start && prior_definite) {
        *st = S_REACHABLE;
        push(s, id);
    } else if (*st == S_UNREACHED) {
        *st = S_POSSIBLE;
        push_possible(s, id);
    }
}

/* The blocks word w stands for, as *pool and *heap (-1: none): a pool block
 * it points into, with the malloc block starting there too if any (the
 * pool's first block at its chunk's start: the word may be either), else
 * the malloc block it points into. */
static void blocks_at(const scan *s, uintptr_t w, long *pool, long *heap)
{
    *pool = s->pool.n ? find_block(&s->pool, w) : -1;
    *heap = find_block(&s->heap, w);
    if (*pool >= 0 && *heap >= 0 && s->heap.b[*heap].start != w)
        *heap = -1;
}

static void mark(scan *s, uintptr_t w, int prior_definite, int from_root)
{
    long p, h;
    blocks_at(s, w, &p, &h);
    if (p >= 0)
        mark_in(s, &s->pool, p, s->heap.n + (size_t)p, w, prior_definite, from_root);
    if (h >= 0)
        mark_in(s, &s->heap, h, (size_t)h, w, prior_definite, from_root);
}

static void gather_in(scan *s, blockset *set, long i, size_t id, long leader)
{
    if (i < 0 || (long)id == leader || set->st[i] != S_UNREACHED)
        return;
    set->st[i] = S_INDIRECT;
    push(s, id);
}

static void gather(scan *s, uintptr_t w, long leader)
{
    long p, h;
    blocks_at(s, w, &p, &h);
    gather_in(s, &s->pool, p, s->heap.n + (size_t)p, leader);
    gather_in(s, &s->heap, h, (size_t)h, leader);
}

static void scan_words(scan *s, const uintptr_t *words, size_t n, int prior_definite,
                       long leader, int from_root)
{
    uintptr_t lo = s->lo, span = s->hi - s->lo;
    for (size_t k = 0; k < n; k++) {
        uintptr_t w = words[k];
        if (w - lo >= span)
            continue;
        if (leader == NO_CLIQUE)
            mark(s, w, prior_definite, from_root);
        else
            gather(s, w, leader);
    }
}

/* Scans [lo, hi) of memory that is not a block: copied, never read in
 * place. */
static void copy_and_scan(scan *s, uintptr_t lo, uintptr_t hi)
{
    while (lo < hi) {
        size_t len = hi - lo < s->buf_bytes ? hi - lo : s->buf_bytes;
        s->skipped += at__reach_copy(lo, s->buf, len);
        s->scanned += len;
        scan_words(s, (const uintptr_t *)(void *)s->buf, len / 8, 1, NO_CLIQUE, 1);
        lo += len;
    }
}

/* A page that is neither present nor swapped out was never written: it
 * reads as zeros (or as its file, which holds no address of the heap), so
 * it is not read at all (/proc/self/pagemap: bit 63 present, 62 swapped).
 * Thread stacks of several MiB, mostly untouched, cost nothing then. */
enum { PM_BATCH = 512 };

static void scan_root(scan *s, uintptr_t lo, uintptr_t hi)
{
    lo = (lo + 7) & ~(uintptr_t)7;
    hi &= ~(uintptr_t)7;
    if (s->pagemap < 0) {
        copy_and_scan(s, lo, hi);
        return;
    }
    uint64_t pm[PM_BATCH];
    uintptr_t run = 0; /* start of the current run of touched pages, or 0 */
    for (uintptr_t page = lo & ~(uintptr_t)4095; page < hi;) {
        size_t want = (size_t)((hi - page + 4095) / 4096);
        if (want > PM_BATCH)
            want = PM_BATCH;
        ssize_t got = pread(s->pagemap, pm, want * 8, (off_t)(page / 4096 * 8));
        if (got < 8) {
            copy_and_scan(s, run ? run : (page > lo ? page : lo), hi);
            return;
        }
        for (size_t k = 0; k < (size_t)got / 8; k++, page += 4096) {
            int touched = (pm[k] >> 62) & 3;
            uintptr_t a = page > lo ? page : lo, b = page + 4096 < hi ? page + 4096 : hi;
            if (touched && !run)
                run = a;
            if (!touched) {
                if (run)
                    copy_and_scan(s, run, a);
                run = 0;
                s->untouched += b - a;
            }
        }
    }
    if (run)
        copy_and_scan(s, run, hi);
}

/* The words of [lo, hi) of a block, in place when that is safe. */
static void scan_range(scan *s, uintptr_t lo, uintptr_t hi, int definite, long leader)
{
    lo = (lo + 7) & ~(uintptr_t)7;
    hi &= ~(uintptr_t)7;
    if (hi <= lo)
        return;
    s->scanned += hi - lo;
    if (s->direct && at__vmas_readable_anon(s->vmas, lo, hi)) {
        scan_words(s, (const uintptr_t *)lo, (hi - lo) / 8, definite, leader, 0);
        return;
    }
    while (lo < hi) {
        size_t len = hi - lo < s->buf_bytes ? hi - lo : s->buf_bytes;
        at__reach_copy(lo, s->buf, len);
        scan_words(s, (const uintptr_t *)(void *)s->buf, len / 8, definite, leader, 0);
        lo += len;
    }
}

/* The first pool block ending after `lo` (pool blocks sorted by start;
 * one that overlaps another is found through it, a misannotation's cost). */
static size_t first_pool_after(const scan *s, uintptr_t lo)
{
    size_t a = 0, b = s->pool.n;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (s->pool.b[mid].start < lo)
            a = mid + 1;
        else
            b = mid;
    }
    if (a > 0 && s->pool.b[a - 1].start + s->pool.b[a - 1].size > lo)
        a--;
    return a;
}

/* A malloc block without the bytes of the live pool blocks inside it:
 * those are their blocks', scanned when they are reached. */
static void scan_chunk(scan *s, const at_reach_block *b, int definite, long leader)
{
    uintptr_t lo = b->start, hi = b->start + b->size;
    for (size_t k = first_pool_after(s, lo); k < s->pool.n && s->pool.b[k].start < hi; k++) {
        const at_reach_block *p = &s->pool.b[k];
        if (p->start > lo)
            scan_range(s, lo, p->start, definite, leader);
        if (p->start + p->size > lo)
            lo = p->start + p->size;
    }
    if (lo < hi)
        scan_range(s, lo, hi, definite, leader);
}

static void scan_block(scan *s, size_t id, long leader)
{
    size_t i;
    blockset *set = set_of(s, id, &i);
    const at_reach_block *b = &set->b[i];
    int definite = set->st[i] != S_POSSIBLE;
    if (set == &s->heap && s->pool.n)
        scan_chunk(s, b, definite, leader);
    else
        scan_range(s, b->start, b->start + b->size, definite, leader);
}

static void drain(scan *s, long leader)
{
    while (s->top > 0)
        scan_block(s, s->stack[--s->top], leader);
}

/* The marking: every block reachable first, then the possibly lost ones.
 * Scanning a possibly lost block makes nothing reachable, so once the
 * stack of reachable ones is empty it stays so, and a block found
 * possibly lost and raised later is scanned once, as reachable, instead
 * of once in each state (clang++ -fsyntax-only of bench/stl_heavy.cc:
 * 81 MB live, 159 MB scanned, its allocator's slabs reached through the
 * objects inside them before their start). */
static void drain_marks(scan *s)
{
    for (;;) {
        drain(s, NO_CLIQUE);
        if (s->ptop == 0)
            return;
        size_t id = s->possible[--s->ptop], i;
        const blockset *set = set_of(s, id, &i);
        if (set->st[i] == S_POSSIBLE) /* else raised, and scanned as reachable */
            scan_block(s, id, NO_CLIQUE);
    }
}

/* Every block still unreached leads a clique, in address order across
 * both sets. */
static void cliques(scan *s)
{
    size_t i = 0, k = 0;
    while (i < s->heap.n || k < s->pool.n) {
        int heap = k == s->pool.n || (i < s->heap.n && s->heap.b[i].start <= s->pool.b[k].start);
        size_t id = heap ? i++ : s->heap.n + k++;
        size_t j;
        blockset *set = set_of(s, id, &j);
        if (set->st[j] != S_UNREACHED)
            continue;
        push(s, id);
        drain(s, (long)id);
    }
}

/* ---- the roots ----------------------------------------------------------------- */

static void subtract_and_scan(scan *s, uintptr_t lo, uintptr_t hi, const at_ranges *ex)
{
    /* ex is sorted and merged: walk the parts of [lo, hi) between them. */
    size_t a = 0, b = ex->n;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (ex->r[mid].hi <= lo)
            a = mid + 1;
        else
            b = mid;
    }
    for (size_t k = a; lo < hi && k < ex->n && ex->r[k].lo < hi; k++) {
        if (ex->r[k].lo > lo)
            scan_root(s, lo, ex->r[k].lo);
        if (ex->r[k].hi > lo)
            lo = ex->r[k].hi;
    }
    if (lo < hi)
        scan_root(s, lo, hi);
}

static void add_region(uintptr_t lo, uintptr_t hi, void *arg)
{
    at__ranges_add(arg, lo, hi);
}

/* What is not a root: the tracer's memory, the scan's, glibc's heap (its
 * free chunks keep stale pointers to every block that ever was), each
 * stopped thread's stack below its stack pointer (the x86-64 red zone,
 * 128 bytes, is kept). */
static int exclusions(scan *s, const at_reach_world *w, const at_reach_self *self,
                      uintptr_t helper_sp, at_ranges *ex)
{
    const at_vma *hm = helper_sp ? at__vmas_find(s->vmas, helper_sp) : NULL;
    if (hm)
        at__ranges_add(ex, hm->lo, hm->hi);
    at__mem_each_region(add_region, ex);
    at__reach_self_ranges(ex);
    at__reach_own_ranges(ex);
    int rc = at__reach_heap_ranges(s->vmas, s->heap.b, s->heap.n, ex);
    rc = rc ? rc : at__reach_dead_stacks(s->vmas, ex, s->buf, s->buf_bytes);
    for (size_t i = 0; rc == 0 && i <= w->n; i++) {
        uintptr_t sp = i < w->n ? w->threads[i].sp : self->sp;
        if (i < w->n && w->threads[i].state != 1)
            continue;
        const at_vma *m = at__vmas_find(s->vmas, sp);
        uintptr_t below = sp > 128 ? (sp - 128) & ~(uintptr_t)7 : 0;
        if (m && below > m->lo)
            rc = at__ranges_add(ex, m->lo, below);
    }
    /* A block is never a root, whoever's heap it is in (an allocator other
     * than glibc's: AddressSanitizer's, a backend's arena; a pool's, in a
     * static array): it is read when something points to it. */
    for (size_t i = 0; rc == 0 && i < s->heap.n; i++)
        rc = at__ranges_add(ex, s->heap.b[i].start, s->heap.b[i].start + s->heap.b[i].size);
    for (size_t i = 0; rc == 0 && i < s->pool.n; i++)
        rc = at__ranges_add(ex, s->pool.b[i].start, s->pool.b[i].start + s->pool.b[i].size);
    at__ranges_normalize(ex);
    return rc;
}

static void scan_registers(scan *s, const at_reach_world *w, const at_reach_self *self)
{
    scan_words(s, self->regs, self->nregs, 1, NO_CLIQUE, 1);
    for (size_t i = 0; i < w->n; i++)
        if (w->threads[i].state == 1)
            scan_words(s, w->threads[i].regs, w->threads[i].nregs, 1, NO_CLIQUE, 1);
}

static int scan_roots(scan *s, const at_reach_world *w, const at_reach_self *self,
                      uintptr_t helper_sp)
{
    at_ranges ex = {0};
    int rc = exclusions(s, w, self, helper_sp, &ex);
    if (rc == 0) {
        for (size_t i = 0; i < s->vmas->n; i++) {
            const at_vma *m = &s->vmas->v[i];
            if (!m->read || !m->write || m->skip)
                continue;
            /* Reservations of that size are a sanitizer's shadow memory or a
             * runtime's address space, not data: counted, not read. */
            if (m->hi - m->lo > HUGE_MAPPING)
                s->skipped += m->hi - m->lo;
            else
                subtract_and_scan(s, m->lo, m->hi, &ex);
        }
        scan_registers(s, w, self);
    }
    at__ranges_free(&ex);
    return rc;
}

/* ---- the blocks ---------------------------------------------------------------- */

typedef struct collect {
    at_reach_block *b;
    size_t n, cap, seen;
} collect;

static void collect_one(const at_block_info *info, void *arg)
{
    collect *c = arg;
    c->seen++;
    if (c->n < c->cap)
        c->b[c->n++] = (at_reach_block){info->ptr, info->size, info->seq};
}

/* LSD radix sort on the start address, 16 bits a pass (bits 4..51). */
static int sort_blocks(at_reach_block *b, size_t n)
{
    size_t bytes = n * sizeof *b;
    at_reach_block *tmp = at__reach_map(bytes ? bytes : 1);
    uint32_t *count = at__reach_map(65536 * sizeof *count);
    if (!tmp || !count) {
        at__reach_unmap(tmp, bytes ? bytes : 1);
        at__reach_unmap(count, 65536 * sizeof *count);
        return AT_E_NOMEM;
    }
    at_reach_block *from = b, *to = tmp;
    for (int shift = 0; shift < 64; shift += 16) {
        memset(count, 0, 65536 * sizeof *count);
        for (size_t i = 0; i < n; i++)
            count[(from[i].start >> shift) & 0xffff]++;
        uint32_t sum = 0;
        for (size_t k = 0; k < 65536; k++) {
            uint32_t c = count[k];
            count[k] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            to[count[(from[i].start >> shift) & 0xffff]++] = from[i];
        at_reach_block *x = from;
        from = to;
        to = x;
    }
    /* Four passes: the result is back in b. */
    at__reach_unmap(tmp, bytes ? bytes : 1);
    at__reach_unmap(count, 65536 * sizeof *count);
    return 0;
}

static int map_blocks(size_t cap, at_reach_block **blocks, uint8_t **cls, size_t *bytes)
{
    *bytes = cap * (sizeof **blocks + 1);
    *blocks = at__reach_map(*bytes);
    if (!*blocks)
        return AT_E_NOMEM;
    *cls = (uint8_t *)(*blocks + cap);
    return 0;
}

static int collect_into(at_tracer *t, at_reach *out, size_t cap, size_t *seen)
{
    int rc = map_blocks(cap, &out->blocks, &out->cls, &out->map_bytes);
    if (rc)
        return rc;
    collect c = {out->blocks, 0, cap, 0};
    at__live_foreach(&t->live, collect_one, &c);
    out->n = c.n;
    *seen = c.seen;
    return 0;
}

/* The pools' blocks: pools_mu is held, so the count is exact. */
static int collect_pool_blocks(at_tracer *t, at_reach *out)
{
    size_t cap = (size_t)at__pools_live_count(t) + 1;
    int rc = map_blocks(cap, &out->pool_blocks, &out->pool_cls, &out->pool_map_bytes);
    if (rc)
        return rc;
    collect c = {out->pool_blocks, 0, cap, 0};
    at__pools_foreach_block(t, collect_one, &c);
    out->pool_n = c.n;
    return c.seen > c.n ? AT_E_NOMEM : sort_blocks(out->pool_blocks, out->pool_n);
}

/* The caller holds every shard's lock (and pools_mu), so the table's count
 * is exact; if it were not, the walk that saw more blocks is made again,
 * larger, rather than a block dropped. */
static int collect_blocks(at_tracer *t, at_reach *out)
{
    size_t seen = 0;
    int rc = collect_into(t, out, (size_t)at__live_count(&t->live) + 1, &seen);
    if (rc == 0 && seen > out->n) {
        at__reach_free(out);
        rc = collect_into(t, out, seen + 1, &seen);
    }
    rc = rc ? rc : sort_blocks(out->blocks, out->n);
    return rc ? rc : collect_pool_blocks(t, out);
}

/* ---- the whole --------------------------------------------------------------- */

static void classify_set(blockset *set, at_reach *out)
{
    static const uint8_t cls_of[] = {
        [S_UNREACHED] = AT_REACH_DEFINITE,
        [S_POSSIBLE] = AT_REACH_POSSIBLE,
        [S_REACHABLE] = AT_REACH_REACHABLE,
        [S_INDIRECT] = AT_REACH_INDIRECT,
    };
    for (size_t i = 0; i < set->n; i++) {
        uint8_t c = cls_of[set->st[i]];
        set->st[i] = c; /* st is out->cls (or out->pool_cls) */
        out->stats.blocks[c]++;
        out->stats.bytes[c] += set->b[i].size;
    }
}

static void set_free(blockset *set)
{
    at__reach_unmap(set->pages, set->pages_bytes);
    at__reach_unmap(set->big, set->big_bytes);
}

/* Both sets indexed, the range a word must fall in to be looked up. */
static int index_sets(scan *s)
{
    int rc = index_blocks(&s->heap);
    rc = rc ? rc : index_blocks(&s->pool);
    s->lo = s->heap.n ? s->heap.lo : s->pool.lo;
    s->hi = s->heap.hi;
    if (s->pool.n && s->pool.lo < s->lo)
        s->lo = s->pool.lo;
    if (s->pool.hi > s->hi)
        s->hi = s->pool.hi;
    return rc;
}

static int run_scan(scan *s, const at_reach_world *w, const at_reach_self *self,
                    uintptr_t helper_sp, at_reach *out)
{
    s->heap.b = out->blocks;
    s->heap.st = out->cls;
    s->heap.n = out->n;
    s->pool.b = out->pool_blocks;
    s->pool.st = out->pool_cls;
    s->pool.n = out->pool_n;
    memset(s->heap.st, 0, s->heap.n);
    memset(s->pool.st, 0, s->pool.n);
    /* the mark stack, each block at most twice, then the possible one's
     * room, each block at most once */
    s->stack_bytes = (3 * (s->heap.n + s->pool.n) + 2) * sizeof *s->stack;
    s->stack = at__reach_map(s->stack_bytes);
    s->possible = s->stack ? s->stack + 2 * (s->heap.n + s->pool.n) + 1 : NULL;
    s->buf_bytes = 1 << 20;
    s->buf = at__reach_map(s->buf_bytes);
    s->vtables = at__reach_map(VT_SLOTS * sizeof *s->vtables);
    s->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    int rc = s->stack && s->buf ? index_sets(s) : AT_E_NOMEM;
    rc = rc ? rc : scan_roots(s, w, self, helper_sp);
    if (rc == 0) {
        drain_marks(s);
        cliques(s);
        classify_set(&s->heap, out);
        classify_set(&s->pool, out);
    }
    if (s->pagemap >= 0)
        close(s->pagemap);
    at__reach_unmap(s->stack, s->stack_bytes);
    at__reach_unmap(s->buf, s->buf_bytes);
    if (s->vtables)
        at__reach_unmap(s->vtables, VT_SLOTS * sizeof *s->vtables);
    set_free(&s->heap);
    set_free(&s->pool);
    return rc;
}

/* Under valgrind the heap is valgrind's, and its own bookkeeping, which
 * the process can read, points to every block: no scan can tell anything. */
static int under_valgrind(void)
{
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload") != NULL;
}

int at__reach_run(at_tracer *t, const at_reach_self *self, void (*while_stopped)(void *),
                  void *arg, at_reach *out)
{
    memset(out, 0, sizeof *out);
    if (under_valgrind()) {
        if (while_stopped)
            while_stopped(arg);
        return AT_E_INVALID;
    }
    uint64_t t0 = at__now_ns();
    /* Every lock of the tracer, as for fork(): no thread can then be
     * stopped halfway through changing the live table or the memory the
     * scan sets aside. */
    at__tracer_fork_prepare(t);
    at_reach_world w;
    int rc = at__reach_world_stop(&w, __atomic_load_n(&t->helper_tid, __ATOMIC_ACQUIRE));
    at_vmas vmas = {0};
    if (rc == 0)
        rc = at__vmas_read(&vmas);
    if (rc == 0)
        rc = collect_blocks(t, out);
    if (rc == 0) {
        out->scan_seq = __atomic_load_n(&t->seq, __ATOMIC_ACQUIRE);
        scan s;
        memset(&s, 0, sizeof s);
        s.vmas = &vmas;
        s.direct = w.unstopped == 0;
        rc = run_scan(&s, &w, self, t->helper_sp, out);
        out->stats.scanned_bytes = s.scanned;
        out->stats.skipped_bytes = s.skipped;
    }
    out->stats.threads = w.stopped;
    out->stats.threads_unstopped = w.unstopped;
    if (while_stopped)
        while_stopped(arg);
    at__reach_world_resume(&w);
    at__tracer_fork_parent(t);
    at__vmas_free(&vmas);
    out->stats.duration_ns = at__now_ns() - t0;
    out->stats.done = rc == 0;
    if (rc) {
        at__reach_free(out);
        out->stats.done = 0;
    }
    return rc;
}

/* The blocks live now (`now`, n of them) against the scan's (`then`), both
 * sorted by address: one merge, where a lookup per block cost more than
 * the scan itself (6% of a run holding a million blocks).  Blocks may
 * share a start (two pools' blocks): the seq tells them apart.  A block
 * the scan never saw was being allocated by a thread it stopped halfway,
 * which holds it. */
static void verdict_of(const at_reach_block *now, size_t n, const at_reach_block *then,
                       const uint8_t *cls, size_t m, void (*emit)(uint64_t, int, void *),
                       void *arg)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        const at_reach_block *b = &now[i];
        while (j < m && then[j].start < b->start)
            j++;
        int c = AT_REACH_REACHABLE;
        for (size_t k = j; k < m && then[k].start == b->start; k++)
            if (then[k].seq == b->seq) {
                c = cls[k];
                break;
            }
        emit(b->seq, c, arg);
    }
}

int at__reach_verdict(at_tracer *t, const at_reach *r, void (*emit)(uint64_t, int, void *),
                      void *arg)
{
    at_reach now;
    memset(&now, 0, sizeof now);
    pthread_mutex_lock(&t->pools_mu);
    at__live_lock_all(&t->live);
    int rc = collect_blocks(t, &now);
    at__live_unlock_all(&t->live);
    pthread_mutex_unlock(&t->pools_mu);
    if (rc == 0) {
        verdict_of(now.blocks, now.n, r->blocks, r->cls, r->n, emit, arg);
        verdict_of(now.pool_blocks, now.pool_n, r->pool_blocks, r->pool_cls, r->pool_n, emit,
                   arg);
    }
    at__reach_free(&now);
    return rc;
}

void at__reach_free(at_reach *r)
{
    at__reach_unmap(r->blocks, r->map_bytes);
    r->blocks = NULL;
    r->cls = NULL;
    r->n = 0;
    r->map_bytes = 0;
    at__reach_unmap(r->pool_blocks, r->pool_map_bytes);
    r->pool_blocks = NULL;
    r->pool_cls = NULL;
    r->pool_n = 0;
    r->pool_map_bytes = 0;
}
