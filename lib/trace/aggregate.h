/* An aggregated trace (`alloctrace run --aggregate`, docs/schema.md):
 * released lifetimes folded into one row per site and kind of lifetime
 * instead of one row each, except those that must stay exact.
 *
 * The writer (rows.c) hands every released lifetime it would write to
 * at__agg_add instead; the replay log (replay.h) still sees every one, so
 * the peak and the timeline stay exact.  At the end, once the peak is
 * known (at__replay_log_peak), at__agg_finish gives back as rows the
 * lifetimes live at the peak, and writes the aggregates of all the others
 * to the tables `aggregates`, `aggregate_sizes` and `aggregate_lifetimes`.
 * Blocks still live at the end, and releases that passed a layout of their
 * own (findings' blocks), never come here: they are rows.
 *
 * Until the end every released lifetime is held (80 bytes each): the peak
 * is only known once every event has been read, and any of them may be
 * live at it.  The file is bounded; the writer's memory is not yet. */
#ifndef AT_AGGREGATE_H
#define AT_AGGREGATE_H

#include <sqlite3.h>
#include <stdint.h>

#include "records.h"

typedef struct at_agg at_agg;

at_agg *at__agg_new(void); /* NULL without memory */
void at__agg_free(at_agg *a);

/* A released lifetime, held until at__agg_finish; 0, or -1 without memory
 * (the caller then writes it as a row). */
int at__agg_add(at_agg *a, const at_rec_lifetime *r);

/* Calls `row` for every lifetime held that was live at the peak (allocated
 * at or before `peak_seq`, released after it), or for every one when
 * `peak_seq` < 0 (the peak is unknown: the trace is then a full one), and
 * creates and fills the aggregate tables with the others, in the caller's
 * transaction; meta `aggregated` says which.  0 or AT_E_DB / AT_E_NOMEM. */
int at__agg_finish(at_agg *a, sqlite3 *db, int64_t peak_seq,
                   void (*row)(void *arg, const at_rec_lifetime *r), void *arg);

/* Size class of `size` (the bit length of size - 1, 0 for 0 and 1), as the
 * tools' layout grid counts them; lifetime class of a lifetime of `ns`
 * nanoseconds (its bit length: 0 for 0, k for [2^(k-1), 2^k)). */
int at__agg_size_class(uint64_t size);
int at__agg_lifetime_class(uint64_t ns);
/* Bytes lost rounding `size` up to a multiple of `align` (a power of two). */
uint64_t at__agg_padding(uint64_t size, uint64_t align);

#endif
