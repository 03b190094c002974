/* fork() while four threads allocate and free hard, run under `alloctrace
 * run` by fork_test.py.
 *
 * The workers use malloc, calloc, realloc, free and (when the preload
 * library provides them) operator new and delete, on mixed sizes, from
 * thousands of distinct call stacks (a walk of random depth through four
 * call sites), holding their blocks in a table that fills and empties,
 * and every 100 operations start a short-lived thread that allocates too:
 * the tracer interns new stacks, grows and shrinks its live table, takes
 * memory from its own pool for each new thread, and libunwind makes and
 * drops per-thread caches, all the time, so that every lock of the
 * tracer (and of libunwind) is likely to be held by some thread at the
 * moment of a fork.
 * The main thread forks FORKS times; each child allocates and frees a
 * little (through new call stacks too), then leaves with _exit(0) or, one
 * time in three, exit(0) (so that its trace is closed normally).  The
 * parent waits for each child for at most 10 s: a child still running
 * then is hung, is killed and counted.
 *
 * Prints "allocs N forks N children_ok N hung N failed N" and exits 0 only
 * when every child exited 0 in time.
 *
 *   fork_stress [FORKS]
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

/* operator new/delete as the preload library exports them; NULL when it is
 * not there (the program is then just not traced). */
void *_Znwm(size_t size) __attribute__((weak));
void _ZdlPv(void *p) __attribute__((weak));

enum { WORKERS = 4, SLOTS = 1024, MAX_KEYS = 20000, HANG_SECONDS = 10 };

struct worker {
    uint64_t rng;
    unsigned long ops, allocs;
    void *slot[SLOTS];
    unsigned char is_new[SLOTS];
};

static volatile int stop;

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t some_size(uint64_t r)
{
    unsigned kind = (unsigned)(r % 100);
    r >>= 8;
    if (kind < 70)
        return 8 + r % 249;
    if (kind < 96)
        return 256 + r % 7937;
    return 8192 + r % 200000; /* some past glibc's mmap threshold */
}

/* One operation on one slot of the table: allocate into an empty slot,
 * resize or release a full one. */
NOINLINE static void operate(struct worker *w, uint64_t r)
{
    unsigned i = (unsigned)(r % SLOTS);
    r >>= 10;
    void *p = w->slot[i];
    unsigned what = (unsigned)(r % 16);
    r >>= 4;
    size_t size = some_size(r);
    if (!p) {
        if (what < 7) {
            p = malloc(size);
        } else if (what < 10) {
            p = calloc(1 + size % 7, size / 8 + 1);
        } else if (what < 13) {
            void *volatile none = NULL;
            p = realloc(none, size);
        } else if (_Znwm) {
            p = _Znwm(size);
            w->is_new[i] = 1;
        } else {
            p = malloc(size);
        }
        w->allocs++;
        KEEP(p);
        w->slot[i] = p;
    } else if (what < 5 && !w->is_new[i]) {
        void *q = realloc(p, size);
        if (q) {
            w->slot[i] = q;
            w->allocs++;
        }
    } else {
        if (w->is_new[i])
            _ZdlPv(p);
        else
            free(p);
        w->slot[i] = NULL;
        w->is_new[i] = 0;
    }
}

/* A walk of `levels` calls through four call sites, chosen by the low bits
 * of `path`: each (levels, path) is a call stack of its own. */
NOINLINE static void walk(struct worker *w, unsigned path, int levels, uint64_t r);

#define SITE(name)                                                                                 \
    NOINLINE static void name(struct worker *w, unsigned path, int levels, uint64_t r)            \
    {                                                                                              \
        walk(w, path >> 2, levels - 1, r);                                                         \
        __asm__ volatile("" ::: "memory"); /* not a tail call: a frame of its own */              \
    }
SITE(site_a)
SITE(site_b)
SITE(site_c)
SITE(site_d)

