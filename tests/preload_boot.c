/* Frees what its library allocated before tracing started. */
#include <stdio.h>

void bootlib_release(void);

int main(void)
{
    bootlib_release();
    puts("released");
    return 0;
}
