/* Which stacks are one site (see sites.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include <alloctrace/error.h>

#include "schema.h"
#include "sites.h"
#include "stack_tree.h"

/* Frames looked at per stack: more than the tracer ever records, a bound
 * against a hostile trace. */
enum { MAX_FRAMES = 1024 };

static const char *base_name(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash && slash[1] ? slash + 1 : path;
}

/* The allocator's entry points and alloctrace's own frames. */
static int is_allocator_frame(const char *fn, const char *module)
{
    static const char *const entry[] = {
        "malloc",         "calloc",          "realloc",        "reallocarray",
        "free",           "cfree",           "free_sized",     "free_aligned_sized",
        "posix_memalign", "aligned_alloc",   "memalign",       "valloc",
        "pvalloc",        "__libc_malloc",   "__libc_calloc",  "__libc_realloc",
        "__libc_free",    "__libc_memalign", "__libc_valloc",  "__libc_pvalloc",
        "__posix_memalign",
    };
    const char *mod = base_name(module);
    if (mod && strncmp(mod, "liballoctrace", 13) == 0)
        return 1;
    if (!fn)
        return 0;
    if (strncmp(fn, "at_", 3) == 0 || strncmp(fn, "operator new", 12) == 0 ||
        strncmp(fn, "operator delete", 15) == 0)
        return 1;
    /* Mangled forms, in traces symbolized without a demangler. */
    if (strncmp(fn, "_Znw", 4) == 0 || strncmp(fn, "_Zna", 4) == 0 ||
        strncmp(fn, "_Zdl", 4) == 0 || strncmp(fn, "_Zda", 4) == 0)
        return 1;
    for (size_t i = 0; i < sizeof entry / sizeof entry[0]; i++)
        if (strcmp(fn, entry[i]) == 0)
            return 1;
    return 0;
}

/* A string being built; `failed` once memory ran out. */
typedef struct buf {
    char *s;
    size_t len, cap;
    int failed;
} buf;

