/* What each command says about itself: its options, their arguments and
 * defaults, and its exit statuses, written once here and printed as
 * `alloctrace help CMD` and `CMD --help`, as a man page
 * (`alloctrace help --man CMD`, run by the build) and as bash completion
 * (`alloctrace help --bash-completion`).  cli_getopt() checks, when a
 * command parses its arguments, that the options it accepts are exactly
 * the ones documented here, so help and parser cannot drift apart; it
 * also answers an unknown option with the nearest one. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <alloctrace/alloctrace.h>

#include "cli.h"
#include "trace_model.h"

typedef struct opt_doc {
    const char *name; /* long name */
    char short_name;  /* 0: none */
    const char *arg;  /* NULL: takes none */
    const char *help; /* lines separated by \n */
} opt_doc;

typedef struct cmd_doc {
    const char *name;
    const char *description; /* paragraphs separated by \n\n */
    const opt_doc *options;  /* NULL name ends it; --help is implicit */
    const char *exit_status; /* "CODE meaning" lines */
} cmd_doc;

#define EXIT_READ                                                                                  \
    "0 done\n"                                                                                     \
    "2 usage error: unknown option, bad value\n"                                                   \
    "3 the trace is not complete yet (the message names the command that completes it)\n"          \
    "125 the trace cannot be read: missing, not a trace, corrupt, another schema version"

static const opt_doc run_opts[] = {
    {"output", 'o', "PATH",
     "the trace (default ./alloctrace.PROGRAM.PID.db); a directory, or a\n"
     "PATH ending in /, is --output-dir PATH"},
    {"output-dir", 0, "DIR",
     "every trace of the run in DIR (made if missing), as PROG.PID.db;\n"
     "default $ALLOCTRACE_OUTPUT_DIR"},
    {"force", 0, NULL, "replace PATH if it exists (otherwise an existing file is an error)"},
    {"depth", 'd', "N", "frames per backtrace, 1 to 256 (default 64)"},
    {"unwind", 0, "fp|dwarf",
     "dwarf (default): unwind tables, exact for any code; fp: frame\n"
     "pointers, several times cheaper, for code built with them"},
    {"follow-children", 0, NULL, "trace the programs that PROGRAM's children execute too"},
    {"abort-on-finding", 0, NULL, "abort at the first bad release or request, once it is on disk"},
    {"no-leak-scan", 0, NULL, "no reachability scan at exit: every leak is of reachability unknown"},
    {"no-release-stacks", 0, NULL,
     "no backtrace of releases (a little faster; a double free then\n"
     "shows no stack for its first release)"},
    {"aggregate", 0, NULL,
     "fold short-lived allocations into per-site totals: a trace bounded by\n"
     "the distinct stacks and the live blocks, not by the calls (leaks,\n"
     "findings, the peak and every site's totals stay exact; docs/schema.md)"},
    {"check", 0, NULL,
     "exit 86 when a trace of the run has findings, or leaks of the\n"
     "classes --leak-kinds counts"},
    {"leak-kinds", 0, "LIST",
     "the leaks --check counts, by reachability at exit: all, none, or\n"
     "some of definite,indirect,possible,reachable,unknown\n"
     "(default definite,indirect,unknown)"},
    {"quiet", 'q', NULL, "no summary"},
    {"html", 0, "FILE", "also write the HTML report of the trace to FILE"},
    {NULL, 0, NULL, NULL},
};

static const opt_doc recover_opts[] = {
    {"output", 'o', "TRACE", "the trace a SPOOL becomes (default: SPOOL without .spool)"},
    {"force", 0, NULL, "replace TRACE if it exists"},
    {"quiet", 'q', NULL, "no summary"},
    {NULL, 0, NULL, NULL},
};

