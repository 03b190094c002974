/* Opening traces for the subcommands (see cli.h): read-only for every read
 * command, read-write only to complete a trace (`alloctrace recover`). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <alloctrace/alloctrace.h>

#include "cli.h"
#include "complete.h"
#include "run_protocol.h"
#include "schema.h"
#include "spool.h"

long long cli_int(sqlite3 *db, const char *sql, long long dflt)
{
    sqlite3_stmt *st;
    long long v = dflt;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return dflt;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

void cli_bytes(char *buf, size_t size, long long b)
{
    static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%lld B", b);
    else
        snprintf(buf, size, "%.1f %s (%lld B)", v, unit[u], b);
}

static int fail(const char *path, const char *why, sqlite3 *db)
{
    fprintf(stderr, "alloctrace: %s: %s\n", path, why);
    sqlite3_close(db);
    return -1;
}

/* A read command met a trace it cannot read yet: one line that says what
 * completes it, and EXIT_UNFINISHED. */
__attribute__((format(printf, 2, 3), noreturn)) static void unfinished(sqlite3 *db,
                                                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("alloctrace: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    sqlite3_close(db);
    exit(EXIT_UNFINISHED);
}

int cli_is_spool(const char *path)
{
    char magic[sizeof AT_SPOOL_MAGIC - 1];
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, magic, sizeof magic);
    close(fd);
    return n == (ssize_t)sizeof magic && memcmp(magic, AT_SPOOL_MAGIC, sizeof magic) == 0;
}

/* The checks every open makes; 0 or -1 with a message (db closed). */
static int check_trace(const char *path, sqlite3 *db)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'format'", -1, &st, NULL) !=
        SQLITE_OK) {
        int code = sqlite3_errcode(db);
        return fail(path,
                    code == SQLITE_NOTADB    ? "not an alloctrace trace (not a SQLite database)"
                    : code == SQLITE_CORRUPT ? "the trace is corrupt"
                                             : "not an alloctrace trace (no meta table)",
                    db);
    }
    int ok = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) &&
             strcmp((const char *)sqlite3_column_text(st, 0), "alloctrace-trace") == 0;
    sqlite3_finalize(st);
    if (!ok)
        return fail(path, "not an alloctrace trace", db);
    long long version = cli_int(db, "PRAGMA user_version", -1);
    if (version > AT_SCHEMA_VERSION) {
        char why[160];
        snprintf(why, sizeof why,
                 "trace schema version %lld is newer than this alloctrace (%d): upgrade alloctrace",
                 version, AT_SCHEMA_VERSION);
        return fail(path, why, db);
    }
    if (version < 1)
        return fail(path, "not an alloctrace trace (no schema version)", db);
    if (version < AT_SCHEMA_VERSION) {
        /* Its tables are laid out differently: reading it as this version
         * would give wrong answers, not errors. */
        char why[160];
        snprintf(why, sizeof why,
                 "trace schema version %lld is older than this alloctrace reads (%d):"
                 " trace the program again",
                 version, AT_SCHEMA_VERSION);
        return fail(path, why, db);
    }
    return 0;
}

static void defensive(sqlite3 *db)
{
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
}

/* The process still writing an unfinished trace, or 0: an `alloctrace run`
 * still reading its program's spool, or a traced program still running,
 * is not a writer that died. */
static long long live_writer(sqlite3 *db)
{
    long long writer = at__meta_get_int(db, AT_META_WRITER_PID, 0);
    if (writer <= 0)
        writer = at__meta_get_int(db, AT_META_PID, 0);
    if (writer > 0 && writer != (long long)getpid() &&
        (kill((pid_t)writer, 0) == 0 || errno == EPERM))
        return writer;
    return 0;
}

/* A file that is not a trace yet, but will be once `alloctrace recover`
 * has read its spool: `path` is the spool, or a trace not written yet
 * whose spool is there.  Returns only when neither is the case. */
static void refuse_spools(const char *path, int exists)
{
    if (exists && cli_is_spool(path))
        unfinished(NULL, "%s: a spool, not a trace yet: run `alloctrace recover %s`", path, path);
    char spool[PATH_MAX + 16];
    at__run_spool_of(spool, sizeof spool, path);
    if (!exists && cli_is_spool(spool))
        unfinished(NULL, "%s: not written yet, its spool is there: run `alloctrace recover %s`",
                   path, spool);
}

/* Reasons for `db` not being readable yet; returns only when it is. */
static void refuse_unfinished(const char *path, sqlite3 *db)
{
    if (at__trace_is_complete(db))
        return;
    long long writer = live_writer(db);
    if (writer)
        unfinished(db, "%s: still being written by process %lld; try again when it has finished",
                   path, writer);
    unfinished(db, "%s: the trace is not finished (its writer ended first): run `alloctrace "
                   "recover %s` to complete it",
               path, path);
}

int cli_open_trace(const char *path, sqlite3 **out)
{
    struct stat st;
    int exists = stat(path, &st) == 0;
    refuse_spools(path, exists);
    if (!exists)
        return fail(path, "no such file", NULL);
    if (!S_ISREG(st.st_mode))
        return fail(path, "not a regular file", NULL);
    /* A rollback journal left by a writer that died: only a writer may
     * roll it back, and until then the file is not a consistent trace. */
    char journal[PATH_MAX + 16];
    snprintf(journal, sizeof journal, "%s-journal", path);
    if (stat(journal, &st) == 0 && st.st_size > 0)
        unfinished(NULL, "%s: the trace is not finished (its writer ended in the middle of a"
                         " write): run `alloctrace recover %s` to complete it",
                   path, path);
    sqlite3 *db = NULL;
    /* NOMUTEX: one thread per connection here, and every scan is faster. */
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        return fail(path, sqlite3_errmsg(db), db);
    defensive(db);
    if (check_trace(path, db) != 0)
        return -1;
    refuse_unfinished(path, db);
    *out = db;
    return 0;
}

int cli_complete_trace(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK)
        return fail(path, sqlite3_errmsg(db), db);
    defensive(db);
    sqlite3_busy_timeout(db, 5000);
    if (check_trace(path, db) != 0)
        return -1;
    if (at__trace_is_complete(db)) {
        sqlite3_close(db);
        return 0;
    }
    long long writer = live_writer(db);
    if (writer) {
        char why[160];
        snprintf(why, sizeof why,
                 "still being written by process %lld; try again when it has finished", writer);
        return fail(path, why, db);
    }
    sqlite3_exec(db, "PRAGMA synchronous=OFF", NULL, NULL, NULL);
    int rc = at__trace_complete(db, NULL);
    if (rc) {
        char why[160];
        snprintf(why, sizeof why, "cannot complete the trace: %s", cli_strerror(rc));
        return fail(path, why, db);
    }
    if (sqlite3_close(db) != SQLITE_OK)
        return fail(path, "cannot complete the trace: closing it failed", NULL);
    return 0;
}