NOINLINE static void walk(struct worker *w, unsigned path, int levels, uint64_t r)
{
    if (levels <= 0) {
        operate(w, r);
        return;
    }
    switch (path & 3) {
    case 0: site_a(w, path, levels, r); break;
    case 1: site_b(w, path, levels, r); break;
    case 2: site_c(w, path, levels, r); break;
    default: site_d(w, path, levels, r); break;
    }
    __asm__ volatile("" ::: "memory");
}

static void release_all(struct worker *w)
{
    for (unsigned i = 0; i < SLOTS; i++) {
        if (w->is_new[i])
            _ZdlPv(w->slot[i]);
        else
            free(w->slot[i]);
        w->slot[i] = NULL;
        w->is_new[i] = 0;
    }
}

/* A short-lived thread: the tracer meets a new thread (its per-thread
 * state comes from the tracer's own pool, outside every shard lock) and
 * libunwind makes and later drops a per-thread cache. */
static void *short_lived(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 40; i++)
        walk(w, (unsigned)next_rand(&w->rng), 1 + i % 8, next_rand(&w->rng));
    release_all(w);
    return NULL;
}

static void spawn_short_lived(struct worker *parent)
{
    struct worker *w = calloc(1, sizeof *w);
    if (!w)
        return;
    w->rng = next_rand(&parent->rng) | 1;
    pthread_t t;
    if (pthread_create(&t, NULL, short_lived, w) == 0)
        pthread_join(t, NULL);
    parent->allocs += w->allocs;
    free(w);
}

static void *work(void *arg)
{
    struct worker *w = arg;
    while (!stop) {
        uint64_t r = next_rand(&w->rng);
        /* The set of call stacks grows as the run goes on, so new ones
         * keep being interned; then it stays at MAX_KEYS. */
        unsigned keys = 64 + (unsigned)w->ops;
        unsigned key = (unsigned)(r % (keys < MAX_KEYS ? keys : MAX_KEYS));
        walk(w, key >> 3, (int)(key & 7) + 1, next_rand(&w->rng));
        w->ops++;
        if (w->ops % 100 == 0)
            spawn_short_lived(w);
        if (w->ops % 50000 == 0)
            release_all(w); /* the live table shrinks */
    }
    release_all(w);
    return NULL;
}

/* The child: a little allocation through stacks the parent never had,
 * then out. */
static void child(unsigned n)
{
    struct worker *w = calloc(1, sizeof *w);
    if (!w)
        _exit(2);
    w->rng = 0x9e3779b97f4a7c15ull ^ n;
    for (int i = 0; i < 200; i++)
        walk(w, n * 7 + (unsigned)i, 9 + i % 4, next_rand(&w->rng));
    release_all(w);
    free(w);
    if (n % 3 == 0)
        exit(0);
    _exit(0);
}

/* The children in flight: pid and when it was forked. */
enum { IN_FLIGHT = 6 };
static struct {
    pid_t pid;
    unsigned n;
    struct timespec since;
} flight[IN_FLIGHT];
static int ok, hung, failed;
static const char *spool_stem; /* TRACE minus .db: a child's spool is STEM.PID.db.spool */
static int keep_every = 1;
static double fork_total, fork_max; /* seconds spent in fork() by the parent */

static double seconds_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* A child that ended: counted, and its spool removed unless it is one of
 * those whose trace is kept (turning 200 spools into traces would take
 * `alloctrace run` far longer than the run itself). */
static void ended(int i, int status)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        ok++;
    } else {
        failed++;
        fprintf(stderr, "fork_stress: child %ld ended with status %#x\n", (long)flight[i].pid,
                status);
    }
    if (spool_stem && flight[i].n % (unsigned)keep_every != 0) {
        char path[4096];
        snprintf(path, sizeof path, "%s.%ld.db.spool", spool_stem, (long)flight[i].pid);
        unlink(path);
    }
    flight[i].pid = 0;
}

