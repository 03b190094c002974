/* An aggregated trace (`alloctrace run --aggregate`, docs/schema.md):
 * released lifetimes folded into one row per site and kind of lifetime
 * instead of one row each, except those that must stay exact.
 *
 * The writer (rows.c) hands every released lifetime it would write to
 * at__agg_add instead, and tells at__agg_advance how far the replay
 * (replay.h, which sees every event as it is read) has got and where the
 * peak so far is.  A lifetime whose release the replay has passed is
 * folded at once unless it was live at the peak so far; those are held,
 * and folded when a later peak comes (they were not live at it).  At the
 * end, at__agg_finish gives back as rows the lifetimes held, live at the
 * peak, and writes the aggregates to the tables `aggregates`,
 * `aggregate_sizes` and `aggregate_lifetimes`.  Blocks still live at the
 * end, and releases that passed a layout of their own (findings' blocks),
 * never come here: they are rows.
 *
 * Memory: the lifetimes waiting for the replay to pass their release (a
 * window of events) and up to 65536 of those live at the peak, 80 bytes
 * each; not one per call.  Past that bound a lifetime live at the peak is
 * written as a row at once (and stays one: a program whose peak holds
 * millions of blocks has them as rows, as a full trace would). */
#ifndef AT_AGGREGATE_H
#define AT_AGGREGATE_H

#include <sqlite3.h>
#include <stdint.h>

#include "records.h"

typedef struct at_agg at_agg;

at_agg *at__agg_new(void); /* NULL without memory */
void at__agg_free(at_agg *a);

/* A released lifetime, waiting for at__agg_advance; 0, or -1 without
 * memory (the caller then writes it as a row). */
int at__agg_add(at_agg *a, const at_rec_lifetime *r);

/* The replay has passed every seq below `replayed` (-1: all of them),
 * and the peak so far is at `peak_seq` (-1: unknown, the replay log was
 * given up): folds the lifetimes it can, and calls `row` for any it can
 * neither fold nor hold for want of memory. */
void at__agg_advance(at_agg *a, int64_t replayed, int64_t peak_seq,
                     void (*row)(void *arg, const at_rec_lifetime *r), void *arg);

/* Once every event is replayed: folds what is left, calls `row` for every
 * lifetime live at the peak (`peak_seq`; -1 when unknown, and then none
 * is), and creates and fills the aggregate tables, in the caller's
 * transaction; meta `aggregated` is set, and `replay_late_events` when
 * `late` events made the peak approximate.  0 or AT_E_DB / AT_E_NOMEM. */
int at__agg_finish(at_agg *a, sqlite3 *db, int64_t peak_seq, uint64_t late,
                   void (*row)(void *arg, const at_rec_lifetime *r), void *arg);

/* Size class of `size` (the bit length of size - 1, 0 for 0 and 1), as the
 * tools' layout grid counts them; lifetime class of a lifetime of `ns`
 * nanoseconds (its bit length: 0 for 0, k for [2^(k-1), 2^k)). */
int at__agg_size_class(uint64_t size);
int at__agg_lifetime_class(uint64_t ns);
/* Bytes lost rounding `size` up to a multiple of `align` (a power of two). */
uint64_t at__agg_padding(uint64_t size, uint64_t align);

#endif