static const opt_doc report_opts[] = {
    {"top", 0, "N",
     "leak sites of each class, and findings, shown (default 10 for text,\n"
     "all for the other formats)"},
    {"min-bytes", 0, "N", "leave out leak sites smaller than N bytes (K, M, G suffixes)"},
    {"show-reachable", 0, NULL, "list still reachable leak sites in full (else only counted)"},
    {"format", 0, "text|json|sarif|junit",
     "text (default); json (docs/report-json.md); sarif (SARIF 2.1.0,\n"
     "for code scanning); junit (JUnit XML, a test case per site or finding)"},
    {"color", 0, "auto|always|never",
     "colour in text; auto (default): on a terminal, unless NO_COLOR is set"},
    {"colour", 0, "auto|always|never", "the same as --color"},
    {"source-root", 0, "DIR",
     "SARIF and JUnit: source files under DIR are named relative to it\n"
     "(default: the git top level of the current directory, else it)"},
    {"output", 'o', "FILE", "write to FILE (replaced once complete) instead of stdout"},
    {NULL, 0, NULL, NULL},
};

static const opt_doc check_opts[] = {
    {"fail-on", 0, "KINDS",
     "the categories that fail, comma-separated: leaks, mismatch,\n"
     "misaligned, double-free, invalid-free, invalid-request, zero-size,\n"
     "or all, none (default: all but zero-size)"},
    {"leak-kinds", 0, "LIST",
     "the leaks counted, by reachability at exit: all, none, or some of\n"
     "definite,indirect,possible,reachable,unknown\n"
     "(default definite,indirect,unknown)"},
    {"max-leaked-bytes", 0, "[KIND=]N",
     "fail only when the leaks counted (or those of class KIND) exceed N\n"
     "bytes (K, M, G suffixes); may be repeated, one per class"},
    {"max-leaked-blocks", 0, "[KIND=]N", "the same, in blocks"},
    {"suppressions", 0, "FILE",
     "forgive what FILE's rules match (docs/ci.md); may be repeated"},
    {"baseline", 0, "OLD_TRACE", "forgive what OLD_TRACE had too: fail only on what is new"},
    {"format", 0, "text|json", "the verdict as text (default) or JSON (docs/report-json.md)"},
    {NULL, 0, NULL, NULL},
};

static const opt_doc query_opts[] = {
    {"format", 0, "table|csv|json", "the rows as an aligned table (default), CSV or JSON"},
    {NULL, 0, NULL, NULL},
};

static const opt_doc html_opts[] = {
    {"output", 'o', "PATH",
     "the report (default: TRACE with .html for .db), replaced once\n"
     "complete; with several traces or a directory, the directory of\n"
     "pages and index.html"},
    {"max-sites", 0, "N",
     "leak sites listed, and stacks per metric in the flamegraph\n"
     "(1 to 1000000, default 500)"},
    {NULL, 0, NULL, NULL},
};

static const opt_doc export_opts[] = {
    {"format", 0, "pprof|folded",
     "pprof (default): a gzipped pprof profile with Go heap profiles' sample types, for "
     "pprof, speedscope, Pyroscope (to stdout only when it is not a terminal); folded: "
     "`frame;frame;frame VALUE` lines, root first, for flamegraph.pl and inferno"},
    {"what", 0, "leaks|allocations|peak",
     "leaks (default): the blocks live at the end but the runtimes' own; allocations: every "
     "allocation (in use: the leaks); peak: the blocks live at the peak"},
    {"value", 0, "bytes|blocks", "folded's VALUE: bytes (default) or blocks"},
    {"output", 'o', "FILE", "write FILE (replaced once complete) instead of stdout"},
    {NULL, 0, NULL, NULL},
};

static const opt_doc no_opts[] = {{NULL, 0, NULL, NULL}};

