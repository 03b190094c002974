/* Stopping the other threads for the reachability scan (reach.h).
 *
 * Each thread of the process (/proc/self/task, read with getdents64: no
 * malloc) gets a real-time signal that no thread blocks and nobody
 * handles; its handler saves the thread's registers and stack pointer from
 * the signal's context and waits on a futex until the scan is over.  The
 * handler stays installed afterwards and does nothing outside a scan, so a
 * signal that arrives late cannot end the program.  A thread that does not
 * stop before the deadline (one that blocks every signal, or sleeps in the
 * kernel) is counted and scanned as it runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <alloctrace/error.h>

#include "clock.h"
#include "reach.h"

enum { ST_ASKED = 0, ST_STOPPED = 1, ST_LEFT = 2, ST_GONE = 3 };
enum { DEADLINE_NS = 1000 * 1000 * 1000 };

static at_reach_world *active_world;
static int32_t release_word;
static int stop_signal;

static long futex(int32_t *addr, int op, int32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, addr, op, val, ts, NULL, 0);
}

static void save_context(at_reach_thread *th, const ucontext_t *uc)
{
#if defined(__x86_64__)
    th->sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    th->nregs = NGREG < 32 ? NGREG : 32;
    for (unsigned i = 0; i < th->nregs; i++)
        th->regs[i] = (uintptr_t)uc->uc_mcontext.gregs[i];
#elif defined(__aarch64__)
    th->sp = (uintptr_t)uc->uc_mcontext.sp;
    th->nregs = 31;
    for (unsigned i = 0; i < 31; i++)
        th->regs[i] = (uintptr_t)uc->uc_mcontext.regs[i];
#else
    (void)uc;
    th->sp = (uintptr_t)__builtin_frame_address(0);
    th->nregs = 0;
#endif
}

static void on_stop(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    at_reach_world *w = __atomic_load_n(&active_world, __ATOMIC_ACQUIRE);
    if (!w || si->si_code != SI_TKILL || si->si_pid != getpid())
        return;
    int saved = errno;
    int32_t me = (int32_t)syscall(SYS_gettid);
    for (size_t i = 0; i < w->n; i++) {
        at_reach_thread *th = &w->threads[i];
        if (th->tid != me || __atomic_load_n(&th->state, __ATOMIC_ACQUIRE) != ST_ASKED)
            continue;
        save_context(th, ctx);
        __atomic_store_n(&th->state, ST_STOPPED, __ATOMIC_RELEASE);
        futex(&th->state, FUTEX_WAKE_PRIVATE, 1, NULL);
        while (__atomic_load_n(&release_word, __ATOMIC_ACQUIRE) == 0)
            futex(&release_word, FUTEX_WAIT_PRIVATE, 0, NULL);
        __atomic_store_n(&th->state, ST_LEFT, __ATOMIC_RELEASE);
        futex(&th->state, FUTEX_WAKE_PRIVATE, 1, NULL);
        break;
    }
    errno = saved;
}

/* ---- the threads ------------------------------------------------------------- */

struct dirent64_head {
    uint64_t ino;
    int64_t off;
    unsigned short reclen;
    unsigned char type;
    char name[];
};

static int known(const at_reach_world *w, int32_t tid)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->threads[i].tid == tid)
            return 1;
    return 0;
}

/* Adds the threads not known yet; returns how many, or an AT_E_* code. */
static int list_threads(at_reach_world *w, size_t cap, int32_t skip)
{
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return AT_E_IO;
    int32_t self = (int32_t)syscall(SYS_gettid);
    int added = 0;
    char buf[8192];
    long n;
    while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < n;) {
            struct dirent64_head *d = (struct dirent64_head *)(buf + off);
            off += d->reclen;
            int32_t tid = (int32_t)strtol(d->name, NULL, 10);
            if (tid <= 0 || tid == self || tid == skip || known(w, tid))
                continue;
            if (w->n == cap) {
                close(fd);
                return AT_E_NOMEM;
            }
            at_reach_thread *th = &w->threads[w->n++];
            memset(th, 0, sizeof *th);
            th->tid = tid;
            added++;
        }
    }
    close(fd);
    return added;
}

/* A real-time signal with the default action that no thread blocks
 * (SigBlk in /proc/self/task/TID/status), so that neither the program's
 * handlers nor its sigwait() ever see ours. */
static void blocked_mask(int32_t tid, uint64_t *mask)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    const char *p = strstr(buf, "SigBlk:");
    uint64_t m = p ? strtoull(p + 7, NULL, 16) : 0;
    /* A thread that blocks every real-time signal cannot be stopped by
     * any: it does not decide which one is used. */
    uint64_t rt = ~(uint64_t)0 << (SIGRTMIN - 1);
    if ((m & rt) != rt)
        *mask |= m;
}

