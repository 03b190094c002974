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
#include "late_runs.h"
#include "module_rows.h"
#include "replay.h"
#include "rowbatch.h"
#include "run_protocol.h"
#include "runtime.h"
#include "schema.h"
#include "sites.h"
#include "stack_tree.h"
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
 * join the others, in sequence order. */

/* The table an older alloctrace set them aside in, a row each: SQLite's
 * sorter, with a small cache (2 M rows took 1.6 s with 2 MiB, 2.1 s with
 * the recorder's 64 MiB).  `arg`: the schema holding it ("late", or
 * "main" in a trace older still). */
static int merge_late_table(sqlite3 *db, const void *arg)
{
    const char *schema = arg;
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

/* The runs (late_runs.h): a merge in C of the runs, each read in order,
 * and so no sorter; the rows go into `lifetimes` in seq order.  (Building
 * the table afresh, its own rows one more source, so that every row
 * appended, measured the same, 0.9-1.1 s for keep_live 2 M shuffled, and
 * left the old table's pages free.)  At most MERGE_RUNS runs are merged
 * at a time; a trace with more is merged a group after the other. */
enum { MERGE_RUNS = 1024, MERGE_BATCH = 16384, MERGE_BUF = 32768 };

/* A run being read: its blob, and the row it stands on. */
typedef struct merge_source {
    sqlite3_blob *blob;
    int64_t left;    /* rows not read yet */
    int size, read;  /* the blob's bytes, and those read into buf */
    uint8_t *buf;    /* MERGE_BUF bytes */
    size_t have, at; /* bytes in buf, and where the next row starts */
    int64_t v[AT_LATE_COLS];
    uint32_t nulls;
} merge_source;

/* Moves run `s` to its next row; 1 when it stands on one, 0 at its end.
 * A run whose bytes do not make its rows, in order, fails the merge: a
 * corrupt late file is an error, never rows made up. */
static int source_next(merge_source *s, int *rc)
{
    if (s->left == 0) {
        if (s->at != s->have || s->read != s->size)
            *rc = AT_E_LATE_CORRUPT; /* bytes after its last row */
        return 0;
    }
    if (s->have - s->at < AT_LATE_ROW_MAX && s->read < s->size) {
        memmove(s->buf, s->buf + s->at, s->have - s->at);
        s->have -= s->at;
        s->at = 0;
        int room = (int)(MERGE_BUF - s->have), n = s->size - s->read < room ? s->size - s->read : room;
        if (sqlite3_blob_read(s->blob, s->buf + s->have, n, s->read) != SQLITE_OK) {
            *rc = AT_E_DB;
            return 0;
        }
        s->have += (size_t)n;
        s->read += n;
    }
    size_t k = at__late_get(s->buf + s->at, s->have - s->at, (uint64_t)s->v[0], s->v, &s->nulls);
    if (!k) {
        *rc = AT_E_LATE_CORRUPT;
        return 0;
    }
    s->at += k;
    s->left--;
    return 1;
}

/* Heap of the runs standing on a row, the lowest seq on top. */
static void heap_down(merge_source **h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && h[l]->v[0] < h[m]->v[0])
            m = l;
        if (l + 1 < n && h[l + 1]->v[0] < h[m]->v[0])
            m = l + 1;
        if (m == i)
            return;
        merge_source *t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Moves every run's rows, in seq order, into main.lifetimes. */
static int merge_sources(sqlite3 *db, merge_source *src, size_t nsrc)
{
    at_rowbatch b;
    int rc = at__rowbatch_init(&b, db, "at_late_merge", "c0,c1,c2,c3,c4,c5,c6,c7,c8,c9,c10",
                               AT_LATE_COLS, MERGE_BATCH);
    if (rc)
        return rc;
    sqlite3_stmt *insert = NULL;
    merge_source **heap = malloc(nsrc * sizeof *heap);
    if (!heap)
        rc = AT_E_NOMEM;
    else if (sqlite3_prepare_v2(db, "INSERT INTO main.lifetimes SELECT * FROM at_late_merge", -1,
                                &insert, NULL) != SQLITE_OK)
        rc = AT_E_DB;
    size_t n = 0;
    for (size_t i = 0; !rc && i < nsrc; i++)
        if (source_next(&src[i], &rc))
            heap[n++] = &src[i];
    for (size_t i = n / 2; i-- > 0;)
        heap_down(heap, n, i);
    while (!rc && (n || b.n)) {
        if (n) {
            memcpy(at__rowbatch_add(&b, heap[0]->nulls), heap[0]->v, sizeof heap[0]->v);
            if (!source_next(heap[0], &rc))
                heap[0] = heap[--n];
            heap_down(heap, n, 0);
        }
        if (!rc && (b.n == b.cap || (!n && b.n))) {
            rc = sqlite3_step(insert) == SQLITE_DONE ? 0 : AT_E_DB;
            sqlite3_reset(insert);
            at__rowbatch_clear(&b);
        }
    }
    sqlite3_finalize(insert);
    free(heap);
    sqlite3_create_module_v2(db, "at_late_merge", NULL, NULL, NULL); /* the batch goes */
    at__rowbatch_destroy(&b);
    return rc;
}

static int merge_late_runs(sqlite3 *db, const void *unused)
{
    (void)unused;
    int64_t runs = at__sql_int(db, "SELECT count(*) FROM late.lifetimes_late_runs");
    size_t cap = runs < MERGE_RUNS ? (size_t)runs + 1 : MERGE_RUNS;
    merge_source *src = calloc(cap, sizeof *src);
    uint8_t *bufs = malloc(cap * MERGE_BUF);
    sqlite3_stmt *list = NULL;
    int rc = src && bufs ? 0 : AT_E_NOMEM;
    if (!rc && sqlite3_prepare_v2(db, "SELECT id, rows FROM late.lifetimes_late_runs ORDER BY id",
                                  -1, &list, NULL) != SQLITE_OK)
        rc = AT_E_DB;
    size_t n = 0;
    for (int more = 1; !rc && more;) {
        int step = sqlite3_step(list);
        more = step == SQLITE_ROW;
        if (!more && step != SQLITE_DONE)
            rc = AT_E_DB;
        if (more) {
            merge_source *s = &src[n];
            *s = (merge_source){.left = sqlite3_column_int64(list, 1), .buf = bufs + n * MERGE_BUF};
            if (s->left < 0)
                rc = AT_E_LATE_CORRUPT;
            else if (sqlite3_blob_open(db, "late", "lifetimes_late_runs", "data",
                                       sqlite3_column_int64(list, 0), 0, &s->blob) != SQLITE_OK)
                rc = AT_E_DB;
            else
                s->size = sqlite3_blob_bytes(s->blob);
            n++;
        }
        if (!rc && n && (n == cap || !more))
            rc = merge_sources(db, src, n);
        if (n == cap || !more || rc) {
            for (size_t i = 0; i < n; i++)
                sqlite3_blob_close(src[i].blob);
            n = 0;
        }
    }
    sqlite3_finalize(list);
    free(bufs);
    free(src);
    /* Renamed, not dropped (dropping its blobs walks every page of them):
     * the file goes once this commits, and the name says it is merged
     * should it stay. */
    return rc ? rc
              : at__sql_exec(db, "DROP TABLE IF EXISTS late.lifetimes_merged_runs;"
                                 " ALTER TABLE late.lifetimes_late_runs RENAME TO"
                                 " lifetimes_merged_runs;");
}

/* `merge` in a transaction, timed for AT_ENV_TIMING. */
static int merge_timed(sqlite3 *db, int (*merge)(sqlite3 *, const void *), const char *arg,
                       const char *what)
{
    uint64_t t0 = at__now_ns();
    int rc = in_transaction(db, merge, arg);
    if (getenv(AT_ENV_TIMING))
        fprintf(stderr, "timing: late lifetimes merged (%s) %.3f\n", what,
                (double)(at__now_ns() - t0) / 1e9);
    return rc;
}

/* Whether schema `schema` of db holds table `name` (both this file's
 * literals). */
static int has_table(sqlite3 *db, const char *schema, const char *name)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.sqlite_master WHERE name = '%s'", schema,
             name);
    return at__sql_int(db, sql) > 0;
}

