/* The live heap replayed from a trace's lifetimes: the one definition of
 * the peak and of the timeline, used when a trace is finished (the
 * `timeline` table and meta's peak_* keys) and by every reader that needs
 * more than those (alloctrace html, report on a trace that lacks them).
 * Belongs in the trace layer (lib/trace/).
 *
 * Events, in the order they are replayed:
 *   - an allocation at its lifetime's `seq`;
 *   - a release at `free_seq` (seq + free_dseq).
 * Tie rule: a release at the very sequence number of an allocation counts
 * before it.  Only a release the tracer did not see has such a number (a
 * block whose address was handed out again closes as `vanished` at the
 * new allocation's seq; a realloc that moves a block ends the old lifetime
 * and starts the new one at one seq): either way the old block was gone
 * when the new one appeared.  Releases of equal free_seq (only a hostile
 * trace has them) come in no particular order.
 *
 * The peak is the first allocation event after which the live bytes are
 * higher than after any event before it (0 bytes, seq 0: nothing was ever
 * live).  So the blocks live at the peak are exactly
 *   alloc_seq <= peak_seq AND (free_seq IS NULL OR free_seq > peak_seq)
 * and their sizes add up to peak_bytes.
 *
 * A negative free_dseq (a hostile trace) is taken as 0.  Sums saturate.
 */
#ifndef AT_REPLAY_H
#define AT_REPLAY_H

#include <stdint.h>

#include <sqlite3.h>

/* The heap after an event. */
typedef struct at_replay_state {
    int64_t seq, time_us;           /* of the event */
    int64_t live_bytes, live_blocks;
    int64_t alloc_calls, alloc_bytes, free_calls; /* events so far */
} at_replay_state;

typedef struct at_replay_event {
    int is_alloc;
    int new_peak;  /* this allocation raised the peak (the peak so far is here) */
    int point;     /* no event of the same seq follows: `after` is a point of the
                      timeline (a release and the allocation of one seq make one) */
    int64_t size;
    int64_t align; /* the allocation's alignment */
    int64_t stack; /* lifetimes.stack, 0 for none */
    at_replay_state after;
} at_replay_event;

typedef struct at_replay_peak {
    int64_t bytes, blocks, seq, time_us;
} at_replay_peak;

/* Called for every event, in replay order. */
typedef void at_replay_fn(void *arg, const at_replay_event *e);

/* Replays every lifetime of `db` (its `lifetimes` table: read only).
 * `fn` may be NULL.  `peak` and `end` (the state after the last event;
 * either may be NULL) are filled.  0, or AT_E_DB when a query fails. */
int at__replay(sqlite3 *db, at_replay_fn *fn, void *arg, at_replay_peak *peak,
               at_replay_state *end);

/* The peak as finishing stored it in meta (peak_bytes, peak_blocks,
 * peak_seq, peak_time_us); 1 if the trace has it, 0 if not (a trace
 * finished by an older alloctrace: call at__replay). */
int at__replay_stored_peak(sqlite3 *db, at_replay_peak *peak);

/* At finishing: replays the lifetimes, replaces the `timeline` table with
 * the replay's points (one every TIMELINE_PERIOD of trace time, the peak,
 * the last) and writes meta's peak_* keys.  Inside the caller's
 * transaction, if any.  0 or AT_E_DB. */
int at__replay_store(sqlite3 *db);

enum { AT_TIMELINE_PERIOD_US = 10000 };

/* The same replay without reading the lifetimes back, along with the
 * writing: a writer that sees every event as it reads it (the spool
 * reader) logs each (its allocation when read, its release when paired)
 * and the log replays them in seq order as they come, with the same tie
 * rule, into the same timeline and peak (a test compares the two).  Its
 * memory is a window of events (16 bytes each, 2^18 of them, more if
 * events come late) and the timeline's points, whatever the number of
 * calls.  An event that comes after the replay passed its seq (late) is
 * replayed where the replay stands and counted; a log that ran out of
 * memory or met a sequence number no process reaches is given up.
 * Completion replays the table instead of a log with either.  Events from
 * a log carry no stack or alignment: it serves at__replay_log_store, and
 * an aggregated trace's writer, which asks how far it got. */
typedef struct at_replay_log at_replay_log;

at_replay_log *at__replay_log_new(void); /* NULL without memory */
void at__replay_log_free(at_replay_log *l);
/* An allocation, a release, and a seq no event of the heap has (a pool's
 * block, say); times in microseconds, as the table stores them.  `l` may
 * be NULL. */
void at__replay_log_alloc(at_replay_log *l, int64_t seq, int64_t time_us, int64_t size);
void at__replay_log_release(at_replay_log *l, int64_t free_seq, int64_t time_us, int64_t size);
void at__replay_log_skip(at_replay_log *l, int64_t seq);
/* The reader of the records has read `n` events (allocations and
 * releases) so far: the log's bound on how far ahead a seq may be. */
void at__replay_log_events_read(at_replay_log *l, uint64_t n);
/* Every seq below this one has been replayed (-1: given up). */
int64_t at__replay_log_cursor(const at_replay_log *l);
/* Replays what is left: once every event is in. */
void at__replay_log_finish(at_replay_log *l);
/* The peak so far (the peak, after at__replay_log_finish): 0, or -1 when
 * the log is NULL or was given up. */
int at__replay_log_peak(const at_replay_log *l, at_replay_peak *peak);
/* Events that came late. */
uint64_t at__replay_log_late(const at_replay_log *l);
/* 1 if at__replay_log_store replays `l` (not NULL, not given up, nothing late). */
int at__replay_log_usable(const at_replay_log *l);
/* at__replay_store from the log, once finished (`l` not usable: from the table). */
int at__replay_log_store(const at_replay_log *l, sqlite3 *db);

#endif
