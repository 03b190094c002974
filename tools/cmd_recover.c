/* alloctrace recover [-o TRACE] [--force] [-q] SPOOL|TRACE...
 *
 * Completes what a run left unfinished: a spool that no `alloctrace run`
 * read (plain LD_PRELOAD, a followed child, a run that was killed) becomes
 * a trace; a trace whose writer died before completing it is completed in
 * place.  A run whose `alloctrace run` died (SIGKILL) left both: its
 * reader's spool (.alloctrace.RUNPID.spool beside the trace) resumes the
 * trace where the dead reader's last commit left it, whether named by the
 * trace given to `run` or by the spool.  Either way lib/trace/complete.h
 * does the completing, as for `run`. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "run_protocol.h"
#include "trace_model.h"

/* The file starts as every SQLite database does. */
static int is_sqlite(const char *path)
{
    static const char magic[16] = "SQLite format 3";
    char head[sizeof magic];
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(head, 1, sizeof head, f) : 0;
    if (f)
        fclose(f);
    return n == sizeof head && memcmp(head, magic, sizeof magic) == 0;
}

/* One argument: a spool, a trace, or a trace not written yet whose spool
 * is there.  0 or -1 after a message. */
static int recover_one(const char *arg, const char *output, int force, int quiet)
{
    if (cli_is_spool(arg)) {
        int rc = output ? 1 : cli_resume_run_spool(arg, quiet);
        return rc <= 0 ? rc : cli_recover_spool(arg, output, force, quiet);
    }
    /* TRACE as given to a run that died: its reader's spool resumes it. */
    int resumed = output ? 0 : cli_resume_runs_of(arg, quiet);
    if (resumed)
        return resumed < 0 ? -1 : 0;
    struct stat st;
    if (stat(arg, &st) != 0) {
        char spool[PATH_MAX + 16];
        at__run_spool_of(spool, sizeof spool, arg);
        if (cli_is_spool(spool))
            return cli_recover_spool(spool, output ? output : arg, force, quiet);
        fprintf(stderr, "alloctrace: %s: no such file\n", arg);
        return -1;
    }
    if (output) {
        fprintf(stderr, "alloctrace: %s: a trace is completed in place: -o is for spools\n", arg);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || !is_sqlite(arg)) {
        fprintf(stderr, "alloctrace: %s: not an alloctrace spool or trace\n", arg);
        return -1;
    }
    if (cli_complete_trace(arg) != 0)
        return -1;
    return cli_summarize(arg, quiet, tm_reach_gated()) < 0 ? -1 : 0;
}

int cmd_recover(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'F'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *output = NULL;
    int force = 0, quiet = 0, c;
    optind = 0; /* 0, not 1: glibc then starts over, ordering mode included */
    while ((c = cli_getopt(argc, argv, "o:qh", opts)) != -1) {
        switch (c) {
        case 'o': output = optarg; break;
        case 'F': force = 1; break;
        case 'q': quiet = 1; break;
        case 'h': cli_command_help(stdout, "recover"); return 0;
        default: return EXIT_USAGE;
        }
    }
    if (optind >= argc || (output && argc - optind > 1)) {
        fprintf(stderr, "alloctrace: recover: %s\n",
                optind >= argc ? "no spool or trace given" : "-o with one SPOOL only");
        cli_usage_hint("recover");
        return EXIT_USAGE;
    }
    int failed = 0;
    for (int i = optind; i < argc; i++)
        failed |= recover_one(argv[i], output, force, quiet) != 0;
    return failed ? EXIT_TOOL : 0;
}
