/* Runtime-owned blocks.
 *
 * glibc and libstdc++ keep a few blocks for the whole run and never free
 * them (stdio buffers, the emergency exception pool when it was not given
 * back, buffers of the dynamic loader).  A program that frees everything
 * it allocated must still show zero leaks, so these blocks are set aside,
 * each with a reason, and the `leaks` view leaves them out.  The rules are
 * deliberately narrow, so that a program's own leak is never hidden:
 *
 *  - allocated before tracing started (the preload library's bootstrap;
 *    no stack, time 0): the runtimes' own start-up;
 *  - inherited: live in the parent when a forked child started, and never
 *    released by the child: the parent's, not the child's;
 *  - every frame of the allocation stack lies in the C or C++ runtime or
 *    the dynamic loader: nothing of the program asked for it;
 *  - the allocating function is stdio's buffer allocator: the buffer of a
 *    stream the program used, which exit() flushes but never frees;
 *  - the block was allocated inside the C library (first frame) on behalf
 *    of one of its process-lifetime caches (GLIBC_CACHE below);
 *  - Rust's runtime: every function of the stack, inlined ones included,
 *    is of Rust's standard library (RUST_STD below: std, core, alloc, the
 *    allocator shims, the alloctrace crate's allocator), the C runtime, or
 *    the program's `main`/`_start` entry symbols, and one of them is std's:
 *    the main thread's stack-guard record, the blocks std's own statics
 *    keep; any function of the program (its own `crate::main` included),
 *    or a frame outside the runtimes that has no name, makes the block
 *    the program's.
 *
 * The first four rules are facts of a stack: each distinct stack of the
 * blocks still live is walked up the call tree once, in memory, and
 * judged by its frames' facts (each frame's computed once).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <alloctrace/error.h>

#include "runtime.h"
#include "schema.h"
#include "stack_tree.h"

/* Modules of the runtimes, as SQL LIKE patterns over the path. */
static const char *const runtime_modules[] = {
    "%/libc.so.%", "%/ld-linux%.so.%", "%/libstdc++.so.%", "%/libgcc_s.so.%",
    "%/libm.so.%", "linux-vdso%",
};

/* glibc functions that fill process-lifetime caches, which only
 * __libc_freeres releases (valgrind calls it before its leak check):
 * name-service state and static result buffers (getpwuid and friends),
 * locale data, the loader's dlopen state, the thread-local storage of
 * thread stacks glibc caches for reuse, the blocks of the atexit list,
 * the time zone (tzset), message catalogues (gettext's domains and
 * bindings), the environment setenv built and the tree of its strings,
 * and character-set converters (gconv).  By prefix, then by name without
 * the suffix of a clone GCC made of it (set_binding_values.part.0). */
static const char *const glibc_cache_prefixes[] = {"__nss_", "nss_", "__gconv_"};
static const char *const glibc_cache_names[] = {
    "tzset_internal", "__tzfile_read", "_nl_find_domain", "_nl_load_domain", "textdomain",
    "set_binding_values", "__add_to_environ", "__tsearch", "__wcsmbs_load_conv", "getpwuid",
    "getpwnam", "getgrgid", "getgrnam", "getpwent", "getgrent", "getspnam", "gethostbyname",
    "gethostbyname2", "gethostbyaddr", "getservbyname", "getprotobyname", "setlocale",
    "newlocale", "_nl_find_locale", "_nl_load_locale_from_archive", "_nl_intern_locale_data",
    "__libc_dlopen_mode", "dlopen_implementation", "_dl_open", "_dl_allocate_tls",
    "_dl_resize_dtv", "__new_exitfn",
};

/* Functions of Rust's standard library as the demangler names them
 * (legacy and v0 alike), the allocator shims rustc generates, and the
 * alloctrace crate's decorator (bindings/rust): GLOB patterns. */
