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
 *    keep; any function of the program (its own `crate::main` included)
 *    makes the block the program's.
 */
#include <alloctrace/error.h>

#include "runtime.h"
#include "schema.h"

/* Modules of the runtimes, by file name. */
#define RUNTIME_MODULE(m)                                                                          \
    "(" m " LIKE '%/libc.so.%' OR " m " LIKE '%/ld-linux%.so.%' OR " m " LIKE '%/libstdc++.so.%'"  \
    " OR " m " LIKE '%/libgcc_s.so.%' OR " m " LIKE '%/libm.so.%' OR " m " LIKE 'linux-vdso%')"

/* glibc functions that fill process-lifetime caches, which only
 * __libc_freeres releases (valgrind calls it before its leak check):
 * name-service state and static result buffers (getpwuid and friends),
 * locale data, the loader's dlopen state, the thread-local storage of
 * thread stacks glibc caches for reuse, the blocks of the atexit list,
 * the time zone (tzset), message catalogues (gettext's domains and
 * bindings), the environment setenv built and the tree of its strings,
 * and character-set converters (gconv). */
/* A function's name without the suffix of a clone GCC made of it
 * (set_binding_values.part.0). */
#define BASE_NAME(f) "(CASE WHEN instr(" f ", '.') > 1 THEN substr(" f ", 1, instr(" f ", '.') - 1)" \
                     " ELSE " f " END)"
#define GLIBC_CACHE(f)                                                                             \
    "(" f " LIKE '\\_\\_nss\\_%' ESCAPE '\\' OR " f " LIKE 'nss\\_%' ESCAPE '\\'"                   \
    " OR " f " LIKE '\\_\\_gconv\\_%' ESCAPE '\\'"                                                 \
    " OR " BASE_NAME(f) " IN ('tzset_internal', '__tzfile_read', '_nl_find_domain',"               \
    " '_nl_load_domain',"                                                                         \
    " 'textdomain', 'set_binding_values', '__add_to_environ', '__tsearch', '__wcsmbs_load_conv')"  \
    " OR " BASE_NAME(f) " IN ('getpwuid', 'getpwnam', 'getgrgid', 'getgrnam', 'getpwent', 'getgrent',"         \
    " 'getspnam', 'gethostbyname', 'gethostbyname2', 'gethostbyaddr', 'getservbyname',"          \
    " 'getprotobyname', 'setlocale', 'newlocale', '_nl_find_locale', '_nl_load_locale_from_archive'," \
    " '_nl_intern_locale_data', '__libc_dlopen_mode', 'dlopen_implementation', '_dl_open', '_dl_allocate_tls', '_dl_resize_dtv', '__new_exitfn'))"

/* Functions of Rust's standard library as the demangler names them
 * (legacy and v0 alike), the allocator shims rustc generates, and the
 * alloctrace crate's decorator (bindings/rust). */
#define RUST_STD(f)                                                                                \
    "(" f " GLOB 'std::*' OR " f " GLOB 'core::*' OR " f " GLOB 'alloc::*'"                        \
    " OR " f " GLOB '<std::*' OR " f " GLOB '<core::*' OR " f " GLOB '<alloc::*'"                  \
    " OR " f " GLOB '<&dyn core::*' OR " f " GLOB '<T as core::*' OR " f " GLOB '<T as alloc::*'"  \
    " OR " f " GLOB '__rust_*' OR " f " GLOB '__rustc::*' OR " f " GLOB '__rdl_*'"                 \
    " OR " f " GLOB '__rg_*' OR " f " GLOB 'alloctrace::*' OR " f " GLOB '<alloctrace::*')"

/* The frames of the stacks of blocks still live, which are few: walked up
 * the call tree once into a temporary table, rather than through the view
 * stack_frames, which would spell out every stack of the trace. */