static const cmd_doc docs[] = {
    {"run",
     "Runs PROGRAM with the preload library, so that every call of the malloc\n"
     "family and of C++ operator new and delete is traced without rebuilding\n"
     "anything.  When PROGRAM ends, however it ends, its trace is completed and\n"
     "summarized on stderr; the traces of the processes it forked or exec'd\n"
     "too.  PROGRAM's own output is untouched.",
     run_opts,
     "N PROGRAM's own exit status, passed on unchanged (128+N: killed by signal N)\n"
     "86 --check: PROGRAM succeeded, a trace of the run fails\n"
     "87 PROGRAM (or a program it exec'd) could not be traced: statically linked, setuid\n"
     "2 usage error\n"
     "125 alloctrace failed: the output cannot be written, the trace exists already\n"
     "126 PROGRAM cannot be executed\n"
     "127 PROGRAM was not found"},
    {"recover",
     "Completes what a run left: a SPOOL no alloctrace run was reading becomes a\n"
     "trace (SPOOL without .spool unless -o says otherwise), and a TRACE whose\n"
     "writer died before completing it is completed in place.  Naming the trace\n"
     "a spool will become reads that spool.",
     recover_opts,
     "0 done\n"
     "2 usage error\n"
     "125 neither a spool nor a trace, the trace exists already, its writer still\n"
     "    runs, or it cannot be written"},
    {"report",
     "What a trace says: a summary, the leaks by reachability at exit and by\n"
     "allocation site, and every kind of bad release and bad request, one bug\n"
     "once with its count, with its stacks.  A directory means every *.db in it.",
     report_opts, EXIT_READ},
    {"check",
     "A verdict for CI over one trace, several, or a directory of them: exit 0\n"
     "when they pass the policy, 1 when one fails.  The policy and the\n"
     "suppressions file are described in docs/ci.md.",
     check_opts,
     "0 pass\n"
     "1 fail\n"
     "2 usage error, or an unreadable or malformed suppressions file\n"
     "3 a trace is not complete yet\n"
     "125 a trace cannot be read"},
    {"query",
     "Runs one read-only SQL statement on a trace; the tables and views are\n"
     "described in docs/schema.md, questions worth asking in docs/queries.md.",
     query_opts,
     "0 done\n"
     "2 usage error, or a statement that fails or is refused\n"
     "3 the trace is not complete yet\n"
     "125 the trace cannot be read"},
    {"html",
     "Writes a self-contained HTML report of a trace: timeline, flamegraph of\n"
     "allocation stacks, leak sites, findings, allocations by size and\n"
     "alignment.  It opens offline in any current browser.  Several traces, or\n"
     "a directory, give a page each and an index.html in -o's directory.",
     html_opts, EXIT_READ},
    {"export",
     "Writes a trace's blocks by allocation stack for the tools people already\n"
     "use: a pprof profile, or folded stacks for flamegraphs.",
     export_opts,
     "0 done\n"
     "2 usage error: an unknown option or value, not one trace, -o naming the trace\n"
     "3 the trace is not complete yet\n"
     "125 the trace cannot be read, or FILE cannot be written"},
    {"version", "Prints alloctrace's version.", no_opts, "0 done"},
    {"help",
     "Prints the commands, or everything about one of them.  --man CMD writes\n"
     "its manual page (roff), --bash-completion the bash completion script.",
     no_opts, "0 done\n2 an unknown command"},
};

static const cmd_doc *doc_of(const char *name)
{
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++)
        if (strcmp(docs[i].name, name) == 0)
            return &docs[i];
    return NULL;
}

/* ---- suggestions -------------------------------------------------------------------------- */

/* Edits (insert, delete, replace, swap two neighbours) from a to b, at
 * most 64 bytes of each considered. */
static size_t distance(const char *a, const char *b)
{
    size_t n = strnlen(a, 64), m = strnlen(b, 64);
    size_t d[65][65];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[n][m];
}

/* The candidate nearest to `word`, if near enough to be what was meant. */
static const char *nearest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1, len = strlen(word);
    for (size_t i = 0; i < n; i++) {
        size_t d = distance(word, cands[i]);
        if (d < best_d) {
            best_d = d;
            best = cands[i];
        }
    }
    size_t limit = len < 4 ? 1 : len / 3 + 1;
    return best && best_d <= limit ? best : NULL;
}

void cli_unknown_command(const char *name)
{
    const char *names[16];
    size_t n = 0;
    for (const cli_command *c = cli_commands; c->name && n < 16; c++)
        names[n++] = c->name;
    const char *s = nearest(name, names, n);
    fprintf(stderr, "alloctrace: unknown command '%s'", name);
    if (s)
        fprintf(stderr, "; did you mean '%s'?", s);
    fputs(" (alloctrace help lists the commands)\n", stderr);
}

/* ---- parsing ------------------------------------------------------------------------------ */

/* Every option `longopts` accepts is documented, and every documented one
 * accepted: a build whose help would lie stops here, in its tests. */