static const char *const rust_std[] = {
    "std::*",  "core::*",        "alloc::*",      "<std::*",        "<core::*",
    "<alloc::*", "<&dyn core::*", "<T as core::*", "<T as alloc::*", "__rust_*",
    "__rustc::*", "__rdl_*",      "__rg_*",        "alloctrace::*",  "<alloctrace::*",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* What the rules ask of one frame. */
enum {
    F_RUNTIME = 1,     /* its module is a runtime's */
    F_CACHE = 2,       /* a glibc cache's function */
    F_STDIO = 4,       /* stdio's buffer allocator */
    F_STD = 8,         /* a function of Rust's std:: */
    F_NOT_RUST = 16,   /* neither Rust's runtime, the C runtime, nor main/_start */
    F_INLINED_NOT_RUST = 32, /* a function inlined at it is not Rust's runtime */
    F_KNOWN = 64,      /* a row of `frames` (the rules pass over any other) */
};

typedef struct frame_facts {
    uint8_t flags;
    char *function; /* kept for F_CACHE and F_STD frames: the reasons name them */
} frame_facts;

static int is_runtime_module(const char *path)
{
    for (size_t i = 0; path && i < COUNT(runtime_modules); i++)
        if (sqlite3_strlike(runtime_modules[i], path, 0) == 0)
            return 1;
    return 0;
}

static int is_glibc_cache(const char *fn)
{
    if (!fn)
        return 0;
    for (size_t i = 0; i < COUNT(glibc_cache_prefixes); i++)
        if (sqlite3_strnicmp(fn, glibc_cache_prefixes[i],
                             (int)strlen(glibc_cache_prefixes[i])) == 0)
            return 1;
    const char *dot = strchr(fn, '.');
    size_t len = dot && dot > fn ? (size_t)(dot - fn) : strlen(fn);
    for (size_t i = 0; i < COUNT(glibc_cache_names); i++)
        if (strlen(glibc_cache_names[i]) == len && memcmp(fn, glibc_cache_names[i], len) == 0)
            return 1;
    return 0;
}

static int is_rust_std(const char *fn)
{
    for (size_t i = 0; i < COUNT(rust_std); i++)
        if (sqlite3_strglob(rust_std[i], fn ? fn : "") == 0)
            return 1;
    return 0;
}

typedef struct facts {
    frame_facts *f; /* by frames.id */
    int64_t n;
    int nomem;
} facts;

static int load_facts(sqlite3 *db, facts *x)
{
    if (at__frame_ids(db, &x->n) != 0)
        return AT_E_DB;
    if (!(x->f = calloc((size_t)x->n, sizeof *x->f)))
        return AT_E_NOMEM;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT f.id, f.function, m.path FROM frames f"
                                " LEFT JOIN modules m ON m.id = f.module",
                                -1, &st, NULL);
    while (!x->nomem && (rc == SQLITE_OK || rc == SQLITE_ROW)) {
        if ((rc = sqlite3_step(st)) != SQLITE_ROW)
            break;
        int64_t id = sqlite3_column_int64(st, 0);
        if (id <= 0 || id >= x->n)
            continue;
        const char *fn = (const char *)sqlite3_column_text(st, 1);
        const char *path = (const char *)sqlite3_column_text(st, 2);
        frame_facts *f = &x->f[id];
        int runtime = is_runtime_module(path);
        f->flags = (uint8_t)(F_KNOWN | (runtime ? F_RUNTIME : 0) | (is_glibc_cache(fn) ? F_CACHE : 0) |
                             (fn && strcmp(fn, "_IO_file_doallocate") == 0 ? F_STDIO : 0) |
                             (fn && sqlite3_strglob("std::*", fn) == 0 ? F_STD : 0));
        if (!(is_rust_std(fn) || (fn && (strcmp(fn, "main") == 0 || strcmp(fn, "_start") == 0)) ||
              runtime))
            f->flags |= F_NOT_RUST;
        if ((f->flags & (F_CACHE | F_STD)) && !(f->function = strdup(fn)))
            x->nomem = 1;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return x->nomem ? AT_E_NOMEM : AT_E_DB;
    rc = sqlite3_prepare_v2(db, "SELECT frame, function FROM inlined_frames", -1, &st, NULL);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        if ((rc = sqlite3_step(st)) != SQLITE_ROW)
            break;
        int64_t id = sqlite3_column_int64(st, 0);
        if (id > 0 && id < x->n && !is_rust_std((const char *)sqlite3_column_text(st, 1)))
            x->f[id].flags |= F_INLINED_NOT_RUST;
    }
    sqlite3_finalize(st);
    return x->nomem ? AT_E_NOMEM : rc == SQLITE_DONE ? 0 : AT_E_DB;
}

static void free_facts(facts *x)
{
    for (int64_t i = 0; x->f && i < x->n; i++)
        free(x->f[i].function);
    free(x->f);
}

enum { MAX_LEVELS = 1024 };

/* The reason a stack's blocks are the runtimes' (rules 3 to 6 of the
 * file's comment, in that order), in `out`; 0 if they are the program's. */
