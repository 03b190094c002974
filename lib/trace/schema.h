/* The trace's SQL schema (documented in docs/schema.md). */
#ifndef AT_SCHEMA_H
#define AT_SCHEMA_H

#include <sqlite3.h>
#include <stdint.h>

/* PRAGMA user_version of traces written by this library.  Tools read
 * exactly this version: 1 stored `align` and `ops` as two columns and the
 * release layout in `lifetimes` itself, 2 had no reachability, 3 and
 * older every stack's frames in a table `stack_frames` rather than the
 * call tree `stack_nodes`, 4 no release stacks, 5 no
 * inlined_frames, 6 no aggregated traces (a reader of 6 would take an
 * aggregated trace's lifetimes for all of them; see docs/schema.md). */
#define AT_SCHEMA_VERSION 7
#define AT_STRINGIFY_(x) #x
#define AT_STRINGIFY(x) AT_STRINGIFY_(x)

/* lifetimes.info: the allocation's alignment, family and operations in one
 * integer (docs/schema.md): bits 0-5 log2 of the alignment, 6-7 at_family,
 * 8-10 the allocating at_op, 11-13 the releasing at_op (0 while live), 14
 * set when the release passed a layout of its own, different from the
 * allocation's (in release_layouts), 15 set when the release passed no size
 * (free(), an unsized operator delete), 16 when it passed no alignment
 * either (free(), realloc), 17 the family's third bit (AT_FAMILY_POOL, a
 * pool's block: docs/pools.md; 0 in every other row, so rows of traces
 * without pools read as before).  The allocating op is never 0, so a live block's
 * value, or one released with its own layout, lies in 256..32767, which
 * SQLite stores in two bytes; an unsized release takes three. */
#define AT_INFO_FAMILY_SHIFT 6
#define AT_INFO_ALLOC_OP_SHIFT 8
#define AT_INFO_FREE_OP_SHIFT 11
#define AT_INFO_RELEASE_LAYOUT 16384
#define AT_INFO_RELEASE_NO_SIZE 32768
#define AT_INFO_RELEASE_NO_ALIGN 65536
#define AT_INFO_FAMILY_HIGH_SHIFT 15 /* family bit 2 (value 4) at bit 17 */
#define AT_INFO(align_log2, family, alloc_op, free_op, release_layout)                             \
    ((uint64_t)((align_log2) & 63) | (uint64_t)((family) & 3) << AT_INFO_FAMILY_SHIFT |          \
     (uint64_t)((family) & 4) << AT_INFO_FAMILY_HIGH_SHIFT |                                     \
     (uint64_t)((alloc_op) & 7) << AT_INFO_ALLOC_OP_SHIFT |                                     \
     (uint64_t)((free_op) & 7) << AT_INFO_FREE_OP_SHIFT |                                       \
     ((release_layout) ? (uint64_t)AT_INFO_RELEASE_LAYOUT : 0))

/* The same fields in SQL, from the SQL expression `x` (an info column). */
#define AT_SQL_INFO_ALIGN(x) "(1 << (" x " & 63))"
#define AT_SQL_INFO_FAMILY(x)                                                                      \
    "(((" x " >> " AT_STRINGIFY(AT_INFO_FAMILY_SHIFT) ") & 3) | ((" x                               \
    " >> " AT_STRINGIFY(AT_INFO_FAMILY_HIGH_SHIFT) ") & 4))"
/* A pool's block (its lifetime has a row in pool_blocks too). */
#define AT_SQL_INFO_POOL(x) "(" x " & 131072)"
#define AT_SQL_INFO_ALLOC_OP(x) "((" x " >> " AT_STRINGIFY(AT_INFO_ALLOC_OP_SHIFT) ") & 7)"
#define AT_SQL_INFO_FREE_OP(x) "((" x " >> " AT_STRINGIFY(AT_INFO_FREE_OP_SHIFT) ") & 7)"
#define AT_SQL_INFO_RELEASE_LAYOUT(x) "(" x " & " AT_STRINGIFY(AT_INFO_RELEASE_LAYOUT) ")"
#define AT_SQL_INFO_RELEASE_NO_SIZE(x) "(" x " & " AT_STRINGIFY(AT_INFO_RELEASE_NO_SIZE) ")"
#define AT_SQL_INFO_RELEASE_NO_ALIGN(x) "(" x " & " AT_STRINGIFY(AT_INFO_RELEASE_NO_ALIGN) ")"

/* Each stack's site (lib/trace/sites.h), filled once the frames are symbolized;
 * created at close (a trace finished by an older alloctrace has none). */
#define AT_SQL_STACK_SITES_TABLE                                                                   \
    "CREATE TABLE IF NOT EXISTS stack_sites(stack INTEGER PRIMARY KEY, site INTEGER NOT NULL,"    \
    " skip INTEGER NOT NULL);"

/* The program's own pools (docs/pools.md): created with the other tables,
 * and at close if missing (a trace begun by an alloctrace that had none,
 * completed by this one). */
#define AT_SQL_POOL_TABLES                                                                         \
    "CREATE TABLE IF NOT EXISTS pools(id INTEGER PRIMARY KEY, name TEXT, ptr INTEGER NOT NULL,"   \
    " created_seq INTEGER, created_time_us INTEGER, create_stack INTEGER, destroyed_seq INTEGER," \
    " destroyed_time_us INTEGER, destroy_stack INTEGER);"                                         \
    "CREATE TABLE IF NOT EXISTS pool_blocks(seq INTEGER PRIMARY KEY, pool INTEGER NOT NULL,"      \
    " chunk INTEGER);"                                                                            \
    "CREATE TABLE IF NOT EXISTS pool_findings(seq INTEGER PRIMARY KEY, pool INTEGER NOT NULL);"

/* Lifetimes written while the trace was recorded whose allocation lay far
 * below the newest (rows.c, LATE_DISTANCE): a sorted batch a row, packed
 * (late_runs.h), moved into `lifetimes` in one merge of the runs when the
 * trace is completed (complete.c), so that a finished trace has no such
 * table.  The table lives in a database file of its own beside the trace
 * (TRACE-late, attached as `late`, at__trace_attach_late): dropped from
 * the trace itself, its pages stayed as free pages.  An older alloctrace
 * kept a row a lifetime there, in `lifetimes_late` (the same columns as
 * `lifetimes`, no key); completion still merges one. */
#define AT_SQL_LIFETIMES_LATE                                                                      \
    "CREATE TABLE IF NOT EXISTS late.lifetimes_late_runs(id INTEGER PRIMARY KEY,"                 \
    " rows INTEGER NOT NULL, data BLOB NOT NULL);"

/* Levels the SQL walks up the call tree go at most: more than the tracer
 * ever records (AT_MAX_STACK_DEPTH), a bound against a cycle of parents
 * in a corrupt trace. */
#define AT_SQL_MAX_LEVEL "1024"

/* Tables, created when the trace is opened. */
int at__schema_create(sqlite3 *db);

/* Indexes and views, created when the trace is closed. */
int at__schema_finish(sqlite3 *db);

/* Runs `sql` (several statements allowed); 0 or AT_E_DB. */
int at__sql_exec(sqlite3 *db, const char *sql);

/* The first column of the first row `sql` gives, as an integer; 0 when
 * there is none or the query fails (a table that does not exist). */
int64_t at__sql_int(sqlite3 *db, const char *sql);

#endif
