/* The spool reader's half lifetimes waiting for their other half, keyed by
 * the allocation's sequence number (spool_reader.c).
 *
 * Entries are packed (44 bytes) and live inline in pages that never move,
 * recycled through a free list; an open-addressing index of 8-byte slots
 * (linear probing, backward-shift deletion) finds them.  No allocation per
 * entry: a live block costs its entry plus one to two index slots. */
#ifndef AT_PAIRS_H
#define AT_PAIRS_H

#include <stddef.h>
#include <stdint.h>

enum {
    AT_PAIR_UNUSED = 0, /* on the free list */
    AT_PAIR_ALLOC = 1,  /* an allocation waiting for its release */
    AT_PAIR_FREE = 2,   /* a release that came before its allocation */
};

/* What the reader needs of an allocation record or of a release record
 * (records.h), by `state`. */
typedef struct __attribute__((packed)) at_pair {
    uint64_t seq; /* the allocation's */
    union __attribute__((packed)) {
        struct __attribute__((packed)) {
            uint64_t ptr, size, t;
            uint32_t stack, thread;
            uint8_t family, op, align_log2;
        } a;
        struct __attribute__((packed)) {
            uint64_t free_seq, free_size, free_t;
            uint32_t free_thread, free_stack;
            uint8_t free_op, free_align_log2, free_layout_given;
        } f;
        uint32_t next_unused; /* AT_PAIR_UNUSED: the free list, ref + 1 */
    } u;
    uint8_t state;
} at_pair;

typedef struct at_pairs {
    uint64_t *slots; /* 0: empty; else (uint32 hash) << 32 | (ref + 1) */
    size_t mask;     /* slots - 1; no slots yet when `slots` is NULL */
    size_t count;    /* entries in use */
    at_pair **pages;
    size_t npages;
    uint32_t used;        /* refs handed out so far, free or not */
    uint32_t unused_head; /* the free list: ref + 1, 0 when empty */
} at_pairs;

/* The slot holding `seq`, or SIZE_MAX. */
size_t at__pairs_find(const at_pairs *p, uint64_t seq);
/* The entry in slot `slot` (from at__pairs_find). */
at_pair *at__pairs_at(const at_pairs *p, size_t slot);
/* A new entry for `seq`, whose other fields the caller sets (its state
 * included); `seq` must not be in the table.  NULL without memory. */
at_pair *at__pairs_add(at_pairs *p, uint64_t seq);
/* Removes the entry in slot `slot`. */
void at__pairs_remove(at_pairs *p, size_t slot);
/* The entries in use, in no particular order: from *cursor = 0 on, the
 * next one, or NULL at the end.  The table must not change meanwhile. */
at_pair *at__pairs_next(const at_pairs *p, uint32_t *cursor);
/* Frees everything; the table is empty and usable again. */
void at__pairs_free(at_pairs *p);

#endif
