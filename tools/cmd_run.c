/* alloctrace run [OPTIONS] -- PROGRAM [ARGS...]
 *
 * Starts PROGRAM with the preload library, reads its spool while it runs,
 * and when it has ended, however it ended, completes the trace (the spool
 * reader calls lib/trace/complete.h), prints a summary on stderr, and turns the
 * spools of PROGRAM's other processes into traces of their own.  The
 * environment and the file names PROGRAM's preload library is given are
 * the run protocol (lib/tracer/run_protocol.h).
 */
#include <elf.h>
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
    char *output_dir; /* --output-dir or $ALLOCTRACE_OUTPUT_DIR, made absolute; NULL: none */
    int force, follow, abort_on, no_leak_scan, no_release_stacks, check, quiet, aggregate;
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
 * starts: a trace that cannot be written is an error, not a surprise.
 * `path_given`: the trace is `path` itself (-o), which must not exist
 * unless `force`; else only its directory is checked. */
static void check_output(const char *path, int path_given, int force)
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
    if (path_given && lstat(path, &st) == 0) {
        if (!force)
            cli_die("%s already exists (use --force to replace it)", path);
        if (!S_ISREG(st.st_mode))
            cli_die("%s is not a regular file: --force replaces only an old trace", path);
        /* replaced only once the new trace is complete (replace_name) */
    }
}

/* The trace of the run whose program has pid `pid`: -o's, else
 * DIR/PROG.PID.db in the output directory (numbered PROG.PID.N.db while
 * one of that name exists: an earlier process of the same pid), else
 * ./alloctrace.PROG.PID.db. */
static void trace_path(const run_opts *o, pid_t pid, char *buf, size_t size)
{
    if (o->output) {
        snprintf(buf, size, "%s", o->output);
    } else if (o->output_dir) {
        char base[PATH_MAX];
        at__run_dir_trace(base, sizeof base, o->output_dir, o->prog_argv[0], pid);
        snprintf(buf, size, "%s", base);
        for (int n = 2; n < 1000 && access(buf, F_OK) == 0; n++)
            at__run_numbered_trace(buf, size, base, n);
    } else {
        at__run_default_trace(buf, size, o->prog_argv[0], pid);
    }
}

/* mkdir -p, then the directory's absolute path (children may change
 * directory), into o->output_dir. */
static void make_output_dir(run_opts *o, const char *dir)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            cli_die("cannot create the output directory %s: %s", buf, strerror(errno));
        *p = c;
        if (!c)
            break;
    }
    o->output_dir = realpath(dir, NULL);
    if (!o->output_dir)
        cli_die("output directory %s: %s", dir, strerror(errno));
    struct stat st;
    if (stat(o->output_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        cli_die("output directory %s is not a directory", dir);
    if (access(o->output_dir, W_OK | X_OK) != 0)
        cli_die("output directory %s is not writable", dir);
}

/* ---- the command line --------------------------------------------------------- */

/* Options into `o`; 0 to go on, else the exit status (0 after --help). */
static int parse_args(int argc, char **argv, run_opts *o, int *done)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"output-dir", required_argument, NULL, 'D'},
        {"force", no_argument, NULL, 'F'},
        {"depth", required_argument, NULL, 'd'},
        {"unwind", required_argument, NULL, 'u'},
        {"follow-children", no_argument, NULL, 'f'},
        {"abort-on-finding", no_argument, NULL, 'a'},
        {"no-leak-scan", no_argument, NULL, 'N'},
        {"no-release-stacks", no_argument, NULL, 'R'},
        {"aggregate", no_argument, NULL, 'A'},
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
    while ((c = cli_getopt(argc, argv, "+o:d:qh", opts)) != -1) {
        switch (c) {
        case 'o': o->output = optarg; break;
        case 'D': o->output_dir = optarg; break;
        case 'F': o->force = 1; break;
        case 'd': o->depth = optarg; break;
        case 'u': o->unwind = optarg; break;
        case 'f': o->follow = 1; break;
        case 'a': o->abort_on = 1; break;
        case 'N': o->no_leak_scan = 1; break;
        case 'R': o->no_release_stacks = 1; break;
        case 'A': o->aggregate = 1; break;
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
        case 'h': cli_command_help(stdout, "run"); *done = 1; return 0;
        default: return EXIT_USAGE;
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
        cli_usage_hint("run");
        return EXIT_USAGE;
    }
    o->prog_argv = argv + optind;
    struct stat st;
    size_t olen = o->output ? strlen(o->output) : 0;
    if (olen && (o->output[olen - 1] == '/' || (stat(o->output, &st) == 0 && S_ISDIR(st.st_mode)))) {
        o->output_dir = (char *)o->output; /* -o DIR: --output-dir DIR */
        o->output = NULL;
    }
    const char *env_dir = getenv(AT_ENV_OUTPUT_DIR);
    if (!o->output_dir && env_dir && *env_dir)
        o->output_dir = (char *)env_dir;
    if (o->output_dir && !*o->output_dir) {
        fprintf(stderr, "alloctrace: --output-dir: an empty path\n");
        return EXIT_USAGE;
    }
    return 0;
}

