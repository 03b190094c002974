/* The table of commands, and what is made from it: usage(), `version`
 * and `help`.  main (alloctrace.c) dispatches through the table. */
#include <stdio.h>
#include <string.h>

#include <alloctrace/alloctrace.h>

#include "cli.h"
#include "trace_model.h"

const cli_command cli_commands[] = {
    {"run", cmd_run, "[OPTIONS] -- PROGRAM [ARGS...]",
     "run PROGRAM traced, then complete and summarize its trace"},
    {"recover", cmd_recover, "[-o TRACE] [--force] [-q] SPOOL|TRACE...",
     "complete what a run left: a spool nobody read, a trace whose writer died"},
    {"report", cmd_report,
     "TRACE|DIR... [--top N] [--min-bytes N] [--show-reachable]\n"
     "[--format text|json|sarif|junit] [--color WHEN] [-o FILE]",
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

/* "alloctrace NAME SYNOPSIS", continuation lines under the synopsis. */
static void print_synopsis(FILE *to, const cli_command *c, const char *lead)
{
    int indent = (int)(strlen(lead) + strlen("alloctrace ") + strlen(c->name) + 1);
    fprintf(to, "%salloctrace %s", lead, c->name);
    const char *s = c->synopsis;
    if (*s)
        fputc(' ', to);
    for (const char *nl; (nl = strchr(s, '\n')); s = nl + 1)
        fprintf(to, "%.*s\n%*s", (int)(nl - s), s, indent, "");
    fprintf(to, "%s\n", s);
}

void cli_usage(FILE *to)
{
    for (const cli_command *c = cli_commands; c->name; c++)
        print_synopsis(to, c, c == cli_commands ? "usage: " : "       ");
    fputs("\ncommands:\n", to);
    for (const cli_command *c = cli_commands; c->name; c++)
        fprintf(to, "  %-9s %s\n", c->name, c->help);
    fputs("\n"
          "run options:\n"
          "  -o, --output PATH       trace file (default ./alloctrace.PROGRAM.PID.db)\n"
          "      --output-dir DIR    every trace of the run in DIR, as PROG.PID.db (made\n"
          "                          if missing; default $ALLOCTRACE_OUTPUT_DIR; -o DIR/)\n"
          "      --force             replace PATH if it exists\n"
          "  -d, --depth N           frames per backtrace (default 64)\n"
          "      --unwind fp|dwarf   frame pointers (fast; for code built with them) or\n"
          "                          DWARF unwind tables (default: exact for any code)\n"
          "      --follow-children   trace programs that PROGRAM executes too\n"
          "      --abort-on-finding  abort at the first bad release, once it is on disk\n"
          "      --no-release-stacks no backtrace of releases (a little faster; a double\n"
          "                          free then shows no stack for its first release)\n"
          "      --check             fail (exit 86) when a trace of the run has findings,\n"
          "                          or leaks of the classes --leak-kinds counts\n",
          to);
    char gated[128];
    tm_leak_kinds_text(gated, sizeof gated, tm_reach_gated());
    fprintf(to,
            "      --leak-kinds LIST   the leaks --check counts, by reachability at exit:\n"
            "                          all, none, or some of (comma-separated)\n"
            "                          %s\n"
            "                          (default %s)\n",
            tm_leak_kinds_words(), gated);
    fputs("  -q, --quiet             no summary\n"
          "      --html FILE         also write the HTML report of the trace to FILE\n"
          "\n"
          "exit status: run: PROGRAM's own (128+N when killed by signal N); 86 with --check\n"
          "when a trace fails; 87 PROGRAM (or a program it exec'd) could not be traced;\n"
          "2 usage error; 125 alloctrace error; 126 PROGRAM not executable; 127 PROGRAM\n"
          "not found.  report, check, query, html, export: 0 done (check:\n"
          "pass), 1 check: fail, 2 usage, 3 the trace is not complete yet (the message\n"
          "names the command that completes it, e.g. `alloctrace recover TRACE`), 125\n"
          "unreadable trace or unwritable output.  recover: 0, 2 usage, 125 not a spool\n"
          "or trace, or it cannot be written.\n",
          to);
}

int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("alloctrace %s\n", at_version());
    return 0;
}

int cmd_help(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_usage(stdout);
    return 0;
}
