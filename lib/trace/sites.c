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
typedef struct frame {
    char *function, *file, *module;
    long long line, offset;
    struct frame *inl; /* a real frame's inlined functions, innermost first */
    size_t ninl;
} frame;

/* The identity of frames[skip..n): what a site is. */
static void stack_key(buf *key, const frame *f, size_t n, size_t skip)
{
    key->len = 0;
    add(key, "", 0);
    for (size_t i = skip; i < n; i++) {
        if (f[i].function) {
            add_str(key, f[i].function);
        } else {
            add_str(key, f[i].module ? base_name(f[i].module) : "?");
            add_int(key, "+", f[i].offset, 1);
        }
        if (f[i].file && f[i].line > 0) {
            add(key, "\x1f", 1);
            add_str(key, f[i].file);
            add_int(key, ":", f[i].line, 0);
        } else if (f[i].function) {
            add_int(key, "\x1f+", f[i].offset, 1);
        }
        add(key, "\x1e", 1);
    }
}

typedef struct site_entry {
    char *key;
    int64_t site;
    UT_hash_handle hh;
} site_entry;

typedef struct reader {
    frame f[MAX_FRAMES]; /* the stack being read: copies of entries of `frames` */
    size_t n;
    int64_t stack;
    frame *frames; /* every frame of the trace, by frames.id */
    int64_t nframes;
    site_entry *sites;
    buf key;
    int nomem;
} reader;

static char *dup_col(sqlite3_stmt *st, int i, int *nomem)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *nomem = 1;
    return d;
}

static void clear_frames(reader *r)
{
    r->n = 0;
}

/* Every frame, by id (dense: the writers number them 1, 2, ...); 0,
 * AT_E_DB or AT_E_NOMEM. */
static int load_frames(sqlite3 *db, reader *r)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT coalesce(max(id), 0), count(*) FROM frames", -1, &st,
                                NULL);
    int64_t count = 0;
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        r->nframes = sqlite3_column_int64(st, 0) + 1;
        count = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    /* Far sparser than any writer numbers them: a hostile trace. */
    if (r->nframes <= 0 || r->nframes > INT32_MAX || r->nframes > 16 * count + 65536)
        return AT_E_DB;
    r->frames = calloc((size_t)r->nframes, sizeof *r->frames);
    if (!r->frames)
        return AT_E_NOMEM;
    rc = sqlite3_prepare_v2(db,
                            "SELECT f.id, f.function, f.file, f.line, m.path, f.module_offset"
                            " FROM frames f LEFT JOIN modules m ON m.id = f.module",
                            -1, &st, NULL);
    while (!r->nomem && (rc == SQLITE_OK || rc == SQLITE_ROW)) {
        if ((rc = sqlite3_step(st)) != SQLITE_ROW)
            break;
        int64_t id = sqlite3_column_int64(st, 0);
        if (id <= 0 || id >= r->nframes)
            continue;
        frame *f = &r->frames[id];
        f->function = dup_col(st, 1, &r->nomem);
        f->file = dup_col(st, 2, &r->nomem);
        f->line = sqlite3_column_int64(st, 3);
        f->module = dup_col(st, 4, &r->nomem);
        f->offset = sqlite3_column_int64(st, 5);
    }
    sqlite3_finalize(st);
    return r->nomem ? AT_E_NOMEM : rc == SQLITE_DONE ? 0 : AT_E_DB;
}

/* Each real frame's inlined functions, in depth order. */
static int load_inlined(sqlite3 *db, reader *r)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT frame, function, file, line FROM inlined_frames"
                                " ORDER BY frame, depth",
                                -1, &st, NULL);
    while (!r->nomem && (rc == SQLITE_OK || rc == SQLITE_ROW)) {
        if ((rc = sqlite3_step(st)) != SQLITE_ROW)
            break;
        int64_t id = sqlite3_column_int64(st, 0);
        if (id <= 0 || id >= r->nframes || r->frames[id].ninl >= MAX_FRAMES)
            continue;
        frame *f = &r->frames[id];
        frame *v = realloc(f->inl, (f->ninl + 1) * sizeof *v);
        if (!v) {
            r->nomem = 1;
            break;
        }
        f->inl = v;
        frame *g = &v[f->ninl++];
        *g = (frame){.module = f->module, .offset = f->offset}; /* the real frame's */
        g->function = dup_col(st, 1, &r->nomem);
        g->file = dup_col(st, 2, &r->nomem);
        g->line = sqlite3_column_int64(st, 3);
    }
    sqlite3_finalize(st);
    return r->nomem ? AT_E_NOMEM : rc == SQLITE_DONE ? 0 : AT_E_DB;
}

