/* The trace as report, check and html see it (see trace_model.h).
 *
 * Relies on the views of a finished trace (leak_sites, runtime_blocks,
 * docs/schema.md) and on the peak that finishing stored (lib/trace/replay.h),
 * replayed here only for a trace that lacks it or when TM_HEAP asks for
 * the replay anyway (trace_heap.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uthash.h>

#include <alloctrace/error.h>

#include "run_protocol.h"

#include "cli.h"
#include "replay.h"
#include "sites.h"
#include "stack_tree.h"
#include "symbolize.h"
#include "trace_heap.h"
#include "trace_model.h"

/* ---- small helpers --------------------------------------------------------------------- */

__attribute__((noreturn)) static void out_of_memory(void)
{
    fprintf(stderr, "alloctrace: out of memory\n");
    exit(EXIT_TOOL);
}

void *tm_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        out_of_memory();
    return q;
}

char *tm_xstrdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    return memcpy(tm_xrealloc(NULL, n), s, n);
}

/* Grows an array of `elem`-byte items to hold at least `need`. */
static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    size_t bytes;
    if (__builtin_mul_overflow(n, elem, &bytes))
        out_of_memory();
    *cap = n;
    return tm_xrealloc(p, bytes);
}

/* A string being built. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    b->s = grow(b->s, &b->cap, b->len + n + 1, 1);
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_add(b, s ? s : "", s ? strlen(s) : 0);
}

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sb_add(b, buf, n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

long long tm_sat_add(long long a, long long b)
{
    long long r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

const char *tm_basename(const char *path)
{
    if (!path)
        return NULL;
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

int tm_parse_count(const char *s, int size_suffix, long long *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    int shift = 0;
    if (size_suffix && *end) {
        const char *units = "KMG", *u = strchr(units, *end);
        if (!u)
            return -1;
        shift = 10 * (int)(u - units + 1);
        end++;
    }
    if (*end || errno || v > (INT64_MAX >> shift))
        return -1;
    *out = v << shift;
    return 0;
}

/* ---- progress -------------------------------------------------------------------------- */

static struct {
    const char *what;
    double start, last;
    double fraction; /* the last one known, or -1 */
    int shown;
} progress;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void tm_progress_start(const char *what)
{
    /* The second counts from the first step of the command, not of each
     * phase: three phases of 0.9 s are worth a line too. */
    if (!progress.start)
        progress.start = now_s();
    progress.what = what;
    progress.fraction = -1;
    progress.last = 0; /* a new step is shown at once */
}

void tm_progress(double fraction)
{
    if (!progress.what)
        return;
    if (fraction >= 0)
        progress.fraction = fraction;
    fraction = progress.fraction; /* SQLite's handler knows no fraction: keep the last */
    double now = now_s();
    /* Quiet for the first second (most reports never show it;
     * ALLOCTRACE_PROGRESS_AFTER sets another delay), then redrawn ten
     * times a second at most. */
    static double after = -1;
    if (after < 0) {
        const char *env = getenv(AT_ENV_PROGRESS_AFTER);
        after = env && *env ? atof(env) : 1.0;
        after = after >= 0 ? after : 1.0;
    }
    if (now - progress.start < after || now - progress.last < 0.1 || !isatty(STDERR_FILENO))
        return;
    progress.last = now;
    progress.shown = 1;
    if (fraction >= 0)
        fprintf(stderr, "\ralloctrace: %s... %3d%%\033[K", progress.what,
                (int)(fraction > 1 ? 100 : fraction * 100));
    else
        fprintf(stderr, "\ralloctrace: %s... %.0f s\033[K", progress.what, now - progress.start);
}

void tm_progress_done(void)
{
    if (progress.shown)
        fputs("\r\033[K", stderr);
    progress.shown = 0;
    progress.what = NULL;
}

/* SQLite calls this every few thousand steps of a long query. */
static int progress_handler(void *unused)
{
    (void)unused;
    tm_progress(-1);
    return 0;
}

/* ---- reading with errors remembered ---------------------------------------------------- */

struct tm_cache {
    struct site_of *sites;
    int sites_loaded;
    struct frame_entry *frames;
    struct stack_entry *stacks;
    at_stack_tree tree; /* the call tree, read at the first stack asked for */
    int tree_loaded;
    sqlite3_stmt *frame_query, *inlined_query;
    int failed; /* a query failed (1), and it was said (2): the message is printed once */
    char error[256];
    char **pool_keys; /* the keys of the pools' sites (load_leaks) */
    size_t npool_keys;
};

static void remember_error(tm_trace *t)
{
    if (t->cache->failed)
        return;
    snprintf(t->cache->error, sizeof t->cache->error, "%s", sqlite3_errmsg(t->db));
    t->cache->failed = 1;
}

