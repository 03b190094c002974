/* alloctrace: the command line.  `alloctrace COMMAND ARGS...` runs one of
 * the commands of the table in commands.c; each lives in a file of its
 * own (cmd_run.c, cmd_recover.c, report.c, check.c, query.c, html.c).
 * Exit codes are documented in docs/cli.md and in usage() (cli.h). */
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <alloctrace/error.h>
#include <sqlite3.h>

#include "cli.h"
#include "run_protocol.h"

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

/* `alloctrace run` asks glibc's malloc for transparent huge pages
 * (the tunable glibc.malloc.hugetlb=1, read only at start-up: hence an
 * exec of itself).  On these VMs a first touch of a 4 KiB page costs ~10
 * us, and finishing a compiler's trace touches ~60 MiB of fresh memory (the
 * call tree, the sites): clang++ -fsyntax-only of bench/stl_heavy.cc, 15 k
 * page faults in the recorder.  The program is not affected: the exec'd
 * run puts the caller's GLIBC_TUNABLES back, or takes it away, before it
 * starts anything, and the program inherits the caller's environment as
 * it was (same variables, same order).  Not under valgrind, whose malloc
 * is its own (and whose run would end at the exec); not where the caller
 * set that tunable. */
static void huge_pages(char **argv)
{
    const char *saved = getenv(AT_ENV_TUNABLES);
    if (saved) { /* the exec'd run */
        if (saved[0] == '=')
            setenv("GLIBC_TUNABLES", saved + 1, 1);
        else
            unsetenv("GLIBC_TUNABLES");
        unsetenv(AT_ENV_TUNABLES);
        return;
    }
    const char *preload = getenv("LD_PRELOAD");
    const char *tunables = getenv("GLIBC_TUNABLES");
    if ((preload && strstr(preload, "vgpreload")) ||
        (tunables && strstr(tunables, "glibc.malloc.hugetlb")))
        return;
    char *mark = NULL, *value = NULL;
    if (asprintf(&mark, "%s%s", tunables ? "=" : "", tunables ? tunables : "") < 0)
        return;
    if (asprintf(&value, "%s%sglibc.malloc.hugetlb=1", tunables ? tunables : "",
                 tunables && *tunables ? ":" : "") < 0) {
        free(mark);
        return;
    }
    /* the file itself, not /proc/self/exe: the process keeps its name */
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        setenv(AT_ENV_TUNABLES, mark, 1);
        setenv("GLIBC_TUNABLES", value, 1);
        execv(self, argv);
    }
    /* no exec (no /proc, or the file gone): on without huge pages, the
     * environment as it was */
    if (tunables)
        setenv("GLIBC_TUNABLES", mark + 1, 1);
    else
        unsetenv("GLIBC_TUNABLES");
    unsetenv(AT_ENV_TUNABLES);
    free(mark);
    free(value);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "run") == 0)
        huge_pages(argv);
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
