/* Leaks inside functions the compiler must inline (tests/inline_test.py):
 * inline_leak_one() from two lines of inline_caller(), and a chain of two,
 * inline_leak_outer() inlining inline_leak_inner().  Built at -O2, so
 * only the DWARF's inlined instances tell the helpers and the caller's
 * lines apart.  The test finds the lines by the markers "@NAME" in
 * comments. */
#include <stdlib.h>
#include <string.h>

/* The pointer escapes into nothing: the block is lost, and the calls are
 * no tail calls. */
#define DROP(p) __asm__ volatile("" : : "r"(p) : "memory")

__attribute__((always_inline)) static inline char *inline_leak_one(size_t n)
{
    char *p = malloc(n); /* @one_malloc */
    if (p)
        memset(p, 1, n);
    return p;
}

__attribute__((always_inline)) static inline char *inline_leak_inner(size_t n)
{
    char *p = malloc(n); /* @inner_malloc */
    if (p)
        p[0] = 2;
    return p;
}

__attribute__((always_inline)) static inline char *inline_leak_outer(size_t n)
{
    char *p = inline_leak_inner(n + 1); /* @outer_calls_inner */
    if (p)
        p[0] = 3;
    return p;
}

__attribute__((noinline)) void inline_caller(size_t n);
__attribute__((noinline)) void inline_caller(size_t n)
{
    char *a = inline_leak_one(n + 100); /* @caller_first */
    DROP(a);
    char *b = inline_leak_one(n + 200); /* @caller_second */
    DROP(b);
    char *c = inline_leak_outer(n + 300); /* @caller_chain */
    DROP(c);
}

int main(int argc, char **argv)
{
    (void)argv;
    inline_caller((size_t)argc);
    return 0;
}