static int choose_signal(const at_reach_world *w)
{
    if (stop_signal) {
        /* Still ours?  (A vfork child shares this variable, not the
         * handlers; the program may have taken the signal since.) */
        struct sigaction cur;
        if (sigaction(stop_signal, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
            cur.sa_sigaction == on_stop)
            return stop_signal;
        stop_signal = 0;
    }
    uint64_t blocked = 0;
    blocked_mask((int32_t)syscall(SYS_gettid), &blocked);
    for (size_t i = 0; i < w->n; i++)
        blocked_mask(w->threads[i].tid, &blocked);
    for (int sig = SIGRTMAX; sig > SIGRTMIN + 2; sig--) {
        struct sigaction old;
        if (sigaction(sig, NULL, &old) != 0 || old.sa_handler != SIG_DFL ||
            (old.sa_flags & SA_SIGINFO) || (blocked >> (sig - 1)) & 1)
            continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_stop;
        sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
        sigfillset(&sa.sa_mask);
        if (sigaction(sig, &sa, NULL) == 0) {
            stop_signal = sig;
            return sig;
        }
    }
    return 0;
}

static void ask(at_reach_world *w, size_t from, int sig)
{
    pid_t pid = getpid();
    for (size_t i = from; i < w->n; i++)
        if (syscall(SYS_tgkill, pid, w->threads[i].tid, sig) != 0)
            w->threads[i].state = ST_GONE;
}

static void wait_stopped(at_reach_world *w, size_t from, uint64_t deadline)
{
    for (size_t i = from; i < w->n; i++) {
        at_reach_thread *th = &w->threads[i];
        for (;;) {
            int32_t s = __atomic_load_n(&th->state, __ATOMIC_ACQUIRE);
            uint64_t now = at__now_ns();
            if (s != ST_ASKED || now >= deadline)
                break;
            uint64_t left = deadline - now;
            struct timespec ts = {(time_t)(left / 1000000000u), (long)(left % 1000000000u)};
            futex(&th->state, FUTEX_WAIT_PRIVATE, ST_ASKED, &ts);
        }
    }
}

int at__reach_world_stop(at_reach_world *w, int32_t skip_tid)
{
    memset(w, 0, sizeof *w);
    size_t cap = 65536;
    w->map_bytes = cap * sizeof *w->threads;
    w->threads = at__reach_map(w->map_bytes);
    if (!w->threads)
        return AT_E_NOMEM;
    int saved = errno;
    int rc = list_threads(w, cap, skip_tid);
    int sig = rc >= 0 ? choose_signal(w) : 0;
    if (rc >= 0 && sig == 0)
        rc = AT_E_INVALID;
    if (rc < 0) {
        errno = saved;
        at__reach_unmap(w->threads, w->map_bytes);
        memset(w, 0, sizeof *w);
        return rc;
    }
    __atomic_store_n(&release_word, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&active_world, w, __ATOMIC_RELEASE);
    uint64_t deadline = at__now_ns() + DEADLINE_NS;
    /* Threads the stopped ones were starting when the list was read: list
     * again until it stops growing. */
    size_t from = 0;
    while (from < w->n) {
        ask(w, from, sig);
        wait_stopped(w, from, deadline);
        from = w->n;
        if (list_threads(w, cap, skip_tid) <= 0)
            break;
    }
    for (size_t i = 0; i < w->n; i++) {
        int32_t s = __atomic_load_n(&w->threads[i].state, __ATOMIC_ACQUIRE);
        if (s == ST_STOPPED)
            w->stopped++;
        else if (s == ST_ASKED)
            w->unstopped++;
    }
    errno = saved;
    return 0;
}

void at__reach_world_resume(at_reach_world *w)
{
    if (!w->threads)
        return;
    int saved = errno;
    __atomic_store_n(&release_word, 1, __ATOMIC_RELEASE);
    futex(&release_word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL);
    uint64_t deadline = at__now_ns() + DEADLINE_NS;
    int all_left = 1;
    for (size_t i = 0; i < w->n; i++) {
        at_reach_thread *th = &w->threads[i];
        while (__atomic_load_n(&th->state, __ATOMIC_ACQUIRE) == ST_STOPPED) {
            uint64_t now = at__now_ns();
            if (now >= deadline) {
                all_left = 0;
                break;
            }
            struct timespec ts = {0, 10 * 1000 * 1000};
            futex(&th->state, FUTEX_WAIT_PRIVATE, ST_STOPPED, &ts);
        }
    }
    __atomic_store_n(&active_world, NULL, __ATOMIC_RELEASE);
    /* A thread still in the handler, or one asked that never came, may yet
     * read the table: it is then left mapped. */
    if (all_left && w->unstopped == 0)
        at__reach_unmap(w->threads, w->map_bytes);
    memset(w, 0, sizeof *w);
    errno = saved;
}
