/* uthash, configured for the tracer: memory from mem.c (never malloc), a
 * non-fatal out-of-memory path (the caller sets `uthash_nonfatal_oom` to
 * whatever it needs before using HASH_ADD), and a fast hash for
 * pointer-sized keys, which are the only keys the tracer uses. */
#ifndef AT_UTHASH_H
#define AT_UTHASH_H

#include <stdint.h>

#include "mem.h"

static inline uint64_t at__mix_ptr(uintptr_t p)
{
    uint64_t h = (uint64_t)p >> 4;
    h *= 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

#define uthash_malloc(sz) at__mem_alloc(sz)
#define uthash_free(ptr, sz) at__mem_free(ptr, sz)
#define HASH_FUNCTION(keyptr, keylen, hashv)                                                       \
    ((hashv) = (unsigned)at__mix_ptr(*(const uintptr_t *)(keyptr)))
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

#endif
