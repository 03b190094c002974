/* A program for limits_test.py: resource limits and process shapes the
 * traced program must survive as it would untraced.  Every mode prints
 * only what does not depend on the tracer being there, so the test can
 * compare the output of a traced run with an untraced one.
 *
 *   limits_prog threads N ITERS     N threads, each ITERS malloc/free pairs
 *                                   and 10 leaks of 1000 + thread bytes
 *   limits_prog live N              N threads alive at once (64 KiB stacks),
 *                                   each allocates, leaks a block of 3333
 *                                   bytes, waits for all the others
 *   limits_prog oom N               N mallocs (a third kept until the end),
 *                                   then 1 MiB blocks, then small ones,
 *                                   until malloc fails, all freed, then
 *                                   100 leaks of 4321 bytes
 *   limits_prog chdir DIR N         forks N children that chdir to DIR,
 *                                   leak a block of 5555 bytes and exit
 *   limits_prog nofile              forks a child that uses up its file
 *                                   descriptors (RLIMIT_NOFILE 32) before
 *                                   its first malloc
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;

struct work {
    long id, iters;
};

static void *churn(void *arg)
{
    struct work *w = arg;
    for (long i = 0; i < w->iters; i++) {
        void *p = malloc((size_t)(16 + (i * 7 + w->id) % 500));
        sink = p;
        free(p);
    }
    for (int i = 0; i < 10; i++)
        sink = malloc((size_t)(1000 + w->id));
    return NULL;
}

static int threads(long n, long iters)
{
    pthread_t *t = calloc((size_t)n, sizeof *t);
    struct work *w = calloc((size_t)n, sizeof *w);
    for (long i = 0; i < n; i++) {
        w[i] = (struct work){i, iters};
        if (pthread_create(&t[i], NULL, churn, &w[i]) != 0)
            return 2;
    }
    for (long i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    printf("threads %ld done\n", n);
    free(t);
    free(w);
    return 0;
}

static pthread_barrier_t all_alive;

static void *live_one(void *arg)
{
    (void)arg;
    void *p = malloc(100);
    sink = p;
    free(p);
    sink = malloc(3333);
    pthread_barrier_wait(&all_alive); /* every thread holds its spool chunk now */
    p = malloc(200);
    sink = p;
    free(p);
    return NULL;
}

static int live(long n)
{
    pthread_t *t = calloc((size_t)n, sizeof *t);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 64 * 1024);
    pthread_barrier_init(&all_alive, NULL, (unsigned)n + 1);
    for (long i = 0; i < n; i++) {
        int rc = pthread_create(&t[i], &a, live_one, NULL);
        if (rc != 0) {
            printf("pthread_create %ld: %s\n", i, strerror(rc));
            return 2;
        }
    }
    pthread_barrier_wait(&all_alive);
    for (long i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    printf("%ld threads alive at once, done\n", n);
    free(t);
    return 0;
}

static int oom(long n)
{
    void **kept = malloc((size_t)n / 3 * sizeof *kept + 8);
    long failed = 0, k = 0;
    for (long i = 0; i < n; i++) {
        void *p = malloc((size_t)(16 + i % 48));
        if (!p) {
            failed++;
            continue;
        }
        if (i % 3 == 0)
            kept[k++] = p;
        else
            free(p);
    }
    printf("%ld mallocs, %ld failed\n", n, failed);
    /* Now run out of memory, as a program near its limit does. */
    void **big = NULL;
    long nbig = 0, cap = 0;
    for (;;) {
        if (nbig == cap) {
            void **q = realloc(big, (size_t)(cap = cap ? cap * 2 : 64) * sizeof *q);
            if (!q)
                break;
            big = q;
        }
        void *p = malloc(1 << 20);
        if (!p)
            break;
        big[nbig++] = p;
    }
    /* and of every small block there is room for: the tracer's own
     * memory runs out meanwhile */
    void **small = NULL;
    for (void **p; (p = malloc(64 + (size_t)(nbig % 64)));) {
        *p = small;
        small = p;
    }
    printf("ran out of memory: %s\n", nbig > 0 && small ? "yes" : "no");
    while (small) {
        void **next = *small;
        free(small);
        small = next;
    }
    for (long i = 0; i < nbig; i++)
        free(big[i]);
    free(big);
    for (long i = 0; i < k; i++)
        free(kept[i]);
    free(kept);
    for (int i = 0; i < 100; i++)
        sink = malloc(4321);
    printf("leaked 100\n");
    return 0;
}

static int chdir_children(const char *dir, long n)
{
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return 2;
        if (pid == 0) {
            if (chdir(dir) != 0)
                _exit(3);
            sink = malloc(5555);
            void *p = malloc(64);
            sink = p;
            free(p);
            exit(0);
        }
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            return 4;
    }
    printf("%ld children chdir'd\n", n);
    return 0;
}

static int nofile(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return 2;
    if (pid == 0) {
        struct rlimit rl = {32, 32};
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            _exit(3);
        int n = 0;
        while (open("/dev/null", O_RDONLY) >= 0)
            n++;
        sink = malloc(5555);
        for (int fd = 3; fd < 32; fd++)
            if (fd != STDOUT_FILENO && fd != STDERR_FILENO)
                close(fd);
        _exit(n > 0 && sink ? 0 : 4);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return 5;
    printf("child without file descriptors done\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "threads") == 0)
        return threads(atol(argv[2]), atol(argv[3]));
    if (argc >= 3 && strcmp(argv[1], "live") == 0)
        return live(atol(argv[2]));
    if (argc >= 3 && strcmp(argv[1], "oom") == 0)
        return oom(atol(argv[2]));
    if (argc >= 4 && strcmp(argv[1], "chdir") == 0)
        return chdir_children(argv[2], atol(argv[3]));
    if (argc >= 2 && strcmp(argv[1], "nofile") == 0)
        return nofile();
    fprintf(stderr, "usage: limits_prog threads N ITERS | live N | oom N | chdir DIR N | nofile\n");
    return 64;
}
