/* Completing a trace, and the one writer of its meta rows (complete.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include <alloctrace/alloctrace.h>

#include "clock.h"
#include "complete.h"
#include "module_rows.h"
#include "replay.h"
#include "run_protocol.h"
#include "runtime.h"
#include "schema.h"
#include "sites.h"
#include "symbolize.h"

static const char *const meta_names[AT_META_NKEYS] = {
#define AT_META_NAME_(id, name) [AT_META_##id] = name,
    AT_META_KEYS(AT_META_NAME_)
#undef AT_META_NAME_
};

const char *at__meta_name(at_meta_key key)
{
    return (unsigned)key < AT_META_NKEYS ? meta_names[key] : "";
}

int at__meta_key_named(const char *name, size_t len)
{
    for (int k = 0; k < AT_META_NKEYS; k++)
        if (strlen(meta_names[k]) == len && memcmp(meta_names[k], name, len) == 0)
            return k;
    return -1;
}

static int meta_set(sqlite3 *db, at_meta_key key, const char *text, int64_t v)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta VALUES(?,?)", -1, &st, NULL) != SQLITE_OK)
        return AT_E_DB;
    sqlite3_bind_text(st, 1, at__meta_name(key), -1, SQLITE_STATIC);
    if (text)
        sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_int64(st, 2, v);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : AT_E_DB;
    sqlite3_finalize(st);
    return rc;
}

int at__meta_set_int(sqlite3 *db, at_meta_key key, int64_t v)
{
    return meta_set(db, key, NULL, v);
}

int at__meta_set_text(sqlite3 *db, at_meta_key key, const char *v)
{
    return meta_set(db, key, v ? v : "", 0);
}

int64_t at__meta_get_int(sqlite3 *db, at_meta_key key, int64_t dflt)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) != SQLITE_OK)
        return dflt;
    sqlite3_bind_text(st, 1, at__meta_name(key), -1, SQLITE_STATIC);
    int64_t v = dflt;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

int at__meta_append_arguments(sqlite3 *db, char *const *argv, int argc, const char *list,
                              size_t len)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "UPDATE meta SET value = json_insert(value, '$[#]', ?) WHERE key = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return AT_E_DB;
    sqlite3_bind_text(st, 2, at__meta_name(AT_META_ARGUMENTS), -1, SQLITE_STATIC);
    int rc = 0;
    for (int i = 0; argv && i < argc && !rc; i++) {
        sqlite3_bind_text(st, 1, argv[i], -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : AT_E_DB;
        sqlite3_reset(st);
    }
    for (size_t off = 0; !argv && list && off < len && !rc;) {
        size_t l = strnlen(list + off, len - off);
        sqlite3_bind_text(st, 1, list + off, (int)l, SQLITE_TRANSIENT);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : AT_E_DB;
        sqlite3_reset(st);
        off += l + 1;
    }
    sqlite3_finalize(st);
    return rc;
}

void at__iso_time(char *out, size_t n)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int at__trace_begin(sqlite3 *db)
{
    char now[64];
    at__iso_time(now, sizeof now);
    int rc = at__meta_set_text(db, AT_META_FORMAT, "alloctrace-trace");
    rc = rc ? rc : at__meta_set_int(db, AT_META_SCHEMA_VERSION, AT_SCHEMA_VERSION);
    rc = rc ? rc : at__meta_set_text(db, AT_META_LIBRARY_VERSION, AT_VERSION_STRING);
    rc = rc ? rc : at__meta_set_text(db, AT_META_START_TIME, now);
    rc = rc ? rc : at__meta_set_text(db, AT_META_CLOCK, "CLOCK_MONOTONIC");
    rc = rc ? rc : at__meta_set_text(db, AT_META_TIME_UNIT, "us");
    rc = rc ? rc : at__meta_set_text(db, AT_META_ARGUMENTS, "[]");
    return rc ? rc : at__meta_set_int(db, AT_META_FINISHED, 0);
}

/* ---- completing ---------------------------------------------------------------- */

