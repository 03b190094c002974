/* The spool: a file-backed ring of record chunks shared between a traced
 * process (the producer: the preload library) and the process that turns
 * records into the SQLite trace (the consumer: `alloctrace run`).
 *
 * Why: a traced program can die at any moment (SIGKILL included), and its
 * own SQLite, libc locks or memory must never be needed to save what it
 * did.  Records are written straight into a MAP_SHARED mapping of the
 * spool file, so every record whose call returned is in the page cache
 * and survives the process; the consumer reads chunks as they fill and
 * gives them back for reuse, so the file stays small.
 *
 * Layout: a 4 KiB header, then up to max_chunks chunks of chunk_size
 * bytes.  A chunk is FREE, FILLING (owned by one producer thread, `used`
 * bytes valid, published with release stores) or FULL (waiting for the
 * consumer, who sets it FREE again).  `gen` changes each time a chunk is
 * taken, so the consumer knows a chunk was refilled.  The file is sparse:
 * only chunks ever used take disk space.
 */
#ifndef AT_SPOOL_H
#define AT_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buffers.h"

#define AT_SPOOL_MAGIC "ATSPOOL2"
enum {
    AT_SPOOL_HEADER = 4096,
    AT_SPOOL_CHUNK = 256 * 1024,
    AT_SPOOL_MAX_CHUNKS = 4096, /* 1 GiB of address space, sparse */
    /* What a spool read from a file may say (at__spool_open): chunks of
     * whole pages up to this size, at most AT_SPOOL_MAX_CHUNKS of them,
     * no more taken than there are; anything else is not a spool. */
    AT_SPOOL_CHUNK_LIMIT = 64 * 1024 * 1024,
    /* Chunks a producer whose consumer died may still add to the spool:
     * what it records then is kept for `alloctrace recover`, within 16 MiB
     * more of disk; what does not fit is counted as lost. */
    AT_SPOOL_ORPHAN_CHUNKS = 64,
    /* Chunks full and unread past which a producer thread that needs one
     * waits for the consumer to give one back (AT_SPOOL_BACKLOG_SPINS
     * naps of 200 us, 5 ms) before the spool grows: a spool that stays
     * small reuses chunks whose pages are mapped and cached, where a
     * growing one faults in a fresh file page every 4 KiB in both
     * processes (a malloc/free loop on two threads spent a third of its
     * CPU so: 5.3 s of CPU, 3.2 s of wall, with this 3.6 s and 2.3 s).  A
     * consumer that stops (a query holding the trace's lock) costs the
     * program that wait once per chunk, then the spool grows as before. */
    AT_SPOOL_BACKLOG = 32,
    AT_SPOOL_BACKLOG_SPINS = 25,
};
enum { AT_CHUNK_FREE = 0, AT_CHUNK_FILLING = 1, AT_CHUNK_FULL = 2 };

typedef struct at_spool_header {
    char magic[8];
    uint32_t chunk_size, max_chunks;
    uint32_t nchunks;     /* chunks ever taken (high-water mark) */
    int32_t producer_pid; /* 0 until a producer attaches */
    int32_t consumer_pid; /* 0 when nobody gives chunks back */
    uint32_t closed;      /* the producer wrote its END record */
    uint64_t waits;       /* times the producer waited for a free chunk */
    uint64_t dropped;     /* records lost: no chunk could be had */
    /* Nonzero from the producer's call to exec until that exec fails:
     * still set when the process image was replaced, so the spool is
     * complete although its pid lives on (an AT_REC_EXEC says the same
     * in the records). */
    uint64_t exec_seq;
    int32_t run_pid; /* the `alloctrace run` whose run wrote it (AT_ENV_RUN), or 0 */
    /* Nonzero once a consumer holds the spool's lock (at__spool_lock):
     * from then on the lock, not a pid, says whether it is alive. */
    uint32_t consumer_locked;
    /* Set by the first producer thread to find the consumer dead: at most
     * this many chunks from then on (the spool grows no more than
     * AT_SPOOL_ORPHAN_CHUNKS past what it held). */
    uint32_t orphan_limit;
    uint32_t pad;
    /* The trace the consumer writes, and the one it becomes at the end
     * (a different name while --force replaces an old trace): file names
     * in the spool's directory, NUL-terminated, empty when unknown. */
    char writing[256];
    char trace_name[256];
} at_spool_header;

