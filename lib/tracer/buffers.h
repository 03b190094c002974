/* Record buffers between allocating threads and the in-process writer
 * (the SQLite sink, trace/writer.c).
 *
 * Each thread fills a buffer of its own; a full buffer is handed to the
 * writer's queue and the thread takes an empty one from the pool.  The pool
 * is bounded: when the writer falls this far behind, producers wait for a
 * buffer to come back (backpressure), never grow memory without limit.
 * Buffers are mapped with mem.c, never malloc'd.
 */
#ifndef AT_BUFFERS_H
#define AT_BUFFERS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct at_buf {
    struct at_buf *next;
    size_t used;
    size_t cap;
    unsigned char data[];
} at_buf;

typedef struct at_bufq {
    pthread_mutex_t mu;
    pthread_cond_t work;  /* the writer waits here */
    pthread_cond_t space; /* producers wait here */
    at_buf *full_head, *full_tail;
    at_buf *empty;
    size_t nbufs, max_bufs, buf_size;
    uint64_t waits; /* times a producer had to wait: backpressure */
    int stop;
} at_bufq;

int at__bufq_init(at_bufq *q, size_t buf_size, size_t limit_bytes);
void at__bufq_destroy(at_bufq *q);

/* An empty buffer, waiting while the pool is exhausted.  NULL only when no
 * buffer can be mapped at all and none is in use (the caller then drops the
 * record and counts it as lost). */
at_buf *at__bufq_get(at_bufq *q);

/* Hands a buffer (possibly partly filled, possibly empty) to the writer. */
void at__bufq_submit(at_bufq *q, at_buf *b);

/* Writer side: every submitted buffer, oldest first, waiting up to
 * `timeout_ms` for one.  NULL on timeout or when stopping with none left.
 * *stopped says whether at__bufq_stop had been called when the list was
 * taken, read with it under the queue's lock: stopped with an empty list
 * means nothing more will come (read apart, a buffer submitted between
 * the two reads, just before the stop, would be left behind). */
at_buf *at__bufq_take(at_bufq *q, int timeout_ms, int *stopped);

/* Writer side: returns drained buffers to the pool. */
void at__bufq_recycle(at_bufq *q, at_buf *list);

/* Wakes the writer for good. */
void at__bufq_stop(at_bufq *q);

/* fork(): the queue's mutex, held across the fork by the prepare handler
 * and released in the parent and in the child. */
void at__bufq_lock(at_bufq *q);
void at__bufq_unlock(at_bufq *q);

#endif
