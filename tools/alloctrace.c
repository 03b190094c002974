/* alloctrace: the command line.  `alloctrace COMMAND ARGS...` runs one of
 * the commands of the table in commands.c; each lives in a file of its
 * own (cmd_run.c, cmd_recover.c, report.c, check.c, query.c, html.c).
 * Exit codes are documented in docs/cli.md and in usage() (cli.h). */
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "cli.h"

int main(int argc, char **argv)
{
    /* This process uses SQLite from one thread at a time: no mutex per
     * connection call, and no allocation statistics, which otherwise take
     * a global mutex on every allocation SQLite makes.  Writing a trace
     * makes millions of such calls. */
    sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
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
