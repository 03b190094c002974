/* The trace's SQL schema: tables at open, indexes and views at close.
 *
 * The storage table `lifetimes` is compact on purpose (one row per
 * allocation lifetime, release fields stored as deltas and NULL when they
 * repeat the allocation's); the view `allocations` presents the same rows
 * with every field spelled out, and is what docs/queries.md queries.
 */
#include <stddef.h>

#include <alloctrace/error.h>

#include "schema.h"

static const char tables_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "CREATE TABLE threads(id INTEGER PRIMARY KEY, tid INTEGER, name TEXT);"
    "CREATE TABLE modules(id INTEGER PRIMARY KEY, path TEXT, base INTEGER, start INTEGER,"
    " end INTEGER, build_id TEXT);"
    "CREATE TABLE frames(id INTEGER PRIMARY KEY, ip INTEGER NOT NULL UNIQUE, module INTEGER,"
    " module_offset INTEGER, function TEXT, function_offset INTEGER, file TEXT, line INTEGER);"
    "CREATE TABLE stacks(id INTEGER PRIMARY KEY, depth INTEGER NOT NULL);"
    "CREATE TABLE stack_frames(stack INTEGER NOT NULL, level INTEGER NOT NULL,"
    " frame INTEGER NOT NULL, PRIMARY KEY(stack, level)) WITHOUT ROWID;"
    "CREATE TABLE lifetimes(seq INTEGER PRIMARY KEY, ptr INTEGER NOT NULL,"
    " size INTEGER NOT NULL, align INTEGER NOT NULL, ops INTEGER NOT NULL,"
    " thread INTEGER NOT NULL, stack INTEGER, t INTEGER NOT NULL, free_dseq INTEGER,"
    " free_dt INTEGER, free_thread INTEGER, free_size INTEGER, free_align INTEGER);"
    "CREATE TABLE findings(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, seq INTEGER NOT NULL,"
    " time_us INTEGER NOT NULL, thread INTEGER, ptr INTEGER NOT NULL, release_stack INTEGER,"
    " release_size INTEGER, release_align INTEGER, release_family TEXT, alloc_seq INTEGER,"
    " alloc_ptr INTEGER, alloc_stack INTEGER, alloc_size INTEGER, alloc_align INTEGER,"
    " alloc_family TEXT, first_free_seq INTEGER, detail TEXT);"
    "CREATE TABLE marks(seq INTEGER PRIMARY KEY, time_us INTEGER NOT NULL, thread INTEGER,"
    " label TEXT);"
    "CREATE TABLE runtime_owned(seq INTEGER PRIMARY KEY, reason TEXT NOT NULL);"
    "CREATE TABLE timeline(seq INTEGER PRIMARY KEY, time_us INTEGER NOT NULL,"
    " live_bytes INTEGER NOT NULL, live_blocks INTEGER NOT NULL, alloc_calls INTEGER NOT NULL,"
    " alloc_bytes INTEGER NOT NULL, free_calls INTEGER NOT NULL);";

/* Family and operation names, in the order of at_family and at_op. */
#define FAMILY_NAME(x)                                                                             \
    "CASE " x " WHEN 0 THEN 'allocator' WHEN 1 THEN 'malloc' WHEN 2 THEN 'new'"                   \
    " WHEN 3 THEN 'new[]' END"
#define OP_NAME(x)                                                                                 \
    "CASE " x " WHEN 1 THEN 'alloc' WHEN 2 THEN 'alloc_zeroed' WHEN 3 THEN 'realloc'"             \
    " WHEN 4 THEN 'dealloc' WHEN 5 THEN 'vanished' WHEN 6 THEN 'inherited' END"

static const char finish_sql[] =
    "CREATE INDEX lifetimes_live_stack ON lifetimes(stack) WHERE free_dseq IS NULL;"
    "CREATE INDEX stack_frames_frame ON stack_frames(frame);"
    "CREATE VIEW allocations AS SELECT"
    " seq AS alloc_seq, ptr, size, align,"
    " " FAMILY_NAME("(ops & 3)") " AS family,"
    " " OP_NAME("((ops >> 2) & 7)") " AS alloc_op,"
    " thread AS alloc_thread, stack AS alloc_stack, t AS alloc_time_us,"
    " seq + free_dseq AS free_seq,"
    " t + free_dt AS free_time_us,"
    " CASE WHEN free_dseq IS NULL THEN NULL ELSE coalesce(free_thread, thread) END AS free_thread,"
    " " OP_NAME("((ops >> 5) & 7)") " AS free_op,"
    " CASE WHEN free_dseq IS NULL THEN NULL ELSE coalesce(free_size, size) END AS free_size,"
    " CASE WHEN free_dseq IS NULL THEN NULL ELSE coalesce(free_align, align) END AS free_align"
    " FROM lifetimes;"
    "CREATE VIEW leaks AS SELECT seq AS alloc_seq, ptr, size, align,"
    " " FAMILY_NAME("(ops & 3)") " AS family,"
    " thread, stack, t AS alloc_time_us FROM lifetimes WHERE free_dseq IS NULL"
    " AND seq NOT IN (SELECT seq FROM runtime_owned);"
    "CREATE VIEW runtime_blocks AS SELECT l.seq AS alloc_seq, l.ptr, l.size, l.align,"
    " l.stack, r.reason FROM runtime_owned r JOIN lifetimes l ON l.seq = r.seq;"
    "CREATE VIEW leak_sites AS SELECT stack, count(*) AS blocks, sum(size) AS bytes,"
    " min(size) AS min_size, max(size) AS max_size FROM leaks GROUP BY stack;"
    /* The ordered subquery holds the join: SQLite never flattens an
     * ORDER BY subquery into an aggregate, so frames concatenate in order. */
    "CREATE VIEW stack_text AS SELECT stack, group_concat(name, ' <- ') AS text"
    " FROM (SELECT sf.stack AS stack, coalesce(f.function, printf('0x%x', f.ip)) AS name"
    " FROM stack_frames sf JOIN frames f ON f.id = sf.frame ORDER BY sf.stack, sf.level)"
    " GROUP BY stack;"
    "CREATE VIEW stack_lines AS SELECT sf.stack AS stack, sf.level AS level, f.ip AS ip,"
    " f.function AS function, f.file AS file, f.line AS line, m.path AS module"
    " FROM stack_frames sf JOIN frames f ON f.id = sf.frame"
    " LEFT JOIN modules m ON m.id = f.module;"
    "CREATE VIEW findings_detail AS SELECT fi.*,"
    " (SELECT text FROM stack_text WHERE stack = fi.alloc_stack) AS alloc_stack_text,"
    " (SELECT text FROM stack_text WHERE stack = fi.release_stack) AS release_stack_text"
    " FROM findings fi;";

int at__sql_exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : AT_E_DB;
}

int at__schema_create(sqlite3 *db)
{
    return at__sql_exec(db, tables_sql);
}

int at__schema_finish(sqlite3 *db)
{
    return at__sql_exec(db, finish_sql);
}
