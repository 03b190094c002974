/* A program for signal_test.py: a profiling timer interrupts a loop of
 * malloc/free, and its handler allocates: a block of 888 bytes kept (a
 * leak it counts), and a block of 777 bytes freed at once.  Under
 * alloctrace most interruptions land inside the tracer's work for the
 * loop's call; the trace must still hold every one of the handler's calls.
 *
 * The loop's calls are served from glibc's thread cache once warm (no
 * arena lock held), so the handler's own malloc cannot deadlock on it, as
 * it could in general: malloc is not async-signal-safe.
 *
 *   signal_prog     prints "handler leaked N"
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

enum { MAX_KEPT = 2000 };
static void *volatile kept[MAX_KEPT];
static volatile sig_atomic_t nkept;
static volatile sig_atomic_t stop;
static void *volatile sink;

static void on_prof(int sig)
{
    (void)sig;
    if (nkept < MAX_KEPT)
        kept[nkept++] = malloc(888);
    void *p = malloc(777);
    sink = p;
    free(p);
}

int main(void)
{
    for (int i = 0; i < 1000; i++) /* warm the thread cache */
        free(malloc(24));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_prof;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGPROF, &sa, NULL);
    struct itimerval it = {{0, 200}, {0, 200}};
    setitimer(ITIMER_PROF, &it, NULL);
    for (long i = 0; i < 3000000 && nkept < MAX_KEPT; i++) {
        void *p = malloc(24);
        sink = p;
        free(p);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_PROF, &off, NULL);
    printf("handler leaked %d\n", (int)nkept);
    for (int i = 0; i < nkept; i++)
        kept[i] = NULL; /* lost: every one a leak */
    return 0;
}
