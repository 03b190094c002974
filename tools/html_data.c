/* The HTML report's strings, frames and stack tree (see html_data.h).
 *
 * The tree: frames merged by function and file along each path, from the
 * top --max-sites stacks by each metric (interleaved by rank, so that each
 * metric keeps its heaviest stacks when the node cap is hit), and the
 * stacks the page lists while there is room; what is left out is one
 * "(other stacks)" node, so that the root's totals are the trace's.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>
#include <uthash.h>

#include "cli.h"
#include "html_data.h"

/* ---- strings ------------------------------------------------------------------------------ */

typedef struct str_entry {
    char *s;
    int index;
    UT_hash_handle hh;
} str_entry;

struct hd_strings {
    str_entry *by_text;
    char **all;
    size_t n, cap;
};

/* Grows an array of `elem`-byte items to hold at least `need`. */
static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t n = *cap ? *cap : 16, bytes;
    while (n < need)
        n *= 2;
    if (__builtin_mul_overflow(n, elem, &bytes))
        bytes = SIZE_MAX; /* tm_xrealloc fails, and says so */
    *cap = n;
    return tm_xrealloc(p, bytes);
}

int hd_string(hd_data *d, const char *s)
{
    hd_strings *t = d->strings;
    if (!s)
        s = "";
    str_entry *e;
    HASH_FIND_STR(t->by_text, s, e);
    if (e)
        return e->index;
    if (t->n >= INT32_MAX) {
        fputs("alloctrace: html: too many names for one page\n", stderr);
        exit(EXIT_TOOL);
    }
    e = tm_xrealloc(NULL, sizeof *e);
    e->s = tm_xstrdup(s);
    e->index = (int)t->n;
    t->all = grow(t->all, &t->cap, t->n + 1, sizeof *t->all);
    t->all[t->n++] = e->s;
    HASH_ADD_KEYPTR(hh, t->by_text, e->s, strlen(e->s), e);
    return e->index;
}

size_t hd_nstrings(const hd_data *d)
{
    return d->strings->n;
}

const char *hd_string_at(const hd_data *d, size_t i)
{
    return d->strings->all[i];
}

/* ---- frames and stacks ----------------------------------------------------------------------- */

typedef struct frame_entry {
    const tm_frame *id; /* a line of the trace model's, unique: a frame's inlined
                           functions share its frames.id */
    hd_frame f;
    int index; /* in d->frames, -1 until a listed stack has it */
    UT_hash_handle hh;
} frame_entry;

typedef struct listed_entry {
    long long id;
    const tm_stack *stack;
    UT_hash_handle hh;
} listed_entry;

struct hd_index {
    frame_entry *frames;
    listed_entry *listed;
    const tm_stack **order; /* listed stacks, in the order listed */
    size_t nlisted, listed_cap;
    int *leaf; /* per heap stack (tm->heap.stacks): its tree node, -1 none */
    int *child_slots; /* node index + 1, keyed by (parent, name, file) */
    size_t child_nslots;
};

/* A frame's name: its function, else MODULE+0xOFFSET, else 0xIP. */
static int frame_name(hd_data *d, const tm_frame *f)
{
    if (f->function)
        return hd_string(d, f->function);
    char buf[64];
    if (!f->module) {
        snprintf(buf, sizeof buf, "0x%llx", (unsigned long long)f->ip);
        return hd_string(d, buf);
    }
    const char *base = strrchr(f->module, '/');
    base = base ? base + 1 : f->module;
    snprintf(buf, sizeof buf, "+0x%llx", (unsigned long long)f->module_offset);
    size_t n = strlen(base), m = strlen(buf);
    char *s = tm_xrealloc(NULL, n + m + 1);
    memcpy(s, base, n);
    memcpy(s + n, buf, m + 1);
    int k = hd_string(d, s);
    free(s);
    return k;
}

static frame_entry *frame_of(hd_data *d, const tm_frame *f)
{
    frame_entry *e;
    HASH_FIND(hh, d->index->frames, &f, sizeof f, e);
    if (e)
        return e;
    e = tm_xrealloc(NULL, sizeof *e);
    e->id = f;
    e->f.name = frame_name(d, f);
    e->f.file = hd_string(d, f->file);
    e->f.module = hd_string(d, f->module);
    e->f.line = f->line;
    e->f.inlined = f->inlined;
    e->index = -1;
    HASH_ADD(hh, d->index->frames, id, sizeof e->id, e);
    return e;
}