static void check_documented(const cmd_doc *d, const struct option *longopts)
{
    for (const struct option *o = longopts; o->name; o++) {
        int found = strcmp(o->name, "help") == 0;
        for (const opt_doc *x = d->options; !found && x->name; x++)
            found = strcmp(x->name, o->name) == 0 && (x->arg != NULL) == (o->has_arg != 0);
        if (!found) {
            fprintf(stderr, "alloctrace %s: internal error: option --%s is not documented as"
                            " it is parsed (tools/usage.c)\n",
                    d->name, o->name);
            abort();
        }
    }
    for (const opt_doc *x = d->options; x->name; x++) {
        int found = 0;
        for (const struct option *o = longopts; !found && o->name; o++)
            found = strcmp(x->name, o->name) == 0;
        if (!found) {
            fprintf(stderr, "alloctrace %s: internal error: --%s is documented, not parsed\n",
                    d->name, x->name);
            abort();
        }
    }
}

/* What getopt refused, said in one line with the nearest option. */
static void bad_option(const cmd_doc *d, const char *arg, const struct option *longopts,
                       const char *shortopts)
{
    const char *prefix = d ? d->name : "?";
    if (arg && arg[0] == '-' && arg[1] == '-') {
        size_t len = strcspn(arg + 2, "=");
        const char *names[64];
        size_t n = 0;
        for (const struct option *o = longopts; o->name && n < 64; o++) {
            if (strlen(o->name) == len && strncmp(o->name, arg + 2, len) == 0) {
                fprintf(stderr, "alloctrace %s: --%s %s\n", prefix, o->name,
                        o->has_arg ? "needs a value (--OPTION VALUE or --OPTION=VALUE)"
                                   : "takes no value");
                return;
            }
            names[n++] = o->name;
        }
        char word[65];
        snprintf(word, sizeof word, "%.*s", (int)(len < 64 ? len : 64), arg + 2);
        const char *s = nearest(word, names, n);
        fprintf(stderr, "alloctrace %s: unknown or ambiguous option '--%s'", prefix, word);
        if (s)
            fprintf(stderr, "; did you mean '--%s'?", s);
    } else if (optopt && strchr(shortopts, optopt)) {
        fprintf(stderr, "alloctrace %s: -%c needs a value", prefix, optopt);
    } else {
        fprintf(stderr, "alloctrace %s: unknown option '-%c'", prefix, optopt ? optopt : '?');
    }
    fprintf(stderr, " (alloctrace help %s lists the options)\n", prefix);
}

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
    const cmd_doc *d = doc_of(argv[0]);
    if (optind == 0 && d)
        check_documented(d, longopts);
    opterr = 0;
    int before = optind ? optind : 1;
    int c = getopt_long(argc, argv, shortopts, longopts, NULL);
    if (c == '?') {
        /* the argument getopt stopped at: the one before optind, unless
         * it was a cluster of short options still being read */
        const char *arg = optind > before ? argv[optind - 1] : argv[before];
        bad_option(d, arg, longopts, shortopts);
    }
    return c;
}

/* ---- help ---------------------------------------------------------------------------------- */

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

/* "  -o, --output PATH" padded to 28 columns, then the help's lines. */
static void print_option(FILE *to, const opt_doc *o)
{
    char head[96];
    int n = snprintf(head, sizeof head, "  %c%c%s--%s%s%s", o->short_name ? '-' : ' ',
                     o->short_name ? o->short_name : ' ', o->short_name ? ", " : "  ", o->name,
                     o->arg ? " " : "", o->arg ? o->arg : "");
    if (n > 27)
        fprintf(to, "%s\n%28s", head, "");
    else
        fprintf(to, "%-28s", head);
    /* the help as one paragraph, wrapped to 80 columns */
    size_t col = 0;
    for (const char *s = o->help; *s;) {
        s += strspn(s, " \n");
        size_t w = strcspn(s, " \n");
        if (!w)
            break;
        if (col && col + 1 + w > 80 - 28) {
            fprintf(to, "\n%28s", "");
            col = 0;
        } else if (col) {
            fputc(' ', to);
            col++;
        }
        fprintf(to, "%.*s", (int)w, s);
        col += w;
        s += w;
    }
    fputc('\n', to);
}