static sqlite3_stmt *prepare(tm_trace *t, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (t->cache->failed)
        return NULL;
    if (sqlite3_prepare_v2(t->db, sql, -1, &st, NULL) != SQLITE_OK) {
        remember_error(t);
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

/* SQLITE_ROW while there are rows; anything else ends the loop, an error
 * being remembered. */
static int step(tm_trace *t, sqlite3_stmt *st)
{
    if (!st)
        return SQLITE_DONE;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        remember_error(t);
    return rc;
}

static long long col_int(sqlite3_stmt *st, int i, long long null)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? null : sqlite3_column_int64(st, i);
}

/* The column as a string of our own (NULL for NULL); a NUL inside it
 * becomes U+FFFD (trace_model.h). */
static char *col_text(sqlite3_stmt *st, int i)
{
    const char *p = (const char *)sqlite3_column_text(st, i);
    if (!p)
        return NULL;
    size_t n = (size_t)sqlite3_column_bytes(st, i);
    if (!memchr(p, 0, n))
        return tm_xstrdup(p);
    sbuf b = {0};
    sb_puts(&b, "");
    for (const char *end = p + n, *z; p < end; p = z + 1) {
        z = memchr(p, 0, (size_t)(end - p));
        if (!z)
            z = end;
        sb_add(&b, p, (size_t)(z - p));
        if (z < end)
            sb_puts(&b, "\xEF\xBF\xBD");
    }
    return b.s;
}

static long long one_int(tm_trace *t, const char *sql, long long dflt)
{
    sqlite3_stmt *st = prepare(t, sql);
    long long v = dflt;
    if (step(t, st) == SQLITE_ROW)
        v = col_int(st, 0, dflt);
    sqlite3_finalize(st);
    return v;
}

static char *meta_text(tm_trace *t, const char *key)
{
    sqlite3_stmt *st = prepare(t, "SELECT value FROM meta WHERE key = ?1");
    char *v = NULL;
    if (st)
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (step(t, st) == SQLITE_ROW)
        v = col_text(st, 0);
    sqlite3_finalize(st);
    return v;
}

static long long meta_int(tm_trace *t, const char *key)
{
    sqlite3_stmt *st = prepare(t, "SELECT value FROM meta WHERE key = ?1");
    long long v = 0;
    if (st)
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (step(t, st) == SQLITE_ROW)
        v = col_int(st, 0, 0);
    sqlite3_finalize(st);
    return v;
}

/* ---- frames and stacks ----------------------------------------------------------------- */

/* Frames a stack may have at most, and lines a frame: more than the
 * tracer ever records (AT_MAX_STACK_DEPTH), a bound against a hostile
 * trace. */
enum { MAX_FRAMES = 1024 };

/* A row of `frames` as the lines it shows: the functions inlined at its
 * address (inlined_frames), innermost first, then the real function. */
typedef struct frame_entry {
    long long id;
    tm_frame *lines;
    size_t n;
    UT_hash_handle hh;
} frame_entry;

typedef struct stack_entry {
    long long id;
    tm_stack s;
    UT_hash_handle hh;
} stack_entry;

/* Older traces may hold mangled C++ or Rust names; at__demangle does
 * nothing to the others.  Always a string of our own (or NULL). */
static char *demangle(const char *name)
{
    char *d = at__demangle(name); /* malloc'd, like ours */
    return d ? d : tm_xstrdup(name);
}

/* The inlined functions of frame e->id, then the frame itself from the row
 * of frame_query: 0, frame id, function, file, line, module path, offset,
 * ip.  Inlined lines share the frame's id, ip and module. */
static void frame_lines(tm_trace *t, frame_entry *e, sqlite3_stmt *st)
{
    tm_frame real = {0};
    char *name = col_text(st, 2);
    real.function = name ? demangle(name) : NULL;
    free(name);
    real.file = col_text(st, 3);
    real.line = col_int(st, 4, 0);
    real.module = col_text(st, 5);
    real.module_offset = col_int(st, 6, 0);
    real.id = e->id;
    real.ip = col_int(st, 7, 0);
    if (!t->cache->inlined_query)
        t->cache->inlined_query =
            prepare(t, "SELECT function, file, line FROM inlined_frames WHERE frame = ?1"
                       " ORDER BY depth");
    sqlite3_stmt *q = t->cache->inlined_query;
    size_t cap = 0;
    if (q)
        sqlite3_bind_int64(q, 1, e->id);
    while (q && e->n < MAX_FRAMES && step(t, q) == SQLITE_ROW) {
        e->lines = grow(e->lines, &cap, e->n + 2, sizeof *e->lines);
        tm_frame *f = &e->lines[e->n++];
        *f = real;
        f->inlined = 1;
        char *inl = col_text(q, 0);
        f->function = inl ? demangle(inl) : NULL;
        free(inl);
        f->file = col_text(q, 1);
        f->line = col_int(q, 2, 0);
        f->module = tm_xstrdup(real.module);
    }
    if (q)
        sqlite3_reset(q);
    e->lines = grow(e->lines, &cap, e->n + 1, sizeof *e->lines);
    e->lines[e->n++] = real;
}

/* ---- sites (lib/trace/sites.h decides them) ------------------------------------------------ */

typedef struct site_of {
    long long stack, site;
    int skip;
    UT_hash_handle hh;
} site_of;

static void remember_site(void *arg, int64_t stack, int64_t site, int skip)
{
    tm_cache *c = arg;
    site_of *e;
    HASH_FIND(hh, c->sites, &stack, sizeof stack, e);
    if (e)
        return;
    e = tm_xrealloc(NULL, sizeof *e);
    e->stack = stack;
    e->site = site;
    e->skip = skip;
    HASH_ADD(hh, c->sites, stack, sizeof e->stack, e);
}

/* What finishing stored in stack_sites; for a trace finished by an older
 * alloctrace, which has no such table, the same rule computed here. */
static void load_sites(tm_trace *t)
{
    if (t->cache->sites_loaded)
        return;
    t->cache->sites_loaded = 1;
    if (one_int(t, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                   " AND name = 'stack_sites'", 0) == 0) {
        if (at__sites_compute(t->db, NULL, remember_site, t->cache) != 0)
            remember_error(t);
        return;
    }
    sqlite3_stmt *st = prepare(t, "SELECT stack, site, skip FROM stack_sites");
    while (step(t, st) == SQLITE_ROW)
        remember_site(t->cache, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                      sqlite3_column_int(st, 2));
    sqlite3_finalize(st);
}

/* A frame with no function name is known by its module and offset, which
 * ASLR does not change. */
static void add_frame_name(sbuf *b, const tm_frame *f)
{
    if (f->function) {
        sb_puts(b, f->function);
    } else {
        sb_puts(b, f->module ? tm_basename(f->module) : "?");
        sb_printf(b, "+0x%llx", (unsigned long long)f->module_offset);
    }
}

static void finish_stack(tm_trace *t, tm_stack *s)
{
    load_sites(t);
    site_of *e;
    HASH_FIND(hh, t->cache->sites, &s->id, sizeof s->id, e);
    s->site = e ? e->site : s->id; /* a stack with no frames is a site of its own */
    s->skip = e && e->skip > 0 && (size_t)e->skip < s->depth ? (size_t)e->skip : 0;
    sbuf key = {0}, names = {0};
    sb_printf(&key, "%lld", s->site);
    sb_puts(&names, "");
    for (size_t i = s->skip; i < s->depth; i++) {
        add_frame_name(&names, s->frames[i]);
        sb_puts(&names, "\x1e");
    }
    s->key = key.s;
    s->names = names.s;
}

/* The lines of frame `id` (frame_lines), read on first sight; *n of them
 * (0 when the frame cannot be read). */
static const tm_frame *frame_get(tm_trace *t, long long id, size_t *n)
{
    frame_entry *e;
    HASH_FIND(hh, t->cache->frames, &id, sizeof id, e);
    if (!e) {
        if (!t->cache->frame_query)
            t->cache->frame_query = prepare(
                t, "SELECT 0, f.id, f.function, f.file, f.line, m.path, f.module_offset, f.ip"
                   " FROM frames f LEFT JOIN modules m ON m.id = f.module WHERE f.id = ?1");
        sqlite3_stmt *st = t->cache->frame_query;
        e = tm_xrealloc(NULL, sizeof *e);
        memset(e, 0, sizeof *e);
        e->id = id;
        if (st) {
            sqlite3_bind_int64(st, 1, id);
            if (step(t, st) == SQLITE_ROW)
                frame_lines(t, e, st);
            sqlite3_reset(st);
        }
        HASH_ADD(hh, t->cache->frames, id, sizeof e->id, e);
    }
    *n = e->n;
    return e->lines;
}

/* The call tree, read once; a trace whose tree cannot be read is an error
 * said once, its stacks frameless. */
static const at_stack_tree *tree_get(tm_trace *t)
{
    if (!t->cache->tree_loaded) {
        t->cache->tree_loaded = 1;
        int rc = at__stack_tree_load(t->db, &t->cache->tree);
        if (rc == AT_E_NOMEM)
            out_of_memory();
        if (rc && !t->cache->failed) {
            snprintf(t->cache->error, sizeof t->cache->error, "%s",
                     "the table stack_nodes cannot be read");
            t->cache->failed = 1;
        }
    }
    return &t->cache->tree;
}

static const tm_stack *stack_get(tm_trace *t, long long id)
{
    stack_entry *e;
    HASH_FIND(hh, t->cache->stacks, &id, sizeof id, e);
    if (e)
        return &e->s;
    e = tm_xrealloc(NULL, sizeof *e);
    memset(e, 0, sizeof *e);
    e->id = id;
    e->s.id = id;
    if (id != 0) {
        int64_t ids[MAX_FRAMES];
        size_t n = at__stack_tree_frames(tree_get(t), id, ids, MAX_FRAMES);
        size_t cap = 0;
        /* Each frame as its lines: what sites.c reads, which `skip` counts. */
        for (size_t i = 0; i < n && e->s.depth < MAX_FRAMES; i++) {
            size_t nl = 0;
            const tm_frame *f = frame_get(t, ids[i], &nl);
            for (size_t k = 0; k < nl && e->s.depth < MAX_FRAMES; k++) {
                e->s.frames = grow(e->s.frames, &cap, e->s.depth + 1, sizeof *e->s.frames);
                e->s.frames[e->s.depth++] = &f[k];
            }
        }
        if (!e->s.frames)
            e->s.frames = tm_xrealloc(NULL, sizeof *e->s.frames);
    }
    finish_stack(t, &e->s);
    HASH_ADD(hh, t->cache->stacks, id, sizeof e->id, e);
    return &e->s;
}

const tm_stack *tm_stack_of(tm_trace *t, long long id)
{
    return stack_get(t, id);
}

const tm_frame *tm_source_frame(const tm_stack *s)
{
    for (size_t i = s->skip; i < s->depth; i++)
        if (s->frames[i]->file && s->frames[i]->line > 0)
            return s->frames[i];
    return NULL;
}

/* ---- summary ----------------------------------------------------------------------------- */

#define KIND_NAME(id, code, name, label, category, rule, level, color, description) name,
static const char *const kind_names[TM_KINDS] = {AT_KINDS(KIND_NAME) AT_KIND_OTHER(KIND_NAME)};
#undef KIND_NAME

const char *tm_kind_name(enum tm_kind k)
{
    return k < TM_KINDS ? kind_names[k] : kind_names[TM_OTHER];
}

/* A kind's category gates by default (vocab.h, AT_CATEGORIES' GATED); a
 * kind this build does not know counts as gated. */
enum {
#define CAT_GATED(id, name, alias, gated) GATED_##id = gated,
    AT_CATEGORIES(CAT_GATED)
#undef CAT_GATED
    GATED_OTHER = 1
};
#define KIND_GATED(id, code, name, label, category, rule, level, color, description) GATED_##category,
static const unsigned char kind_gated[TM_KINDS] = {AT_KINDS(KIND_GATED) AT_KIND_OTHER(KIND_GATED)};
#undef KIND_GATED

int tm_kind_is_request(enum tm_kind k)
{
    return k == TM_INVALID_ALIGNMENT || k == TM_INVALID_SIZE || k == TM_ZERO_SIZE;
}

int tm_kind_gated(enum tm_kind k)
{
    return k < TM_KINDS ? kind_gated[k] : 1;
}

/* A finding kind by the trace's name; leaks are no finding, so "leak" is
 * TM_OTHER like any name this build does not know. */
static enum tm_kind kind_of(const char *name)
{
    for (int k = 0; k < TM_OTHER; k++)
        if (k != TM_LEAK && name && strcmp(name, kind_names[k]) == 0)
            return (enum tm_kind)k;
    return TM_OTHER;
}

/* The program's arguments, a JSON array in meta; anything else is ignored
 * rather than trusted. */
static void load_args(tm_trace *t)
{
    size_t cap = 0;
    sqlite3_stmt *st = prepare(
        t, "SELECT j.value FROM json_each((SELECT CASE WHEN json_valid(value)"
           " AND json_type(value) = 'array' THEN value ELSE '[]' END"
           " FROM meta WHERE key = 'arguments')) j");
    while (step(t, st) == SQLITE_ROW) {
        t->sum.args = grow(t->sum.args, &cap, t->sum.nargs + 1, sizeof *t->sum.args);
        t->sum.args[t->sum.nargs++] = col_text(st, 0);
    }
    sqlite3_finalize(st);
}

static void load_meta(tm_trace *t)
{
    size_t cap = 0, vcap = 0;
    tm_summary *s = &t->sum;
    sqlite3_stmt *st = prepare(t, "SELECT key, value FROM meta WHERE key IS NOT NULL ORDER BY key");
    while (step(t, st) == SQLITE_ROW) {
        s->meta_keys = grow(s->meta_keys, &cap, s->nmeta + 1, sizeof *s->meta_keys);
        s->meta_values = grow(s->meta_values, &vcap, s->nmeta + 1, sizeof *s->meta_values);
        s->meta_keys[s->nmeta] = col_text(st, 0);
        s->meta_values[s->nmeta++] = col_text(st, 1);
    }
    sqlite3_finalize(st);
}

const char *tm_meta(const tm_trace *t, const char *key)
{
    for (size_t i = 0; i < t->sum.nmeta; i++)
        if (strcmp(t->sum.meta_keys[i], key) == 0)
            return t->sum.meta_values[i];
    return NULL;
}

static void load_summary(tm_trace *t)
{
    tm_summary *s = &t->sum;
    s->alloc_calls = meta_int(t, "alloc_calls");
    s->free_calls = meta_int(t, "free_calls");
    s->alloc_bytes = meta_int(t, "alloc_bytes");
    s->duration_us = meta_int(t, "duration_us");
    s->lost_events = meta_int(t, "lost_events");
    s->pid = meta_int(t, "pid");
    s->executable = meta_text(t, "executable");
    s->program_end = meta_text(t, "program_end");
    s->start_time = meta_text(t, "start_time");
    s->library_version = meta_text(t, "library_version");
    load_args(t);
    load_meta(t);
    s->threads = one_int(t, "SELECT count(*) FROM threads", 0);
    s->leaked_blocks = one_int(t, "SELECT count(*) FROM leaks", 0);
    s->leaked_bytes = one_int(t, "SELECT coalesce(sum(size), 0) FROM leaks", 0);
    sqlite3_stmt *rs = prepare(t, "SELECT reachability, count(*), coalesce(sum(size), 0)"
                                  " FROM leaks GROUP BY reachability");
    while (step(t, rs) == SQLITE_ROW) {
        enum tm_reach r = tm_reach_named((const char *)sqlite3_column_text(rs, 0));
        s->by_reach[r].blocks = tm_sat_add(s->by_reach[r].blocks, sqlite3_column_int64(rs, 1));
        s->by_reach[r].bytes = tm_sat_add(s->by_reach[r].bytes, sqlite3_column_int64(rs, 2));
    }
    sqlite3_finalize(rs);
    s->runtime_blocks = one_int(t, "SELECT count(*) FROM runtime_blocks", 0);
    s->runtime_bytes = one_int(t, "SELECT coalesce(sum(size), 0) FROM runtime_blocks", 0);
    sqlite3_stmt *st = prepare(t, "SELECT kind, count(*) FROM findings GROUP BY kind");
    while (step(t, st) == SQLITE_ROW) {
        long long n = sqlite3_column_int64(st, 1);
        enum tm_kind k = kind_of((const char *)sqlite3_column_text(st, 0));
        s->by_kind[k] = tm_sat_add(s->by_kind[k], n);
        s->findings = tm_sat_add(s->findings, n);
    }
    sqlite3_finalize(st);
}

/* ---- the peak ------------------------------------------------------------------------------ */

/* The exact peak (lib/trace/replay.h): as finishing stored it, or replayed here
 * from the lifetimes for a trace finished by an older alloctrace. */
static void load_peak(tm_trace *t)
{
    at_replay_peak p = {0};
    if (!at__replay_stored_peak(t->db, &p)) {
        tm_progress_start("finding the peak");
        if (at__replay(t->db, NULL, NULL, &p, NULL) != 0)
            remember_error(t);
        tm_progress_done();
    }
    t->sum.peak_bytes = p.bytes;
    t->sum.peak_blocks = p.blocks;
    t->sum.peak_seq = p.seq;
    t->sum.peak_time_us = p.time_us;
}

/* ---- leak sites ------------------------------------------------------------------------- */

typedef struct site_entry {
    const char *key; /* the stack's */
    size_t index;    /* in t->sites */
    UT_hash_handle hh;
} site_entry;

/* Row: stack, reachability, blocks, bytes, min_size, max_size.  Stacks
 * that read the same are one site within a class, never across classes. */
static void merge_site(tm_trace *t, site_entry **by_key, size_t *cap, const tm_stack *s,
                       sqlite3_stmt *st)
{
    enum tm_reach r = tm_reach_named((const char *)sqlite3_column_text(st, 1));
    site_entry *e;
    HASH_FIND_STR(by_key[r], s->key, e);
    tm_site *site;
    if (!e) {
        t->sites = grow(t->sites, cap, t->nsites + 1, sizeof *t->sites);
        site = &t->sites[t->nsites];
        memset(site, 0, sizeof *site);
        site->stack = s;
        site->reach = r;
        site->min_size = INT64_MAX;
        e = tm_xrealloc(NULL, sizeof *e);
        e->key = s->key;
        e->index = t->nsites++;
        HASH_ADD_KEYPTR(hh, by_key[r], e->key, strlen(e->key), e);
    }
    site = &t->sites[e->index];
    site->blocks = tm_sat_add(site->blocks, sqlite3_column_int64(st, 2));
    site->bytes = tm_sat_add(site->bytes, sqlite3_column_int64(st, 3));
    long long lo = sqlite3_column_int64(st, 4), hi = sqlite3_column_int64(st, 5);
    site->min_size = lo < site->min_size ? lo : site->min_size;
    site->max_size = hi > site->max_size ? hi : site->max_size;
    /* A stack is in a site once per class (leak_sites groups by both). */
    if (site->nids == 0 || site->ids[site->nids - 1] != s->id) {
        site->ids = tm_xrealloc(site->ids, (site->nids + 1) * sizeof *site->ids);
        site->ids[site->nids++] = s->id;
    }
}

/* By class in AT_REACH's order, then largest first. */
static int site_order(const void *a, const void *b)
{
    const tm_site *x = a, *y = b;
    if (x->reach != y->reach)
        return x->reach < y->reach ? -1 : 1;
    if (x->bytes != y->bytes)
        return x->bytes > y->bytes ? -1 : 1;
    if (x->blocks != y->blocks)
        return x->blocks > y->blocks ? -1 : 1;
    return (x->stack->site > y->stack->site) - (x->stack->site < y->stack->site);
}

/* Whether the trace has pools (docs/pools.md): a trace written before
 * them has not even the tables, and one without has none of their rows,
 * and its leaks and findings are read as they always were. */
static int has_pools(tm_trace *t)
{
    return one_int(t, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'pools'",
                   0) > 0 &&
           one_int(t, "SELECT EXISTS(SELECT 1 FROM pools)", 0) > 0;
}

/* A pool's name as tools show it, from the SQL expression `id` of a pool id. */
#define POOL_NAME(id)                                                                              \
    "(SELECT coalesce(p.name, '#' || p.id) FROM pools p WHERE p.id = " id ")"

/* leak_sites, split by pool: each site's blocks of one pool apart. */
static const char leak_sites_by_pool[] =
    "SELECT coalesce(ss.site, k.stack), k.reachability, count(*), sum(k.size), min(k.size),"
    " max(k.size), " POOL_NAME("b.pool") " AS pool"
    " FROM leaks k LEFT JOIN stack_sites ss ON ss.stack = k.stack"
    " LEFT JOIN pool_blocks b ON b.seq = k.alloc_seq GROUP BY 1, 2, 7 ORDER BY 1";

/* A site's pool joins its key: the same code leaking from two pools is two sites. */
static void merge_pool_site(tm_trace *t, site_entry **by_key, size_t *cap, const tm_stack *s,
                            sqlite3_stmt *st)
{
    char *pool = col_text(st, 6);
    if (!pool) {
        merge_site(t, by_key, cap, s, st);
        return;
    }
    tm_stack *keyed = tm_xrealloc(NULL, sizeof *keyed);
    *keyed = *s;
    sbuf b = {0};
    sb_puts(&b, s->key);
    sb_puts(&b, "\x1dpool\x1d");
    sb_puts(&b, pool);
    keyed->key = b.s;
    size_t before = t->nsites;
    merge_site(t, by_key, cap, keyed, st);
    if (t->nsites > before) { /* a new site: it keeps its key, and the stack is the real one */
        t->sites[before].pool = pool;
        t->sites[before].stack = s;
        t->cache->pool_keys = tm_xrealloc(t->cache->pool_keys,
                                          (t->cache->npool_keys + 1) * sizeof(char *));
        t->cache->pool_keys[t->cache->npool_keys++] = keyed->key;
    } else {
        free(pool);
        free(keyed->key);
    }
    free(keyed);
}

static void load_leaks(tm_trace *t)
{
    site_entry *by_key[TM_REACHES] = {NULL}, *e, *tmp;
    size_t cap = 0;
    int pools = has_pools(t);
    tm_progress_start("reading leaks");
    sqlite3_stmt *st =
        prepare(t, pools ? leak_sites_by_pool
                         : "SELECT stack, reachability, blocks, bytes, min_size, max_size"
                           " FROM leak_sites ORDER BY stack");
    while (step(t, st) == SQLITE_ROW) {
        const tm_stack *s = stack_get(t, col_int(st, 0, 0));
        if (pools)
            merge_pool_site(t, by_key, &cap, s, st);
        else
            merge_site(t, by_key, &cap, s, st);
        tm_progress(-1);
    }
    sqlite3_finalize(st);
    for (int r = 0; r < TM_REACHES; r++) {
        HASH_ITER(hh, by_key[r], e, tmp)
        {
            HASH_DEL(by_key[r], e);
            free(e);
        }
    }
    if (t->nsites > 1) /* qsort(NULL, 0...) is undefined */
        qsort(t->sites, t->nsites, sizeof *t->sites, site_order);
    size_t i = 0;
    for (int r = 0; r < TM_REACHES; r++) {
        t->reach_begin[r] = i;
        while (i < t->nsites && t->sites[i].reach == (enum tm_reach)r)
            i++;
        t->sum.by_reach[r].sites = (long long)(i - t->reach_begin[r]);
    }
    t->reach_begin[TM_REACHES] = i;
    tm_progress_done();
}

/* ---- findings ------------------------------------------------------------------------------- */

typedef struct finding_entry {
    char *key;
    size_t index;
    size_t seq_cap; /* of the group's seqs */
    UT_hash_handle hh;
} finding_entry;

static char *finding_key(const tm_finding *f)
{
    sbuf b = {0};
    sb_puts(&b, f->kind_name);
    sb_puts(&b, "\x1d");
    sb_puts(&b, f->release->key);
    sb_puts(&b, "\x1d");
    sb_puts(&b, f->alloc ? f->alloc->key : "-");
    sb_puts(&b, "\x1d");
    sb_puts(&b, f->first_release ? f->first_release->key : "-");
    /* sizes are not part of it: one loop releasing blocks of several
     * sizes wrongly is one bug (its sizes become ranges) */
    sb_printf(&b, "\x1d%lld/%lld/%d/%d\x1d", f->release_align, f->alloc_align,
              f->release_size >= 0, f->alloc_size >= 0);
    sb_puts(&b, f->release_family);
    sb_puts(&b, "\x1d");
    sb_puts(&b, f->alloc_family);
    if (f->pool) { /* a pool's bug is one per pool */
        sb_puts(&b, "\x1dpool\x1d");
        sb_puts(&b, f->pool);
    }
    return b.s;
}

/* Row: kind, seq, time_us, thread, ptr, release_stack, release_size,
 * release_align, release_family, alloc_seq, alloc_stack, alloc_size,
 * alloc_align, alloc_family, first_free_seq, detail, alloc_ptr,
 * first_free_stack, pool. */
static tm_finding finding_from_row(tm_trace *t, sqlite3_stmt *st)
{
    tm_finding f = {
        .kind_name = col_text(st, 0),
        .count = 1,
        .seq = col_int(st, 1, 0),
        .time_us = col_int(st, 2, 0),
        .thread = col_int(st, 3, 0),
        .ptr = col_int(st, 4, 0),
        .release = stack_get(t, col_int(st, 5, 0)),
        .release_size = col_int(st, 6, -1),
        .release_align = col_int(st, 7, -1),
        .release_family = col_text(st, 8),
        .alloc_seq = col_int(st, 9, -1),
        .alloc = sqlite3_column_type(st, 9) == SQLITE_NULL ? NULL
                                                           : stack_get(t, col_int(st, 10, 0)),
        .alloc_size = col_int(st, 11, -1),
        .alloc_align = col_int(st, 12, -1),
        .alloc_family = col_text(st, 13),
        .first_free_seq = col_int(st, 14, -1),
        .detail = col_text(st, 15),
        .alloc_ptr = col_int(st, 16, -1),
        .first_release = sqlite3_column_type(st, 14) == SQLITE_NULL
                             ? NULL
                             : stack_get(t, col_int(st, 17, 0)),
        .pool = col_text(st, 18),
    };
    if (!f.kind_name)
        f.kind_name = tm_xstrdup("?");
    f.kind = kind_of(f.kind_name);
    f.release_size_min = f.release_size_max = f.release_size;
    f.alloc_size_min = f.alloc_size_max = f.alloc_size;
    return f;
}

static void widen(long long *lo, long long *hi, long long v)
{
    if (v < 0)
        return;
    if (*lo < 0 || v < *lo)
        *lo = v;
    if (v > *hi)
        *hi = v;
}

/* `f`, a release of the same bug, into `group`. */
static void merge_finding(tm_finding *group, const tm_finding *f, size_t *seq_cap)
{
    group->count = tm_sat_add(group->count, 1);
    widen(&group->release_size_min, &group->release_size_max, f->release_size);
    widen(&group->alloc_size_min, &group->alloc_size_max, f->alloc_size);
    group->seqs = grow(group->seqs, seq_cap, group->nseqs + 1, sizeof *group->seqs);
    group->seqs[group->nseqs++] = f->seq;
}

static void free_finding(tm_finding *f)
{
    free(f->seqs);
    free(f->kind_name);
    free(f->release_family);
    free(f->alloc_family);
    free(f->detail);
    free(f->pool);
}

static tm_finding finding_copy(const tm_finding *f)
{
    tm_finding c = *f;
    c.count = 1;
    c.seqs = NULL;
    c.nseqs = 0;
    c.kind_name = tm_xstrdup(f->kind_name);
    c.release_family = tm_xstrdup(f->release_family);
    c.alloc_family = tm_xstrdup(f->alloc_family);
    c.detail = tm_xstrdup(f->detail);
    c.pool = f->pool ? tm_xstrdup(f->pool) : NULL;
    return c;
}

/* How many releases of each kind TM_RELEASES keeps: TM_RELEASES_MAX shared
 * between kinds, water-filling from the rarest, so that a rare kind is
 * listed even when another has millions. */
static void release_quota(tm_trace *t, long long quota[TM_KINDS])
{
    long long n[TM_KINDS] = {0}, left = TM_RELEASES_MAX;
    int order[TM_KINDS], nkinds = 0;
    sqlite3_stmt *st = prepare(t, "SELECT kind, count(*) FROM findings GROUP BY kind");
    while (step(t, st) == SQLITE_ROW) {
        enum tm_kind k = kind_of((const char *)sqlite3_column_text(st, 0));
        n[k] = tm_sat_add(n[k], sqlite3_column_int64(st, 1));
    }
    sqlite3_finalize(st);
    for (int k = 0; k < TM_KINDS; k++) { /* most first: the rest of a share goes to them */
        int at = nkinds++;
        for (; at > 0 && n[order[at - 1]] < n[k]; at--)
            order[at] = order[at - 1];
        order[at] = k;
    }
    for (int pass = 0; pass < TM_KINDS && left > 0; pass++) {
        int open = 0;
        for (int k = 0; k < TM_KINDS; k++)
            open += quota[k] < n[k];
        if (!open)
            break;
        long long share = left / open > 0 ? left / open : 1;
        for (int i = 0; i < nkinds && left > 0; i++) {
            int k = order[i];
            long long want = n[k] - quota[k], give = want < share ? want : share;
            give = give > left ? left : give;
            quota[k] += give;
            left -= give;
        }
    }
}

/* Every finding row, merged into t->findings; with `releases` the first
 * ones of each kind's quota kept as they are too. */
static void load_findings(tm_trace *t, int releases)
{
    finding_entry *by_key = NULL, *e, *tmp;
    size_t cap = 0, rcap = 0;
    long long quota[TM_KINDS] = {0};
    if (releases)
        release_quota(t, quota);
    tm_progress_start("reading findings");
    sqlite3_stmt *st = prepare(
        t, has_pools(t)
               ? "SELECT kind, seq, time_us, thread, ptr, release_stack, release_size,"
                 " release_align, release_family, alloc_seq, alloc_stack, alloc_size, alloc_align,"
                 " alloc_family, first_free_seq, detail, alloc_ptr, first_free_stack,"
                 " " POOL_NAME("(SELECT pf.pool FROM pool_findings pf WHERE pf.seq = findings.seq)")
                 " FROM findings ORDER BY seq, id"
               : "SELECT kind, seq, time_us, thread, ptr, release_stack, release_size,"
                 " release_align, release_family, alloc_seq, alloc_stack, alloc_size, alloc_align,"
                 " alloc_family, first_free_seq, detail, alloc_ptr, first_free_stack, NULL"
                 " FROM findings ORDER BY seq, id");
    while (step(t, st) == SQLITE_ROW) {
        tm_finding f = finding_from_row(t, st);
        tm_finding *listed = NULL;
        if (quota[f.kind] > 0) {
            quota[f.kind]--;
            t->releases = grow(t->releases, &rcap, t->nreleases + 1, sizeof *t->releases);
            listed = &t->releases[t->nreleases++];
            *listed = finding_copy(&f);
        }
        char *key = finding_key(&f);
        HASH_FIND_STR(by_key, key, e);
        if (e) {
            merge_finding(&t->findings[e->index], &f, &e->seq_cap);
            free_finding(&f);
            free(key);
        } else {
            t->findings = grow(t->findings, &cap, t->nfindings + 1, sizeof *t->findings);
            e = tm_xrealloc(NULL, sizeof *e);
            e->key = key;
            e->seq_cap = 0;
            e->index = t->nfindings++;
            f.count = 0;
            merge_finding(&f, &f, &e->seq_cap);
            t->findings[e->index] = f;
            HASH_ADD_KEYPTR(hh, by_key, e->key, strlen(e->key), e);
        }
        if (listed)
            listed->group = e->index;
        tm_progress(-1);
    }
    sqlite3_finalize(st);
    HASH_ITER(hh, by_key, e, tmp)
    {
        HASH_DEL(by_key, e);
        free(e->key);
        free(e);
    }
    tm_progress_done();
}

/* ---- the heap ------------------------------------------------------------------------------- */

/* One replay (trace_heap.c); the peak comes with it.  meta's totals stay
 * what the summary says when the trace has them, the replay's otherwise. */
static void load_heap(tm_trace *t)
{
    at_replay_peak p = {0};
    if (t->cache->failed)
        return;
    tm_progress_start("replaying the heap");
    if (tm__heap_load(&t->heap, t->db, meta_int(t, "duration_us"), &p) != 0)
        remember_error(t);
    tm_progress_done();
    tm_summary *s = &t->sum;
    s->peak_bytes = p.bytes;
    s->peak_blocks = p.blocks;
    s->peak_seq = p.seq;
    s->peak_time_us = p.time_us;
    if (!tm_meta(t, "alloc_calls"))
        s->alloc_calls = t->heap.lifetimes;
    if (!tm_meta(t, "alloc_bytes"))
        s->alloc_bytes = t->heap.alloc_bytes;
    if (!tm_meta(t, "free_calls"))
        s->free_calls = t->heap.free_calls;
    if (!tm_meta(t, "duration_us"))
        s->duration_us = t->heap.last_time_us;
}

/* A leak site's whole goes to the stack that names it. */
static void heap_leaks(tm_trace *t)
{
    for (size_t i = 0; i < t->nsites; i++) {
        const tm_site *site = &t->sites[i];
        tm_stack_heap *h = tm__heap_entry(&t->heap, site->stack->id);
        int first = h->leaked_blocks == 0; /* a stack names a site in each of its classes */
        h->leaked_blocks = tm_sat_add(h->leaked_blocks, site->blocks);
        h->leaked_bytes = tm_sat_add(h->leaked_bytes, site->bytes);
        h->leak_min = first || site->min_size < h->leak_min ? site->min_size : h->leak_min;
        h->leak_max = first || site->max_size > h->leak_max ? site->max_size : h->leak_max;
    }
}

const tm_stack_heap *tm_heap_stack(const tm_trace *t, long long id)
{
    return tm__heap_find(&t->heap, id);
}

/* ---- the whole ---------------------------------------------------------------------------- */

int tm_load(tm_trace *t, sqlite3 *db, const char *path, unsigned what)
{
    memset(t, 0, sizeof *t);
    t->db = db;
    t->path = path;
    t->cache = tm_xrealloc(NULL, sizeof *t->cache);
    memset(t->cache, 0, sizeof *t->cache);
    sqlite3_progress_handler(db, 100000, progress_handler, NULL);
    if (what & TM_SUMMARY)
        load_summary(t);
    if (what & TM_HEAP)
        load_heap(t);
    else if (what & TM_PEAK)
        load_peak(t);
    if (what & TM_LEAKS)
        load_leaks(t);
    if ((what & TM_LEAKS) && (what & TM_HEAP))
        heap_leaks(t);
    if (what & (TM_FINDINGS | TM_RELEASES))
        load_findings(t, (what & TM_RELEASES) != 0);
    sqlite3_progress_handler(db, 0, NULL, NULL);
    tm_progress_done();
    return tm_check(t);
}

int tm_check(tm_trace *t)
{
    if (!t->cache->failed)
        return 0;
    if (t->cache->failed == 1)
        fprintf(stderr, "alloctrace: %s: cannot read the trace: %s\n", t->path, t->cache->error);
    t->cache->failed = 2; /* said once */
    return -1;
}

void tm_free(tm_trace *t)
{
    if (!t->cache)
        return;
    for (size_t i = 0; i < t->nsites; i++) {
        free(t->sites[i].ids);
        free(t->sites[i].pool);
    }
    free(t->sites);
    for (size_t i = 0; i < t->cache->npool_keys; i++)
        free(t->cache->pool_keys[i]);
    free(t->cache->pool_keys);
    for (size_t i = 0; i < t->nfindings; i++)
        free_finding(&t->findings[i]);
    free(t->findings);
    for (size_t i = 0; i < t->nreleases; i++)
        free_finding(&t->releases[i]);
    free(t->releases);
    tm__heap_free(&t->heap);
    tm_summary *s = &t->sum;
    free(s->executable);
    free(s->program_end);
    free(s->start_time);
    free(s->library_version);
    for (size_t i = 0; i < s->nargs; i++)
        free(s->args[i]);
    free(s->args);
    for (size_t i = 0; i < s->nmeta; i++) {
        free(s->meta_keys[i]);
        free(s->meta_values[i]);
    }
    free(s->meta_keys);
    free(s->meta_values);
    stack_entry *se, *stmp;
    HASH_ITER(hh, t->cache->stacks, se, stmp)
    {
        HASH_DEL(t->cache->stacks, se);
        free(se->s.frames);
        free(se->s.key);
        free(se->s.names);
        free(se);
    }
    frame_entry *fe, *ftmp;
    HASH_ITER(hh, t->cache->frames, fe, ftmp)
    {
        HASH_DEL(t->cache->frames, fe);
        for (size_t i = 0; i < fe->n; i++) {
            free(fe->lines[i].function);
            free(fe->lines[i].file);
            free(fe->lines[i].module);
        }
        free(fe->lines);
        free(fe);
    }
    site_of *so, *sotmp;
    HASH_ITER(hh, t->cache->sites, so, sotmp)
    {
        HASH_DEL(t->cache->sites, so);
        free(so);
    }
    sqlite3_finalize(t->cache->frame_query);
    sqlite3_finalize(t->cache->inlined_query);
    at__stack_tree_free(&t->cache->tree);
    free(t->cache);
    memset(t, 0, sizeof *t);
}
