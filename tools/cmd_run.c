/* alloctrace run [OPTIONS] -- PROGRAM [ARGS...]
 *
 * Starts PROGRAM with the preload library, reads its spool while it runs,
 * and when it has ended, however it ended, completes the trace (the spool
 * reader calls lib/trace/complete.h), prints a summary on stderr, and turns the
 * spools of PROGRAM's other processes into traces of their own.  The
 * environment and the file names PROGRAM's preload library is given are
 * the run protocol (lib/tracer/run_protocol.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <alloctrace/alloctrace.h>

#include "cli.h"
#include "run_protocol.h"
#include "spool.h"
#include "spool_reader.h"
#include "trace_model.h"

typedef struct run_opts {
    const char *output, *depth, *unwind, *html;
    int force, follow, abort_on, no_leak_scan, no_release_stacks, check, quiet;
    unsigned leak_kinds; /* what --check counts (tm_reach_set) */
    char **prog_argv;
} run_opts;

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
    const char *env = getenv(AT_ENV_PRELOAD);
    if (env && *env)
        return env;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(buf, sizeof buf, "%s/../lib/" AT_PRELOAD_NAME, exe);
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
        cli_die("output directory %s does not exist", dir);
    if (access(dir, W_OK | X_OK) != 0)
        cli_die("output directory %s is not writable", dir);
    if (lstat(path, &st) == 0) {
        if (!force)
            cli_die("%s already exists (use --force to replace it)", path);
        if (unlink(path) != 0)
            cli_die("cannot replace %s: %s", path, strerror(errno));
    }
}

/* The trace of the run whose program has pid `pid`. */
static void trace_path(const run_opts *o, pid_t pid, char *buf, size_t size)
{
    if (o->output)
        snprintf(buf, size, "%s", o->output);
    else
        at__run_default_trace(buf, size, o->prog_argv[0], pid);
}

/* ---- the command line --------------------------------------------------------- */

