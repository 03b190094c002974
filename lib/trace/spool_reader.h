/* The spool's consumer (see spool_reader.c). */
#ifndef AT_SPOOL_READER_H
#define AT_SPOOL_READER_H

typedef struct at_spool_reader at_spool_reader;

/* Attaches to the spool at `spool_path` as its consumer and creates the
 * trace at `db_path` (never over an existing file unless `overwrite`).
 * 0 or a negative AT_E_* code. */
int at__spool_reader_open(const char *spool_path, const char *db_path, int overwrite,
                          at_spool_reader **out);

/* What at__spool_reader_open and _resume return when another consumer
 * (a live `alloctrace run`, another recover) holds the spool's lock. */
enum { AT_SPOOL_READER_BUSY = -100 };

/* The trace the one being written becomes at the end (another name while
 * `run --force` replaces an old trace): its file name goes into the
 * spool's header, for `alloctrace recover`.  The caller renames. */
void at__spool_reader_set_final(at_spool_reader *r, const char *final_path);

/* Attaches to a spool whose reader died (its lock is free) and reopens
 * the unfinished trace it was writing (the header's `writing`, in the
 * directory `db_dir`): records the trace already holds are skipped, the
 * halves it kept waiting are taken back.  0, AT_SPOOL_READER_BUSY, or a
 * negative AT_E_* code: AT_E_ACCESS no such file, AT_E_INVALID a file the
 * dead reader had not committed a trace into yet (the spool holds all),
 * AT_E_EXISTS the trace is complete already. */
int at__spool_reader_resume(const char *spool_path, const char *db_dir, at_spool_reader **out);

/* Turns every record available now into rows and gives full chunks back
 * once their rows are committed, at the end of the poll that read them.
 * Records read from chunks still being filled wait for a commit until a
 * full chunk is read or 50 ms passed (at__spool_reader_finish commits the
 * rest).  The number of bytes read, or a negative AT_E_* code.  After an
 * error the chunks stay in the spool (for `recover`) and the reader lets
 * the spool's lock go, so the program goes on as it would without a
 * recorder. */
long at__spool_reader_poll(at_spool_reader *r);

/* Reads what is left, writes the blocks still live, the timeline, the
 * module attribution, indexes, views and meta, closes the trace and frees
 * `r`.  *closed_properly says whether the producer closed the spool (0:
 * the process died first).  0 or a negative AT_E_* code. */
int at__spool_reader_finish(at_spool_reader *r, int *closed_properly);

/* Makes the trace an aggregated one (aggregate.h, `alloctrace run
 * --aggregate`); call before the first poll.  0 or AT_E_NOMEM. */
int at__spool_reader_aggregate(at_spool_reader *r);

/* Frees `r` without finishing the trace. */
void at__spool_reader_abandon(at_spool_reader *r);

#endif
