/* A program for complete_test.py that holds blocks and waits to be killed,
 * so that what it leaves behind is a trace nobody completed.
 *
 *   complete_prog hold          malloc 300 blocks of 1000..1299 bytes, free
 *                               the first 100, print "ready PID", wait
 *   complete_prog leak          the same, then return from main (leaking)
 *   complete_prog tracer PATH   the same through at_tracer_open(PATH) and
 *                               a tracing allocator (the in-process writer),
 *                               then 200000 mallocs and frees of 64 bytes,
 *                               wait until they are committed, print, wait
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <alloctrace/alloctrace.h>

static void *blocks[300];

static void hold_malloc(void)
{
    for (int i = 0; i < 300; i++)
        blocks[i] = malloc(1000 + (size_t)i);
    for (int i = 0; i < 100; i++)
        free(blocks[i]);
}

static int hold_tracer(const char *path)
{
    at_trace_options o;
    at_trace_options_init(&o);
    o.path = path;
    o.overwrite = 1;
    at_tracer *t;
    int rc = at_tracer_open(&o, &t);
    if (rc) {
        fprintf(stderr, "at_tracer_open: %s\n", at_strerror(rc));
        return 1;
    }
    at_allocator a = at_tracing_allocator(t, at_system_allocator());
    for (int i = 0; i < 300; i++)
        blocks[i] = at_alloc(a, at_layout_from_size_align_unchecked(1000 + (size_t)i, 8));
    for (int i = 0; i < 100; i++)
        at_dealloc(a, blocks[i], at_layout_from_size_align_unchecked(1000 + (size_t)i, 8));
    /* Enough churn to fill the thread's buffers, which the writer only
     * sees when full; it commits what it has every 50 ms. */
    at_layout small = at_layout_from_size_align_unchecked(64, 8);
    for (int i = 0; i < 200000; i++)
        at_dealloc(a, at_alloc(a, small), small);
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "leak") == 0) {
        hold_malloc();
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "hold") == 0)
        hold_malloc();
    else if (argc > 2 && strcmp(argv[1], "tracer") == 0) {
        if (hold_tracer(argv[2]) != 0)
            return 1;
    } else {
        fprintf(stderr, "usage: complete_prog hold | leak | tracer PATH\n");
        return 2;
    }
    printf("ready %ld\n", (long)getpid());
    fflush(stdout);
    for (;;)
        pause();
}
