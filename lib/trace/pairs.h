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

/* The allocations waiting for their release, by sequence number.
 *
 * Most live in pages indexed by the sequence number itself: a page covers
 * AT_PENDING_PAGE consecutive numbers, and an allocation's entry is the
 * one its number names, 24 bytes with no key, no index and no probing
 * (sequence numbers are dense: every event takes one, and nearly every
 * event is a record).  A page whose allocations were mostly released
 * while its numbers are no longer the newest gives its few survivors to
 * `hash` (at_pairs) and goes back to a spare list, so that a block kept
 * for ever costs an entry of the hash, not a page.  `hash` also takes the
 * allocations a page cannot hold (fields too wide, a number far beyond
 * the records read: a corrupt spool) and the releases read before their
 * allocation (AT_PAIR_FREE entries, which the caller manages there). */
enum { AT_PENDING_SHIFT = 12, AT_PENDING_PAGE = 1 << AT_PENDING_SHIFT };

typedef struct at_pending_page at_pending_page;

typedef struct at_pending {
    at_pairs hash;
    struct at_pending_page **pages; /* by seq >> AT_PENDING_SHIFT; NULL: none */
    size_t npages;                  /* length of `pages` */
    size_t top;                     /* 1 + the highest page index made so far */
    struct at_pending_page *spare;  /* emptied pages, kept for reuse */
    size_t nspare;
    size_t in_pages; /* allocations held in pages */
    uint64_t puts;   /* allocations put so far (bounds how far pages go) */
} at_pending;

/* Puts allocation `a` (an AT_PAIR_ALLOC entry, its seq not pending).
 * 0; 1 when an allocation with that seq is already held in a page (the
 * spool is corrupt; nothing changed); -1 without memory. */
int at__pending_put(at_pending *p, const at_pair *a);
/* Takes the allocation `seq` out: 1 and *out filled, or 0 when no
 * allocation with that seq is pending (an AT_PAIR_FREE entry of `hash`
 * is left alone). */
int at__pending_take(at_pending *p, uint64_t seq, at_pair *out);
/* Looks `seq` up without taking it: 1 and *out filled for a pending
 * allocation or an entry of `hash` (either state), else 0. */
int at__pending_peek(const at_pending *p, uint64_t seq, at_pair *out);
/* Allocations pending. */
size_t at__pending_count(const at_pending *p);
/* Calls fn for every pending allocation in sequence order, `nth` counting
 * them from 0; returns -1 (having called nothing) without the memory to
 * sort the hash's entries. */
int at__pending_each(const at_pending *p, void (*fn)(const at_pair *, uint64_t nth, void *),
                     void *arg);
/* Frees everything; the table is empty and usable again. */
void at__pending_free(at_pending *p);

#endif
