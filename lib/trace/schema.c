/* The trace's SQL schema: tables at open, indexes and views at close.
 *
 * The storage table `lifetimes` is compact on purpose (one row per
 * allocation lifetime, eleven columns: alignment, family and operations
 * packed into `info`, release fields stored as deltas and NULL when they
 * repeat the allocation's, a release layout that differs from the
 * allocation's, which is rare, in the side table `release_layouts`); the
 * view `allocations` presents the same rows with every field spelled out,
 * and is what docs/queries.md queries.
 */
#include <stddef.h>

#include <alloctrace/error.h>
#include <alloctrace/vocab.h>

#include "schema.h"

static const char tables_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "CREATE TABLE threads(id INTEGER PRIMARY KEY, tid INTEGER, name TEXT);"
    "CREATE TABLE modules(id INTEGER PRIMARY KEY, path TEXT, base INTEGER, start INTEGER,"
    " end INTEGER, build_id TEXT);"
    "CREATE TABLE frames(id INTEGER PRIMARY KEY, ip INTEGER NOT NULL UNIQUE, module INTEGER,"
    " module_offset INTEGER, function TEXT, function_offset INTEGER, file TEXT, line INTEGER);"
    /* The functions the compiler inlined at a frame's address, depth 0 the
     * innermost, each at the line where the one around it is; the frames
     * row is the real function, at the line where it called the outermost. */
    "CREATE TABLE inlined_frames(frame INTEGER NOT NULL, depth INTEGER NOT NULL, function TEXT,"
    " file TEXT, line INTEGER, PRIMARY KEY(frame, depth)) WITHOUT ROWID;"
    /* Stacks share their callers: the call tree, rooted at the outermost
     * frames, one row per node; a stack is the node of its innermost
     * frame.  The view stack_frames spells every stack out. */
    "CREATE TABLE stack_nodes(id INTEGER PRIMARY KEY, parent INTEGER, frame INTEGER NOT NULL);"
    "CREATE TABLE stacks(id INTEGER PRIMARY KEY, depth INTEGER NOT NULL);"
    "CREATE TABLE lifetimes(seq INTEGER PRIMARY KEY, ptr INTEGER NOT NULL,"
    " size INTEGER NOT NULL, info INTEGER NOT NULL, thread INTEGER NOT NULL, stack INTEGER,"
    " t INTEGER NOT NULL, free_dseq INTEGER, free_dt INTEGER, free_thread INTEGER,"
    " free_stack INTEGER);"
    "CREATE TABLE release_layouts(seq INTEGER PRIMARY KEY, size INTEGER NOT NULL,"
    " align INTEGER NOT NULL);"
    /* Blocks still live, by stack: created with the table, so that the
     * handful of rows it holds are indexed as they are written, and the
     * queries about live blocks at close (runtime.c, leak views) never
     * scan the whole table. */
    "CREATE INDEX lifetimes_live_stack ON lifetimes(stack) WHERE free_dseq IS NULL;"
    "CREATE TABLE findings(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, seq INTEGER NOT NULL,"
    " time_us INTEGER NOT NULL, thread INTEGER, ptr INTEGER NOT NULL, release_stack INTEGER,"
    " release_size INTEGER, release_align INTEGER, release_family TEXT, alloc_seq INTEGER,"
    " alloc_ptr INTEGER, alloc_stack INTEGER, alloc_size INTEGER, alloc_align INTEGER,"
    " alloc_family TEXT, first_free_seq INTEGER, first_free_stack INTEGER, detail TEXT);"
    "CREATE TABLE marks(seq INTEGER PRIMARY KEY, time_us INTEGER NOT NULL, thread INTEGER,"
    " label TEXT);"
    "CREATE TABLE runtime_owned(seq INTEGER PRIMARY KEY, reason TEXT NOT NULL);"
    /* The exit scan's verdict on each block then live (vocab.h, AT_REACH);
     * a live block without a row was not classified. */
    "CREATE TABLE reachability(seq INTEGER PRIMARY KEY, class INTEGER NOT NULL);"
    "CREATE TABLE timeline(seq INTEGER PRIMARY KEY, time_us INTEGER NOT NULL,"
    " live_bytes INTEGER NOT NULL, live_blocks INTEGER NOT NULL, alloc_calls INTEGER NOT NULL,"
    " alloc_bytes INTEGER NOT NULL, free_calls INTEGER NOT NULL);" AT_SQL_POOL_TABLES;

