/* Blocks with a known reachability at exit, one case per mode, for
 * reach_test.py, which runs each mode under valgrind's leak checker and under
 * `alloctrace run` and compares both with what this program intends.
 *
 *   reach_prog MODE [SHLIB]      (reach_prog list: the modes)
 *
 * Every block the case is about has a size of its own, and for each the
 * program prints one line on stdout,
 *
 *   block SIZE CLASS
 *
 * CLASS in the trace's words (definitely_lost, indirectly_lost,
 * possibly_lost, still_reachable): what the block must be at exit.  Each is
 * allocated at a call site of its own (no loops), so that valgrind gives it a
 * loss record of its own (records are per allocation stack).
 *
 * The pointers must be where the case says and nowhere else: stores go
 * through volatile objects, copies are cleared, each case runs in a noinline
 * function, and main scrubs the stack below it before returning, so that no
 * stale copy of a pointer in a popped frame is found by a scan from the stack
 * pointer upward (valgrind ignores such words anyway: memcheck marks them
 * undefined; a scanner that cannot know that would see them).
 *
 * Threads: "still running" threads are blocked (or spinning) when main returns
 * and exit() runs; they are never joined.  "joined" threads have returned and
 * been joined before main returns.  A joined thread's stack stays mapped in
 * glibc's cache of stacks, with what the thread left in it.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

/* The roots, each holding at most what one case puts there. */
static void *volatile g_root;
static void *volatile g_root2;
static uintptr_t volatile g_interior;
static __thread void *volatile t_root;

static int ready_pipe[2];

static void plan(size_t size, const char *class)
{
    printf("block %zu %s\n", size, class);
}

/* A block of SIZE bytes, zeroed (no stale word in it can look like a
 * pointer), allocated here: one valgrind loss record per caller's line. */
static NOINLINE void *block(size_t size)
{
    void *p = malloc(size);
    if (p == NULL) {
        perror("malloc");
        exit(2);
    }
    memset(p, 0, size);
    return p;
}

/* Stores a pointer in a heap block's word INDEX. */
static NOINLINE void link_to(void *from, size_t index, void *to)
{
    ((void *volatile *)from)[index] = to;
}

static void wait_ready(void)
{
    char c;
    if (read(ready_pipe[0], &c, 1) != 1) {
        perror("read ready pipe");
        exit(2);
    }
}

static void say_ready(void)
{
    if (write(ready_pipe[1], "r", 1) != 1)
        _exit(2);
}

static void start_thread(void *(*fn)(void *))
{
    pthread_t t;
    if (pipe(ready_pipe) != 0 || pthread_create(&t, NULL, fn, NULL) != 0) {
        perror("thread");
        exit(2);
    }
    pthread_detach(t);
    wait_ready();
}

static void run_and_join(void *(*fn)(void *))
{
    pthread_t t;
    if (pthread_create(&t, NULL, fn, NULL) != 0 || pthread_join(t, NULL) != 0) {
        perror("thread");
        exit(2);
    }
}

/* ---- lost ----------------------------------------------------------------- */

/* The only pointer overwritten.  3001 is the last block allocated, next to
 * glibc's top chunk, whose address (in main_arena) lies inside 3001's usable
 * size: it must not count as a pointer into it. */
static NOINLINE void mode_definite(void)
{
    g_root = block(3002);
    g_root = block(3001);
    g_root = NULL;
    plan(3001, "definitely_lost");
    plan(3002, "definitely_lost");
}

/* 3101 lost; from it a pointer to the start of 3102 and one into 3103. */
static NOINLINE void mode_indirect(void)
{
    void *lost = block(3101);
    link_to(lost, 0, block(3102));
    link_to(lost, 3, (char *)block(3103) + 200);
    plan(3101, "definitely_lost");
    plan(3102, "indirectly_lost");
    plan(3103, "indirectly_lost");
}

