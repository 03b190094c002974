/* A program with known allocation behaviour, run under `alloctrace run` by
 * preload_test.py.  It never calls alloctrace: everything it does goes
 * through the C library's allocator, as in any program.
 *
 *   preload_prog clean|leak|findings|threads|fork|exit MODE|kill|abort|dlopen LIB|relstacks
 */
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* glibc 2.36 does not declare the C23 sized frees; the preload library
 * exports them. */
void free_sized(void *p, size_t size) __attribute__((weak));
void free_aligned_sized(void *p, size_t align, size_t size) __attribute__((weak));

#define NOINLINE __attribute__((noinline))

/* Not static, so their names are in every symbol table. */
void *leaky_site(size_t n);
void bad_release(void *p, int how);
void *keep_site(size_t n);
#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

/* Every entry point once, everything released properly. */
static void every_entry_point(void)
{
    void *p = malloc(100);
    KEEP(p);
    free(p);
    p = calloc(10, 10);
    KEEP(p);
    free(p);
    void *volatile none = NULL; /* a realloc(NULL) the compiler cannot see */
    p = realloc(none, 50);
    KEEP(p);
    p = realloc(p, 5000);
    KEEP(p);
    p = realloc(p, 10);
    KEEP(p);
    free(p);
    p = reallocarray(NULL, 4, 25);
    KEEP(p);
    free(p);
    if (posix_memalign(&p, 64, 200) == 0) {
        KEEP(p);
        free(p);
    }
    p = aligned_alloc(128, 256);
    KEEP(p);
    free(p);
    p = memalign(4096, 10);
    KEEP(p);
    free(p);
    p = valloc(100);
    KEEP(p);
    free(p);
    p = pvalloc(100);
    KEEP(p);
    free(p);
    p = malloc(64);
    KEEP(p);
    if (malloc_usable_size(p) < 64)
        abort();
    free_sized(p, 64);
    p = aligned_alloc(256, 512);
    KEEP(p);
    free_aligned_sized(p, 256, 512);
    /* realloc(p, 0) and the other zero-size
     * requests are findings (notes) of their own:
     * requests_prog.c has them */
}

NOINLINE void *leaky_site(size_t n)
{
    void *p = malloc(n);
    KEEP(p);
    return p;
}

NOINLINE void bad_release(void *p, int how)
{
    switch (how) {
    case 0: free(p); break;
    case 1: free_sized(p, 48); break;             /* allocated with 64 */
    case 2: free_aligned_sized(p, 16, 100); break; /* allocated with 32 */
    }
}

static void findings(void)
{
    void *a = malloc(64);
    bad_release(a, 1); /* layout mismatch: released (and freed) with its real layout */
    void *b = memalign(32, 100); /* aligned_alloc would want a multiple of 32 */
    bad_release(b, 2); /* layout mismatch: alignment */
    for (int i = 0; i < 2; i++) { /* one double free per iteration, same stack */
        void *d = malloc(24);
        free(d);
        bad_release(d, 0);
    }
    for (int i = 0; i < 10; i++) { /* one bug ten times, blocks of 64 to 208 bytes */
        void *m = malloc(64 + 16 * (size_t)i);
        bad_release(m, 1);
    }
    char local[32];
    bad_release(local, 0); /* never allocated: glibc would abort */
    char *c = malloc(128);
    bad_release(c + 16, 0); /* inside a live block */
    free(c);
    puts("survived");
}

/* ---- threads: producers allocate, consumers on other threads free ---------- */

enum { RING = 256, PER_THREAD = 20000 };
static void *ring[RING];
static unsigned head, tail;
static int producers_left = 2;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static void *producer(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        void *p = malloc(16 + (size_t)(i % 200));
        pthread_mutex_lock(&mu);
        while (head - tail == RING)
            pthread_cond_wait(&cv, &mu);
        ring[head++ % RING] = p;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
    }
    pthread_mutex_lock(&mu);
    producers_left--;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&mu);
        while (head == tail && producers_left > 0)
            pthread_cond_wait(&cv, &mu);
        if (head == tail) {
            pthread_mutex_unlock(&mu);
            return NULL;
        }
        void *p = ring[tail++ % RING];
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
        free(p);
    }
}

