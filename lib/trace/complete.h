/* Completing a trace, and the trace's meta keys.
 *
 * Every trace is completed by one function, at__trace_complete, whoever
 * wrote its rows: the in-process writer when at_tracer_close() runs
 * (writer.c), the spool reader when the traced program has ended
 * (spool_reader.c: `alloctrace run` and `alloctrace recover` of a spool),
 * and `alloctrace recover` of a trace whose writer died before finishing
 * it.  Readers (report, check, html, query) never complete a trace: they
 * refuse an unfinished one and name the command that completes it.
 *
 * Every meta row goes through the functions below, by a key of the one
 * table of meta keys, AT_META_KEYS (docs/schema.md documents each one;
 * tests/complete_test.py keeps the two the same).
 */
#ifndef AT_COMPLETE_H
#define AT_COMPLETE_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

/* X(ENUM_SUFFIX, "name") for every key of the meta table. */
#define AT_META_KEYS(X)                                                                            \
    X(FORMAT, "format")                                                                            \
    X(SCHEMA_VERSION, "schema_version")                                                            \
    X(LIBRARY_VERSION, "library_version")                                                          \
    X(PID, "pid")                                                                                  \
    X(EXECUTABLE, "executable")                                                                    \
    X(ARGUMENTS, "arguments")                                                                      \
    X(START_TIME, "start_time")                                                                    \
    X(END_TIME, "end_time")                                                                        \
    X(DURATION_US, "duration_us")                                                                  \
    X(CLOCK, "clock")                                                                              \
    X(TIME_UNIT, "time_unit")                                                                      \
    X(STACK_DEPTH, "stack_depth")                                                                  \
    X(ALLOC_CALLS, "alloc_calls")                                                                  \
    X(ALLOC_BYTES, "alloc_bytes")                                                                  \
    X(FREE_CALLS, "free_calls")                                                                    \
    X(FINDINGS, "findings")                                                                        \
    X(LOST_EVENTS, "lost_events")                                                                  \
    X(BACKPRESSURE_WAITS, "backpressure_waits")                                                    \
    X(WRITER_ERROR, "writer_error")                                                                \
    X(SYMBOLIZED, "symbolized")                                                                    \
    X(PROGRAM_END, "program_end")                                                                  \
    X(SPOOL_ERRORS, "spool_errors")                                                                \
    X(PEAK_BYTES, "peak_bytes")                                                                    \
    X(PEAK_BLOCKS, "peak_blocks")                                                                  \
    X(PEAK_SEQ, "peak_seq")                                                                        \
    X(PEAK_TIME_US, "peak_time_us")                                                                \
    X(WRITER_PID, "writer_pid")                                                                    \
    X(SPOOL_CHUNKS, "spool_chunks")                                                                \
    X(PARENT_PID, "parent_pid")                                                                    \
    X(REACH_SCAN, "reach_scan")                                                                    \
    X(REACH_THREADS, "reach_threads")                                                              \
    X(REACH_THREADS_UNSTOPPED, "reach_threads_unstopped")                                          \
    X(REACH_SCANNED_BYTES, "reach_scanned_bytes")                                                  \
    X(REACH_SKIPPED_BYTES, "reach_skipped_bytes")                                                  \
    X(REACH_US, "reach_us")                                                                        \
    X(REACH_SEQ, "reach_seq")                                                                      \
    X(REACH_BLOCKS, "reach_blocks")                                                                \
    X(EXEC_FROM, "exec_from")                                                                      \
    X(AGGREGATED, "aggregated")                                                                    \
    X(AGGREGATING, "aggregating")                                                                  \
    X(REPLAY_LATE_EVENTS, "replay_late_events")                                                    \
    X(FINISHED, "finished")

typedef enum at_meta_key {
#define AT_META_ENUM_(id, name) AT_META_##id,
    AT_META_KEYS(AT_META_ENUM_)
#undef AT_META_ENUM_
    AT_META_NKEYS
} at_meta_key;

/* The key's name in the meta table. */
const char *at__meta_name(at_meta_key key);

/* The key called `name`, or -1 when the table has none. */
int at__meta_key_named(const char *name, size_t len);

/* INSERT OR REPLACE of one meta row; no transaction of its own.  0 or AT_E_DB. */
int at__meta_set_int(sqlite3 *db, at_meta_key key, int64_t v);
int at__meta_set_text(sqlite3 *db, at_meta_key key, const char *v);