/* The frame's index in d->frames, added if new. */
static int page_frame(hd_data *d, const tm_frame *f)
{
    frame_entry *e = frame_of(d, f);
    if (e->index < 0) {
        d->frames = grow(d->frames, &d->frames_cap, d->nframes + 1, sizeof *d->frames);
        d->frames[d->nframes] = e->f;
        e->index = (int)d->nframes++;
    }
    return e->index;
}

/* The page lists stack `s` (a row refers to it): its frames are written. */
static void list_stack(hd_data *d, const tm_stack *s)
{
    hd_index *ix = d->index;
    listed_entry *e;
    if (!s || s->id == 0)
        return;
    HASH_FIND(hh, ix->listed, &s->id, sizeof s->id, e);
    if (e)
        return;
    e = tm_xrealloc(NULL, sizeof *e);
    e->id = s->id;
    e->stack = s;
    HASH_ADD(hh, ix->listed, id, sizeof e->id, e);
    ix->order = grow(ix->order, &ix->listed_cap, ix->nlisted + 1, sizeof *ix->order);
    ix->order[ix->nlisted++] = s;
}

/* ---- ranking ------------------------------------------------------------------------------------ */

static long long metric(const tm_stack_heap *s, int m)
{
    switch (m) {
    case HD_LEAKED: return s->leaked_bytes;
    case HD_PEAK: return s->peak_bytes;
    case HD_TOTAL: return s->bytes;
    case HD_COUNT: return s->count;
    default: return s->waste;
    }
}

typedef struct rank_ctx {
    const tm_stack_heap *stacks;
    int metric;
} rank_ctx;