static int print_command_help(FILE *to, const char *name)
{
    const cli_command *c = cli_find_command(name);
    const cmd_doc *d = doc_of(name);
    if (!c || !d)
        return -1;
    print_synopsis(to, c, "usage: ");
    fprintf(to, "\n%s\n\noptions:\n", d->description);
    for (const opt_doc *o = d->options; o->name; o++)
        print_option(to, o);
    print_option(to, &(opt_doc){"help", 'h', NULL, "print this help and exit"});
    fputs("\nexit status:\n", to);
    const char *s = d->exit_status;
    for (const char *nl; (nl = strchr(s, '\n')); s = nl + 1)
        fprintf(to, "  %.*s\n", (int)(nl - s), s);
    fprintf(to, "  %s\n", s);
    return 0;
}

void cli_usage_hint(const char *name)
{
    const cli_command *c = cli_find_command(name);
    if (c)
        print_synopsis(stderr, c, "usage: ");
    fprintf(stderr, "(`alloctrace help %s` tells every option)\n", name);
}

void cli_command_help(FILE *to, const char *name)
{
    if (print_command_help(to, name) != 0)
        cli_usage(to);
}

void cli_usage(FILE *to)
{
    for (const cli_command *c = cli_commands; c->name; c++)
        print_synopsis(to, c, c == cli_commands ? "usage: " : "       ");
    fputs("\ncommands:\n", to);
    for (const cli_command *c = cli_commands; c->name; c++)
        fprintf(to, "  %-9s %s\n", c->name, c->help);
    fputs("\n`alloctrace help COMMAND` (or `alloctrace COMMAND --help`) tells everything about a\n"
          "command: its options, their defaults, its exit status.\n"
          "\n"
          "exit status: run: PROGRAM's own (128+N when killed by signal N); 86 with --check\n"
          "when a trace fails; 87 PROGRAM (or a program it exec'd) could not be traced;\n"
          "2 usage error; 125 alloctrace error; 126 PROGRAM not executable; 127 PROGRAM\n"
          "not found.  report, check, query, html, export: 0 done (check:\n"
          "pass), 1 check: fail, 2 usage, 3 the trace is not complete yet (the message\n"
          "names the command that completes it, e.g. `alloctrace recover TRACE`), 125\n"
          "unreadable trace.  recover: 0, 2 usage, 125 not a spool or trace, or it\n"
          "cannot be written.\n",
          to);
}

/* ---- man pages and completion -------------------------------------------------------------- */

/* Text for roff: a leading dot or quote escaped, backslashes and dashes
 * spelled as roff wants them. */
static void roff_text(FILE *to, const char *s, size_t n)
{
    if (n && (s[0] == '.' || s[0] == '\''))
        fputs("\\&", to);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\')
            fputs("\\e", to);
        else if (s[i] == '-')
            fputs("\\-", to);
        else
            fputc(s[i], to);
    }
}

static void roff_lines(FILE *to, const char *s)
{
    for (const char *nl; (nl = strchr(s, '\n')); s = nl + 1) {
        roff_text(to, s, (size_t)(nl - s));
        fputc('\n', to);
    }
    roff_text(to, s, strlen(s));
    fputc('\n', to);
}