/* The integer value of `key`, or `dflt` (no row, NULL, error). */
int64_t at__meta_get_int(sqlite3 *db, at_meta_key key, int64_t dflt);

/* Appends to meta.arguments (a JSON array built by SQLite, so any byte is
 * escaped correctly) the `argc` strings of `argv`, or, when argv is NULL,
 * the NUL-separated strings of the `len` bytes at `list` (as in
 * /proc/self/cmdline).  0 or AT_E_DB. */
int at__meta_append_arguments(sqlite3 *db, char *const *argv, int argc, const char *list,
                              size_t len);

/* The current UTC time as ISO 8601. */
void at__iso_time(char *out, size_t n);

/* The meta rows every new trace starts with: format, versions, start time,
 * clock, empty arguments, finished = 0.  Inside the caller's transaction.
 * 0 or AT_E_DB. */
int at__trace_begin(sqlite3 *db);

/* How the program that a trace records ended, as its writer knows it. */
typedef enum at_program_end {
    AT_PROGRAM_END_UNRECORDED = 0, /* not written (a tracer closed in-process) */
    AT_PROGRAM_END_CLOSED = 1,     /* it closed its trace */
    AT_PROGRAM_END_DIED = 2,       /* it ended before closing it */
    AT_PROGRAM_END_EXEC = 3,       /* its image was replaced by exec */
} at_program_end;

/* What the writer of a trace knows at its end. */
typedef struct at_trace_end {
    at_program_end program_end;
    /* The producer's own totals (and duration_us) are below; otherwise
     * they are counted from the rows that reached the trace. */
    int totals_known;
    int64_t duration_us, alloc_calls, alloc_bytes, free_calls, findings;
    int64_t lost_events, backpressure_waits;
    int writer_error;
    /* Written from a spool: spool_chunks and spool_errors are recorded. */
    int spooled;
    int64_t spool_chunks, spool_errors;
    /* Every lifetime, logged as it was written (replay.h), or NULL: the
     * replay then reads them back from the table. */
    const struct at_replay_log *replay_log;
} at_trace_end;

/* Completes the trace `db` (whose rows, leak rows of the blocks still live
 * included, are all written, and which no transaction is open on):
 *   1. frames attributed to the modules recorded (module_rows.h);
 *   2. the live heap replayed (replay.h): the timeline and meta's peak_*
 *      keys, unless meta.finished = 1 already;
 *   3. indexes and views (schema.h), unless they exist;
 *   4. frames symbolized and the runtime's own blocks classified
 *      (symbolize.h, runtime.h), then each stack's site decided
 *      (sites.h), unless meta.symbolized = 1 already;
 *   5. unless meta.finished = 1 already: the end's meta keys (end_time,
 *      totals, program_end, writer_error, symbolized, and spool_* for a
 *      spooled trace), then finished = 1, last, in one transaction.
 * `end` NULL: nothing is known about the end (a trace whose writer died):
 * the program is recorded as died and the totals are counted from the rows.
 * Steps done already are skipped, so a trace a failed completion left half
 * done can be completed again.  AT_ENV_TIMING prints how long each step
 * took.  0, AT_E_NOMEM or AT_E_DB. */
int at__trace_complete(sqlite3 *db, const at_trace_end *end);

/* Moves the rows of lifetimes_late (schema.h) into lifetimes, in sequence
 * order, in a transaction of its own, and drops the table; nothing when
 * there is none.  Completion does it, and a resumed spool reader before it
 * asks the trace which lifetimes it holds. */
int at__trace_merge_late(sqlite3 *db);

/* Attaches the trace's late file (the trace's path and "-late") as
 * `late`, created if `create`, else only when it exists; outside a
 * transaction.  0 or AT_E_DB. */
int at__trace_attach_late(sqlite3 *db, int create);

/* Removes the late file of the trace at `trace_path` and its journal, if
 * there are any: once merged, or when a new trace of that name begins. */
void at__trace_remove_late(const char *trace_path);

/* Progress for a user waiting (NULL: none; the CLI sets it to show
 * progress on a terminal): called with each step's name as completion,
 * or the spool reader's last drain, enters it, with NULL when it is done,
 * and with the same name again every few hundred thousand steps of a
 * long SQLite statement. */
extern void (*at__trace_progress)(const char *step);

/* 1 when `db` is complete (meta.finished = 1 and meta.symbolized = 1),
 * else 0: at__trace_complete has something left to do. */
int at__trace_is_complete(sqlite3 *db);

#endif