/* ---- starting the program -------------------------------------------------------- */

/* Sets `name` to `value` resolved against the working directory: the
 * program and its children may change directory before they name their
 * own traces (run_protocol.h). */
static void setenv_absolute(const char *name, const char *value)
{
    char cwd[PATH_MAX], *abs = NULL;
    if (value[0] != '/' && getcwd(cwd, sizeof cwd) && asprintf(&abs, "%s/%s", cwd, value) < 0)
        abs = NULL;
    setenv(name, abs ? abs : value, 1);
    free(abs);
}

/* This process, `alloctrace run`: AT_ENV_RUN for the program, taken
 * before fork (the child's getppid() would name init, or a subreaper, had
 * the run died meanwhile). */
static pid_t recorder_pid;

/* In the child: the run protocol's environment, then exec.  Never returns:
 * an exec that fails says so on stderr and through `sync_fd`.  The trace's
 * name comes from the parent through `name_fd` (it alone decides it, so
 * that both agree however the directory changes meanwhile). */
__attribute__((noreturn)) static void exec_program(const run_opts *o, const char *prog,
                                                   const char *preload, const char *spool,
                                                   int sync_fd, int name_fd)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* blocked by the parent around fork */
    const char *old = getenv("LD_PRELOAD");
    char *ld = NULL;
    if (asprintf(&ld, "%s%s%s", preload, old && *old ? ":" : "", old ? old : "") < 0)
        _exit(EXIT_TOOL);
    setenv("LD_PRELOAD", ld, 1);
    free(ld);
    char path[PATH_MAX] = "", pid[32];
    size_t got = 0;
    for (ssize_t n; got < sizeof path - 1; got += (size_t)n) {
        n = read(name_fd, path + got, sizeof path - 1 - got);
        if (n <= 0)
            break;
    }
    path[got] = '\0';
    close(name_fd);
    if (!*path)
        _exit(EXIT_TOOL);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    setenv_absolute(AT_ENV_OUTPUT, path);
    if (o->output_dir)
        setenv_absolute(AT_ENV_OUTPUT_DIR, o->output_dir);
    snprintf(pid, sizeof pid, "%ld", (long)recorder_pid);
    setenv(AT_ENV_RUN, pid, 1);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
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

/* The file the run writes its trace into: `path`, or, when --force
 * replaces an old trace there, .alloctrace.RUNPID.db beside it, renamed
 * over it once complete (the old one stays until then; `alloctrace
 * recover PATH` finds the new one through the run's spool). */
static void replace_name(const char *path, int force, char *buf, size_t size)
{
    struct stat st;
    if (!force || lstat(path, &st) != 0) {
        snprintf(buf, size, "%s", path);
        return;
    }
    char spool[PATH_MAX + 64];
    at__run_reader_spool(spool, sizeof spool, path, getpid());
    int stem = (int)at__run_stem_len(spool, AT_SPOOL_SUFFIX);
    if (snprintf(buf, size, "%.*s" AT_TRACE_SUFFIX, stem, spool) >= (int)size)
        cli_die("%s: the path is too long", path);
}

