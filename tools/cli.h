/* Shared by the alloctrace subcommands: exit codes, the table of commands,
 * opening a trace safely, finishing traces, and small formatting helpers. */
#ifndef ALLOCTRACE_CLI_H
#define ALLOCTRACE_CLI_H

#include <stdio.h>
#include <stddef.h>
#include <sys/types.h>

#include <sqlite3.h>

/* Exit codes, the same for every subcommand (docs/cli.md, usage()). */
enum {
    EXIT_CHECK_FAILED = 1,     /* check: the trace fails the policy */
    EXIT_USAGE = 2,            /* bad command line */
    EXIT_UNFINISHED = 3,       /* a read command met a trace that is not complete yet */
    EXIT_RUN_CHECK_FAILED = 86, /* run --check: the program succeeded, its trace fails */
    EXIT_RUN_UNTRACED = 87,    /* run: the program (or an image it exec'd) could not be traced */
    EXIT_RUN_UNFINISHED = 88,  /* run: the program succeeded, its trace is left for recover */
    EXIT_TOOL = 125,           /* alloctrace could not do its job: unreadable trace, I/O */
    EXIT_NOT_EXECUTABLE = 126,
    EXIT_NOT_FOUND = 127,
};

/* ---- the commands (commands.c) ---------------------------------------------- */

/* One subcommand: `alloctrace NAME ARGS...` calls fn(argc, argv) with
 * argv[0] = NAME; it returns the exit status. */
typedef struct cli_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *synopsis; /* after "alloctrace NAME"; lines after the first start with "\n" */
    const char *help;     /* one line */
} cli_command;

/* Every command, in the order usage() lists them; ends with a NULL name. */
extern const cli_command cli_commands[];

/* The command called `name`, or NULL. */
const cli_command *cli_find_command(const char *name);

/* The overview (usage.c): synopses, one line per command, exit statuses. */
void cli_usage(FILE *to);

/* Everything about one command (`alloctrace help NAME`, `NAME --help`):
 * synopsis, description, options with their defaults, exit statuses. */
void cli_command_help(FILE *to, const char *name);

/* The synopsis of `name` and where its help is, on stderr, after a usage
 * error. */
void cli_usage_hint(const char *name);

/* "alloctrace: unknown command 'X'; did you mean 'Y'?" on stderr. */
void cli_unknown_command(const char *name);

/* getopt_long for the command argv[0]: on the first call (optind 0) it
 * checks that `longopts` are exactly the options usage.c documents for
 * that command (abort() if not: help cannot lie); an option it refuses
 * gets one line on stderr that names the nearest valid one, and '?'. */
struct option;
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);

int cmd_run(int argc, char **argv);     /* cmd_run.c */
int cmd_recover(int argc, char **argv); /* cmd_recover.c */
int cmd_report(int argc, char **argv);  /* report.c */
int cmd_check(int argc, char **argv);   /* check.c */
int cmd_query(int argc, char **argv);   /* query.c */
int cmd_html(int argc, char **argv);    /* html.c */
int cmd_export(int argc, char **argv);  /* cmd_export.c */
int cmd_version(int argc, char **argv); /* commands.c */
int cmd_help(int argc, char **argv);    /* commands.c */

/* ---- opening traces (trace_open.c) -------------------------------------------- */

/* Opens a trace for reading, read-only, with SQLite's defensive settings
 * (defensive mode, untrusted schema, no triggers), after checking it is an
 * alloctrace trace of a schema version this build knows.  Never writes.
 * 0 and *out, or -1 after a one-line message on stderr.  A trace that is
 * not complete yet (its writer died before completing it, or is still at
 * work; a spool not read yet, given as itself or as the trace it will
 * become) ends the process: one line that names what completes it, and
 * EXIT_UNFINISHED.  Every read command answers such a file the same way,
 * however deep its open, hence the exit here. */
int cli_open_trace(const char *path, sqlite3 **out);

/* Completes the trace at `path` in place (lib/trace/complete.h), for `alloctrace
 * recover`: opens it read-write, refuses one whose writer is still
 * running.  A complete trace is left as it is.  0 or -1 with a message. */
int cli_complete_trace(const char *path);

/* Whether `path` is a spool (its magic), read without writing. */
int cli_is_spool(const char *path);

