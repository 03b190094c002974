/* alloctrace: the command line.
 *
 *   alloctrace run [OPTIONS] -- PROGRAM [ARGS...]
 *   alloctrace recover SPOOL...
 *   alloctrace report | check | query | html TRACE ...   (report.c, check.c, query.c, html.c)
 *   alloctrace version
 *
 * `run` starts PROGRAM with the preload library, waits for it, completes
 * the trace (symbols, runtime-owned blocks) and prints a summary on
 * stderr.  Exit codes are documented in docs/cli.md and in usage().
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include <alloctrace/alloctrace.h>

#include "cli.h"
#include "trace_model.h"
#include "symbolize.h"
#include "spool.h"
#include "spool_reader.h"


static void usage(FILE *to)
{
    fputs("usage: alloctrace run [OPTIONS] -- PROGRAM [ARGS...]\n"
          "       alloctrace recover [-o TRACE] [--force] SPOOL...\n"
          "       alloctrace report TRACE [--top N] [--min-bytes N]\n"
          "                         [--format text|json|sarif|junit] [--color WHEN] [-o FILE]\n"
          "       alloctrace check TRACE [--fail-on KINDS] [--max-leaked-bytes N]\n"
          "                        [--max-leaked-blocks N] [--suppressions FILE]...\n"
          "                        [--baseline OLD_TRACE] [--format text|json]\n"
          "       alloctrace query TRACE 'SQL' [--format table|csv|json]\n"
          "       alloctrace html TRACE [-o REPORT.html] [--max-sites N]\n"
          "       alloctrace version\n"
          "\n"
          "run options:\n"
          "  -o, --output PATH       trace file (default ./alloctrace.PROGRAM.PID.db)\n"
          "      --force             replace PATH if it exists\n"
          "  -d, --depth N           frames per backtrace (default 64)\n"
          "      --unwind fp|dwarf   frame pointers (fast; for code built with them) or\n"
          "                          DWARF unwind tables (default: exact for any code)\n"
          "      --follow-children   trace programs that PROGRAM executes too\n"
          "      --abort-on-finding  abort at the first bad release, once it is on disk\n"
          "      --check             fail (exit 86) when the trace has leaks or findings\n"
          "  -q, --quiet             no summary\n"
          "      --html FILE         also write the HTML report of the trace to FILE\n"
          "\n"
          "exit status: PROGRAM's own (128+N when killed by signal N); 86 with --check when\n"
          "the trace fails; 2 usage error; 125 alloctrace error; 126 PROGRAM not executable;\n"
          "127 PROGRAM not found.  check: 0 pass, 1 fail, 2 usage, 125 unreadable trace.\n",
          to);
}

__attribute__((format(printf, 1, 2), noreturn)) static void die_tool(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "alloctrace: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(EXIT_TOOL);
}

/* ---- finding things -------------------------------------------------------- */

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The preload library: $ALLOCTRACE_PRELOAD, else next to this executable in
 * the build tree, else where `meson install` put it. */
static const char *preload_path(void)
{
    static char buf[PATH_MAX + 64];
    const char *env = getenv("ALLOCTRACE_PRELOAD");
    if (env && *env)
        return env;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(buf, sizeof buf, "%s/../lib/liballoctrace_preload.so", exe);
            if (is_file(buf))
                return buf;
        }
    }
    return ALLOCTRACE_PRELOAD_INSTALLED;
}

/* PROGRAM as execvp would find it; NULL (errno set) when it cannot. */
static const char *find_program(const char *prog, char *buf, size_t size)
{
    if (strchr(prog, '/')) {
        if (access(prog, F_OK) != 0)
            return NULL;
        return prog;
    }
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    int found_not_exec = 0;
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        snprintf(buf, size, "%.*s%s%s", (int)len, p, len ? "/" : "", prog);
        if (is_file(buf)) {
            if (access(buf, X_OK) == 0)
                return buf;
            found_not_exec = 1;
        }
        if (!end)
            break;
        p = end;
    }
    errno = found_not_exec ? EACCES : ENOENT;
    return NULL;
}