/* The names of the trace in the spool's header (spool.h: writing,
 * trace_name), before the program may start: `alloctrace recover TRACE`
 * finds a killed run's spool by them, however early it was killed. */
static void name_trace_in_spool(const char *spool, const char *writing, const char *path)
{
    at_spool s = {.fd = -1};
    if (at__spool_open(&s, spool) != 0)
        return;
    const char *w = strrchr(writing, '/'), *p = strrchr(path, '/');
    w = w ? w + 1 : writing;
    p = p ? p + 1 : path;
    if (strlen(w) < sizeof s.h->writing && strlen(p) < sizeof s.h->trace_name) {
        snprintf(s.h->writing, sizeof s.h->writing, "%s", w);
        snprintf(s.h->trace_name, sizeof s.h->trace_name, "%s", p);
    }
    at__spool_close(&s);
}

/* ---- signals: the program's to handle, the run's to outlast ---------------------- */

static volatile sig_atomic_t program_pid;

/* SIGTERM, SIGINT, SIGHUP sent to the run by a process (kill, timeout, a
 * CI runner) go to the program, and the run stays to finish its trace; a
 * terminal's signal (si_code SI_KERNEL) reached the program's process
 * group already and is not sent twice. */
static void forward(int sig, siginfo_t *info, void *ctx)
{
    (void)ctx;
    int saved = errno;
    if (program_pid > 0 && (!info || (info->si_code != SI_KERNEL && info->si_pid != program_pid)))
        kill((pid_t)program_pid, sig);
    errno = saved;
}

static void forward_signals(pid_t pid)
{
    program_pid = pid;
    struct sigaction sa = {.sa_sigaction = forward, .sa_flags = SA_SIGINFO | SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGQUIT, SIG_IGN); /* the terminal's, like a shell's foreground job */
}

/* Forks the program, whose trace is then named into `path`; *sync_fd is
 * the read end of a pipe that carries the child's errno if its exec fails
 * (it closes on a successful exec). */
static pid_t start_program(const run_opts *o, const char *prog, const char *preload,
                           const char *spool, int *sync_fd, char *path, size_t size,
                           char *writing, size_t wsize)
{
    fflush(NULL);
    /* Blocked until the handlers that forward them are in place (below
     * fork: a signal in between would kill the run, not the program). */
    sigset_t forwarded, old_mask;
    sigemptyset(&forwarded);
    sigaddset(&forwarded, SIGTERM);
    sigaddset(&forwarded, SIGINT);
    sigaddset(&forwarded, SIGHUP);
    sigprocmask(SIG_BLOCK, &forwarded, &old_mask);
    int sync_pipe[2], name_pipe[2];
    if (pipe2(sync_pipe, O_CLOEXEC) != 0 || pipe2(name_pipe, O_CLOEXEC) != 0)
        cli_die("pipe: %s", strerror(errno));
    recorder_pid = getpid();
    pid_t pid = fork();
    if (pid < 0)
        cli_die("fork: %s", strerror(errno));
    if (pid == 0) {
        close(sync_pipe[0]);
        close(name_pipe[1]);
        exec_program(o, prog, preload, spool, sync_pipe[1], name_pipe[0]);
    }
    close(sync_pipe[1]);
    close(name_pipe[0]);
    forward_signals(pid);
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    trace_path(o, pid, path, size);
    replace_name(path, o->force, writing, wsize);
    name_trace_in_spool(spool, writing, path);
    if (write(name_pipe[1], path, strlen(path)) < 0) {
        /* the child exits EXIT_TOOL */
    }
    close(name_pipe[1]);
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

/* Why PROGRAM (the file at `prog`) never loaded the preload library. */
static const char *untraced_reason(const char *prog)
{
    struct stat st;
    if (stat(prog, &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID)))
        return "it is setuid or setgid, and the dynamic loader ignores LD_PRELOAD for such programs";
    int fd = open(prog, O_RDONLY | O_CLOEXEC);
    Elf64_Ehdr eh;
    int dynamic = -1; /* -1: not an ELF file this can read */
    if (fd >= 0 && read(fd, &eh, sizeof eh) == (ssize_t)sizeof eh &&
        memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 && eh.e_ident[EI_CLASS] == ELFCLASS64) {
        dynamic = 0;
        for (unsigned i = 0; i < eh.e_phnum; i++) {
            Elf64_Phdr ph;
            if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * eh.e_phentsize)) !=
                (ssize_t)sizeof ph)
                break;
            if (ph.p_type == PT_INTERP)
                dynamic = 1;
        }
    }
    if (fd >= 0)
        close(fd);
    if (dynamic == 0)
        return "it is statically linked: no dynamic loader runs to preload the library";
    return "the preload library was never loaded (LD_PRELOAD was refused or removed)";
}