/* Family and operation names (vocab.h), as SQL expressions over their
 * codes. */
#define FAMILY_WHEN(id, code, name, description) " WHEN " #code " THEN '" name "'"
#define FAMILY_NAME(x) "CASE " x AT_FAMILIES(FAMILY_WHEN) " END"
#define OP_WHEN(id, code, name, description) " WHEN " #code " THEN '" name "'"
#define OP_NAME(x) "CASE " x AT_OPS(OP_WHEN) " END"
#define REACH_WHEN(id, code, name, kind, label, gated, color, description)                         \
    " WHEN " #code " THEN '" name "'"
#define REACH_NAME(x) "coalesce(CASE " x AT_REACH(REACH_WHEN) " END, 'unknown')"

static const char finish_sql[] =
    AT_SQL_STACK_SITES_TABLE AT_SQL_POOL_TABLES
    "CREATE VIEW allocations AS SELECT"
    " l.seq AS alloc_seq, l.ptr AS ptr, l.size AS size, " AT_SQL_INFO_ALIGN("l.info") " AS align,"
    " " FAMILY_NAME(AT_SQL_INFO_FAMILY("l.info")) " AS family,"
    " " OP_NAME(AT_SQL_INFO_ALLOC_OP("l.info")) " AS alloc_op,"
    " l.thread AS alloc_thread, l.stack AS alloc_stack, l.t AS alloc_time_us,"
    " l.seq + l.free_dseq AS free_seq,"
    " l.t + l.free_dt AS free_time_us,"
    " CASE WHEN l.free_dseq IS NULL THEN NULL ELSE coalesce(l.free_thread, l.thread) END"
    " AS free_thread, l.free_stack AS free_stack,"
    " " OP_NAME(AT_SQL_INFO_FREE_OP("l.info")) " AS free_op,"
    /* release_layouts is only looked at for the rows that say they have a
     * row there. */
    " CASE WHEN l.free_dseq IS NULL OR " AT_SQL_INFO_RELEASE_NO_SIZE("l.info") " THEN NULL"
    " WHEN " AT_SQL_INFO_RELEASE_LAYOUT("l.info")
    " THEN (SELECT r.size FROM release_layouts r WHERE r.seq = l.seq) ELSE l.size END"
    " AS free_size,"
    " CASE WHEN l.free_dseq IS NULL OR " AT_SQL_INFO_RELEASE_NO_ALIGN("l.info") " THEN NULL"
    " WHEN " AT_SQL_INFO_RELEASE_LAYOUT("l.info")
    " THEN (SELECT r.align FROM release_layouts r WHERE r.seq = l.seq)"
    " ELSE " AT_SQL_INFO_ALIGN("l.info") " END AS free_align"
    " FROM lifetimes l;"
    "CREATE VIEW leaks AS SELECT seq AS alloc_seq, ptr, size,"
    " " AT_SQL_INFO_ALIGN("info") " AS align,"
    " " FAMILY_NAME(AT_SQL_INFO_FAMILY("info")) " AS family,"
    " thread, stack, t AS alloc_time_us,"
    " " REACH_NAME("(SELECT r.class FROM reachability r WHERE r.seq = lifetimes.seq)")
    " AS reachability FROM lifetimes WHERE free_dseq IS NULL"
    " AND seq NOT IN (SELECT seq FROM runtime_owned);"
    "CREATE VIEW runtime_blocks AS SELECT l.seq AS alloc_seq, l.ptr AS ptr, l.size AS size,"
    " " AT_SQL_INFO_ALIGN("l.info") " AS align, l.stack AS stack, r.reason AS reason"
    " FROM runtime_owned r JOIN lifetimes l ON l.seq = r.seq;"
    /* Sites, not stacks (lib/trace/sites.h): a stack with no row in stack_sites
     * (not symbolized yet) is a site of its own. */
    "CREATE VIEW leak_sites AS SELECT coalesce(ss.site, k.stack) AS stack,"
    " k.reachability AS reachability, count(*) AS blocks,"
    " sum(k.size) AS bytes, min(k.size) AS min_size, max(k.size) AS max_size,"
    " count(DISTINCT k.stack) AS stacks"
    " FROM leaks k LEFT JOIN stack_sites ss ON ss.stack = k.stack GROUP BY 1, 2;"
    "CREATE VIEW finding_sites AS SELECT fi.kind AS kind,"
    " coalesce(rs.site, fi.release_stack, 0) AS release_site,"
    " CASE WHEN fi.alloc_seq IS NULL THEN NULL ELSE coalesce(al.site, fi.alloc_stack, 0) END"
    " AS alloc_site, fi.release_size AS release_size, fi.release_align AS release_align,"
    " fi.alloc_size AS alloc_size, fi.alloc_align AS alloc_align,"
    " fi.release_family AS release_family, fi.alloc_family AS alloc_family,"
    " count(*) AS count, min(fi.seq) AS first_seq"
    " FROM findings fi LEFT JOIN stack_sites rs ON rs.stack = fi.release_stack"
    " LEFT JOIN stack_sites al ON al.stack = fi.alloc_stack GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;"
    /* Every pool's block with its pool, the malloc block it lay in, and
     * whether the pool's destroy released it. */
    "CREATE VIEW pool_allocations AS SELECT b.pool AS pool, p.name AS pool_name, a.*,"
    " b.chunk AS chunk_seq,"
    " coalesce(a.free_seq IS NOT NULL AND a.free_seq = p.destroyed_seq, 0) AS released_by_destroy"
    " FROM pool_blocks b JOIN allocations a ON a.alloc_seq = b.seq"
    " LEFT JOIN pools p ON p.id = b.pool;"
    ;

