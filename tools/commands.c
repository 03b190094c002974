/* The table of commands, and `version`.  main (alloctrace.c) dispatches
 * through the table; what each command says about itself is in usage.c. */
#include <stdio.h>
#include <string.h>

#include <alloctrace/alloctrace.h>

#include "cli.h"

const cli_command cli_commands[] = {
    {"run", cmd_run, "[OPTIONS] -- PROGRAM [ARGS...]",
     "run PROGRAM traced, then complete and summarize its trace"},
    {"recover", cmd_recover, "[-o TRACE] [--force] [-q] SPOOL|TRACE...",
     "complete what a run left: a spool nobody read, a trace whose writer died"},
    {"report", cmd_report,
     "TRACE|DIR... [--top N] [--min-bytes N] [--show-reachable]\n"
     "[--format text|json|sarif|junit] [--color WHEN] [--source-root DIR]\n"
     "[-o FILE]",
     "what a trace says: summary, leaks by reachability and site, bad releases"},
    {"check", cmd_check,
     "TRACE|DIR... [--fail-on KINDS] [--leak-kinds LIST]\n"
     "[--max-leaked-bytes [KIND=]N] [--max-leaked-blocks [KIND=]N]\n"
     "[--suppressions FILE]... [--baseline OLD_TRACE] [--format text|json]",
     "a verdict for CI: exit 0 when the trace passes the policy, 1 when not"},
    {"query", cmd_query, "TRACE 'SQL' [--format table|csv|json]",
     "one read-only SQL statement on a trace"},
    {"html", cmd_html, "TRACE [-o REPORT.html] [--max-sites N]\n"
     "TRACE|DIR... -o OUTDIR [--max-sites N]",
     "a self-contained HTML report of a trace"},
    {"export", cmd_export,
     "[--format pprof|folded] [--what leaks|allocations|peak]\n"
     "[--value bytes|blocks] TRACE [-o FILE]",
     "a pprof profile or folded stacks of a trace, for pprof and flamegraphs"},
    {"version", cmd_version, "", "print alloctrace's version"},
    {"help", cmd_help, "", "print this help"},
    {NULL, NULL, NULL, NULL},
};

const cli_command *cli_find_command(const char *name)
{
    for (const cli_command *c = cli_commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("alloctrace %s\n", at_version());
    return 0;
}