/* The output's directory must exist and be writable before the program
 * starts: a trace that cannot be written is an error, not a surprise. */
static void check_output(const char *path, int force)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        die_tool("output directory %s does not exist", dir);
    if (access(dir, W_OK | X_OK) != 0)
        die_tool("output directory %s is not writable", dir);
    if (lstat(path, &st) == 0) {
        if (!force)
            die_tool("%s already exists (use --force to replace it)", path);
        if (unlink(path) != 0)
            die_tool("cannot replace %s: %s", path, strerror(errno));
    }
}

/* ---- the trace after the run ---------------------------------------------- */

/* Prints the summary of an open trace (the same figures `alloctrace
 * report` starts with); -1 when it cannot be read, else 1 when the trace
 * would fail a check. */
static int summarize(sqlite3 *db, const char *path, int quiet)
{
    tm_trace t;
    int rc = tm_load(&t, db, path, TM_SUMMARY | (quiet ? 0 : TM_PEAK));
    const tm_summary *s = &t.sum;
    if (rc == 0 && !quiet) {
        char b1[64], b2[64], b3[64], b4[64];
        cli_bytes(b1, sizeof b1, s->alloc_bytes);
        cli_bytes(b2, sizeof b2, s->peak_bytes);
        cli_bytes(b3, sizeof b3, s->leaked_bytes);
        cli_bytes(b4, sizeof b4, s->runtime_bytes);
        fprintf(stderr,
                "alloctrace: trace written to %s\n"
                "alloctrace:   allocation calls %lld, frees %lld, bytes allocated %s\n"
                "alloctrace:   peak live heap %s\n"
                "alloctrace:   leaked %lld blocks, %s",
                path, s->alloc_calls, s->free_calls, b1, b2, s->leaked_blocks, b3);
        if (s->runtime_blocks)
            fprintf(stderr, " (set aside: %lld blocks, %s kept by the C/C++ runtime)",
                    s->runtime_blocks, b4);
        fprintf(stderr, "\nalloctrace:   findings %lld", s->findings);
        /* By kind, most frequent first. */
        long long left[TM_KINDS];
        memcpy(left, s->by_kind, sizeof left);
        const char *sep = ": ";
        for (;;) {
            int best = -1;
            for (int k = 0; k < TM_KINDS; k++)
                if (left[k] > 0 && (best < 0 || left[k] > left[best]))
                    best = k;
            if (best < 0)
                break;
            fprintf(stderr, "%s%s %lld", sep, tm_kind_name((enum tm_kind)best), left[best]);
            left[best] = 0;
            sep = ", ";
        }
        fputc('\n', stderr);
        if (s->lost_events > 0)
            fprintf(stderr, "alloctrace:   warning: %lld events could not be recorded\n",
                    s->lost_events);
    }
    int failing = rc == 0 ? s->leaked_blocks > 0 || s->findings > 0 : -1;
    if (rc != 0)
        fprintf(stderr, "alloctrace: %s: cannot read the trace\n", path);
    tm_free(&t);
    return failing;
}