/* The views over stacks' lines, where each frame is its inlined functions
 * (inlined_frames) then itself: a walk up the call tree from the nodes
 * ANCHOR selects (columns stack, frame, parent), each node's `base` the
 * line level of its first line, then `lines`, one row per line. */
#define INLINED_COUNT(frame) "(SELECT count(*) FROM inlined_frames i WHERE i.frame = " frame ")"
#define LINES_CTE(anchor)                                                                          \
    " walk(stack, level, frame, parent, base, ninl) AS ("                                          \
    "  SELECT a.stack, 0, a.frame, a.parent, 0, " INLINED_COUNT("a.frame") " FROM (" anchor ") a"  \
    "  UNION ALL SELECT w.stack, w.level + 1, n.frame, n.parent, w.base + w.ninl + 1,"            \
    "  " INLINED_COUNT("n.frame")                                                                 \
    "  FROM walk w JOIN stack_nodes n ON n.id = w.parent WHERE w.level < " AT_SQL_MAX_LEVEL "),"   \
    " lines(stack, level, frame, ip, function, file, line, module, inlined) AS ("                  \
    "  SELECT w.stack, w.base + i.depth, w.frame, f.ip, i.function, i.file, i.line, f.module, 1"   \
    "  FROM walk w JOIN inlined_frames i ON i.frame = w.frame JOIN frames f ON f.id = w.frame"     \
    "  UNION ALL SELECT w.stack, w.base + w.ninl, w.frame, f.ip, f.function, f.file, f.line,"     \
    "  f.module, 0 FROM walk w JOIN frames f ON f.id = w.frame)"