static void free_frames(reader *r)
{
    for (int64_t i = 0; r->frames && i < r->nframes; i++) {
        frame *f = &r->frames[i];
        for (size_t k = 0; k < f->ninl; k++) {
            free(f->inl[k].function);
            free(f->inl[k].file);
        }
        free(f->inl);
        free(f->function);
        free(f->file);
        free(f->module);
    }
    free(r->frames);
}

/* The stack read so far is complete: its site. */
static void end_stack(reader *r, at_site_fn *fn, void *arg)
{
    if (r->n == 0)
        return;
    size_t skip = 0;
    while (skip < r->n && is_allocator_frame(r->f[skip].function, r->f[skip].module))
        skip++;
    if (skip == r->n) /* nothing but allocator frames: keep them all */
        skip = 0;
    stack_key(&r->key, r->f, r->n, skip);
    if (r->key.failed) {
        r->nomem = 1;
        clear_frames(r);
        return;
    }
    site_entry *e;
    HASH_FIND_STR(r->sites, r->key.s, e);
    if (!e) {
        e = calloc(1, sizeof *e);
        char *k = strdup(r->key.s);
        if (!e || !k) {
            free(e);
            free(k);
            r->nomem = 1;
            clear_frames(r);
            return;
        }
        e->key = k;
        e->site = r->stack; /* stacks come in ascending id: the smallest */
        HASH_ADD_KEYPTR(hh, r->sites, e->key, strlen(e->key), e);
    }
    fn(arg, r->stack, e->site, (int)skip);
    clear_frames(r);
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
        for (size_t i = 0; i < n && r->n < MAX_FRAMES; i++) {
            if (ids[i] <= 0 || ids[i] >= r->nframes)
                continue;
            const frame *f = &r->frames[ids[i]];
            for (size_t k = 0; k < f->ninl && r->n < MAX_FRAMES; k++)
                r->f[r->n++] = f->inl[k];
            if (r->n < MAX_FRAMES)
                r->f[r->n++] = *f;
        }
        end_stack(r, fn, arg);
    }
    sqlite3_finalize(st);
    return r->nomem ? AT_E_NOMEM : rc == SQLITE_DONE ? 0 : AT_E_DB;
}

int at__sites_compute(sqlite3 *db, at_site_fn *fn, void *arg)
{
    reader *r = calloc(1, sizeof *r);
    if (!r)
        return AT_E_NOMEM;
    at_stack_tree tree;
    int err = at__stack_tree_load(db, &tree);
    err = err ? err : load_frames(db, r);
    err = err ? err : load_inlined(db, r);
    err = err ? err : read_stacks(db, r, &tree, fn, arg);
    at__stack_tree_free(&tree);
    site_entry *e, *tmp;
    HASH_ITER(hh, r->sites, e, tmp)
    {
        HASH_DEL(r->sites, e);
        free(e->key);
        free(e);
    }
    free_frames(r);
    free(r->key.s);
    free(r);
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

static int fill(sqlite3 *db)
{
    store s = {0};
    if (at__sql_exec(db, AT_SQL_STACK_SITES_TABLE "DELETE FROM stack_sites;") != 0 ||
        sqlite3_prepare_v2(db, "INSERT INTO stack_sites VALUES(?,?,?)", -1, &s.ins, NULL) !=
            SQLITE_OK) {
        sqlite3_finalize(s.ins);
        return AT_E_DB;
    }
    int err = at__sites_compute(db, store_one, &s);
    sqlite3_finalize(s.ins);
    return err ? err : s.err;
}

int at__sites_store(sqlite3 *db)
{
    if (!sqlite3_get_autocommit(db))
        return fill(db); /* in the caller's transaction */
    if (at__sql_exec(db, "BEGIN") != 0)
        return AT_E_DB;
    int err = fill(db);
    if (err) {
        at__sql_exec(db, "ROLLBACK");
        return err;
    }
    return at__sql_exec(db, "COMMIT");
}