static double seconds_between(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* Completes the trace at `path` (symbols, runtime-owned blocks) and prints
 * its summary; -1 when that fails, else whether the trace fails a check.
 * ALLOCTRACE_TIMING=1 prints how long each step took. */
static int complete_and_summarize(const char *path, int quiet)
{
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sqlite3 *db;
    if (cli_open_trace(path, &db) != 0)
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int failing = summarize(db, path, quiet);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    if (getenv("ALLOCTRACE_TIMING"))
        fprintf(stderr, "timing: complete %.3f summary %.3f\n", seconds_between(&t0, &t1),
                seconds_between(&t1, &t2));
    sqlite3_close(db);
    return failing;
}

/* A spool left by a traced process that had no `alloctrace run` reading
 * it (a followed child, or plain LD_PRELOAD) becomes a trace: SPOOL minus
 * its .spool suffix unless `output` says otherwise.  0 or -1. */
static int recover_one(const char *spool, const char *output, int force, int quiet)
{
    char path[PATH_MAX];
    size_t len = strlen(spool);
    if (output)
        snprintf(path, sizeof path, "%s", output);
    else if (len > 6 && strcmp(spool + len - 6, ".spool") == 0)
        snprintf(path, sizeof path, "%.*s", (int)(len - 6), spool);
    else
        snprintf(path, sizeof path, "%s.db", spool);
    at_spool_reader *r;
    int rc = at__spool_reader_open(spool, path, force, &r);
    if (rc) {
        fprintf(stderr, "alloctrace: %s: %s\n", rc == AT_E_INVALID ? spool : path,
                rc == AT_E_INVALID ? "not an alloctrace spool" : at_strerror(rc));
        return -1;
    }
    rc = at__spool_reader_finish(r, NULL);
    if (rc) {
        fprintf(stderr, "alloctrace: writing %s: %s\n", path, at_strerror(rc));
        return -1;
    }
    if (complete_and_summarize(path, quiet) < 0)
        return -1;
    unlink(spool);
    return 0;
}

static int cmd_recover(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'F'},
        {"quiet", no_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    const char *output = NULL;
    int force = 0, quiet = 0, c;
    optind = 0; /* 0, not 1: glibc then starts over, ordering mode included */
    while ((c = getopt_long(argc, argv, "o:q", opts, NULL)) != -1) {
        switch (c) {
        case 'o': output = optarg; break;
        case 'F': force = 1; break;
        case 'q': quiet = 1; break;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc || (output && argc - optind > 1)) {
        usage(stderr);
        return EXIT_USAGE;
    }
    int failed = 0;
    for (int i = optind; i < argc; i++)
        failed |= recover_one(argv[i], output, force, quiet) != 0;
    return failed ? EXIT_TOOL : 0;
}

/* After a run: the spools of forked children (and of executed ones with
 * --follow-children), named after the trace (`STEM.PID.db.spool`), become
 * traces too, unless their process is still running. */
static void recover_children(const char *trace, int quiet)
{
    char pattern[PATH_MAX + 32];
    size_t len = strlen(trace);
    if (len > 3 && strcmp(trace + len - 3, ".db") == 0)
        len -= 3;
    snprintf(pattern, sizeof pattern, "%.*s.*.db.spool", (int)len, trace);
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0)
        return;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        at_spool s = {.fd = -1};
        if (at__spool_open(&s, g.gl_pathv[i]) != 0)
            continue;
        pid_t producer = s.h->producer_pid;
        int closed = s.h->closed;
        at__spool_close(&s);
        if (!closed && producer > 0 && kill(producer, 0) == 0) {
            fprintf(stderr, "alloctrace: process %ld is still running; `alloctrace recover %s`"
                            " once it has ended\n",
                    (long)producer, g.gl_pathv[i]);
            continue;
        }
        recover_one(g.gl_pathv[i], NULL, 0, quiet);
    }
    globfree(&g);
}

/* ---- run -------------------------------------------------------------------- */