/* A chunk's header; its at_buf (whose `used` the consumer reads) follows. */
typedef struct at_spool_chunk {
    uint32_t state;
    uint32_t pad;
    uint64_t gen;
} at_spool_chunk;

static inline at_buf *at__chunk_buf(at_spool_chunk *c)
{
    return (at_buf *)(c + 1);
}

typedef struct at_spool {
    at_spool_header *h;
    unsigned char *base;
    size_t map_size;
    int fd;
    int no_growth; /* a new chunk's disk blocks could not be had: no more */
    /* Set before create or open by a producer: only the header is mapped
     * at first, each chunk the first time the process takes or looks at
     * it (`chunks`, an anonymous mapping of max_chunks pointers), so the
     * program's address space (RLIMIT_AS) holds the chunks it used, not
     * the whole spool.  Consumers map it whole. */
    int windowed;
    unsigned char **chunks;
    /* Windowed, under RLIMIT_AS: the chunks the spool may grow to, a
     * sixteenth of the limit (at least 4), so that a reader that falls
     * behind makes the program wait rather than fill its address space;
     * 0: max_chunks. */
    uint32_t grow_limit;
    uint32_t scanners; /* threads looking through `chunks` (at__spool_get) */
    /* Chunks this process's threads hold (FILLING): when they are all of
     * them, no consumer can give one back, and a thread with none counts
     * its records as lost at once rather than wait (more threads alive
     * than the spool has chunks). */
    uint32_t filling;
    /* Producer: nobody gives chunks back any more (no consumer, or a dead
     * one), and none was free at the last look: every later record is
     * counted as lost at once, no chunk scanned. */
    int starved;
    /* Producer: while nobody gives chunks back, chunks below this index are
     * known taken (none is given back), so a search starts here. */
    uint32_t hint;
} at_spool;

/* Creates `path` (O_EXCL, mode 0600, never through a symlink) and maps it.
 * The file is sparse: a chunk's disk blocks are reserved (fallocate) when
 * it is first taken, so that a write through the mapping never faults on a
 * full disk (SIGBUS); one that cannot be had stops the spool's growth and
 * the records wait for a chunk given back, or are counted as dropped.
 * Under RLIMIT_FSIZE the file is made no larger than the limit (growing
 * past it would raise SIGXFSZ in the program).  0 or a negative AT_E_*
 * code (AT_E_IO: no room for the header, or a limit below two chunks). */
int at__spool_create(at_spool *s, const char *path);

/* Maps an existing spool; 0, AT_E_ACCESS or AT_E_INVALID (not a spool). */
int at__spool_open(at_spool *s, const char *path);

void at__spool_close(at_spool *s);

/* Chunk `i` of a spool mapped whole (a consumer's). */
static inline at_spool_chunk *at__spool_chunk(const at_spool *s, uint32_t i)
{
    return (at_spool_chunk *)(s->base + AT_SPOOL_HEADER + (size_t)i * s->h->chunk_size);
}

/* Consumer: takes the spool's lock (an open file description lock on its
 * first byte, held until `s` is closed or the process dies, whatever its
 * pid becomes later) and marks the spool as locked.  0, or AT_E_EXISTS
 * when another consumer holds it, AT_E_IO when locks are refused. */
int at__spool_lock(at_spool *s);

/* Consumer: lets the lock go while the spool stays open; to its producer
 * the consumer is then gone. */
void at__spool_unlock(at_spool *s);

/* Whether a consumer holds the lock of the spool open as `s` (tested, not
 * taken); a process that holds it itself through `s` is not seen. */
int at__spool_locked(const at_spool *s);

/* Producer: a chunk for the calling thread, waiting while the consumer is
 * alive and behind; NULL when none can be had (the caller counts the
 * record as lost).  The consumer is alive while it holds the spool's lock
 * (at__spool_lock); a spool no consumer ever locked is read after the
 * producer ends (nobody waits for it).  Once nobody gives chunks back the
 * producer never waits: it fills what the spool has, grows it by at most
 * AT_SPOOL_ORPHAN_CHUNKS past what it held when the consumer died, and
 * then counts every record as lost at the cost of one load.  It gets none
 * either when it has no address space to map one, or when every chunk is
 * held by a thread of this process. */
at_buf *at__spool_get(at_spool *s);

/* Producer: the chunk is full (or its thread is done with it).  A
 * windowed spool with no consumer unmaps it: only a consumer could give
 * it back. */
void at__spool_submit(at_spool *s, at_buf *b);

#endif
