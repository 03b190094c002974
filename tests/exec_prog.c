/* A program for exec_test.py, whose allocations are known:
 *
 *   exec_prog leak        leaks one block of 4242 bytes (exec_leak_site)
 *   exec_prog clean       frees everything it allocates
 *   exec_prog failexec    an exec of a path that does not exist fails, then it
 *                         leaks one block of 4343 bytes (after_failed_exec)
 *   exec_prog reexec      allocates a block it never frees, then execs itself
 *                         as `exec_prog clean`: the block is released by the
 *                         exec, not leaked
 *   exec_prog vfork-exit  a vfork child that _exits, vfork-exec one that
 *   exec_prog vfork-exec  execs /bin/true, vfork-badexec one whose exec fails
 *   exec_prog vfork-badexec  and _exits: the parent then frees what it held
 *                         before (after_vfork_freed), churns, and leaks 4545
 *                         bytes (after_vfork): all of it in its trace
 *
 * Built dynamically and statically (exec_prog_static: nothing can be
 * preloaded into it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;

/* The compiler must not drop an allocation whose block is never used. */
#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

__attribute__((noinline)) static void exec_leak_site(void)
{
    char *p = malloc(4242);
    KEEP(p); /* then nothing points to it any more: definitely lost */
}

__attribute__((noinline)) static void after_failed_exec(void)
{
    char *p = malloc(4343);
    KEEP(p);
}

__attribute__((noinline)) static void after_vfork(void)
{
    char *p = malloc(4545);
    KEEP(p);
}

/* The child shares our memory and our tracer: whatever it does, exit or
 * exec, our trace goes on. */
static void vfork_then(const char *how)
{
    void *before = malloc(600);
    KEEP(before);
    pid_t pid = vfork();
    if (pid == 0) {
        if (strcmp(how, "vfork-exec") == 0)
            execl("/bin/true", "true", (char *)NULL);
        else if (strcmp(how, "vfork-badexec") == 0)
            execl("/nonexistent/alloctrace-vfork-test", "x", (char *)NULL);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    free(before);
    for (int i = 0; i < 20; i++) {
        void *p = malloc(50 + (size_t)i);
        sink = p;
        free(p);
    }
    sink = NULL;
    after_vfork();
}

static void clean(void)
{
    for (int i = 0; i < 10; i++) {
        void *p = malloc(100 + (size_t)i);
        sink = p;
        free(p);
    }
    sink = NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "clean";
    if (strcmp(mode, "leak") == 0) {
        exec_leak_site();
    } else if (strcmp(mode, "failexec") == 0) {
        execl("/nonexistent/alloctrace-exec-test", "x", (char *)NULL);
        int e = errno;
        printf("exec failed: %s\n", strerror(e));
        after_failed_exec();
    } else if (strncmp(mode, "vfork-", 6) == 0) {
        vfork_then(mode);
    } else if (strcmp(mode, "reexec") == 0) {
        sink = malloc(777); /* still pointed to at the exec: not a leak of any kind */
        execl("/proc/self/exe", argv[0], "clean", (char *)NULL);
        return 3;
    } else {
        clean();
    }
    fflush(stdout);
    return 0;
}
