/* alloctrace: the command line.  `alloctrace COMMAND ARGS...` runs one of
 * the commands of the table in commands.c; each lives in a file of its
 * own (cmd_run.c, cmd_recover.c, report.c, check.c, query.c, html.c).
 * Exit codes are documented in docs/cli.md and in usage() (cli.h). */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <alloctrace/error.h>
#include <sqlite3.h>

#include "cli.h"

/* SQLite's own words for its last error (its error log, which also
 * carries notices and warnings: those are not errors), for cli_strerror. */
static pthread_mutex_t last_db_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_db_error[256];

static void log_db_error(void *unused, int code, const char *msg)
{
    (void)unused;
    int primary = code & 0xff;
    if (primary == SQLITE_NOTICE || primary == SQLITE_WARNING || primary == SQLITE_SCHEMA)
        return;
    pthread_mutex_lock(&last_db_lock);
    snprintf(last_db_error, sizeof last_db_error, "%s (code %d)", msg, code);
    pthread_mutex_unlock(&last_db_lock);
}

const char *cli_strerror(int rc)
{
    static char buf[sizeof last_db_error + 128];
    pthread_mutex_lock(&last_db_lock);
    if (rc == AT_E_DB && last_db_error[0])
        snprintf(buf, sizeof buf, "%s: %s", at_strerror(rc), last_db_error);
    else
        snprintf(buf, sizeof buf, "%s", at_strerror(rc));
    pthread_mutex_unlock(&last_db_lock);
    return buf;
}

int main(int argc, char **argv)
{
    /* This process uses SQLite from one thread at a time: no mutex per
     * connection call, and no allocation statistics, which otherwise take
     * a global mutex on every allocation SQLite makes.  Writing a trace
     * makes millions of such calls. */
    sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3_config(SQLITE_CONFIG_LOG, log_db_error, NULL);
    /* Blocks up to 8 MiB from the heap, and the heap kept up to 64 MiB
     * past its use: the spool reader's pages of pending allocations (128
     * KiB each, hundreds of them while millions of blocks are live) were
     * each mapped and unmapped by malloc, and every munmap flushed the
     * other core's TLB (3% of a 2 M block run). */
    mallopt(M_MMAP_THRESHOLD, 8 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    if (argc >= 2)
        cli_sqlite_pages(argv[1]);
    cli_show_progress();
    if (argc < 2) {
        cli_usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0)
        name = "version";
    else if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        name = "help";
    const cli_command *c = cli_find_command(name);
    if (!c) {
        cli_unknown_command(argv[1]);
        return EXIT_USAGE;
    }
    return c->fn(argc - 1, argv + 1);
}