/* The totals of a trace whose producer never said them: what reached it
 * (the program's allocator's calls: a pool's are not among them, as the
 * tracer does not count them). */
static void count_totals(sqlite3 *db, at_trace_end *e)
{
#define NOT_POOL " WHERE NOT " AT_SQL_INFO_POOL("info")
    e->alloc_calls = at__sql_int(db, "SELECT count(*) FROM lifetimes" NOT_POOL);
    e->alloc_bytes = at__sql_int(db, "SELECT coalesce(sum(size), 0) FROM lifetimes" NOT_POOL);
    e->free_calls = at__sql_int(db, "SELECT count(free_dseq) FROM lifetimes" NOT_POOL);
#undef NOT_POOL
    e->findings = at__sql_int(db, "SELECT count(*) FROM findings");
    e->duration_us = at__sql_int(db, "SELECT coalesce(max(t), 0) FROM lifetimes");
    /* An aggregated trace's folded lifetimes (aggregate.h): all released. */
    if (at__sql_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'aggregates'")) {
        int64_t n = at__sql_int(db, "SELECT coalesce(sum(count), 0) FROM aggregates");
        e->alloc_calls += n;
        e->free_calls += n;
        e->alloc_bytes += at__sql_int(db, "SELECT coalesce(sum(bytes), 0) FROM aggregates");
    }
}

/* Step 4: the end's meta keys, finished = 1 last. */
static int write_end(sqlite3 *db, const at_trace_end *given)
{
    at_trace_end e = {.program_end = AT_PROGRAM_END_DIED};
    if (given)
        e = *given;
    if (!e.totals_known)
        count_totals(db, &e);
    char now[64];
    at__iso_time(now, sizeof now);
    int rc = at__sql_exec(db, "BEGIN");
    rc = rc ? rc : at__meta_set_text(db, AT_META_END_TIME, now);
    rc = rc ? rc : at__meta_set_int(db, AT_META_DURATION_US, e.duration_us);
    rc = rc ? rc : at__meta_set_int(db, AT_META_ALLOC_CALLS, e.alloc_calls);
    rc = rc ? rc : at__meta_set_int(db, AT_META_ALLOC_BYTES, e.alloc_bytes);
    rc = rc ? rc : at__meta_set_int(db, AT_META_FREE_CALLS, e.free_calls);
    rc = rc ? rc : at__meta_set_int(db, AT_META_FINDINGS, e.findings);
    if (given) { /* unknown when the writer died */
        rc = rc ? rc : at__meta_set_int(db, AT_META_LOST_EVENTS, e.lost_events);
        rc = rc ? rc : at__meta_set_int(db, AT_META_BACKPRESSURE_WAITS, e.backpressure_waits);
        rc = rc ? rc : at__meta_set_int(db, AT_META_WRITER_ERROR, e.writer_error);
    }
    if (e.program_end != AT_PROGRAM_END_UNRECORDED)
        rc = rc ? rc : at__meta_set_text(db, AT_META_PROGRAM_END,
                                         e.program_end == AT_PROGRAM_END_CLOSED ? "closed"
                                         : e.program_end == AT_PROGRAM_END_EXEC ? "exec"
                                                                                : "died");
    if (e.spooled) {
        rc = rc ? rc : at__meta_set_int(db, AT_META_SPOOL_CHUNKS, e.spool_chunks);
        rc = rc ? rc : at__meta_set_int(db, AT_META_SPOOL_ERRORS, e.spool_errors);
    }
    if (at__meta_get_int(db, AT_META_SYMBOLIZED, -1) < 0)
        rc = rc ? rc : at__meta_set_int(db, AT_META_SYMBOLIZED, 0);
    rc = rc ? rc : at__meta_set_int(db, AT_META_FINISHED, 1);
    rc = rc ? rc : at__sql_exec(db, "COMMIT");
    if (rc)
        at__sql_exec(db, "ROLLBACK");
    return rc;
}