/* The first column of the first row of `sql`, or `dflt` (no row, NULL, error). */
long long cli_int(sqlite3 *db, const char *sql, long long dflt);

/* "12.7 KiB (13033 B)", or "512 B". */
void cli_bytes(char *buf, size_t size, long long bytes);

/* ---- finishing traces: `run` and `recover` (finish.c) ------------------------- */

/* Prints the summary of the complete trace at `path` on stderr (unless
 * `quiet`); -1 when it cannot be read, else 1 when the trace would fail a
 * check that counts the leaks of the classes `leak_kinds` (a tm_reach_set,
 * trace_model.h) and every finding, 0 when it passes. */
int cli_summarize(const char *path, int quiet, unsigned leak_kinds);

/* Turns the spool at `spool` into a complete trace (`output`, or the name
 * the run protocol gives it), removes the spool and prints the summary.
 * 0, or -1 after a message. */
int cli_recover_spool(const char *spool, const char *output, int force, int quiet);
/* From now on cli_recover_spool writes aggregated traces (`run --aggregate`)
 * when `on`, full ones otherwise (the default). */
void cli_recover_aggregate(int on);

/* The spool of an `alloctrace run` that died (`.alloctrace.RUNPID.spool`,
 * its lock free): its reader is resumed over the unfinished trace it was
 * writing (lib/trace/spool_reader.h), which is completed and, when the run
 * was replacing an old trace (--force), renamed over it.  0, 1 when
 * `spool` is not such a spool (nothing done), or -1 after a message. */
int cli_resume_run_spool(const char *spool, int quiet);

/* The spools of dead runs in the directory of `trace` whose trace it is,
 * each resumed as cli_resume_run_spool does: the number resumed, or -1
 * after a message. */
int cli_resume_runs_of(const char *trace, int quiet);

/* Long work of run and recover (reading the rest of a spool, completing
 * a trace) shows its step on stderr when that is a terminal, as the read
 * commands' long work does (trace_model.h, tm_progress). */
void cli_show_progress(void);

/* For `command` run or recover: SQLite's page cache pages from a mapping
 * of huge pages, taken as needed (sqlite_pages.c).  Before any SQLite
 * call. */
void cli_sqlite_pages(const char *command);

/* A list of paths (traces.c). */
typedef struct cli_paths {
    char **v;
    size_t n, cap;
} cli_paths;
void cli_paths_add(cli_paths *l, const char *path);
void cli_paths_free(cli_paths *l);

/* After a run whose trace is `trace`: every spool its other processes left
 * (forked children, followed ones, images its program exec'd) becomes a
 * trace, appended to `out`, unless its process still runs (then a line
 * says to recover it later).  With `dir` (the run's output directory),
 * the spools there whose header names the run `run_pid`; else those named
 * after `trace` (and of this run, or of none). */
void cli_recover_children(const char *trace, const char *dir, pid_t run_pid, cli_paths *out);

/* ---- several traces (traces.c) -------------------------------------------------- */

/* The read commands' TRACE arguments: a file is itself, a directory every
 * *.db file in it, by name.  0, or -1 after a message (a directory
 * without a trace). */
int cli_expand_traces(int n, char **args, cli_paths *out);

/* On stderr, whatever -q says: FAILED, the trace's path and program, then
 * its largest leak sites of the classes `leak_kinds` and its findings,
 * each at function (file:line), with bytes.  0, or -1 (unreadable). */
int cli_log_problems(const char *path, unsigned leak_kinds);

/* at_strerror(rc), and for AT_E_DB SQLite's own message for its last
 * error in this process (alloctrace.c keeps it from SQLite's error log). */
const char *cli_strerror(int rc);

/* "alloctrace: MESSAGE" on stderr and exit(EXIT_TOOL). */
__attribute__((format(printf, 1, 2), noreturn)) void cli_die(const char *fmt, ...);

/* A file written for the user (tools/output.c): opened with
 * cli_output_open, which prints why on failure (NULL); cli_output_close
 * puts it in place if all went well and `failed` is 0: 0, or -1 after a
 * message. */
typedef struct cli_output {
    const char *path;
    char *tmp; /* the new file beside `path`, renamed over it at close */
} cli_output;
FILE *cli_output_open(const char *path, cli_output *o);
int cli_output_close(FILE *f, cli_output *o, int failed);

#endif