static const char live_frames_sql[] =
    "DROP TABLE IF EXISTS temp.at_live_frames;"
    "CREATE TEMP TABLE at_live_frames(stack INTEGER NOT NULL, level INTEGER NOT NULL,"
    " frame INTEGER NOT NULL, PRIMARY KEY(stack, level)) WITHOUT ROWID;"
    "WITH RECURSIVE walk(stack, level, frame, parent) AS ("
    " SELECT n.id, 0, n.frame, n.parent FROM (SELECT DISTINCT stack FROM lifetimes"
    "  WHERE free_dseq IS NULL AND stack > 0) l JOIN stack_nodes n ON n.id = l.stack"
    " UNION ALL SELECT w.stack, w.level + 1, n.frame, n.parent"
    " FROM walk w JOIN stack_nodes n ON n.id = w.parent WHERE w.level < " AT_SQL_MAX_LEVEL ")"
    " INSERT INTO at_live_frames SELECT stack, level, frame FROM walk;";

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
    " SELECT l.seq, 'stdio buffer' FROM lifetimes l"
    " JOIN at_live_frames sf ON sf.stack = l.stack AND sf.level = 0"
    " JOIN frames f ON f.id = sf.frame"
    " WHERE l.free_dseq IS NULL AND f.function = '_IO_file_doallocate';"
    "INSERT OR IGNORE INTO runtime_owned(seq, reason)"
    " SELECT l.seq, 'C library cache (' || (SELECT f.function FROM at_live_frames sf"
    "  JOIN frames f ON f.id = sf.frame WHERE sf.stack = l.stack AND " GLIBC_CACHE("f.function")
    "  ORDER BY sf.level DESC LIMIT 1) || ')' FROM lifetimes l"
    " JOIN at_live_frames s0 ON s0.stack = l.stack AND s0.level = 0"
    " JOIN frames f0 ON f0.id = s0.frame JOIN modules m0 ON m0.id = f0.module"
    " WHERE l.free_dseq IS NULL AND " RUNTIME_MODULE("m0.path") " AND EXISTS ("
    "  SELECT 1 FROM at_live_frames sf JOIN frames f ON f.id = sf.frame"
    "  WHERE sf.stack = l.stack AND " GLIBC_CACHE("f.function") ");"
    "INSERT OR IGNORE INTO runtime_owned(seq, reason)"
    " SELECT l.seq, 'allocated by the C/C++ runtime itself' FROM lifetimes l"
    " WHERE l.free_dseq IS NULL AND l.stack > 0 AND NOT EXISTS ("
    "  SELECT 1 FROM at_live_frames sf JOIN frames f ON f.id = sf.frame"
    "  LEFT JOIN modules m ON m.id = f.module"
    "  WHERE sf.stack = l.stack AND (m.path IS NULL OR NOT " RUNTIME_MODULE("m.path") "));";

static const char rust_sql[] =
    "INSERT OR IGNORE INTO runtime_owned(seq, reason)"
    " SELECT l.seq, 'Rust runtime (' || (SELECT f.function FROM at_live_frames sf"
    "  JOIN frames f ON f.id = sf.frame WHERE sf.stack = l.stack AND f.function GLOB 'std::*'"
    "  ORDER BY sf.level LIMIT 1) || ')' FROM lifetimes l"
    " WHERE l.free_dseq IS NULL AND l.stack > 0 AND EXISTS ("
    "  SELECT 1 FROM at_live_frames sf JOIN frames f ON f.id = sf.frame"
    "  WHERE sf.stack = l.stack AND f.function GLOB 'std::*') AND NOT EXISTS ("
    "  SELECT 1 FROM at_live_frames sf JOIN frames f ON f.id = sf.frame"
    "  LEFT JOIN modules m ON m.id = f.module WHERE sf.stack = l.stack"
    "  AND NOT (" RUST_STD("coalesce(f.function, '')") " OR f.function IN ('main', '_start')"
    "   OR (m.path IS NOT NULL AND " RUNTIME_MODULE("m.path") "))) AND NOT EXISTS ("
    "  SELECT 1 FROM at_live_frames sf JOIN inlined_frames i ON i.frame = sf.frame"
    "  WHERE sf.stack = l.stack AND NOT " RUST_STD("coalesce(i.function, '')") ");"
    "DROP TABLE temp.at_live_frames;";

int at__classify_runtime(sqlite3 *db)
{
    int rc = at__sql_exec(db, "BEGIN");
    if (rc == 0)
        rc = at__sql_exec(db, live_frames_sql);
    if (rc == 0)
        rc = at__sql_exec(db, classify_sql);
    if (rc == 0)
        rc = at__sql_exec(db, rust_sql);
    if (rc == 0)
        return at__sql_exec(db, "COMMIT");
    at__sql_exec(db, "ROLLBACK");
    return rc;
}
