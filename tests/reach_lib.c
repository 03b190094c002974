/* Loaded by reach_prog's mode shlib with dlopen: a block held only by a
 * static of this library, and one held only by this library's __thread
 * variable (dynamic TLS: glibc allocates the main thread's block of it on
 * first use, and finds it through the thread's DTV). */
#include <stdlib.h>
#include <string.h>

void reach_lib_keep(size_t size);
void reach_lib_keep_tls(size_t size);

static void *volatile lib_root;
static __thread void *volatile lib_tls_root;

static void *zeroed(size_t size)
{
    void *p = malloc(size);
    if (p == NULL)
        abort();
    memset(p, 0, size);
    return p;
}

void reach_lib_keep(size_t size)
{
    lib_root = zeroed(size);
}

void reach_lib_keep_tls(size_t size)
{
    lib_tls_root = zeroed(size);
}