/* A lost list of four: the head definitely lost, the rest indirectly. */
static NOINLINE void mode_lost_list(void)
{
    void *a = block(3201);
    void *b = block(3202);
    void *c = block(3203);
    void *d = block(3204);
    link_to(a, 0, b);
    link_to(b, 0, c);
    link_to(c, 0, d);
    plan(3201, "definitely_lost");
    plan(3202, "indirectly_lost");
    plan(3203, "indirectly_lost");
    plan(3204, "indirectly_lost");
}

/* A lost cycle of three, nothing else pointing in.  valgrind makes the block
 * at the lowest address the definitely lost one (the first of the cycle it
 * meets walking blocks in address order) and the others indirectly lost: the
 * program says which one that is in this run. */
static NOINLINE void mode_cycle(void)
{
    void *a = block(3301);
    void *b = block(3302);
    void *c = block(3303);
    link_to(a, 0, b);
    link_to(b, 0, c);
    link_to(c, 0, a);
    uintptr_t lowest = (uintptr_t)a;
    size_t lowest_size = 3301;
    if ((uintptr_t)b < lowest) {
        lowest = (uintptr_t)b;
        lowest_size = 3302;
    }
    if ((uintptr_t)c < lowest)
        lowest_size = 3303;
    for (size_t s = 3301; s <= 3303; s++)
        plan(s, s == lowest_size ? "definitely_lost" : "indirectly_lost");
}

/* Only a pointer 40 bytes into 3401 (not 8 or 24 bytes in, where valgrind's
 * heuristics would call it a new[] array, a length-prefixed block or a
 * std::string); 3401 points to the start of 3402, which is therefore
 * possibly lost too (what a possibly lost block points to is no better). */
static NOINLINE void mode_possible(void)
{
    void *p = block(3401);
    link_to(p, 0, block(3402));
    g_interior = (uintptr_t)p + 40;
    plan(3401, "possibly_lost");
    plan(3402, "possibly_lost");
}

/* ---- still reachable ---------------------------------------------------- */

static NOINLINE void mode_global(void)
{
    g_root = block(3501);
    plan(3501, "still_reachable");
}

/* Reachable through heap blocks, four levels from a global; 4203 also holds
 * a pointer 100 bytes into 4205: possibly lost. */
static NOINLINE void mode_heap(void)
{
    void *a = block(4201);
    void *b = block(4202);
    void *c = block(4203);
    void *d = block(4204);
    link_to(c, 0, d);
    link_to(b, 5, c);
    link_to(a, 9, b);
    link_to(c, 7, (char *)block(4205) + 100);
    g_root = a;
    plan(4201, "still_reachable");
    plan(4202, "still_reachable");
    plan(4203, "still_reachable");
    plan(4204, "still_reachable");
    plan(4205, "possibly_lost");
}

/* A static in a shared library loaded with dlopen (reach_lib.c), and that
 * library's __thread variable, whose block glibc allocates when the main
 * thread first uses it (dynamic TLS, found through the thread's DTV). */
static NOINLINE void mode_shlib(const char *path)
{
    void *lib = dlopen(path, RTLD_NOW);
    if (lib == NULL) {
        fprintf(stderr, "reach_prog: %s\n", dlerror());
        exit(2);
    }
    void (*keep)(size_t);
    void (*keep_tls)(size_t);
    *(void **)&keep = dlsym(lib, "reach_lib_keep");
    *(void **)&keep_tls = dlsym(lib, "reach_lib_keep_tls");
    if (keep == NULL || keep_tls == NULL) {
        fprintf(stderr, "reach_prog: %s lacks reach_lib_keep*\n", path);
        exit(2);
    }
    keep(3601);
    keep_tls(3602);
    plan(3601, "still_reachable");
    plan(3602, "still_reachable");
}

/* The main thread's own static TLS. */
static NOINLINE void mode_tls_main(void)
{
    t_root = block(3901);
    plan(3901, "still_reachable");
}

/* ---- other threads -------------------------------------------------------- */

/* Holds 3701 in a local variable of its stack, blocked when the program
 * exits. */