#define LINES_COLUMNS                                                                              \
    " SELECT l.stack AS stack, l.level AS level, l.ip AS ip, l.function AS function,"            \
    " l.file AS file, l.line AS line, m.path AS module, l.inlined AS inlined, l.frame AS frame"  \
    " FROM lines l LEFT JOIN modules m ON m.id = l.module"
/* Each stack's text from `lines`; the ordered subquery holds the order:
 * SQLite never flattens an ORDER BY subquery into an aggregate, so lines
 * concatenate in order. */
#define LINES_TEXT                                                                                 \
    "SELECT stack, group_concat(name, ' <- ') AS text FROM (SELECT stack,"                       \
    " coalesce(function, printf('0x%x', ip)) AS name FROM lines ORDER BY stack, level)"          \
    " GROUP BY stack"
#define ALL_STACKS "SELECT s.id AS stack, n.frame AS frame, n.parent AS parent FROM stacks s" \
    " JOIN stack_nodes n ON n.id = s.id"

/* The views over stacks, one string each (C99 bounds a literal's
 * length). */
static const char *const stack_views_sql[] = {
    /* Every stack's frames, walked up the tree from its node. */
    "CREATE VIEW stack_frames(stack, level, frame) AS WITH RECURSIVE"
    " walk(stack, level, frame, parent) AS ("
    "  SELECT s.id, 0, n.frame, n.parent FROM stacks s JOIN stack_nodes n ON n.id = s.id"
    "  UNION ALL SELECT w.stack, w.level + 1, n.frame, n.parent"
    "  FROM walk w JOIN stack_nodes n ON n.id = w.parent WHERE w.level < " AT_SQL_MAX_LEVEL ")"
    " SELECT stack, level, frame FROM walk;"
    ,
    "CREATE VIEW stack_text AS WITH RECURSIVE" LINES_CTE(ALL_STACKS) " " LINES_TEXT ";"
    ,
    "CREATE VIEW stack_lines AS WITH RECURSIVE" LINES_CTE(ALL_STACKS) LINES_COLUMNS ";"
    /* stack_lines for the stacks that name a leak site only, walked from
     * them: what questions about leaks join, at a fraction of the cost. */
    ,
    "CREATE VIEW leak_site_lines AS WITH RECURSIVE" LINES_CTE(
        "SELECT n.id AS stack, n.frame AS frame, n.parent AS parent FROM"
        " (SELECT DISTINCT stack FROM leak_sites) x JOIN stack_nodes n ON n.id = x.stack")
        LINES_COLUMNS ";"
    /* The texts of the findings' stacks only: SQLite does not narrow a
     * recursive view such as stack_frames down to the one stack asked for. */
    ,
    "CREATE VIEW findings_detail AS WITH RECURSIVE"
    " wanted(stack) AS (SELECT alloc_stack FROM findings UNION SELECT release_stack FROM findings"
    "  UNION SELECT first_free_stack FROM findings)," LINES_CTE(
        "SELECT n.id AS stack, n.frame AS frame, n.parent AS parent FROM wanted x"
        " JOIN stack_nodes n ON n.id = x.stack") ","
    " texts(stack, text) AS (" LINES_TEXT ")"
    " SELECT fi.*,"
    " (SELECT text FROM texts WHERE stack = fi.alloc_stack) AS alloc_stack_text,"
    " (SELECT text FROM texts WHERE stack = fi.release_stack) AS release_stack_text,"
    " (SELECT text FROM texts WHERE stack = fi.first_free_stack) AS first_free_stack_text"
    " FROM findings fi;",
};

int at__sql_exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : AT_E_DB;
}

int64_t at__sql_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

int at__schema_create(sqlite3 *db)
{
    return at__sql_exec(db, tables_sql);
}

int at__schema_finish(sqlite3 *db)
{
    int rc = at__sql_exec(db, finish_sql);
    for (size_t i = 0; !rc && i < sizeof stack_views_sql / sizeof *stack_views_sql; i++)
        rc = at__sql_exec(db, stack_views_sql[i]);
    return rc;
}
