/* Files the CLI writes for the user (the HTML page, a report with -o):
 * never through a symbolic link, never replacing what is not a regular
 * file, mode 0600 like the trace they are made of, and complete or not
 * there at all.
 *
 * A regular file (or none) at the path: the output goes to a new file
 * next to it, created with O_CREAT|O_EXCL|O_NOFOLLOW under a name no one
 * can guess (mkostemp), and is renamed over the path once it is written
 * and closed.  A FIFO or a character device (a pipe, /dev/stdout, a
 * terminal) is written into, as it is: it is not replaced.  A symbolic
 * link to one of those is followed (/dev/stdout is one); to anything else
 * it is refused, as is a directory, a block device or a socket. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static int is_stream(mode_t m)
{
    return S_ISFIFO(m) || S_ISCHR(m);
}

FILE *cli_output_open(const char *path, cli_output *o)
{
    memset(o, 0, sizeof *o);
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        struct stat target;
        int follows = S_ISLNK(st.st_mode) && stat(path, &target) == 0;
        if (is_stream(st.st_mode) || (follows && is_stream(target.st_mode))) {
            int fd = open(path, O_WRONLY | O_CLOEXEC);
            FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
            if (!f) {
                fprintf(stderr, "alloctrace: cannot write %s: %s\n", path, strerror(errno));
                if (fd >= 0)
                    close(fd);
            }
            return f;
        }
        fprintf(stderr, "alloctrace: %s: %s; not replaced\n", path,
                S_ISLNK(st.st_mode) ? "is a symbolic link"
                : S_ISDIR(st.st_mode) ? "is a directory"
                                      : "is not a regular file");
        return NULL;
    }
    size_t n = strlen(path) + sizeof ".XXXXXX";
    o->tmp = malloc(n);
    if (!o->tmp) {
        fprintf(stderr, "alloctrace: out of memory\n");
        return NULL;
    }
    snprintf(o->tmp, n, "%s.XXXXXX", path);
    int fd = mkostemp(o->tmp, O_CLOEXEC); /* O_CREAT|O_EXCL, mode 0600 */
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        fprintf(stderr, "alloctrace: cannot write %s: %s\n", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(o->tmp);
        }
        free(o->tmp);
        o->tmp = NULL;
        return NULL;
    }
    o->path = path;
    return f;
}

int cli_output_close(FILE *f, cli_output *o, int failed)
{
    int bad = failed || ferror(f);
    if (fclose(f) != 0)
        bad = 1;
    if (!o->tmp) {
        if (bad)
            fprintf(stderr, "alloctrace: writing failed: %s\n", strerror(errno ? errno : EIO));
        return bad ? -1 : 0;
    }
    /* The path may have changed meanwhile: still replace only a regular
     * file (rename never follows a link at the destination: it replaces
     * the link, which is refused here too). */
    struct stat st;
    if (!bad && lstat(o->path, &st) == 0 && !S_ISREG(st.st_mode)) {
        fprintf(stderr, "alloctrace: %s: is no longer a regular file; not replaced\n", o->path);
        bad = 1;
        errno = 0;
    } else if (!bad && rename(o->tmp, o->path) != 0) {
        bad = 1;
    }
    if (bad) {
        if (errno)
            fprintf(stderr, "alloctrace: cannot write %s: %s\n", o->path, strerror(errno));
        unlink(o->tmp);
    }
    free(o->tmp);
    o->tmp = NULL;
    return bad ? -1 : 0;
}
