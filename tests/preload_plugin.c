/* A library that preload_prog loads, leaks from, and unloads before it
 * exits: its frames must still symbolize. */
#include <stdlib.h>

void *plugin_leak(size_t n);

__attribute__((noinline)) void *plugin_leak(size_t n)
{
    void *p = malloc(n);
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}
