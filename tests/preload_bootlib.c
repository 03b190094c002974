/* A library whose constructor allocates before the preload library's
 * constructor has run (it is a dependency of the program, so it starts
 * first): thousands of blocks the program frees later, and three it
 * leaks. */
#include <stdlib.h>

void bootlib_release(void);

enum { MANY = 5000 };
static void *blocks[MANY];
static void *leaked[3];

__attribute__((constructor)) static void bootlib_start(void)
{
    for (int i = 0; i < MANY; i++)
        blocks[i] = malloc(32);
    for (int i = 0; i < 3; i++) {
        leaked[i] = malloc(100);
        __asm__ volatile("" : : "r"(leaked[i]) : "memory");
    }
    leaked[0] = leaked[1] = leaked[2] = NULL; /* forgotten: a real leak */
}

void bootlib_release(void)
{
    for (int i = 0; i < MANY; i++)
        free(blocks[i]);
}