static NOINLINE void *stack_thread(void *arg)
{
    (void)arg;
    void *volatile keep = block(3701);
    say_ready();
    for (;;)
        pause();
    return (void *)keep;
}

static NOINLINE void mode_thread_stack(void)
{
    start_thread(stack_thread);
    plan(3701, "still_reachable");
}

/* Holds 4001 in its static TLS, blocked when the program exits. */
static NOINLINE void *tls_thread(void *arg)
{
    (void)arg;
    t_root = block(4001);
    say_ready();
    for (;;)
        pause();
    return NULL;
}

static NOINLINE void mode_tls_thread(void)
{
    start_thread(tls_thread);
    plan(4001, "still_reachable");
}

/* Returns, is joined: 3801 was in a local of its (cached, still mapped)
 * stack, 3802 pointing to 3803 in another; all allocated by a thread of its
 * own (glibc: from another arena, an mmap'ed heap). */
static NOINLINE void *joined_thread(void *arg)
{
    (void)arg;
    void *volatile keep = block(3801);
    void *volatile lost = block(3802);
    link_to(lost, 0, block(3803));
    (void)keep;
    (void)lost;
    return NULL;
}

static NOINLINE void mode_thread_joined(void)
{
    run_and_join(joined_thread);
    plan(3801, "definitely_lost");
    plan(3802, "definitely_lost");
    plan(3803, "indirectly_lost");
}

/* Returns, is joined: 3804 in its static TLS, which lies in its stack's
 * mapping, cached by glibc and left as the thread left it. */
static NOINLINE void *tls_joined_thread(void *arg)
{
    (void)arg;
    t_root = block(3804);
    return NULL;
}

static NOINLINE void mode_tls_joined(void)
{
    run_and_join(tls_joined_thread);
    plan(3804, "definitely_lost");
}

/* Holds 4101 in a callee-saved register only (r12; the copy the compiler had
 * is cleared), blocked in a system call made by the same inline assembly, so
 * no function call can spill it.  With CLEAR, r12 is cleared too: the
 * control case, showing that the register was the only copy (4103). */
static NOINLINE void register_hold(size_t size, long clear)
{
    void *p = calloc(1, size);
#if defined(__x86_64__)
    static const char byte = 'r';
    long fd = ready_pipe[1];
    __asm__ volatile("mov %[p], %%r12\n\t"
                     "xor %[p], %[p]\n\t"
                     "test %[clear], %[clear]\n\t"
                     "jz 2f\n\t"
                     "xor %%r12d, %%r12d\n\t"
                     "2:\n\t"
                     "mov $1, %%eax\n\t" /* write(fd, &byte, 1) */
                     "mov %[fd], %%rdi\n\t"
                     "lea %[byte], %%rsi\n\t"
                     "mov $1, %%edx\n\t"
                     "syscall\n\t"
                     "1:\n\t"
                     "mov $34, %%eax\n\t" /* pause() */
                     "syscall\n\t"
                     "jmp 1b\n\t"
                     : [p] "+r"(p)
                     : [fd] "r"(fd), [byte] "m"(byte), [clear] "r"(clear)
                     : "rax", "rcx", "rdx", "rsi", "rdi", "r11", "r12", "memory");
    __builtin_unreachable();
#else
    (void)p;
    (void)clear;
    fputs("reach_prog: modes register* are written for x86-64 only\n", stderr);
    _exit(2);
#endif
}

static NOINLINE void *register_thread(void *arg)
{
    (void)arg;
    register_hold(4101, 0);
    return NULL;
}

static NOINLINE void *register_cleared_thread(void *arg)
{
    (void)arg;
    register_hold(4103, 1);
    return NULL;
}

static NOINLINE void mode_register(void)
{
    start_thread(register_thread);
    plan(4101, "still_reachable");
}

static NOINLINE void mode_register_cleared(void)
{
    start_thread(register_cleared_thread);
    plan(4103, "definitely_lost");
}

