/* The trace's row writers (rows.c), shared by the two writers of a trace:
 * the in-process SQLite sink (writer.c) and the spool reader
 * (spool_reader.c).  Errors are remembered (first one wins) and returned
 * by at__sqlw_error. */
#ifndef AT_SQLW_H
#define AT_SQLW_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "records.h"

typedef struct writer at_sqlw;

/* Prepared statements over `db`, whose tables exist; NULL without memory
 * or when a statement cannot be prepared. */
at_sqlw *at__sqlw_new(sqlite3 *db);
void at__sqlw_free(at_sqlw *w);
int at__sqlw_error(const at_sqlw *w);
/* Lifetimes written to lifetimes_late so far (for a test's fault hook). */
uint64_t at__sqlw_late_rows(const at_sqlw *w);
/* Lifetimes given to the aggregator so far, rows they are not. */
uint64_t at__sqlw_folding(const at_sqlw *w);
void at__sqlw_exec(at_sqlw *w, const char *sql);
/* Lifetimes are held back, to be inserted in sequence order: call
 * at__sqlw_flush before committing. */
void at__sqlw_lifetime(at_sqlw *w, const at_rec_lifetime *r);
void at__sqlw_flush(at_sqlw *w);
void at__sqlw_finding(at_sqlw *w, const at_rec_finding *f);
void at__sqlw_mark(at_sqlw *w, const at_rec_var *h, const unsigned char *payload);
void at__sqlw_thread(at_sqlw *w, uint32_t id, int64_t tid, const char *name);

/* From now on every event is also logged for the replay (replay.h): each
 * allocation as its record is read (at__sqlw_alloc_event), each release
 * with its lifetime; at__sqlw_take_replay_log hands the log over (the
 * caller frees it), NULL when none was kept. */
void at__sqlw_keep_replay_log(at_sqlw *w);
struct at_replay_log *at__sqlw_take_replay_log(at_sqlw *w);
void at__sqlw_alloc_event(at_sqlw *w, const at_rec_alloc *a);
/* The events (allocations and releases) read so far, for the log. */
void at__sqlw_events_read(at_sqlw *w, uint64_t n);

/* An aggregated trace (aggregate.h), for a writer that keeps the replay
 * log: from now on released lifetimes are folded, as the replay passes
 * them, rather than written.  0, AT_E_INVALID without a replay log,
 * AT_E_NOMEM. */
int at__sqlw_aggregate(at_sqlw *w);
/* Once every event has been read and every lifetime written (leaks
 * included), inside a transaction: the replay log replays what is left;
 * an aggregated trace's lifetimes live at the peak become rows, the
 * others the aggregate tables, and meta `aggregated` is set. */
void at__sqlw_events_done(at_sqlw *w);

/* The size of the record at `p` (`avail` bytes there), checked against
 * its kind and `avail`; 0 when it is not a record. */
size_t at__record_size(const unsigned char *p, size_t avail);

/* Stores a record that both writers receive alike (LIFETIME, FINDING,
 * THREAD, STACK, MARK, MODULE), checked by at__record_size first: 1, 0
 * when `p` is of another kind (ALLOC, FREE, META, END: the caller's), or
 * -1 when a field is out of range (an alignment of 2^64 or more, see
 * at__release_align_ok: a corrupt spool) and nothing was stored. */
int at__sqlw_record(at_sqlw *w, const unsigned char *p);

/* Whether a record's release (or request) alignment, log2, is one a
 * tracer writes: below 64, or AT_ALIGN_NOT_POW2.  A block's own alignment
 * is always a power of two: below 64. */
static inline int at__release_align_ok(uint8_t log2)
{
    return log2 < 64 || log2 == AT_ALIGN_NOT_POW2;
}

#endif
