/* Helpers for tests that write a trace and read it back with SQLite. */
#ifndef ALLOCTRACE_TRACE_UTIL_H
#define ALLOCTRACE_TRACE_UTIL_H

#include <sqlite3.h>
#include <stdarg.h>
#include <unistd.h>

#include <alloctrace/alloctrace.h>

#include "test.h"

/* A fresh path for a trace under the build's test directory (or /tmp). */
static inline const char *trace_path(const char *name)
{
    static char buf[4096];
    const char *dir = getenv("ALLOCTRACE_TEST_TMPDIR");
    snprintf(buf, sizeof buf, "%s/%s.%d.db", dir ? dir : "/tmp", name, (int)getpid());
    unlink(buf);
    return buf;
}

static inline sqlite3 *trace_db(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        TEST_FAIL("cannot open trace %s: %s", path, db ? sqlite3_errmsg(db) : "?");
    return db;
}

/* The single integer a query returns (printf-style SQL); fails the test on
 * an error or when there is no row. */
static inline long long __attribute__((format(printf, 2, 3))) q_int(sqlite3 *db, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        TEST_FAIL("bad query %s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(st) != SQLITE_ROW)
        TEST_FAIL("no row for %s", sql);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The text a query returns, copied into a static buffer ("" for NULL). */
static inline const char *__attribute__((format(printf, 2, 3))) q_text(sqlite3 *db, const char *fmt, ...)
{
    static char out[8192];
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        TEST_FAIL("bad query %s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(st) != SQLITE_ROW)
        TEST_FAIL("no row for %s", sql);
    const unsigned char *t = sqlite3_column_text(st, 0);
    snprintf(out, sizeof out, "%s", t ? (const char *)t : "");
    sqlite3_finalize(st);
    return out;
}

/* A tracer writing the trace at `path`, with the default options. */
static inline at_tracer *open_tracer(const char *path)
{
    at_trace_options o;
    at_trace_options_init(&o);
    o.path = path;
    at_tracer *t = NULL;
    ASSERT_EQ(at_tracer_open(&o, &t), 0);
    ASSERT_NOT_NULL(t);
    return t;
}

#endif