static void add(buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void add_str(buf *b, const char *s)
{
    if (s)
        add(b, s, strlen(s));
}

/* `prefix` then v, in hex (0x...) or decimal. */
static void add_int(buf *b, const char *prefix, long long v, int hex)
{
    char tmp[32];
    int n = hex ? snprintf(tmp, sizeof tmp, "0x%llx", (unsigned long long)v)
                : snprintf(tmp, sizeof tmp, "%lld", v);
    add_str(b, prefix);
    add(b, tmp, n > 0 ? (size_t)n : 0);
}

/* One frame of the stack being read: a real one (a row of `frames`), or
 * a function the compiler inlined there (inlined_frames), which shares
 * the real one's module and offset. */
/* A line of a stack: a frame, or a function inlined at its address. */
typedef struct frame {
    const char *function, *file, *module;
    long long line, offset;
} frame;

/* The line's part of a site's key: function (or module+offset), then
 * file:line (or +offset), as docs/schema.md describes sites. */
static void line_key(buf *key, const frame *f)
{
    key->len = 0;
    add(key, "", 0);
    if (f->function) {
        add_str(key, f->function);
    } else {
        add_str(key, f->module ? base_name(f->module) : "?");
        add_int(key, "+", f->offset, 1);
    }
    if (f->file && f->line > 0) {
        add(key, "\x1f", 1);
        add_str(key, f->file);
        add_int(key, ":", f->line, 0);
    } else if (f->function) {
        add_int(key, "\x1f+", f->offset, 1);
    }
}

/* Lines are interned: two lines that read the same have one id, so a
 * site's key is the array of its lines' ids.  An allocator line's id has
 * ALLOCATOR_LINE set. */
#define ALLOCATOR_LINE 0x80000000u

typedef struct line_entry {
    UT_hash_handle hh;
    uint32_t id;
    char key[];
} line_entry;

typedef struct site_entry {
    UT_hash_handle hh;
    int64_t site;
    uint32_t key[]; /* the lines after the skipped ones */
} site_entry;

/* A real frame as its lines: its inlined functions, innermost first, then
 * itself. */
typedef struct frame_lines {
    uint32_t *ids;
    uint32_t n;
} frame_lines;

typedef struct reader {
    uint32_t lines[MAX_FRAMES]; /* the stack being read */
    size_t n;
    int64_t stack;
    frame_lines *frames; /* every frame of the trace, by frames.id */
    int64_t nframes;
    line_entry *line_set;
    uint32_t nlines;
    site_entry *sites;
    buf key;
    int nomem;
} reader;

static uint32_t intern_line(reader *r, const frame *f)
{
    line_key(&r->key, f);
    if (r->key.failed || r->nlines >= ALLOCATOR_LINE - 1) {
        r->nomem = 1;
        return 0;
    }
    line_entry *e;
    HASH_FIND(hh, r->line_set, r->key.s, r->key.len, e);
    if (!e) {
        e = malloc(sizeof *e + r->key.len + 1);
        if (!e) {
            r->nomem = 1;
            return 0;
        }
        memcpy(e->key, r->key.s, r->key.len + 1);
        e->id = ++r->nlines;
        HASH_ADD(hh, r->line_set, key, r->key.len, e);
    }
    return e->id | (is_allocator_frame(f->function, f->module) ? ALLOCATOR_LINE : 0);
}

/* Appends a line to frame `id`'s, keeping the frame's own line last. */
static void add_line(reader *r, frame_lines *fl, uint32_t line, int own)
{
    if (fl->n >= MAX_FRAMES)
        return;
    uint32_t *v = realloc(fl->ids, (fl->n + 1) * sizeof *v);
    if (!v) {
        r->nomem = 1;
        return;
    }
    fl->ids = v;
    if (own || fl->n == 0) {
        v[fl->n] = line;
    } else { /* before the frame's own line */
        v[fl->n] = v[fl->n - 1];
        v[fl->n - 1] = line;
    }
    fl->n++;
}

/* A line from a row of (id, function, file, line, module path, offset). */
static frame frame_of_row(sqlite3_stmt *st)
{
    return (frame){
        .function = (const char *)sqlite3_column_text(st, 1),
        .file = (const char *)sqlite3_column_text(st, 2),
        .line = sqlite3_column_int64(st, 3),
        .module = (const char *)sqlite3_column_text(st, 4),
        .offset = sqlite3_column_int64(st, 5),
    };
}

static int load_frames(sqlite3 *db, reader *r)
{
    if (at__frame_ids(db, &r->nframes) != 0)
        return AT_E_DB;
    r->frames = calloc((size_t)r->nframes, sizeof *r->frames);
    if (!r->frames)
        return AT_E_NOMEM;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT f.id, f.function, f.file, f.line, m.path, f.module_offset"
                                " FROM frames f LEFT JOIN modules m ON m.id = f.module",
                                -1, &st, NULL);
    while (!r->nomem && (rc == SQLITE_OK || rc == SQLITE_ROW)) {
        if ((rc = sqlite3_step(st)) != SQLITE_ROW)
            break;
        int64_t id = sqlite3_column_int64(st, 0);
        if (id <= 0 || id >= r->nframes || r->frames[id].n)
            continue;
        frame f = frame_of_row(st);
        add_line(r, &r->frames[id], intern_line(r, &f), 1);
    }
    sqlite3_finalize(st);
    /* A stack's frame that the table lacks reads as an unknown one. */
    frame unknown = {0};
    uint32_t none = intern_line(r, &unknown);
    for (int64_t id = 1; id < r->nframes && !r->nomem; id++)
        if (r->frames[id].n == 0)
            add_line(r, &r->frames[id], none, 1);
    return r->nomem ? AT_E_NOMEM : rc == SQLITE_DONE ? 0 : AT_E_DB;
}

static int load_inlined(sqlite3 *db, reader *r)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT i.frame, i.function, i.file, i.line, m.path,"
                                " f.module_offset FROM inlined_frames i"
                                " JOIN frames f ON f.id = i.frame"
                                " LEFT JOIN modules m ON m.id = f.module"
                                " ORDER BY i.frame, i.depth",
                                -1, &st, NULL);
    while (!r->nomem && (rc == SQLITE_OK || rc == SQLITE_ROW)) {
        if ((rc = sqlite3_step(st)) != SQLITE_ROW)
            break;
        int64_t id = sqlite3_column_int64(st, 0);
        if (id <= 0 || id >= r->nframes)
            continue;
        frame f = frame_of_row(st); /* the module and offset are the real frame's */
        add_line(r, &r->frames[id], intern_line(r, &f), 0);
    }
    sqlite3_finalize(st);
    return r->nomem ? AT_E_NOMEM : rc == SQLITE_DONE ? 0 : AT_E_DB;
}

static void free_reader(reader *r)
{
    for (int64_t i = 0; r->frames && i < r->nframes; i++)
        free(r->frames[i].ids);
    free(r->frames);
    line_entry *l, *ltmp;
    HASH_ITER(hh, r->line_set, l, ltmp)
    {
        HASH_DEL(r->line_set, l);
        free(l);
    }
    site_entry *e, *tmp;
    HASH_ITER(hh, r->sites, e, tmp)
    {
        HASH_DEL(r->sites, e);
        free(e);
    }
    free(r->key.s);
    free(r);
}