/* Whether an image of `pid` exec'd by a traced one was never traced: more
 * traces of the pid end in exec than were started by one (meta
 * program_end, exec_from). */
static int exec_untraced(const cli_paths *all, pid_t pid)
{
    long long execs = 0, execd = 0;
    for (size_t i = 0; i < all->n; i++) {
        sqlite3 *db;
        if (sqlite3_open_v2(all->v[i], &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
            cli_int(db, "SELECT value FROM meta WHERE key = 'pid'", -1) == pid) {
            execs += cli_int(db, "SELECT count(*) FROM meta WHERE key = 'program_end'"
                                 " AND value = 'exec'", 0);
            execd += cli_int(db, "SELECT count(*) FROM meta WHERE key = 'exec_from'", 0);
        }
        sqlite3_close(db);
    }
    return execs > execd;
}

/* Every trace of the run judged: the summary of the run's own (unless -q),
 * of each other that fails, a count of those that pass, and under --check
 * the reasons of each failure, -q or not.  The number failing, or -1 when
 * the run's own trace cannot be read. */
static int judge_run(const run_opts *o, const cli_paths *all)
{
    int failing = 0, clean = 0;
    for (size_t i = 0; i < all->n; i++) {
        int f = cli_summarize(all->v[i], 1, o->leak_kinds);
        if (f < 0 && i == 0)
            return -1;
        if (!o->quiet && (i == 0 || f > 0))
            cli_summarize(all->v[i], 0, o->leak_kinds);
        failing += f > 0;
        clean += i > 0 && f == 0;
    }
    if (!o->quiet && clean)
        fprintf(stderr, "alloctrace: %d more trace%s of this run (exec'd images, children):"
                        " no findings, no leaks counted\n",
                clean, clean == 1 ? "" : "s");
    for (size_t i = 0; o->check && i < all->n; i++)
        if (cli_summarize(all->v[i], 1, o->leak_kinds) > 0)
            cli_log_problems(all->v[i], o->leak_kinds);
    return failing;
}

/* The trace is complete: the other processes' traces, the HTML report,
 * the verdict over all of them; the exit status of the run. */
static int after_run(const run_opts *o, const char *path, pid_t pid, int code)
{
    cli_paths all = {0};
    cli_paths_add(&all, path);
    cli_recover_children(path, o->output_dir, getpid(), &all);
    if (o->html) {
        char *html_argv[] = {"html", (char *)path, "-o", (char *)o->html, NULL};
        if (cmd_html(4, html_argv) == 0 && !o->quiet)
            fprintf(stderr, "alloctrace: HTML report written to %s\n", o->html);
    }
    int failing = judge_run(o, &all);
    int untraced = exec_untraced(&all, pid);
    cli_paths_free(&all);
    if (failing < 0)
        return code ? code : EXIT_TOOL;
    if (untraced) {
        fprintf(stderr, "alloctrace: %s exec'd a program that could not be traced (statically"
                        " linked, setuid, or LD_PRELOAD refused): its allocations are not in any"
                        " trace\n",
                o->prog_argv[0]);
        return code ? code : EXIT_RUN_UNTRACED;
    }
    if (code == 0 && o->check && failing)
        return EXIT_RUN_CHECK_FAILED;
    return code;
}

/* What the run says when the program has ended and its trace is complete
 * (or could not be); the exit status. */
static int end_run(const run_opts *o, const char *path, pid_t pid, int status, int closed,
                   int have_reader)
{
    int code = WIFEXITED(status) ? WEXITSTATUS(status)
               : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                     : EXIT_TOOL;
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
    return after_run(o, path, pid, code);
}

/* The trace could not be finished (a full disk): the spool keeps what
 * the trace does not hold, for `alloctrace recover TRACE`; one line, and
 * the exit status: the program's own when it failed, else
 * EXIT_RUN_UNFINISHED. */
static int left_for_recover(const char *writing, const char *path, const char *spool,
                            int status, int rc)
{
    fprintf(stderr, "alloctrace: writing the trace %s: %s; %s keeps the rest:"
                    " `alloctrace recover %s` completes it once the cause is gone\n",
            writing, cli_strerror(rc), spool, path);
    int code = WIFEXITED(status) ? WEXITSTATUS(status)
               : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                     : EXIT_TOOL;
    return code ? code : EXIT_RUN_UNFINISHED;
}

/* The spool `alloctrace run` reads, created empty in the trace's directory. */
static void make_spool(const run_opts *o, char *spool_path, size_t size)
{
    char where[PATH_MAX];
    if (o->output)
        snprintf(where, sizeof where, "%s", o->output);
    else if (o->output_dir)
        snprintf(where, sizeof where, "%s/x", o->output_dir);
    else
        where[0] = '\0';
    at__run_reader_spool(spool_path, size, where, getpid());
    at_spool spool = {.fd = -1};
    int rc = at__spool_create(&spool, spool_path);
    if (rc)
        cli_die("cannot create the spool %s: %s", spool_path, cli_strerror(rc));
    at__spool_close(&spool);
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
    if (o.output_dir)
        make_output_dir(&o, o.output_dir);
    check_output(o.output ? o.output : "./x", o.output != NULL, o.force);

    char spool_path[PATH_MAX + 64];
    make_spool(&o, spool_path, sizeof spool_path);
    int sync_fd;
    char path[PATH_MAX];
    char writing[PATH_MAX + 64];
    pid_t pid = start_program(&o, prog, preload, spool_path, &sync_fd, path, sizeof path, writing,
                              sizeof writing);
    at_spool_reader *reader = NULL;
    rc = at__spool_reader_open(spool_path, writing, 0, &reader);
    cli_recover_aggregate(o.aggregate); /* the children's traces too */
    if (!rc && o.aggregate && (rc = at__spool_reader_aggregate(reader)) != 0) {
        at__spool_reader_abandon(reader);
        reader = NULL;
    }
    if (rc)
        fprintf(stderr, "alloctrace: cannot create the trace %s: %s\n", writing, cli_strerror(rc));
    else
        at__spool_reader_set_final(reader, path);
    int exec_errno = 0;
    ssize_t got = read(sync_fd, &exec_errno, sizeof exec_errno);
    close(sync_fd);

    int status = read_while_running(reader, pid);
    at_spool_state st = {0};
    at__spool_read_state(spool_path, &st);
    int closed = 0;
    if (reader && (rc = at__spool_reader_finish(reader, &closed)) != 0 && st.producer_pid != 0)
        return left_for_recover(writing, path, spool_path, status, rc);
    unlink(spool_path);
    if (got == (ssize_t)sizeof exec_errno) { /* PROGRAM never started */
        unlink(writing);
        return WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_TOOL;
    }
    if (reader && st.producer_pid == 0) { /* it ran, but never wrote its spool */
        unlink(writing);
        fprintf(stderr, "alloctrace: %s could not be traced: %s\n", o.prog_argv[0],
                untraced_reason(prog));
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return code ? code : EXIT_RUN_UNTRACED;
    }
    if (strcmp(writing, path) != 0 && (rc || rename(writing, path) != 0)) {
        if (!rc)
            fprintf(stderr, "alloctrace: cannot replace %s: %s\n", path, strerror(errno));
        unlink(writing); /* the old trace stays */
    }
    return end_run(&o, path, pid, status, closed || st.exec, reader != NULL);
}