static void man_page(FILE *to, const cli_command *c, const cmd_doc *d)
{
    fprintf(to, ".TH ALLOCTRACE-%s 1 \"\" \"alloctrace %s\" \"alloctrace manual\"\n", c->name,
            at_version());
    fprintf(to, ".SH NAME\nalloctrace\\-%s \\- ", c->name);
    roff_lines(to, c->help);
    fputs(".SH SYNOPSIS\n.nf\n", to);
    fprintf(to, "\\fBalloctrace %s\\fR ", c->name);
    roff_lines(to, c->synopsis);
    fputs(".fi\n.SH DESCRIPTION\n", to);
    roff_lines(to, d->description);
    fputs(".SH OPTIONS\n", to);
    for (const opt_doc *o = d->options; o->name; o++) {
        fputs(".TP\n", to);
        if (o->short_name)
            fprintf(to, "\\fB\\-%c\\fR, ", o->short_name);
        fputs("\\fB\\-\\-", to);
        roff_text(to, o->name, strlen(o->name));
        fputs("\\fR", to);
        if (o->arg) {
            fputs(" \\fI", to);
            roff_text(to, o->arg, strlen(o->arg));
            fputs("\\fR", to);
        }
        fputc('\n', to);
        roff_lines(to, o->help);
    }
    fputs(".TP\n\\fB\\-h\\fR, \\fB\\-\\-help\\fR\nprint the help and exit\n", to);
    fputs(".SH EXIT STATUS\n", to);
    const char *s = d->exit_status;
    for (const char *nl; ; s = nl + 1) {
        nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        size_t code = strcspn(s, " ");
        fputs(".TP\n", to);
        roff_text(to, s, code < n ? code : n);
        fputc('\n', to);
        if (code < n)
            roff_text(to, s + code + 1, n - code - 1);
        fputc('\n', to);
        if (!nl)
            break;
    }
    fputs(".SH SEE ALSO\n", to);
    for (const cli_command *o = cli_commands; o->name; o++)
        if (o != c)
            fprintf(to, "\\fBalloctrace\\-%s\\fR(1)%s\n", o->name, o[1].name ? "," : "");
    fputs("and the documentation installed in share/doc/alloctrace.\n", to);
}

static void bash_completion(FILE *to)
{
    fputs("# bash completion for alloctrace (written by `alloctrace help --bash-completion`)\n"
          "_alloctrace()\n{\n"
          "    local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]} i\n"
          "    if [ \"$COMP_CWORD\" -eq 1 ]; then\n"
          "        COMPREPLY=($(compgen -W '",
          to);
    for (const cli_command *c = cli_commands; c->name; c++)
        fprintf(to, "%s%s", c->name, c[1].name ? " " : "");
    fputs("' -- \"$cur\"))\n        return\n    fi\n"
          "    if [ \"$cmd\" = run ]; then\n"
          "        for ((i = 2; i < COMP_CWORD; i++)); do\n"
          "            if [ \"${COMP_WORDS[i]}\" = -- ]; then\n"
          "                COMPREPLY=($(compgen -c -- \"$cur\"))\n"
          "                return\n"
          "            fi\n"
          "        done\n"
          "    fi\n"
          "    local opts\n"
          "    case $cmd in\n",
          to);
    for (const cli_command *c = cli_commands; c->name; c++) {
        const cmd_doc *d = doc_of(c->name);
        fprintf(to, "    %s) opts='", c->name);
        for (const opt_doc *o = d ? d->options : no_opts; o->name; o++)
            fprintf(to, "--%s ", o->name);
        fputs("--help' ;;\n", to);
    }
    fputs("    help) COMPREPLY=($(compgen -W \"$(alloctrace help --commands 2>/dev/null)\" -- \"$cur\"));"
          " return ;;\n"
          "    *) return ;;\n"
          "    esac\n"
          "    if [[ $cur == -* ]]; then\n"
          "        COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
          "    else\n"
          "        COMPREPLY=($(compgen -f -- \"$cur\"))\n"
          "    fi\n"
          "}\n"
          "complete -o filenames -F _alloctrace alloctrace\n",
          to);
}

int cmd_help(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--man") == 0) {
        const cli_command *c = cli_find_command(argv[2]);
        const cmd_doc *d = doc_of(argv[2]);
        if (!c || !d) {
            cli_unknown_command(argv[2]);
            return EXIT_USAGE;
        }
        man_page(stdout, c, d);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--bash-completion") == 0) {
        bash_completion(stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--commands") == 0) {
        for (const cli_command *c = cli_commands; c->name; c++)
            printf("%s\n", c->name);
        return 0;
    }
    if (argc == 2) {
        if (print_command_help(stdout, argv[1]) != 0) {
            cli_unknown_command(argv[1]);
            return EXIT_USAGE;
        }
        return 0;
    }
    if (argc > 2) {
        fputs("alloctrace help: one command at most\n", stderr);
        return EXIT_USAGE;
    }
    cli_usage(stdout);
    return 0;
}