static void end_stack(reader *r, at_site_fn *fn, void *arg)
{
    if (r->n == 0)
        return;
    size_t skip = 0;
    while (skip < r->n && (r->lines[skip] & ALLOCATOR_LINE))
        skip++;
    if (skip == r->n) /* nothing but allocator frames: keep them all */
        skip = 0;
    const uint32_t *key = r->lines + skip;
    size_t len = (r->n - skip) * sizeof *key;
    site_entry *e;
    HASH_FIND(hh, r->sites, key, len, e);
    if (!e) {
        e = malloc(sizeof *e + len);
        if (!e) {
            r->nomem = 1;
            return;
        }
        memcpy(e->key, key, len);
        e->site = r->stack; /* stacks come in ascending id: the smallest */
        HASH_ADD(hh, r->sites, key, len, e);
    }
    fn(arg, r->stack, e->site, (int)skip);
}

/* Every stack in ascending id, its frames walked up the call tree. */
static int read_stacks(sqlite3 *db, reader *r, const at_stack_tree *tree, at_site_fn *fn,
                       void *arg)
{
    sqlite3_stmt *st = NULL;
    int64_t ids[MAX_FRAMES];
    int rc = sqlite3_prepare_v2(db, "SELECT id FROM stacks ORDER BY id", -1, &st, NULL);
    while (!r->nomem && (rc == SQLITE_OK || rc == SQLITE_ROW)) {
        if ((rc = sqlite3_step(st)) != SQLITE_ROW)
            break;
        r->stack = sqlite3_column_int64(st, 0);
        size_t n = at__stack_tree_frames(tree, r->stack, ids, MAX_FRAMES);
        /* Each frame as its inlined functions, then itself: the lines the
         * views and the reports show, which `skip` counts. */
        r->n = 0;
        for (size_t i = 0; i < n; i++) {
            if (ids[i] <= 0 || ids[i] >= r->nframes)
                continue;
            const frame_lines *fl = &r->frames[ids[i]];
            size_t k = fl->n < MAX_FRAMES - r->n ? fl->n : MAX_FRAMES - r->n;
            memcpy(r->lines + r->n, fl->ids, k * sizeof *fl->ids);
            r->n += k;
        }
        end_stack(r, fn, arg);
    }
    sqlite3_finalize(st);
    return r->nomem ? AT_E_NOMEM : rc == SQLITE_DONE ? 0 : AT_E_DB;
}

int at__sites_compute(sqlite3 *db, const at_stack_tree *tree, at_site_fn *fn, void *arg)
{
    reader *r = calloc(1, sizeof *r);
    if (!r)
        return AT_E_NOMEM;
    at_stack_tree own = {0};
    int err = tree ? 0 : at__stack_tree_load(db, &own);
    err = err ? err : load_frames(db, r);
    err = err ? err : load_inlined(db, r);
    err = err ? err : read_stacks(db, r, tree ? tree : &own, fn, arg);
    at__stack_tree_free(&own);
    free_reader(r);
    return err;
}

typedef struct store {
    sqlite3_stmt *ins;
    int err;
} store;

static void store_one(void *arg, int64_t stack, int64_t site, int skip)
{
    store *s = arg;
    sqlite3_bind_int64(s->ins, 1, stack);
    sqlite3_bind_int64(s->ins, 2, site);
    sqlite3_bind_int(s->ins, 3, skip);
    if (sqlite3_step(s->ins) != SQLITE_DONE)
        s->err = AT_E_DB;
    sqlite3_reset(s->ins);
}

static int fill(sqlite3 *db, const at_stack_tree *tree)
{
    store s = {0};
    if (at__sql_exec(db, AT_SQL_STACK_SITES_TABLE "DELETE FROM stack_sites;") != 0 ||
        sqlite3_prepare_v2(db, "INSERT INTO stack_sites VALUES(?,?,?)", -1, &s.ins, NULL) !=
            SQLITE_OK) {
        sqlite3_finalize(s.ins);
        return AT_E_DB;
    }
    int err = at__sites_compute(db, tree, store_one, &s);
    sqlite3_finalize(s.ins);
    return err ? err : s.err;
}

int at__sites_store(sqlite3 *db, const at_stack_tree *tree)
{
    if (!sqlite3_get_autocommit(db))
        return fill(db, tree); /* in the caller's transaction */
    if (at__sql_exec(db, "BEGIN") != 0)
        return AT_E_DB;
    int err = fill(db, tree);
    if (err) {
        at__sql_exec(db, "ROLLBACK");
        return err;
    }
    return at__sql_exec(db, "COMMIT");
}