static void threads(void)
{
    pthread_t t[4];
    pthread_create(&t[0], NULL, producer, NULL);
    pthread_create(&t[1], NULL, producer, NULL);
    pthread_create(&t[2], NULL, consumer, NULL);
    pthread_create(&t[3], NULL, consumer, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
}

/* ---- kill: blocks kept live while threads churn, until SIGKILL ------------- */

NOINLINE void *keep_site(size_t n)
{
    void *p = malloc(n);
    KEEP(p);
    return p;
}

static void *churn(void *arg)
{
    (void)arg;
    void *window[64] = {0};
    for (unsigned i = 0;; i++) {
        unsigned k = (i * 2654435761u) >> 26;
        free(window[k]);
        window[k] = malloc(8 + i % 300);
    }
    return NULL;
}

static void kill_me(void)
{
    static void *kept[1000];
    for (int i = 0; i < 1000; i++)
        kept[i] = keep_site(100000 + (size_t)i);
    KEEP(kept);
    pthread_t t[2];
    pthread_create(&t[0], NULL, churn, NULL);
    pthread_create(&t[1], NULL, churn, NULL);
    printf("ready %ld\n", (long)getpid());
    fflush(stdout);
    for (;;)
        pause();
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "clean";
    every_entry_point();
    if (strcmp(mode, "clean") == 0) {
        printf("clean\n");
    } else if (strcmp(mode, "leak") == 0) {
        for (int i = 0; i < 3; i++)
            leaky_site(1000 + (size_t)i);
        printf("leaked\n");
    } else if (strcmp(mode, "findings") == 0) {
        findings();

    } else if (strcmp(mode, "threads") == 0) {
        threads();
        printf("threads done\n");
    } else if (strcmp(mode, "fork") == 0) {
        leaky_site(777);
        pid_t pid = fork();
        if (pid == 0) {
            for (int i = 0; i < 100; i++) {
                void *q = malloc(4242);
                KEEP(q);
                free(q);
            }
            leaky_site(4343);
            _exit(0);
        }
        int st;
        waitpid(pid, &st, 0);
        printf("child %d\n", WEXITSTATUS(st));
    } else if (strcmp(mode, "exit") == 0) {
        leaky_site(555);
        const char *how = argc > 2 ? argv[2] : "return";
        fflush(stdout);
        if (strcmp(how, "_exit") == 0)
            _exit(3);
        if (strcmp(how, "quick_exit") == 0)
            quick_exit(4);
        if (strcmp(how, "exit") == 0)
            exit(5);
        return 6;
    } else if (strcmp(mode, "kill") == 0) {
        kill_me();
    } else if (strcmp(mode, "dlopen") == 0 && argc > 2) {
        void *h = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
        void *(*leak)(size_t) = NULL;
        if (h)
            *(void **)&leak = dlsym(h, "plugin_leak");
        if (!leak) {
            fprintf(stderr, "dlopen %s: %s\n", argv[2], dlerror());
            return 1;
        }
        leak(31337);
        dlclose(h);
        printf("unloaded\n");
    } else if (strcmp(mode, "abort") == 0) {
        void *d = malloc(24);
        free(d);
        bad_release(d, 0); /* with --abort-on-finding: abort here */
        puts("not aborted");
    } else if (strcmp(mode, "relstacks") == 0) {
        void release_stacks(void); /* below, so that the lines above stay where they were */
        release_stacks();
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}

/* ---- release stacks: each release on a line of its own (the markers are
 * what preload_test.py looks for) ---------------------------------------- */

void *relstack_alloc(size_t n);
void relstack_first_free(void *p);
void relstack_second_free(void *p);
void *relstack_realloc_freed(void *p);
void relstack_ordinary_free(void *p);
void release_stacks(void);

NOINLINE void *relstack_alloc(size_t n)
{
    void *p = malloc(n); /* @alloc */
    KEEP(p);
    return p;
}

NOINLINE void relstack_first_free(void *p)
{
    free(p); /* @first_free */
    KEEP(p);
}

NOINLINE void relstack_second_free(void *p)
{
    free(p); /* @second_free */
    KEEP(p);
}

NOINLINE void *relstack_realloc_freed(void *p)
{
    void *q = realloc(p, 4000); /* @realloc_freed */
    KEEP(q);
    return q;
}

NOINLINE void relstack_ordinary_free(void *p)
{
    free(p); /* @ordinary_free */
    KEEP(p);
}

/* A double free through free(), one through realloc(), and ordinary
 * frees of blocks of size 4321. */
void release_stacks(void)
{
    void *a = relstack_alloc(1111);
    relstack_first_free(a);
    relstack_second_free(a);
    void *b = relstack_alloc(2222);
    relstack_first_free(b);
    void *c = relstack_realloc_freed(b);
    KEEP(c);
    for (int i = 0; i < 3; i++)
        relstack_ordinary_free(relstack_alloc(4321));
    puts("released");
}