static int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'F'},
        {"depth", required_argument, NULL, 'd'},
        {"unwind", required_argument, NULL, 'u'},
        {"follow-children", no_argument, NULL, 'f'},
        {"abort-on-finding", no_argument, NULL, 'a'},
        {"check", no_argument, NULL, 'c'},
        {"quiet", no_argument, NULL, 'q'},
        {"html", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *output = NULL, *depth = NULL, *unwind = NULL, *html = NULL;
    int force = 0, follow = 0, abort_on = 0, check = 0, quiet = 0, c;
    optind = 0; /* 0, not 1: glibc then starts over, ordering mode included */
    while ((c = getopt_long(argc, argv, "+o:d:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': output = optarg; break;
        case 'F': force = 1; break;
        case 'd': depth = optarg; break;
        case 'u': unwind = optarg; break;
        case 'f': follow = 1; break;
        case 'a': abort_on = 1; break;
        case 'c': check = 1; break;
        case 'q': quiet = 1; break;
        case 'H': html = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (depth) {
        char *end;
        long d = strtol(depth, &end, 10);
        if (*end || d < 1 || d > AT_MAX_STACK_DEPTH) {
            fprintf(stderr, "alloctrace: --depth must be 1 to %d\n", AT_MAX_STACK_DEPTH);
            return EXIT_USAGE;
        }
    }
    if (unwind && strcmp(unwind, "fp") != 0 && strcmp(unwind, "dwarf") != 0) {
        fprintf(stderr, "alloctrace: --unwind must be dwarf or fp\n");
        return EXIT_USAGE;
    }
    if (optind >= argc) {
        fprintf(stderr, "alloctrace: run: no program given\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    char **prog_argv = argv + optind;
    char found[PATH_MAX];
    const char *prog = find_program(prog_argv[0], found, sizeof found);
    if (!prog) {
        int e = errno;
        fprintf(stderr, "alloctrace: %s: %s\n", prog_argv[0],
                e == EACCES ? "permission denied" : "command not found");
        return e == EACCES ? EXIT_NOT_EXECUTABLE : EXIT_NOT_FOUND;
    }
    const char *preload = preload_path();
    if (!is_file(preload))
        die_tool("the preload library %s is missing", preload);
    if (output)
        check_output(output, force);
    else
        check_output("./x", 0);

    /* The spool the program writes and we read, next to the trace. */
    char spool_path[PATH_MAX + 64];
    {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", output ? output : "./x");
        char *slash = strrchr(dir, '/');
        if (slash)
            slash[1] = '\0';
        else
            snprintf(dir, sizeof dir, "./");
        snprintf(spool_path, sizeof spool_path, "%s.alloctrace.%ld.spool", dir, (long)getpid());
    }
    at_spool spool = {.fd = -1};
    int rc = at__spool_create(&spool, spool_path);
    if (rc)
        die_tool("cannot create the spool %s: %s", spool_path, at_strerror(rc));
    at__spool_close(&spool);

    fflush(NULL);
    int sync_pipe[2]; /* closed on exec: tells the parent the exec worked */
    if (pipe2(sync_pipe, O_CLOEXEC) != 0)
        die_tool("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        die_tool("fork: %s", strerror(errno));
    if (pid == 0) {
        close(sync_pipe[0]);
        char buf[64];
        const char *old = getenv("LD_PRELOAD");
        char *ld = NULL;
        if (asprintf(&ld, "%s%s%s", preload, old && *old ? ":" : "", old ? old : "") < 0)
            _exit(EXIT_TOOL);
        setenv("LD_PRELOAD", ld, 1);
        free(ld);
        char path[PATH_MAX];
        if (output) {
            snprintf(path, sizeof path, "%s", output);
        } else {
            const char *base = strrchr(prog_argv[0], '/');
            snprintf(path, sizeof path, "alloctrace.%s.%ld.db", base ? base + 1 : prog_argv[0],
                     (long)getpid());
        }
        setenv("ALLOCTRACE_OUTPUT", path, 1);
        setenv("ALLOCTRACE_SPOOL", spool_path, 1);
        snprintf(buf, sizeof buf, "%ld", (long)getpid());
        setenv("ALLOCTRACE_PID", buf, 1);
        if (depth)
            setenv("ALLOCTRACE_DEPTH", depth, 1);
        if (unwind)
            setenv("ALLOCTRACE_UNWIND", unwind, 1);
        setenv("ALLOCTRACE_FOLLOW_CHILDREN", follow ? "1" : "0", 1);
        setenv("ALLOCTRACE_ABORT_ON_FINDING", abort_on ? "1" : "0", 1);
        execv(prog, prog_argv);
        int e = errno;
        fprintf(stderr, "alloctrace: %s: %s\n", prog_argv[0], strerror(e));
        if (write(sync_pipe[1], &e, sizeof e) < 0) {
            /* nothing more to say */
        }
        _exit(e == ENOENT ? EXIT_NOT_FOUND : EXIT_NOT_EXECUTABLE);
    }
    close(sync_pipe[1]);
    /* Like a shell running a foreground job: the terminal's signals are
     * for the program; we stay to finish its trace. */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);

    char path[PATH_MAX];
    if (output)
        snprintf(path, sizeof path, "%s", output);
    else {
        const char *base = strrchr(prog_argv[0], '/');
        snprintf(path, sizeof path, "alloctrace.%s.%ld.db", base ? base + 1 : prog_argv[0],
                 (long)pid);
    }
    at_spool_reader *reader = NULL;
    rc = at__spool_reader_open(spool_path, path, force, &reader);
    if (rc)
        fprintf(stderr, "alloctrace: cannot create the trace %s: %s\n", path, at_strerror(rc));

    int exec_errno = 0;
    ssize_t got = read(sync_pipe[0], &exec_errno, sizeof exec_errno);
    close(sync_pipe[0]);

    /* Read the spool while the program runs, so its chunks come back. */
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR))
            break;
        long n = reader ? at__spool_reader_poll(reader) : 0;
        if (n <= 0) {
            struct timespec ts = {0, 2 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status)
               : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                     : EXIT_TOOL;
    int closed = 0;
    if (reader) {
        rc = at__spool_reader_finish(reader, &closed);
        if (rc)
            fprintf(stderr, "alloctrace: writing the trace %s: %s\n", path, at_strerror(rc));
    }
    unlink(spool_path);
    if (got == (ssize_t)sizeof exec_errno) {
        unlink(path);
        return code;
    }
    if (!reader)
        return code ? code : EXIT_TOOL;
    if (!closed && !quiet)
        fprintf(stderr, "alloctrace: %s ended before closing its trace; every allocation call"
                        " that returned is recorded\n",
                prog_argv[0]);
    if (WIFSIGNALED(status) && !quiet)
        fprintf(stderr, "alloctrace: %s was killed by signal %d (%s)\n", prog_argv[0],
                WTERMSIG(status), strsignal(WTERMSIG(status)));
    if (!is_file(path)) {
        fprintf(stderr, "alloctrace: %s was not written\n", path);
        return code ? code : EXIT_TOOL;
    }
    int failing = complete_and_summarize(path, quiet);
    if (failing < 0)
        return code ? code : EXIT_TOOL;
    if (html) {
        char *html_argv[] = {"html", path, "-o", (char *)html, NULL};
        if (cmd_html(4, html_argv) == 0 && !quiet)
            fprintf(stderr, "alloctrace: HTML report written to %s\n", html);
    }
    recover_children(path, quiet);
    if (code == 0 && check && failing)
        return EXIT_RUN_CHECK_FAILED;
    return code;
}

int main(int argc, char **argv)
{
    at__demangle_may_load = 1;
    /* This process uses SQLite from one thread at a time: no mutex per
     * connection call, and no allocation statistics, which otherwise take
     * a global mutex on every allocation SQLite makes.  Writing a trace
     * makes millions of such calls. */
    sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(argv[1], "recover") == 0)
        return cmd_recover(argc - 1, argv + 1);
    if (strcmp(argv[1], "report") == 0)
        return cmd_report(argc - 1, argv + 1);
    if (strcmp(argv[1], "check") == 0)
        return cmd_check(argc - 1, argv + 1);
    if (strcmp(argv[1], "query") == 0)
        return cmd_query(argc - 1, argv + 1);
    if (strcmp(argv[1], "html") == 0)
        return cmd_html(argc - 1, argv + 1);
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("alloctrace %s\n", AT_VERSION_STRING);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "alloctrace: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
