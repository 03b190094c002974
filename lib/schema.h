/* The trace's SQL schema (documented in docs/schema.md). */
#ifndef AT_SCHEMA_H
#define AT_SCHEMA_H

#include <sqlite3.h>

/* PRAGMA user_version of traces written by this library. */
#define AT_SCHEMA_VERSION 1
#define AT_STRINGIFY_(x) #x
#define AT_STRINGIFY(x) AT_STRINGIFY_(x)

/* Tables, created when the trace is opened. */
int at__schema_create(sqlite3 *db);

/* Indexes and views, created when the trace is closed. */
int at__schema_finish(sqlite3 *db);

/* Runs `sql` (several statements allowed); 0 or AT_E_DB. */
int at__sql_exec(sqlite3 *db, const char *sql);

#endif
