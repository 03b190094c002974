/* A program that leaks, then fills the file system its trace is on, for
 * tests/recover_faults_test.py: N blocks of assorted sizes leaked through
 * leak_site() (their addresses and sizes, one a line, written to LEAKED),
 * then FILLER written until the file system is full (ENOSPC), left there.
 * It says on stdout how many it leaked and how many bytes filled the disk.
 *
 *     fill_prog LEAKED FILLER N */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((noinline)) static void *leak_site(size_t n)
{
    void *p = malloc(n);
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}

/* Writes FILLER until the disk is full: the bytes written, -1 on another error. */
static long long fill(const char *path)
{
    static char block[64 * 1024];
    memset(block, 'x', sizeof block);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    long long total = 0;
    for (;;) {
        ssize_t n = write(fd, block, sizeof block);
        if (n > 0) {
            total += n;
            continue;
        }
        int full = n < 0 && errno == ENOSPC;
        close(fd);
        return full ? total : -1;
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: fill_prog LEAKED FILLER N\n");
        return 2;
    }
    long n = atol(argv[3]);
    FILE *out = fopen(argv[1], "w");
    if (!out)
        return 1;
    for (long i = 0; i < n; i++) {
        size_t size = 5000 + (size_t)(i * 7919 % 1000);
        void *p = leak_site(size);
        memset(p, 1, size);
        fprintf(out, "%lu %zu\n", (unsigned long)(uintptr_t)p, size);
    }
    fclose(out);
    long long filled = fill(argv[2]);
    printf("leaked %ld blocks, filled %s\n", n, filled > 0 ? "the disk" : "nothing");
    return filled > 0 ? 0 : 1;
}