static int has_views(sqlite3 *db)
{
    return at__sql_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'view' AND name = 'leaks'") > 0;
}

/* `step(db, arg)` in a transaction of its own: committed, or rolled back. */
static int in_transaction(sqlite3 *db, int (*step)(sqlite3 *db, const void *arg), const void *arg)
{
    int rc = at__sql_exec(db, "BEGIN");
    rc = rc ? rc : step(db, arg);
    rc = rc ? rc : at__sql_exec(db, "COMMIT");
    if (rc)
        at__sql_exec(db, "ROLLBACK");
    return rc;
}

void at__trace_remove_late(const char *trace_path)
{
    const char *suffixes[] = {"-late", "-late-journal"}; /* TRUNCATE leaves the journal, empty */
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        char late[4096 + 32];
        if ((size_t)snprintf(late, sizeof late, "%s%s", trace_path, suffixes[i]) < sizeof late)
            unlink(late);
    }
}

/* The late file of the trace `db` has open: its path and "-late". */
static int late_path(sqlite3 *db, char *out, size_t size)
{
    const char *main = sqlite3_db_filename(db, "main");
    return main && main[0] && (size_t)snprintf(out, size, "%s-late", main) < size ? 0 : -1;
}

static int late_attached(sqlite3 *db)
{
    return at__sql_int(db, "SELECT count(*) FROM pragma_database_list WHERE name = 'late'") > 0;
}

int at__trace_attach_late(sqlite3 *db, int create)
{
    if (late_attached(db))
        return 0;
    char path[4096];
    if (late_path(db, path, sizeof path) != 0)
        return create ? AT_E_DB : 0;
    if (!create && access(path, F_OK) != 0)
        return 0;
    if (create) { /* the trace is opened without SQLITE_OPEN_CREATE, and so is what it attaches */
        int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            return AT_E_DB;
        close(fd);
    }
    /* Journal and sync as the trace's (spool_reader.c): a commit writing
     * both files is atomic through SQLite's super-journal. */
    char *sql = sqlite3_mprintf("ATTACH %Q AS late; PRAGMA late.journal_mode=TRUNCATE;"
                                " PRAGMA late.synchronous=OFF; PRAGMA late.cache_size=-2048;",
                                path);
    int rc = sql ? at__sql_exec(db, sql) : AT_E_NOMEM;
    sqlite3_free(sql);
    return rc;
}

/* Step 1b: the lifetimes written aside (schema.h, AT_SQL_LIFETIMES_LATE)
 * join the others, in sequence order.  `arg`: the schema holding them
 * ("late", or "main" in a trace an older alloctrace left). */
static int merge_late(sqlite3 *db, const void *arg)
{
    const char *schema = arg;
    /* SQLite's sorter, with a small cache: 2 M rows took 1.6 s with 2 MiB,
     * 2.1 s with the recorder's 64 MiB. */
    int64_t cache = at__sql_int(db, "PRAGMA main.cache_size");
    int rc = at__sql_exec(db, "PRAGMA main.cache_size=-2048");
    char *sql = sqlite3_mprintf("INSERT INTO main.lifetimes SELECT * FROM %s.lifetimes_late"
                                " ORDER BY seq; DROP TABLE %s.lifetimes_late;",
                                schema, schema);
    rc = rc ? rc : sql ? at__sql_exec(db, sql) : AT_E_NOMEM;
    sqlite3_free(sql);
    char restore[64];
    snprintf(restore, sizeof restore, "PRAGMA main.cache_size=%lld", (long long)cache);
    int rc2 = at__sql_exec(db, restore);
    return rc ? rc : rc2;
}

