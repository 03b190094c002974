/* Opening traces for the subcommands (see cli.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <alloctrace/alloctrace.h>

#include "cli.h"
#include "runtime.h"
#include "schema.h"
#include "sites.h"
#include "symbolize.h"

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

int cli_complete_trace(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK)
        return fail(path, sqlite3_errmsg(db), db);
    defensive(db);
    sqlite3_busy_timeout(db, 5000);
    if (check_trace(path, db) != 0)
        return -1;
    sqlite3_exec(db, "PRAGMA synchronous=OFF", NULL, NULL, NULL);
    int rc = 0;
    if (cli_int(db, "SELECT value FROM meta WHERE key = 'finished'", 0) != 1) {
        /* Unfinished because its writer is still at work (an `alloctrace
         * run` still reading its program's spool, or a traced program still
         * running) is not unfinished because it died. */
        long long writer = cli_int(
            db, "SELECT coalesce((SELECT value FROM meta WHERE key = 'writer_pid'),"
                " (SELECT value FROM meta WHERE key = 'pid'))", 0);
        if (writer > 0 && writer != (long long)getpid() &&
            (kill((pid_t)writer, 0) == 0 || errno == EPERM)) {
            char why[160];
            snprintf(why, sizeof why,
                     "still being written by process %lld; try again when it has finished",
                     writer);
            return fail(path, why, db);
        }
        /* Written in-process by a program that died before closing it:
         * what was committed stays, the views make it readable. */
        rc = at__sql_exec(db, "BEGIN");
        if (!rc && cli_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'leaks'", 0) == 0)
            rc = at__schema_finish(db);
        if (!rc)
            rc = at__sql_exec(db, "INSERT OR REPLACE INTO meta VALUES('program_end', 'died');"
                                  "INSERT OR REPLACE INTO meta VALUES('finished', 1);"
                                  "COMMIT");
    }
    if (!rc && cli_int(db, "SELECT value FROM meta WHERE key = 'symbolized'", 0) != 1) {
        rc = at__symbolize_frames(db);
        if (!rc)
            rc = at__classify_runtime(db);
        if (!rc)
            rc = at__sites_store(db); /* lib/sites.h: once the frames have names */
        if (!rc)
            rc = at__sql_exec(db, "INSERT OR REPLACE INTO meta VALUES('symbolized', 1)");
    }
    if (rc) {
        char why[160];
        snprintf(why, sizeof why, "cannot complete the trace: %s", at_strerror(rc));
        return fail(path, why, db);
    }
    sqlite3_close(db);
    return 0;
}

int cli_open_trace(const char *path, sqlite3 **out)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return fail(path, "no such file", NULL);
    if (!S_ISREG(st.st_mode))
        return fail(path, "not a regular file", NULL);
    size_t len = strlen(path);
    if (len > 6 && strcmp(path + len - 6, ".spool") == 0)
        return fail(path, "this is a spool, not a trace: run `alloctrace recover` on it", NULL);
    sqlite3 *db = NULL;
    /* NOMUTEX: one thread per connection here, and every scan is faster. */
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        return fail(path, sqlite3_errmsg(db), db);
    defensive(db);
    if (check_trace(path, db) != 0)
        return -1;
    if (cli_int(db, "SELECT value FROM meta WHERE key = 'finished'", 0) != 1 ||
        cli_int(db, "SELECT value FROM meta WHERE key = 'symbolized'", 0) != 1) {
        sqlite3_close(db);
        if (cli_complete_trace(path) != 0)
            return -1;
        return cli_open_trace(path, out);
    }
    *out = db;
    return 0;
}