/* Holds 4102 in a register while spinning: no call between calloc and the
 * loop, so no copy in memory. */
static atomic_int spin_ready;

static NOINLINE void *spin_thread(void *arg)
{
    (void)arg;
    void *p = calloc(1, 4102);
    atomic_store(&spin_ready, 1);
    for (;;)
        __asm__ volatile("" : : "r"(p));
    return NULL;
}

static NOINLINE void mode_register_spin(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, spin_thread, NULL) != 0) {
        perror("thread");
        exit(2);
    }
    pthread_detach(t);
    struct timespec ms = {0, 1000000};
    while (!atomic_load(&spin_ready))
        nanosleep(&ms, NULL);
    plan(4102, "still_reachable");
}

/* ---- mappings ------------------------------------------------------------- */

static void *map_page(void)
{
    void *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    return m;
}

/* The only pointer in an anonymous mapping still mapped (read-write):
 * reachable.  One in a mapping unmapped since: lost. */
static NOINLINE void mode_mmap(void)
{
    void *m = map_page();
    ((void *volatile *)m)[100] = block(4301);
    void *gone = map_page();
    ((void *volatile *)gone)[100] = block(4302);
    munmap(gone, 8192);
    plan(4301, "still_reachable");
    plan(4302, "definitely_lost");
}

/* The only pointers in mappings made read-only and inaccessible since. */
static NOINLINE void mode_mmap_protected(void)
{
    void *ro = map_page();
    ((void *volatile *)ro)[100] = block(4303);
    void *none = map_page();
    ((void *volatile *)none)[100] = block(4304);
    if (mprotect(ro, 8192, PROT_READ) != 0 || mprotect(none, 8192, PROT_NONE) != 0) {
        perror("mprotect");
        exit(2);
    }
    plan(4303, "definitely_lost");
    plan(4304, "definitely_lost");
}

/* ---- a killed program ----------------------------------------------------- */

static NOINLINE void mode_killed(void)
{
    g_root = block(4501);
    g_root2 = block(4502);
    g_root2 = NULL;
    plan(4501, "unknown");
    plan(4502, "unknown");
    fflush(stdout);
    raise(SIGKILL);
}

/* ---- main ------------------------------------------------------------------- */

/* Overwrites the stack below main's frame, where the cases' frames were. */
static NOINLINE void scrub_stack(void)
{
    char buf[64 * 1024];
    memset(buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
}

struct mode {
    const char *name;
    void (*fn)(void);
};

static const struct mode modes[] = {
    {"definite", mode_definite},
    {"indirect", mode_indirect},
    {"lost-list", mode_lost_list},
    {"cycle", mode_cycle},
    {"possible", mode_possible},
    {"global", mode_global},
    {"heap", mode_heap},
    {"tls-main", mode_tls_main},
    {"thread-stack", mode_thread_stack},
    {"tls-thread", mode_tls_thread},
    {"thread-joined", mode_thread_joined},
    {"tls-joined", mode_tls_joined},
    {"register", mode_register},
    {"register-cleared", mode_register_cleared},
    {"register-spin", mode_register_spin},
    {"mmap", mode_mmap},
    {"mmap-protected", mode_mmap_protected},
    {"killed", mode_killed},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs("usage: reach_prog MODE [SHLIB]   (reach_prog list: the modes)\n", stderr);
        return 2;
    }
    if (strcmp(argv[1], "list") == 0) {
        for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
            puts(modes[i].name);
        puts("shlib");
        return 0;
    }
    int found = 0;
    if (strcmp(argv[1], "shlib") == 0 && argc == 3) {
        mode_shlib(argv[2]);
        found = 1;
    }
    for (size_t i = 0; !found && i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(argv[1], modes[i].name) == 0) {
            modes[i].fn();
            found = 1;
        }
    }
    if (!found) {
        fprintf(stderr, "reach_prog: unknown mode %s\n", argv[1]);
        return 2;
    }
    scrub_stack();
    return 0;
}