int at__trace_merge_late(sqlite3 *db)
{
    int rc = at__trace_attach_late(db, 0);
    if (!rc && has_table(db, "main", "lifetimes_late"))
        rc = merge_timed(db, merge_late_table, "main", "a row each");
    if (!rc && late_attached(db)) {
        if (has_table(db, "late", "lifetimes_late"))
            rc = merge_timed(db, merge_late_table, "late", "a row each");
        if (!rc && has_table(db, "late", "lifetimes_late_runs"))
            rc = merge_timed(db, merge_late_runs, NULL, "runs");
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
static int store_sites(sqlite3 *db, const void *tree)
{
    int rc = at__sites_store(db, tree);
    return rc ? rc : at__meta_set_int(db, AT_META_SYMBOLIZED, 1);
}

/* Step 4: symbols, then the runtime's blocks and the sites, which are told
 * apart by them; both walk the call tree, read once for the two
 * (clang++ -fsyntax-only of bench/stl_heavy.cc: 942 k nodes, 0.13 s a
 * read). */
static int symbolize(sqlite3 *db)
{
    uint64_t t0 = at__now_ns();
    int rc = at__symbolize_frames(db);
    uint64_t t1 = at__now_ns();
    at_stack_tree tree = {0};
    rc = rc ? rc : at__stack_tree_load(db, &tree);
    uint64_t t2 = at__now_ns();
    rc = rc ? rc : at__classify_runtime(db, &tree);
    uint64_t t3 = at__now_ns();
    rc = rc ? rc : in_transaction(db, store_sites, &tree);
    at__stack_tree_free(&tree);
    if (getenv(AT_ENV_TIMING))
        fprintf(stderr, "timing: symbols %.3f call tree %.3f runtime %.3f sites %.3f\n",
                (double)(t1 - t0) / 1e9, (double)(t2 - t1) / 1e9, (double)(t3 - t2) / 1e9,
                (double)(at__now_ns() - t3) / 1e9);
    return rc;
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