int at__trace_merge_late(sqlite3 *db)
{
    int rc = at__trace_attach_late(db, 0);
    if (!rc && at__sql_int(db, "SELECT count(*) FROM main.sqlite_master WHERE name = 'lifetimes_late'"))
        rc = in_transaction(db, merge_late, "main");
    if (!rc && late_attached(db)) {
        if (at__sql_int(db, "SELECT count(*) FROM late.sqlite_master WHERE name = 'lifetimes_late'"))
            rc = in_transaction(db, merge_late, "late");
        /* merged (or never used): the file goes, and a writer that goes on
         * attaches a fresh one */
        const char *trace = sqlite3_db_filename(db, "main");
        if (!rc && trace && trace[0] && !(rc = at__sql_exec(db, "DETACH late")))
            at__trace_remove_late(trace);
    }
    return rc;
}

/* Step 2: the replay, from the writer's log when it kept one. */
static int replay(sqlite3 *db, const void *log)
{
    return at__replay_log_store(log, db);
}

/* Step 3: indexes and views. */
static int views(sqlite3 *db, const void *unused)
{
    (void)unused;
    return at__schema_finish(db);
}

/* The sites, then the mark that symbols and sites are done. */
static int store_sites(sqlite3 *db, const void *unused)
{
    (void)unused;
    int rc = at__sites_store(db);
    return rc ? rc : at__meta_set_int(db, AT_META_SYMBOLIZED, 1);
}

/* Step 4: symbols, then the runtime's blocks and the sites, which are told
 * apart by them. */
static int symbolize(sqlite3 *db)
{
    int rc = at__symbolize_frames(db);
    rc = rc ? rc : at__classify_runtime(db);
    return rc ? rc : in_transaction(db, store_sites, NULL);
}

void (*at__trace_progress)(const char *step);

static const char *progress_step;

static void step(const char *name)
{
    progress_step = name;
    if (at__trace_progress)
        at__trace_progress(name);
}

static int progress_tick(void *unused)
{
    (void)unused;
    if (at__trace_progress && progress_step)
        at__trace_progress(progress_step);
    return 0;
}

int at__trace_complete(sqlite3 *db, const at_trace_end *end)
{
    int timing = getenv(AT_ENV_TIMING) != NULL;
    uint64_t t0 = at__now_ns();
    if (at__trace_progress)
        sqlite3_progress_handler(db, 200000, progress_tick, NULL);
    int finished = at__meta_get_int(db, AT_META_FINISHED, 0) == 1;
    step("finishing the trace: the timeline");
    int rc = finished ? 0 : at__modules_attribute(db);
    if (!rc)
        rc = at__trace_merge_late(db);
    if (!rc && !finished)
        rc = in_transaction(db, replay, end ? end->replay_log : NULL);
    uint64_t t1 = at__now_ns();
    step("finishing the trace: indexes and views");
    if (!rc && !has_views(db))
        rc = in_transaction(db, views, NULL);
    uint64_t t2 = at__now_ns();
    step("finishing the trace: symbols and sites");
    if (!rc && at__meta_get_int(db, AT_META_SYMBOLIZED, 0) != 1)
        rc = symbolize(db);
    uint64_t t3 = at__now_ns();
    if (!rc && !finished)
        rc = write_end(db, end);
    step(NULL);
    sqlite3_progress_handler(db, 0, NULL, NULL);
    if (timing)
        fprintf(stderr,
                "timing: timeline %.3f (from the %s) indexes and views %.3f symbols, runtime and"
                " sites %.3f meta %.3f\n",
                (double)(t1 - t0) / 1e9,
                at__replay_log_usable(end ? end->replay_log : NULL) ? "log" : "table",
                (double)(t2 - t1) / 1e9, (double)(t3 - t2) / 1e9,
                (double)(at__now_ns() - t3) / 1e9);
    return rc;
}

int at__trace_is_complete(sqlite3 *db)
{
    return at__meta_get_int(db, AT_META_FINISHED, 0) == 1 &&
           at__meta_get_int(db, AT_META_SYMBOLIZED, 0) == 1;
}