static int stack_reason(const facts *x, const int64_t *ids, size_t n, char *out, size_t cap)
{
    const frame_facts *f[MAX_LEVELS];
    static const frame_facts none = {0};
    for (size_t i = 0; i < n; i++)
        f[i] = ids[i] > 0 && ids[i] < x->n ? &x->f[ids[i]] : &none;
    if (n > 0 && (f[0]->flags & F_STDIO)) {
        snprintf(out, cap, "stdio buffer");
        return 1;
    }
    if (n > 0 && (f[0]->flags & F_RUNTIME))
        for (size_t i = n; i-- > 0;) /* the outermost cache function */
            if (f[i]->flags & F_CACHE) {
                snprintf(out, cap, "C library cache (%s)", f[i]->function);
                return 1;
            }
    int all_runtime = 1, not_rust = 0;
    const char *std_fn = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!(f[i]->flags & F_KNOWN))
            continue;
        all_runtime &= (f[i]->flags & F_RUNTIME) != 0;
        not_rust |= (f[i]->flags & (F_NOT_RUST | F_INLINED_NOT_RUST)) != 0;
        if (!std_fn && (f[i]->flags & F_STD))
            std_fn = f[i]->function;
    }
    if (all_runtime) {
        snprintf(out, cap, "allocated by the C/C++ runtime itself");
        return 1;
    }
    if (std_fn && !not_rust) {
        snprintf(out, cap, "Rust runtime (%s)", std_fn);
        return 1;
    }
    return 0;
}

/* The stacks of blocks still live, each with its reason, into the table
 * temp.at_runtime_stacks. */
static int reasons(sqlite3 *db, const at_stack_tree *tree)
{
    facts x = {0};
    int rc = load_facts(db, &x);
    sqlite3_stmt *live = NULL, *ins = NULL;
    if (!rc && (sqlite3_prepare_v2(db,
                                   "SELECT DISTINCT stack FROM lifetimes"
                                   " WHERE free_dseq IS NULL AND stack > 0",
                                   -1, &live, NULL) != SQLITE_OK ||
                sqlite3_prepare_v2(db, "INSERT INTO temp.at_runtime_stacks VALUES(?, ?)", -1,
                                   &ins, NULL) != SQLITE_OK))
        rc = AT_E_DB;
    int step = SQLITE_ROW;
    while (!rc && (step = sqlite3_step(live)) == SQLITE_ROW) {
        int64_t stack = sqlite3_column_int64(live, 0), ids[MAX_LEVELS];
        size_t n = at__stack_tree_frames(tree, stack, ids, MAX_LEVELS);
        char reason[512];
        if (!stack_reason(&x, ids, n, reason, sizeof reason))
            continue;
        sqlite3_bind_int64(ins, 1, stack);
        sqlite3_bind_text(ins, 2, reason, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(ins) != SQLITE_DONE)
            rc = AT_E_DB;
        sqlite3_reset(ins);
    }
    if (!rc && step != SQLITE_DONE)
        rc = AT_E_DB;
    sqlite3_finalize(live);
    sqlite3_finalize(ins);
    free_facts(&x);
    return rc;
}

static const char classify_sql[] =
    "DELETE FROM runtime_owned;"
    "INSERT INTO runtime_owned(seq, reason)"
    /* adopted at start (at__trace_adopt: no stack, time 0); a block with
     * no stack later on (a signal handler's call, an unwind that failed)
     * is the program's */
    " SELECT seq, 'allocated before tracing started' FROM lifetimes"
    " WHERE free_dseq IS NULL AND (stack IS NULL OR stack = 0) AND t = 0;"
    "INSERT OR IGNORE INTO runtime_owned(seq, reason)"
    " SELECT seq, 'inherited from the parent process' FROM lifetimes"
    " WHERE free_dseq IS NULL AND " AT_SQL_INFO_ALLOC_OP("info") " = 6;"
    "INSERT OR IGNORE INTO runtime_owned(seq, reason)"
    " SELECT l.seq, r.reason FROM lifetimes l JOIN temp.at_runtime_stacks r ON r.stack = l.stack"
    " WHERE l.free_dseq IS NULL;";

int at__classify_runtime(sqlite3 *db, const at_stack_tree *tree)
{
    int rc = at__sql_exec(db, "BEGIN");
    if (rc == 0)
        rc = at__sql_exec(db, "DROP TABLE IF EXISTS temp.at_runtime_stacks;"
                              "CREATE TEMP TABLE at_runtime_stacks(stack INTEGER PRIMARY KEY,"
                              " reason TEXT NOT NULL);");
    if (rc == 0)
        rc = reasons(db, tree);
    if (rc == 0)
        rc = at__sql_exec(db, classify_sql);
    if (rc == 0)
        rc = at__sql_exec(db, "DROP TABLE temp.at_runtime_stacks; COMMIT");
    if (rc == 0)
        return 0;
    at__sql_exec(db, "ROLLBACK");
    return rc;
}