/* Heaviest first, then by stack id, so that the page is the same on every run. */
static int cmp_rank(const void *a, const void *b, void *ctx)
{
    const rank_ctx *c = ctx;
    const tm_stack_heap *x = &c->stacks[*(const size_t *)a], *y = &c->stacks[*(const size_t *)b];
    long long vx = metric(x, c->metric), vy = metric(y, c->metric);
    if (vx != vy)
        return vx > vy ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int rank_cmp(rank_ctx *c, size_t a, size_t b)
{
    return cmp_rank(&a, &b, c);
}

/* Inserts i into the bounded heap h[0..*m) (its lightest on top). */
static void heap_offer(rank_ctx *c, size_t *h, size_t *m, size_t limit, size_t i)
{
    size_t at;
    if (*m < limit) {
        for (at = (*m)++; at > 0 && rank_cmp(c, i, h[(at - 1) / 2]) > 0; at = (at - 1) / 2)
            h[at] = h[(at - 1) / 2];
        h[at] = i;
        return;
    }
    if (rank_cmp(c, i, h[0]) >= 0)
        return;
    for (at = 0;;) {
        size_t k = 2 * at + 1;
        if (k >= *m)
            break;
        if (k + 1 < *m && rank_cmp(c, h[k + 1], h[k]) > 0)
            k++;
        if (rank_cmp(c, h[k], i) <= 0)
            break;
        h[at] = h[k];
        at = k;
    }
    h[at] = i;
}

/* Heap stacks with a metric > 0, heaviest first, at most `limit`: a
 * bounded heap keeps the heaviest seen so far, so that with hundreds of
 * thousands of stacks most are turned away by one comparison. */
static size_t *top_stacks(const tm_heap *heap, int m, size_t limit, size_t *n)
{
    rank_ctx c = {heap->stacks, m};
    size_t *h = tm_xrealloc(NULL, (limit ? limit : 1) * sizeof *h), count = 0;
    for (size_t i = 0; i < heap->nstacks; i++) {
        const tm_stack_heap *s = &heap->stacks[i];
        if (metric(s, m) > 0 || (m == HD_LEAKED && s->leaked_blocks > 0))
            heap_offer(&c, h, &count, limit, i);
    }
    qsort_r(h, count, sizeof *h, cmp_rank, &c);
    *n = count;
    return h;
}

/* ---- the tree ------------------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static uint64_t child_hash(int parent, int name, int file)
{
    return mix64(((uint64_t)(uint32_t)parent << 32 | (uint32_t)name) ^ mix64((uint32_t)file));
}

static int new_node(hd_data *d, int parent, int name, const hd_frame *f)
{
    d->nodes = grow(d->nodes, &d->nodes_cap, d->nnodes + 1, sizeof *d->nodes);
    hd_node *n = &d->nodes[d->nnodes];
    memset(n, 0, sizeof *n);
    n->parent = parent;
    n->name = name;
    if (f) {
        n->file = f->file;
        n->module = f->module;
        n->line = f->line;
    }
    return (int)d->nnodes++;
}

static void rehash_children(hd_data *d)
{
    hd_index *ix = d->index;
    size_t ns = ix->child_nslots ? ix->child_nslots * 2 : 1024;
    free(ix->child_slots);
    ix->child_slots = tm_xrealloc(NULL, ns * sizeof *ix->child_slots);
    memset(ix->child_slots, 0, ns * sizeof *ix->child_slots);
    ix->child_nslots = ns;
    for (size_t k = 1; k < d->nnodes; k++) {
        const hd_node *n = &d->nodes[k];
        size_t i = child_hash(n->parent, n->name, n->file) & (ns - 1);
        while (ix->child_slots[i])
            i = (i + 1) & (ns - 1);
        ix->child_slots[i] = (int)k + 1;
    }
}

/* The child of `parent` for the frame's (name, file), made if there is none. */
static int child(hd_data *d, int parent, const hd_frame *f)
{
    hd_index *ix = d->index;
    if ((d->nnodes + 1) * 2 > ix->child_nslots)
        rehash_children(d);
    size_t mask = ix->child_nslots - 1;
    size_t i = child_hash(parent, f->name, f->file) & mask;
    for (; ix->child_slots[i]; i = (i + 1) & mask) {
        hd_node *n = &d->nodes[ix->child_slots[i] - 1];
        if (n->parent == parent && n->name == f->name && n->file == f->file) {
            n->lines_vary |= n->line != f->line;
            return ix->child_slots[i] - 1;
        }
    }
    int k = new_node(d, parent, f->name, f);
    ix->child_slots[i] = k + 1;
    return k;
}

static void add_metrics(hd_node *n, const tm_stack_heap *s)
{
    for (int m = 0; m < HD_METRICS; m++)
        n->m[m] = tm_sat_add(n->m[m], metric(s, m));
}

/* Adds heap stack k's path, outermost frame first, to the tree. */
static void tree_add(hd_data *d, size_t k, int no_stack)
{
    const tm_stack_heap *h = &d->tm->heap.stacks[k];
    const tm_stack *s = tm_stack_of(d->tm, h->id);
    int at = 0;
    add_metrics(&d->nodes[0], h);
    if (s->depth == 0) {
        at = no_stack;
        add_metrics(&d->nodes[at], h);
    }
    for (size_t i = s->depth; i-- > 0;) {
        at = child(d, at, &frame_of(d, s->frames[i])->f);
        add_metrics(&d->nodes[at], h);
    }
    d->index->leaf[k] = at;
    d->tree_stacks++;
}

/* The heaviest stacks by each metric, interleaved by rank. */
static void tree_candidates(hd_data *d, int no_stack)
{
    size_t n[HD_METRICS], most = 0;
    size_t *top[HD_METRICS];
    for (int m = 0; m < HD_METRICS; m++) {
        top[m] = top_stacks(&d->tm->heap, m, (size_t)d->max_sites, &n[m]);
        most = n[m] > most ? n[m] : most;
    }
    for (size_t rank = 0; rank < most; rank++) {
        for (int m = 0; m < HD_METRICS; m++) {
            if (rank >= n[m] || d->index->leaf[top[m][rank]] >= 0)
                continue;
            if (d->nnodes >= HD_TREE_NODE_CAP)
                d->tree_truncated = 1;
            else
                tree_add(d, top[m][rank], no_stack);
        }
    }
    for (int m = 0; m < HD_METRICS; m++)
        free(top[m]);
}

static int has_value(const tm_stack_heap *h)
{
    return h->count > 0 || h->leaked_bytes > 0;
}

static void build_tree(hd_data *d)
{
    const tm_heap *heap = &d->tm->heap;
    new_node(d, -1, hd_string(d, "all"), NULL);
    int no_stack = new_node(d, 0, hd_string(d, "(no stack)"), NULL);
    tree_candidates(d, no_stack);
    /* Stacks the page lists get a place in the tree while there is room,
     * so that their rows link to it. */
    for (size_t i = 0; i < d->index->nlisted; i++) {
        const tm_stack_heap *h = tm_heap_stack(d->tm, d->index->order[i]->id);
        size_t k = h ? (size_t)(h - heap->stacks) : 0;
        if (h && d->index->leaf[k] < 0 && d->nnodes < HD_TREE_NODE_CAP && has_value(h))
            tree_add(d, k, no_stack);
    }
    /* What the tree leaves out, so that the root's totals are the trace's. */
    tm_stack_heap rest = {0};
    for (size_t k = 0; k < heap->nstacks; k++) {
        const tm_stack_heap *h = &heap->stacks[k];
        if (d->index->leaf[k] >= 0)
            continue;
        d->tree_truncated |= has_value(h);
        rest.count = tm_sat_add(rest.count, h->count);
        rest.bytes = tm_sat_add(rest.bytes, h->bytes);
        rest.peak_bytes = tm_sat_add(rest.peak_bytes, h->peak_bytes);
        rest.leaked_bytes = tm_sat_add(rest.leaked_bytes, h->leaked_bytes);
    }
    if (has_value(&rest)) {
        int k = new_node(d, 0, hd_string(d, "(other stacks)"), NULL);
        d->other_node = k;
        add_metrics(&d->nodes[k], &rest);
        add_metrics(&d->nodes[0], &rest);
    }
}

/* ---- the stacks the page writes ----------------------------------------------------------------- */

static int cmp_stack(const void *a, const void *b)
{
    const hd_stack *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* Listed stacks with their frames, and stacks in the tree with their leaf. */
static void collect_stacks(hd_data *d)
{
    const tm_heap *heap = &d->tm->heap;
    hd_index *ix = d->index;
    size_t cap = 0;
    for (size_t i = 0; i < ix->nlisted; i++) {
        const tm_stack *s = ix->order[i];
        const tm_stack_heap *h = tm_heap_stack(d->tm, s->id);
        hd_stack st = {s->id, s, h ? ix->leaf[h - heap->stacks] : -1, NULL};
        st.frames = tm_xrealloc(NULL, (s->depth ? s->depth : 1) * sizeof *st.frames);
        for (size_t f = 0; f < s->depth; f++)
            st.frames[f] = page_frame(d, s->frames[f]);
        d->stacks = grow(d->stacks, &cap, d->nstacks + 1, sizeof *d->stacks);
        d->stacks[d->nstacks++] = st;
    }
    for (size_t k = 0; k < heap->nstacks; k++) {
        listed_entry *e;
        long long id = heap->stacks[k].id;
        HASH_FIND(hh, ix->listed, &id, sizeof id, e);
        if (ix->leaf[k] < 0 || e)
            continue;
        d->stacks = grow(d->stacks, &cap, d->nstacks + 1, sizeof *d->stacks);
        d->stacks[d->nstacks++] = (hd_stack){id, NULL, ix->leaf[k], NULL};
    }
    if (d->nstacks > 1)
        qsort(d->stacks, d->nstacks, sizeof *d->stacks, cmp_stack);
}

/* ---- time slices ----------------------------------------------------------------------------- */

static int slice_of(const hd_slices *sl, long long t)
{
    if (sl->span_us <= 0 || t <= 0)
        return 0;
    long long k = (long long)((double)t / (double)sl->span_us * HD_SLICES);
    return k >= HD_SLICES ? HD_SLICES - 1 : (int)k;
}

static long long *slice_row(long long **rows, size_t i)
{
    if (!rows[i]) {
        rows[i] = tm_xrealloc(NULL, HD_SLICES * HD_S_FIELDS * sizeof **rows);
        memset(rows[i], 0, HD_SLICES * HD_S_FIELDS * sizeof **rows);
    }
    return rows[i];
}

/* The tree node heap stack `id` adds to: its leaf, or "(other stacks)". */
static int node_of_stack(const hd_data *d, long long id)
{
    const tm_stack_heap *h = tm_heap_stack(d->tm, id);
    int leaf = h ? d->index->leaf[h - d->tm->heap.stacks] : -1;
    return leaf >= 0 ? leaf : d->other_node;
}

typedef struct site_key {
    long long stack;
    int reach;
} site_key;

typedef struct site_entry {
    site_key key;
    size_t site;
    UT_hash_handle hh;
} site_entry;

static void add_site_slice(hd_data *d, site_entry *sites, long long stack, int reach, int k, long long size)
{
    site_key key;
    memset(&key, 0, sizeof key); /* the padding is part of the hashed key */
    key.stack = stack;
    key.reach = reach;
    site_entry *e;
    HASH_FIND(hh, sites, &key, sizeof key, e);
    if (!e)
        return;
    long long *row = slice_row(d->slices.site, e->site) + k * HD_S_FIELDS;
    row[HD_S_LEAK_BLOCKS]++;
    row[HD_S_LEAKED] = tm_sat_add(row[HD_S_LEAKED], size);
}

/* Leaked blocks (the leaks view, as the leak sites count them) by the
 * slice they were allocated in: per listed site, and per tree node. */
static int leak_slices(hd_data *d)
{
    const tm_trace *t = d->tm;
    size_t nsites = t->nsites < (size_t)d->max_sites ? t->nsites : (size_t)d->max_sites;
    site_entry *sites = NULL, *all = NULL;
    size_t nall = 0;
    d->slices.site = tm_xrealloc(NULL, (nsites ? nsites : 1) * sizeof *d->slices.site);
    memset(d->slices.site, 0, (nsites ? nsites : 1) * sizeof *d->slices.site);
    d->slices.nsite = nsites;
    for (size_t i = 0; i < nsites; i++)
        for (size_t j = 0; j < t->sites[i].nids; j++) {
            all = tm_xrealloc(all, (nall + 1) * sizeof *all);
            site_entry *e = &all[nall];
            memset(e, 0, sizeof *e);
            e->key.stack = t->sites[i].ids[j];
            e->key.reach = (int)t->sites[i].reach;
            e->site = i;
            nall++;
        }
    for (size_t i = 0; i < nall; i++)
        HASH_ADD(hh, sites, key, sizeof all[i].key, &all[i]);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(t->db, "SELECT stack, alloc_time_us, size, reachability, coalesce((SELECT"
                                " s.site FROM stack_sites s WHERE s.stack = l.stack), l.stack)"
                                " FROM leaks l", -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        long long stack = sqlite3_column_int64(st, 0), size = sqlite3_column_int64(st, 2);
        int k = slice_of(&d->slices, sqlite3_column_int64(st, 1));
        const char *name = (const char *)sqlite3_column_text(st, 3);
        /* leak_sites (and so tm_site's ids) name a site by stack_sites' site */
        add_site_slice(d, sites, sqlite3_column_int64(st, 4), (int)tm_reach_named(name ? name : ""), k, size);
        int node = node_of_stack(d, stack);
        if (node >= 0) {
            long long *row = slice_row(d->slices.node, (size_t)node) + k * HD_S_FIELDS;
            row[HD_S_LEAKED] = tm_sat_add(row[HD_S_LEAKED], size);
            row[HD_S_LEAK_BLOCKS]++;
        }
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    HASH_CLEAR(hh, sites);
    free(all);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* One scan of the lifetimes (stack, time, size: a second pass, about a
 * third of the replay's time) for the allocations of every tree node by
 * slice, then the leaks. */
static int build_slices(hd_data *d)
{
    hd_slices *sl = &d->slices;
    const tm_trace *t = d->tm;
    sl->span_us = t->heap.ntimeline ? t->heap.timeline[t->heap.ntimeline - 1].time_us : 0;
    if (t->sum.duration_us > sl->span_us)
        sl->span_us = t->sum.duration_us;
    sl->node = tm_xrealloc(NULL, (d->nnodes ? d->nnodes : 1) * sizeof *sl->node);
    memset(sl->node, 0, (d->nnodes ? d->nnodes : 1) * sizeof *sl->node);
    sl->nnode = d->nnodes;
    const char *aggregated = tm_meta(t, "aggregated");
    if (aggregated && strcmp(aggregated, "1") == 0) {
        sl->unavailable = 1;
        return 0;
    }
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(t->db, "SELECT stack, t, size FROM lifetimes", -1, &st, NULL);
    long long last = -1;
    int node = -1;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        long long stack = sqlite3_column_int64(st, 0);
        if (stack != last) {
            node = node_of_stack(d, stack);
            last = stack;
        }
        if (node < 0) {
            rc = SQLITE_OK;
            continue;
        }
        long long *row = slice_row(sl->node, (size_t)node) + slice_of(sl, sqlite3_column_int64(st, 1)) * HD_S_FIELDS;
        row[HD_S_COUNT]++;
        row[HD_S_BYTES] = tm_sat_add(row[HD_S_BYTES], sqlite3_column_int64(st, 2));
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "alloctrace: html: %s: reading the lifetimes: %s\n", t->path, sqlite3_errmsg(t->db));
        return -1;
    }
    if (leak_slices(d) != 0) {
        fprintf(stderr, "alloctrace: html: %s: reading the leaks: %s\n", t->path, sqlite3_errmsg(t->db));
        return -1;
    }
    return 0;
}

int hd_build(hd_data *d, tm_trace *tm, int max_sites)
{
    memset(d, 0, sizeof *d);
    d->tm = tm;
    d->max_sites = max_sites;
    d->strings = tm_xrealloc(NULL, sizeof *d->strings);
    memset(d->strings, 0, sizeof *d->strings);
    d->index = tm_xrealloc(NULL, sizeof *d->index);
    memset(d->index, 0, sizeof *d->index);
    hd_string(d, "");
    size_t nheap = tm->heap.nstacks;
    d->index->leaf = tm_xrealloc(NULL, (nheap ? nheap : 1) * sizeof *d->index->leaf);
    for (size_t k = 0; k < nheap; k++)
        d->index->leaf[k] = -1;
    for (size_t i = 0; i < tm->nsites && i < (size_t)max_sites; i++)
        list_stack(d, tm->sites[i].stack);
    for (size_t i = 0; i < tm->nreleases; i++) {
        list_stack(d, tm->releases[i].release);
        list_stack(d, tm->releases[i].alloc);
        list_stack(d, tm->releases[i].first_release);
    }
    d->waste_sites = top_stacks(&tm->heap, HD_WASTE, (size_t)max_sites, &d->nwaste_sites);
    for (size_t i = 0; i < d->nwaste_sites; i++)
        list_stack(d, tm_stack_of(tm, tm->heap.stacks[d->waste_sites[i]].id));
    d->other_node = -1;
    build_tree(d);
    collect_stacks(d);
    if (build_slices(d) != 0)
        return -1;
    return tm_check(tm);
}

void hd_free(hd_data *d)
{
    if (d->strings) {
        str_entry *e, *tmp;
        HASH_ITER(hh, d->strings->by_text, e, tmp)
        {
            HASH_DEL(d->strings->by_text, e);
            free(e->s);
            free(e);
        }
        free(d->strings->all);
        free(d->strings);
    }
    if (d->index) {
        frame_entry *f, *ftmp;
        HASH_ITER(hh, d->index->frames, f, ftmp)
        {
            HASH_DEL(d->index->frames, f);
            free(f);
        }
        listed_entry *l, *ltmp;
        HASH_ITER(hh, d->index->listed, l, ltmp)
        {
            HASH_DEL(d->index->listed, l);
            free(l);
        }
        free(d->index->order);
        free(d->index->leaf);
        free(d->index->child_slots);
        free(d->index);
    }
    for (size_t i = 0; d->slices.node && i < d->slices.nnode; i++)
        free(d->slices.node[i]);
    for (size_t i = 0; d->slices.site && i < d->slices.nsite; i++)
        free(d->slices.site[i]);
    free(d->slices.node);
    free(d->slices.site);
    for (size_t i = 0; i < d->nstacks; i++)
        free(d->stacks[i].frames);
    free(d->stacks);
    free(d->frames);
    free(d->nodes);
    free(d->waste_sites);
    memset(d, 0, sizeof *d);
}