/* Reaps what has ended; kills and counts what has run HANG_SECONDS.  With
 * `all`, until no child is left; otherwise until a slot is free. */
static void reap(int all)
{
    struct timespec tick = {0, 500 * 1000};
    for (;;) {
        int busy = 0;
        for (int i = 0; i < IN_FLIGHT; i++) {
            if (!flight[i].pid)
                continue;
            int st;
            pid_t got = waitpid(flight[i].pid, &st, WNOHANG);
            if (got == flight[i].pid) {
                ended(i, st);
            } else if (got < 0) {
                failed++;
                flight[i].pid = 0;
            } else if (seconds_since(&flight[i].since) > HANG_SECONDS) {
                fprintf(stderr, "fork_stress: child %ld (fork %u) hung for %d s, killed\n",
                        (long)flight[i].pid, flight[i].n, HANG_SECONDS);
                if (getenv("FORK_STRESS_GDB")) { /* to see where it hangs */
                    char cmd[128];
                    snprintf(cmd, sizeof cmd, "gdb -batch -p %ld -ex bt >&2 2>/dev/null",
                             (long)flight[i].pid);
                    if (system(cmd) != 0)
                        fprintf(stderr, "fork_stress: gdb failed\n");
                }
                kill(flight[i].pid, SIGKILL);
                waitpid(flight[i].pid, NULL, 0);
                hung++;
                flight[i].pid = 0;
            } else {
                busy++;
            }
        }
        if (all ? busy == 0 : busy < IN_FLIGHT)
            return;
        nanosleep(&tick, NULL);
    }
}

/* fork_stress [FORKS [TRACE KEEP_EVERY]] */
int main(int argc, char **argv)
{
    int forks = argc > 1 ? atoi(argv[1]) : 200;
    static char stem[4096];
    if (argc > 3) {
        snprintf(stem, sizeof stem, "%s", argv[2]);
        size_t len = strlen(stem);
        if (len > 3 && strcmp(stem + len - 3, ".db") == 0)
            stem[len - 3] = '\0';
        spool_stem = stem;
        keep_every = atoi(argv[3]) > 0 ? atoi(argv[3]) : 1;
    }
    static struct worker workers[WORKERS];
    pthread_t th[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        workers[i].rng = 0x2545f4914f6cdd1dull * (uint64_t)(i + 1);
        if (pthread_create(&th[i], NULL, work, &workers[i]) != 0) {
            fprintf(stderr, "fork_stress: pthread_create failed\n");
            return 1;
        }
    }
    fflush(NULL); /* a child's exit() must not write our buffers again */
    uint64_t rng = 88172645463325252ull;
    for (int n = 0; n < forks; n++) {
        reap(0);
        /* 0 to 3 ms apart, so that forks land anywhere in the workers' work */
        struct timespec gap = {0, (long)(next_rand(&rng) % 3000) * 1000};
        nanosleep(&gap, NULL);
        int i = 0;
        while (flight[i].pid)
            i++;
        clock_gettime(CLOCK_MONOTONIC, &flight[i].since);
        flight[i].n = (unsigned)n;
        pid_t pid = fork();
        if (pid > 0) {
            double d = seconds_since(&flight[i].since);
            fork_total += d;
            if (d > fork_max)
                fork_max = d;
        }
        if (pid < 0) {
            failed++;
            continue;
        }
        if (pid == 0)
            child((unsigned)n);
        flight[i].pid = pid;
    }
    reap(1);
    stop = 1;
    unsigned long allocs = 0;
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(th[i], NULL);
        allocs += workers[i].allocs;
    }
    printf("allocs %lu forks %d children_ok %d hung %d failed %d\n", allocs, forks, ok, hung,
           failed);
    fprintf(stderr, "fork_stress: fork() took %.2f ms on average, %.2f ms at most\n",
            fork_total * 1000 / (forks ? forks : 1), fork_max * 1000);
    return ok == forks ? 0 : 1;
}
