/* Record buffers and the writer's queue (see buffers.h).
 *
 * Relies on pthread mutexes and condition variables, which never allocate,
 * and on mem.c for the buffers themselves.
 */
#include <errno.h>
#include <time.h>

#include "buffers.h"
#include "mem.h"

int at__bufq_init(at_bufq *q, size_t buf_size, size_t limit_bytes)
{
    pthread_condattr_t ca;
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->work, &ca);
    pthread_cond_init(&q->space, NULL);
    pthread_condattr_destroy(&ca);
    q->full_head = q->full_tail = NULL;
    q->empty = NULL;
    q->nbufs = 0;
    q->buf_size = buf_size;
    q->max_bufs = limit_bytes / buf_size;
    if (q->max_bufs < 4)
        q->max_bufs = 4;
    q->waits = 0;
    q->stop = 0;
    return 0;
}

static void free_list(at_bufq *q, at_buf *b)
{
    while (b) {
        at_buf *next = b->next;
        at__mem_free(b, sizeof *b + q->buf_size);
        b = next;
    }
}

void at__bufq_destroy(at_bufq *q)
{
    free_list(q, q->full_head);
    free_list(q, q->empty);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->work);
    pthread_cond_destroy(&q->space);
}

at_buf *at__bufq_get(at_bufq *q)
{
    int saved = errno;
    pthread_mutex_lock(&q->mu);
    at_buf *b = NULL;
    for (;;) {
        if (q->empty) {
            b = q->empty;
            q->empty = b->next;
            break;
        }
        if (q->nbufs < q->max_bufs) {
            b = at__mem_alloc(sizeof *b + q->buf_size);
            if (b) {
                q->nbufs++;
                b->cap = q->buf_size;
                break;
            }
            if (q->nbufs == 0)
                break; /* nothing will ever come back */
        }
        q->waits++;
        pthread_cond_signal(&q->work);
        pthread_cond_wait(&q->space, &q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    if (b) {
        b->next = NULL;
        b->used = 0;
    }
    errno = saved;
    return b;
}

void at__bufq_submit(at_bufq *q, at_buf *b)
{
    int saved = errno;
    b->next = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->full_tail)
        q->full_tail->next = b;
    else
        q->full_head = b;
    q->full_tail = b;
    pthread_cond_signal(&q->work);
    pthread_mutex_unlock(&q->mu);
    errno = saved;
}

at_buf *at__bufq_take(at_bufq *q, int timeout_ms, int *stopped)
{
    pthread_mutex_lock(&q->mu);
    if (!q->full_head && !q->stop && timeout_ms > 0) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&q->work, &q->mu, &dl);
    }
    at_buf *list = q->full_head;
    q->full_head = q->full_tail = NULL;
    *stopped = q->stop;
    pthread_mutex_unlock(&q->mu);
    return list;
}

void at__bufq_recycle(at_bufq *q, at_buf *list)
{
    if (!list)
        return;
    at_buf *tail = list;
    while (tail->next)
        tail = tail->next;
    pthread_mutex_lock(&q->mu);
    tail->next = q->empty;
    q->empty = list;
    pthread_cond_broadcast(&q->space);
    pthread_mutex_unlock(&q->mu);
}

void at__bufq_lock(at_bufq *q)
{
    pthread_mutex_lock(&q->mu);
}

void at__bufq_unlock(at_bufq *q)
{
    pthread_mutex_unlock(&q->mu);
}

void at__bufq_stop(at_bufq *q)
{
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_signal(&q->work);
    pthread_mutex_unlock(&q->mu);
}
