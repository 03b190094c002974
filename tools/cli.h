/* Shared by the alloctrace subcommands: exit codes, opening a trace
 * safely, and small formatting helpers. */
#ifndef ALLOCTRACE_CLI_H
#define ALLOCTRACE_CLI_H

#include <stddef.h>

#include <sqlite3.h>

/* Exit codes, the same for every subcommand (docs/cli.md). */
enum {
    EXIT_CHECK_FAILED = 1,     /* check: the trace fails the policy */
    EXIT_USAGE = 2,            /* bad command line */
    EXIT_RUN_CHECK_FAILED = 86, /* run --check: the program succeeded, its trace fails */
    EXIT_TOOL = 125,           /* alloctrace could not do its job: unreadable trace, I/O */
    EXIT_NOT_EXECUTABLE = 126,
    EXIT_NOT_FOUND = 127,
};

/* Opens a trace for reading, with SQLite's defensive settings (read-only,
 * defensive mode, untrusted schema, no triggers), after checking it is an
 * alloctrace trace of a schema version this build knows.  A trace that
 * is not complete yet (never symbolized, or written by a process that died
 * before closing it) is completed first, which is the only time the file
 * is written.  0, or -1 after a one-line message on stderr. */
int cli_open_trace(const char *path, sqlite3 **out);

/* Completes a trace in place (see cli_open_trace); 0 or -1 with a message. */
int cli_complete_trace(const char *path);

/* The first column of the first row of `sql`, or `dflt` (no row, NULL, error). */
long long cli_int(sqlite3 *db, const char *sql, long long dflt);

/* "12.7 KiB (13033 B)", or "512 B". */
void cli_bytes(char *buf, size_t size, long long bytes);

int cmd_report(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_query(int argc, char **argv);
int cmd_html(int argc, char **argv);

#endif