/* Options into `o`; 0 to go on, else the exit status (0 after --help). */
static int parse_args(int argc, char **argv, run_opts *o, int *done)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'F'},
        {"depth", required_argument, NULL, 'd'},
        {"unwind", required_argument, NULL, 'u'},
        {"follow-children", no_argument, NULL, 'f'},
        {"abort-on-finding", no_argument, NULL, 'a'},
        {"no-leak-scan", no_argument, NULL, 'N'},
        {"no-release-stacks", no_argument, NULL, 'R'},
        {"check", no_argument, NULL, 'c'},
        {"leak-kinds", required_argument, NULL, 'L'},
        {"quiet", no_argument, NULL, 'q'},
        {"html", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    o->leak_kinds = tm_reach_gated();
    optind = 0; /* 0, not 1: glibc then starts over, ordering mode included */
    while ((c = getopt_long(argc, argv, "+o:d:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': o->output = optarg; break;
        case 'F': o->force = 1; break;
        case 'd': o->depth = optarg; break;
        case 'u': o->unwind = optarg; break;
        case 'f': o->follow = 1; break;
        case 'a': o->abort_on = 1; break;
        case 'N': o->no_leak_scan = 1; break;
        case 'R': o->no_release_stacks = 1; break;
        case 'c': o->check = 1; break;
        case 'L':
            if (tm_parse_leak_kinds(optarg, &o->leak_kinds) != 0) {
                fprintf(stderr, "alloctrace: --leak-kinds: '%s' is not a list of %s (or all, none)\n",
                        optarg, tm_leak_kinds_words());
                return EXIT_USAGE;
            }
            break;
        case 'q': o->quiet = 1; break;
        case 'H': o->html = optarg; break;
        case 'h': cli_usage(stdout); *done = 1; return 0;
        default: cli_usage(stderr); return EXIT_USAGE;
        }
    }
    if (o->depth) {
        char *end;
        long d = strtol(o->depth, &end, 10);
        if (*end || d < 1 || d > AT_MAX_STACK_DEPTH) {
            fprintf(stderr, "alloctrace: --depth must be 1 to %d\n", AT_MAX_STACK_DEPTH);
            return EXIT_USAGE;
        }
    }
    if (o->unwind && strcmp(o->unwind, AT_UNWIND_VALUE_FP) != 0 &&
        strcmp(o->unwind, AT_UNWIND_VALUE_DWARF) != 0) {
        fprintf(stderr, "alloctrace: --unwind must be dwarf or fp\n");
        return EXIT_USAGE;
    }
    if (optind >= argc) {
        fprintf(stderr, "alloctrace: run: no program given\n");
        cli_usage(stderr);
        return EXIT_USAGE;
    }
    o->prog_argv = argv + optind;
    return 0;
}

/* ---- starting the program -------------------------------------------------------- */

/* In the child: the run protocol's environment, then exec.  Never returns:
 * an exec that fails says so on stderr and through `sync_fd`. */
__attribute__((noreturn)) static void exec_program(const run_opts *o, const char *prog,
                                                   const char *preload, const char *spool,
                                                   int sync_fd)
{
    const char *old = getenv("LD_PRELOAD");
    char *ld = NULL;
    if (asprintf(&ld, "%s%s%s", preload, old && *old ? ":" : "", old ? old : "") < 0)
        _exit(EXIT_TOOL);
    setenv("LD_PRELOAD", ld, 1);
    free(ld);
    char path[PATH_MAX], pid[32];
    trace_path(o, getpid(), path, sizeof path);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    setenv(AT_ENV_OUTPUT, path, 1);
    setenv(AT_ENV_SPOOL, spool, 1);
    setenv(AT_ENV_PID, pid, 1);
    if (o->depth)
        setenv(AT_ENV_DEPTH, o->depth, 1);
    if (o->unwind)
        setenv(AT_ENV_UNWIND, o->unwind, 1);
    setenv(AT_ENV_FOLLOW_CHILDREN, o->follow ? AT_FLAG_ON : AT_FLAG_OFF, 1);
    setenv(AT_ENV_ABORT_ON_FINDING, o->abort_on ? AT_FLAG_ON : AT_FLAG_OFF, 1);
    setenv(AT_ENV_LEAK_SCAN, o->no_leak_scan ? AT_FLAG_OFF : AT_FLAG_ON, 1);
    setenv(AT_ENV_RELEASE_STACKS, o->no_release_stacks ? AT_FLAG_OFF : AT_FLAG_ON, 1);
    execv(prog, o->prog_argv);
    int e = errno;
    fprintf(stderr, "alloctrace: %s: %s\n", o->prog_argv[0], strerror(e));
    if (write(sync_fd, &e, sizeof e) < 0) {
        /* nothing more to say */
    }
    _exit(e == ENOENT ? EXIT_NOT_FOUND : EXIT_NOT_EXECUTABLE);
}

/* Forks the program; *sync_fd is the read end of a pipe that carries the
 * child's errno if its exec fails (it closes on a successful exec). */
static pid_t start_program(const run_opts *o, const char *prog, const char *preload,
                           const char *spool, int *sync_fd)
{
    fflush(NULL);
    int sync_pipe[2];
    if (pipe2(sync_pipe, O_CLOEXEC) != 0)
        cli_die("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        cli_die("fork: %s", strerror(errno));
    if (pid == 0) {
        close(sync_pipe[0]);
        exec_program(o, prog, preload, spool, sync_pipe[1]);
    }
    close(sync_pipe[1]);
    *sync_fd = sync_pipe[0];
    return pid;
}

/* Reads the spool while the program runs, so its chunks come back; the
 * program's wait status. */
static int read_while_running(at_spool_reader *reader, pid_t pid)
{
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
    return status;
}

/* ---- after the program ------------------------------------------------------------- */

/* The trace is complete: the summary, the HTML report, the other
 * processes' traces; the exit status of the run. */
static int after_run(const run_opts *o, const char *path, int code)
{
    int failing = cli_summarize(path, o->quiet, o->leak_kinds);
    if (failing < 0)
        return code ? code : EXIT_TOOL;
    if (o->html) {
        char *html_argv[] = {"html", (char *)path, "-o", (char *)o->html, NULL};
        if (cmd_html(4, html_argv) == 0 && !o->quiet)
            fprintf(stderr, "alloctrace: HTML report written to %s\n", o->html);
    }
    cli_recover_children(path, o->quiet);
    if (code == 0 && o->check && failing)
        return EXIT_RUN_CHECK_FAILED;
    return code;
}

/* What the run says when the program has ended and its trace is complete
 * (or could not be); the exit status. */
static int end_run(const run_opts *o, const char *path, int status, int closed, int exec_failed,
                   int have_reader)
{
    int code = WIFEXITED(status) ? WEXITSTATUS(status)
               : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                     : EXIT_TOOL;
    if (exec_failed) {
        unlink(path);
        return code;
    }
    if (!have_reader)
        return code ? code : EXIT_TOOL;
    const char *prog = o->prog_argv[0];
    if (!closed && !o->quiet)
        fprintf(stderr, "alloctrace: %s ended before closing its trace; every allocation call"
                        " that returned is recorded\n",
                prog);
    if (WIFSIGNALED(status) && !o->quiet)
        fprintf(stderr, "alloctrace: %s was killed by signal %d (%s)\n", prog, WTERMSIG(status),
                strsignal(WTERMSIG(status)));
    if (!is_file(path)) {
        fprintf(stderr, "alloctrace: %s was not written\n", path);
        return code ? code : EXIT_TOOL;
    }
    return after_run(o, path, code);
}

int cmd_run(int argc, char **argv)
{
    run_opts o = {0};
    int done = 0, rc = parse_args(argc, argv, &o, &done);
    if (rc || done)
        return rc;
    char found[PATH_MAX];
    const char *prog = find_program(o.prog_argv[0], found, sizeof found);
    if (!prog) {
        int e = errno;
        fprintf(stderr, "alloctrace: %s: %s\n", o.prog_argv[0],
                e == EACCES ? "permission denied" : "command not found");
        return e == EACCES ? EXIT_NOT_EXECUTABLE : EXIT_NOT_FOUND;
    }
    const char *preload = preload_path();
    if (!is_file(preload))
        cli_die("the preload library %s is missing", preload);
    check_output(o.output ? o.output : "./x", o.output ? o.force : 0);

    /* The spool the program writes and we read, next to the trace. */
    char spool_path[PATH_MAX + 64];
    at__run_reader_spool(spool_path, sizeof spool_path, o.output ? o.output : "", getpid());
    at_spool spool = {.fd = -1};
    rc = at__spool_create(&spool, spool_path);
    if (rc)
        cli_die("cannot create the spool %s: %s", spool_path, at_strerror(rc));
    at__spool_close(&spool);

    int sync_fd;
    pid_t pid = start_program(&o, prog, preload, spool_path, &sync_fd);
    /* Like a shell running a foreground job: the terminal's signals are
     * for the program; we stay to finish its trace. */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);

    char path[PATH_MAX];
    trace_path(&o, pid, path, sizeof path);
    at_spool_reader *reader = NULL;
    rc = at__spool_reader_open(spool_path, path, o.force, &reader);
    if (rc)
        fprintf(stderr, "alloctrace: cannot create the trace %s: %s\n", path, at_strerror(rc));
    int exec_errno = 0;
    ssize_t got = read(sync_fd, &exec_errno, sizeof exec_errno);
    close(sync_fd);

    int status = read_while_running(reader, pid);
    int closed = 0;
    if (reader) {
        rc = at__spool_reader_finish(reader, &closed);
        if (rc)
            fprintf(stderr, "alloctrace: writing the trace %s: %s\n", path, at_strerror(rc));
    }
    unlink(spool_path);
    return end_run(&o, path, status, closed, got == (ssize_t)sizeof exec_errno, reader != NULL);
}
