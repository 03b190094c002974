/* The tracer: opening and closing a trace, per-thread state, and the hot
 * path shared by the tracing allocator and the preload shim.
 *
 * Relies on live.c (which blocks are live), stacks.c (interned
 * backtraces), buffers.c (records on their way to the writer) and writer.c
 * (SQLite).  The hot path takes no global lock and never calls malloc:
 * per event it costs one backtrace for allocations (the dominant part),
 * one atomic increment of the sequence number, one clock read, one
 * sharded hash-table operation and, for releases, one record appended to a
 * buffer owned by the calling thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <alloctrace/alloctrace.h>

#include "backtrace.h"
#include "clock.h"
#include "mem.h"
#include "modules.h"
#include "schema.h"
#include "tracer_internal.h"

enum { BUF_SIZE = 256 * 1024, DEFAULT_BUFFER_LIMIT = 16 * 1024 * 1024 };

static uint64_t next_serial = 1;

__thread int at__untraced __attribute__((tls_model("initial-exec")));

/* The calling thread's state for the tracer it used last: the common case
 * is one tracer, so this avoids pthread_getspecific on the hot path. */
static __thread struct {
    uint64_t serial;
    at_thread *th;
} tls_last __attribute__((tls_model("initial-exec")));

void at_trace_options_init(at_trace_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->stack_depth = AT_DEFAULT_STACK_DEPTH;
}

/* ---- per-thread state ---------------------------------------------------- */

static void read_thread_name(at_thread *th)
{
    char name[16] = "";
    if (prctl(PR_GET_NAME, name, 0, 0, 0) == 0)
        memcpy(th->name, name, sizeof th->name);
    th->name[sizeof th->name - 1] = '\0';
}

static void spool_thread(at_thread *th);
static void check_stack_modules(at_tracer *t, at_thread *th, const at_stack *s);
static void spool_new_stacks(at_tracer *t, at_thread *th);

/* pthread key destructor: the thread is exiting, hand its buffer over. */
static void thread_exit(void *arg)
{
    at_thread *th = arg;
    read_thread_name(th);
    if (th->tracer->spooled)
        spool_thread(th);
    if (th->buf) {
        at__bufq_submit(&th->tracer->q, th->buf);
        th->buf = NULL;
    }
    read_thread_name(th);
}

at_thread *at__thread_get(at_tracer *t)
{
    if (__builtin_expect(tls_last.serial == t->serial, 1))
        return tls_last.th;
    at_thread *th = pthread_getspecific(t->key);
    if (!th) {
        th = at__mem_calloc(sizeof *th);
        if (!th)
            return NULL;
        th->tracer = t;
        th->tid = (pid_t)syscall(SYS_gettid);
        read_thread_name(th);
        th->id = __atomic_add_fetch(&t->next_thread_id, 1, __ATOMIC_RELAXED);
        pthread_mutex_lock(&t->threads_mu);
        th->next = t->threads;
        t->threads = th;
        pthread_mutex_unlock(&t->threads_mu);
        at_thread *head = __atomic_load_n(&t->threads_unwritten, __ATOMIC_RELAXED);
        do
            th->next_unwritten = head;
        while (!__atomic_compare_exchange_n(&t->threads_unwritten, &head, th, 1,
                                            __ATOMIC_RELEASE, __ATOMIC_RELAXED));
        pthread_setspecific(t->key, th);
        if (t->spooled)
            spool_thread(th);
    }
    tls_last.serial = t->serial;
    tls_last.th = th;
    return th;
}

#define BUMP(field, by) __atomic_store_n(&(field), (field) + (by), __ATOMIC_RELAXED)

/* The slow half of an append: the buffer is full or missing. */
__attribute__((noinline)) static at_buf *next_buffer(at_thread *th)
{
    at__fast_clock_tick(&th->tracer->clock);
    if (th->buf)
        at__bufq_submit(&th->tracer->q, th->buf);
    th->buf = at__bufq_get(&th->tracer->q);
    if (!th->buf)
        BUMP(th->lost, 1);
    return th->buf;
}

/* Inlined where `size` is a constant, so the copy is a few moves rather
 * than a call to memcpy. */
static inline __attribute__((always_inline)) void append(at_thread *th, const void *rec,
                                                         size_t size)
{
    at_buf *b = th->buf;
    if (__builtin_expect(!b || b->cap - b->used < size, 0)) {
        b = next_buffer(th);
        if (!b)
            return;
    }
    memcpy(b->data + b->used, rec, size);
    /* Ask for the line a few records ahead in writable state now, so that
     * writing it later does not stall (the buffer was last read by the
     * writer, on another core).  A prefetch past the end is harmless. */
    __builtin_prefetch(b->data + b->used + 256, 1);
    /* Release: a spool consumer in another process reads `used`, then the
     * bytes before it. */
    __atomic_store_n(&b->used, b->used + size, __ATOMIC_RELEASE);
}

void at__thread_append(at_thread *th, const void *rec, size_t size)
{
    append(th, rec, size);
}

void at__spool_emit(at_tracer *t, at_thread *th, uint8_t kind, uint32_t id, const void *payload,
                    uint32_t payload_size, uint32_t count)
{
    (void)t;
    unsigned char rec[sizeof(at_rec_var) + 8 * AT_MAX_STACK_DEPTH + 64];
    uint32_t size = (uint32_t)((sizeof(at_rec_var) + payload_size + 7) & ~(size_t)7);
    if (!th || size > sizeof rec)
        return;
    at_rec_var h = {.kind = kind, .size = size, .id = id, .count = count};
    memset(rec, 0, size);
    memcpy(rec, &h, sizeof h);
    memcpy(rec + sizeof h, payload, payload_size);
    at__thread_append(th, rec, size);
}

static void spool_thread(at_thread *th)
{
    at_rec_thread r = {.kind = AT_REC_THREAD, .id = th->id, .tid = th->tid};
    memcpy(r.name, th->name, sizeof r.name);
    at__thread_append(th, &r, sizeof r);
}

/* ---- hot path --------------------------------------------------------------- */

static uint64_t next_seq(at_tracer *t)
{
    return __atomic_add_fetch(&t->seq, 1, __ATOMIC_RELAXED);
}

/* Captures and interns the caller's backtrace; `skip` frames above the
 * caller of this function's caller are dropped. */
__attribute__((noinline)) static uint32_t capture_stack(at_tracer *t, at_thread *th, int skip)
{
    uintptr_t frames[AT_MAX_STACK_DEPTH];
    /* +1: this function. */
    int n = t->frame_pointers ? at__backtrace_fp(frames, (int)t->depth, skip + 1)
                              : at__backtrace(frames, (int)t->depth, skip + 1);
    if (n <= 0)
        return 0;
    uint32_t id = at__stacks_intern(&t->stacks, th ? &th->cache : NULL, frames, (uint32_t)n);
    if (t->spooled)
        spool_new_stacks(t, th);
    return id;
}

/* Spool mode: stacks interned since the last call go to the spool. */
static void spool_new_stacks(at_tracer *t, at_thread *th)
{
    if (!__atomic_load_n(&t->stacks.unwritten, __ATOMIC_RELAXED))
        return;
    for (at_stack *s = at__stacks_take_unwritten(&t->stacks); s; s = s->next_unwritten) {
        check_stack_modules(t, th, s);
        at__spool_emit(t, th, AT_REC_STACK, s->id, s->frames,
                       (uint32_t)(s->depth * sizeof s->frames[0]), s->depth);
    }
}

/* Spool mode: the allocation half of a lifetime. */
static inline void append_alloc(at_thread *th, const at_block_info *b, uint8_t op)
{
    at_rec_alloc r = {
        .kind = AT_REC_ALLOC,
        .family = b->family,
        .op = op,
        .align_log2 = b->align_log2,
        .stack = b->stack,
        .thread = b->thread,
        .seq = b->seq,
        .ptr = b->ptr,
        .size = b->size,
        .t = b->t,
    };
    append(th, &r, sizeof r);
}

/* Spool mode: the release half of a lifetime. */
static inline void append_free(at_thread *th, const at_rec_lifetime *l)
{
    at_rec_free r = {
        .kind = AT_REC_FREE,
        .free_op = l->free_op,
        .free_align_log2 = l->free_align_log2,
        .free_layout_given = l->free_layout_given,
        .free_thread = l->free_thread,
        .seq = l->seq,
        .free_seq = l->free_seq,
        .free_t = l->free_t,
        .free_size = l->free_size,
    };
    append(th, &r, sizeof r);
}


__attribute__((noinline)) void at__trace_alloc(at_tracer *t, void *ptr, size_t size,
                                               size_t align, at_family family, enum at_op op,
                                               int skip)
{
    int saved = errno;
    at_thread *th = at__thread_get(t);
    at_block_info b = {
        .ptr = (uintptr_t)ptr,
        .size = size,
        .stack = capture_stack(t, th, skip + 1),
        .thread = th ? th->id : 0,
        .align_log2 = (uint8_t)at__log2(align),
        .family = (uint8_t)family,
        .op = (uint8_t)op,
    };
    b.seq = next_seq(t);
    b.t = at__fast_now_ns(&t->clock) - t->start_ns;
    at_block_info old;
    int r = at__live_insert(&t->live, &b, &old);
    if (th) {
        if (r == 1) {
            /* The address came back without a release we saw: close the
             * old lifetime here rather than lose it. */
            at_rec_lifetime rec;
            at__lifetime_from_block(&rec, &old);
            rec.free_op = AT_OP_VANISHED;
            rec.free_seq = b.seq;
            rec.free_t = b.t;
            rec.free_thread = th->id;
            if (t->spooled)
                append_free(th, &rec);
            else
                append(th, &rec, sizeof rec);
            BUMP(th->free_calls, 1);
            BUMP(th->free_bytes, old.size);
        } else if (r < 0) {
            BUMP(th->lost, 1);
        }
        BUMP(th->alloc_calls, 1);
        BUMP(th->alloc_bytes, size);
        if (t->spooled) /* if the process dies, the consumer still knows the block */
            append_alloc(th, &b, b.op);
    }
    errno = saved;
}

void at__trace_adopt(at_tracer *t, void *ptr, size_t size, size_t align, at_family family,
                     const uintptr_t *frames, uint32_t depth)
{
    at_thread *th = at__thread_get(t);
    uint32_t stack = depth ? at__stacks_intern(&t->stacks, th ? &th->cache : NULL, frames, depth) : 0;
    if (stack && t->spooled)
        spool_new_stacks(t, th);
    at_block_info b = {
        .ptr = (uintptr_t)ptr,
        .size = size,
        .stack = stack,
        .thread = th ? th->id : 0,
        .align_log2 = (uint8_t)at__log2(align),
        .family = (uint8_t)family,
        .op = AT_OP_ALLOC,
        .seq = next_seq(t),
        .t = 0,
    };
    at_block_info old;
    if (at__live_insert(&t->live, &b, &old) < 0 && th)
        BUMP(th->lost, 1);
    if (th) {
        BUMP(th->alloc_calls, 1);
        BUMP(th->alloc_bytes, size);
        if (t->spooled) /* so the consumer knows the block too */
            append_alloc(th, &b, b.op);
    }
}

/* ---- marks -------------------------------------------------------------------- */

uint64_t at_tracer_mark(at_tracer *t, const char *label)
{
    int saved = errno;
    uint64_t seq = __atomic_load_n(&t->seq, __ATOMIC_ACQUIRE);
    uint64_t now = at__fast_now_ns(&t->clock) - t->start_ns;
    at_thread *th = at__thread_get(t);
    unsigned char payload[16 + 256];
    size_t len = label ? strnlen(label, 255) : 0;
    memcpy(payload, &seq, 8);
    memcpy(payload + 8, &now, 8);
    if (len)
        memcpy(payload + 16, label, len);
    payload[16 + len] = '\0';
    at__spool_emit(t, th, AT_REC_MARK, th ? th->id : 0, payload, (uint32_t)(16 + len + 1),
                   (uint32_t)(16 + len + 1));
    errno = saved;
    return seq;
}

struct live_since {
    uint64_t mark;
    at_live_summary *out;
    uint32_t *stacks;
    size_t n, cap;
};

static void count_since(const at_block_info *b, void *arg)
{
    struct live_since *ls = arg;
    if (b->seq <= ls->mark)
        return;
    ls->out->blocks++;
    ls->out->bytes += b->size;
    if (ls->n == ls->cap) {
        size_t cap = ls->cap ? 2 * ls->cap : 1024;
        uint32_t *v = at__mem_alloc(cap * sizeof *v);
        if (!v)
            return; /* sites will be undercounted; blocks and bytes stay exact */
        if (ls->stacks) {
            memcpy(v, ls->stacks, ls->n * sizeof *v);
            at__mem_free(ls->stacks, ls->cap * sizeof *v);
        }
        ls->stacks = v;
        ls->cap = cap;
    }
    ls->stacks[ls->n++] = b->stack;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

void at_tracer_live_since(at_tracer *t, uint64_t mark, at_live_summary *out)
{
    memset(out, 0, sizeof *out);
    struct live_since ls = {.mark = mark, .out = out};
    at__live_foreach_locked(&t->live, count_since, &ls);
    if (ls.n) {
        qsort(ls.stacks, ls.n, sizeof *ls.stacks, cmp_u32);
        for (size_t i = 0; i < ls.n; i++)
            out->sites += i == 0 || ls.stacks[i] != ls.stacks[i - 1];
        at__mem_free(ls.stacks, ls.cap * sizeof *ls.stacks);
    }
}

/* Waits until the writer has committed every buffer submitted so far. */
static void sync_writer(at_tracer *t)
{
    pthread_mutex_lock(&t->sync_mu);
    uint64_t mine = ++t->sync_request;
    pthread_mutex_unlock(&t->sync_mu);
    pthread_mutex_lock(&t->q.mu);
    pthread_cond_signal(&t->q.work);
    pthread_mutex_unlock(&t->q.mu);
    pthread_mutex_lock(&t->sync_mu);
    while (t->sync_done < mine && !t->writer_error)
        pthread_cond_wait(&t->sync_cv, &t->sync_mu);
    pthread_mutex_unlock(&t->sync_mu);
}

/* A finding about the release of `ptr`; `b` describes the allocation when
 * `known`.  Off the hot path: only bad releases get here. */
__attribute__((noinline)) static void release_finding(at_tracer *t, at_thread *th, int finding,
                                                      void *ptr, size_t given_size,
                                                      size_t given_align, at_family family,
                                                      uint64_t seq, uint64_t now, int known,
                                                      const at_block_info *b, int skip)
{
    at_rec_finding f = {
        .kind = AT_REC_FINDING,
        .finding = (uint8_t)finding,
        .given_family = (uint8_t)family,
        .given_layout = given_align != 0,
        .given_align_log2 = given_align ? (uint8_t)at__log2(given_align) : 0,
        .given_size = given_size,
        .thread = th ? th->id : 0,
        .seq = seq,
        .t = now,
        .ptr = (uintptr_t)ptr,
    };
    if (known) {
        f.has_alloc = 1;
        f.alloc_family = b->family;
        f.alloc_align_log2 = b->align_log2;
        f.alloc_stack = b->stack;
        f.alloc_seq = b->seq;
        f.alloc_ptr = b->ptr;
        f.alloc_size = b->size;
        if (finding == AT_FINDING_DOUBLE_FREE)
            f.first_free_seq = b->free_seq;
    }
    f.release_stack = capture_stack(t, th, skip + 1);
    if (!th) {
        __atomic_add_fetch(&t->exited_lost, 1, __ATOMIC_RELAXED);
        return;
    }
    append(th, &f, sizeof f);
    BUMP(th->findings, 1);
    if (t->abort_on_finding && t->spooled)
        abort(); /* the record is already in the shared spool */
    if (t->abort_on_finding) {
        if (th->buf) {
            at__bufq_submit(&t->q, th->buf);
            th->buf = NULL;
        }
        sync_writer(t);
        abort();
    }
}

__attribute__((noinline)) int at__trace_release(at_tracer *t, void *ptr, size_t given_size,
                                                size_t given_align, at_family family,
                                                enum at_op op, at_block_info *actual,
                                                at_rec_lifetime *deferred, int skip)
{
    int saved = errno;
    at_thread *th = at__thread_get(t);
    uint64_t seq = next_seq(t);
    uint64_t now = at__fast_now_ns(&t->clock) - t->start_ns;
    at_block_info b;
    enum at_live_lookup found = at__live_release(&t->live, (uintptr_t)ptr, seq, &b);

    if (found == AT_LIVE_FOUND) {
        size_t alloc_align = (size_t)1 << b.align_log2;
        if (given_size == AT_SIZE_UNKNOWN)
            given_size = b.size; /* only the alignment is checked */
        int finding = 0;
        if (given_align && (uintptr_t)ptr % given_align != 0)
            finding = AT_FINDING_MISALIGNED_FREE;
        else if (family != (at_family)b.family)
            finding = AT_FINDING_FAMILY_MISMATCH;
        else if (given_align && (given_size != b.size || given_align != alloc_align))
            finding = AT_FINDING_LAYOUT_MISMATCH;
        if (th) {
            at_rec_lifetime rec;
            at__lifetime_from_block(&rec, &b);
            rec.free_op = (uint8_t)op;
            rec.free_seq = seq;
            rec.free_t = now;
            rec.free_thread = th->id;
            rec.free_layout_given = given_align != 0;
            rec.free_size = given_size;
            rec.free_align_log2 = given_align ? (uint8_t)at__log2(given_align) : 0;
            if (deferred)
                *deferred = rec;
            else
                at__trace_release_commit(t, &rec);
        } else if (deferred) {
            deferred->kind = 0;
        }
        *actual = b;
        if (finding)
            release_finding(t, th, finding, ptr, given_size, given_align, family, seq, now, 1, &b,
                            skip + 1);
        errno = saved;
        return 1;
    }

    int finding = found == AT_LIVE_RELEASED   ? AT_FINDING_DOUBLE_FREE
                  : found == AT_LIVE_INTERIOR ? AT_FINDING_MISALIGNED_FREE
                                              : AT_FINDING_INVALID_FREE;
    release_finding(t, th, finding, ptr, given_size, given_align, family, seq, now,
                    found != AT_LIVE_UNKNOWN, &b, skip + 1);
    errno = saved;
    return 0;
}

void at__trace_release_commit(at_tracer *t, const at_rec_lifetime *rec)
{
    at_thread *th = at__thread_get(t);
    if (!th || rec->kind != AT_REC_LIFETIME)
        return;
    if (t->spooled)
        append_free(th, rec);
    else
        append(th, rec, sizeof *rec);
    BUMP(th->free_calls, 1);
    BUMP(th->free_bytes, rec->size);
}

void at__trace_release_undo(at_tracer *t, const at_block_info *actual)
{
    at__live_unrelease(&t->live, actual);
}

/* ---- opening and closing ----------------------------------------------------- */

int at__create_trace_file(const char *path, int overwrite)
{
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (S_ISLNK(st.st_mode))
            return AT_E_SYMLINK;
        if (!overwrite)
            return AT_E_EXISTS;
        if (!S_ISREG(st.st_mode))
            return AT_E_ACCESS;
        if (unlink(path) != 0)
            return AT_E_ACCESS;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return AT_E_EXISTS;
        if (errno == ELOOP)
            return AT_E_SYMLINK;
        return AT_E_ACCESS;
    }
    close(fd);
    return 0;
}

static char **copy_argv(int argc, char *const *argv)
{
    char **copy = calloc((size_t)argc + 1, sizeof *copy);
    if (!copy)
        return NULL;
    for (int i = 0; i < argc; i++) {
        copy[i] = strdup(argv[i] ? argv[i] : "");
        if (!copy[i]) {
            while (i--)
                free(copy[i]);
            free(copy);
            return NULL;
        }
    }
    return copy;
}

static void free_tracer(at_tracer *t)
{
    if (t->argv) {
        for (int i = 0; i < t->argc; i++)
            free(t->argv[i]);
        free(t->argv);
    }
    while (t->threads) {
        at_thread *th = t->threads;
        t->threads = th->next;
        at__mem_free(th, sizeof *th);
    }
    at__tracing_backends_free(t);
    at__live_destroy(&t->live);
    at__stacks_destroy(&t->stacks);
    at__bufq_destroy(&t->q);
    pthread_mutex_destroy(&t->threads_mu);
    pthread_mutex_destroy(&t->backends_mu);
    pthread_mutex_destroy(&t->sync_mu);
    pthread_cond_destroy(&t->sync_cv);
    free(t->path);
    free(t);
}

/* ---- spool mode ------------------------------------------------------------- */

/* What both kinds of tracer start with; `t` is zeroed. */
static void init_tracer(at_tracer *t, const at_trace_options *opts)
{
    t->serial = __atomic_fetch_add(&next_serial, 1, __ATOMIC_RELAXED);
    t->depth = opts->stack_depth ? opts->stack_depth : AT_DEFAULT_STACK_DEPTH;
    t->abort_on_finding = opts->abort_on_finding;
    t->frame_pointers = opts->unwind == AT_UNWIND_FRAME_POINTERS;
    t->start_ns = at__now_ns();
    at__fast_clock_init(&t->clock);
    pthread_mutex_init(&t->threads_mu, NULL);
    pthread_mutex_init(&t->backends_mu, NULL);
    pthread_mutex_init(&t->sync_mu, NULL);
    pthread_cond_init(&t->sync_cv, NULL);
    at__live_init(&t->live);
    at__stacks_init(&t->stacks);
    at__bufq_init(&t->q, BUF_SIZE, opts->buffer_limit ? opts->buffer_limit : DEFAULT_BUFFER_LIMIT);
    at__backtrace_init();
}

static void spool_meta(at_tracer *t, at_thread *th, const char *key, const char *value, size_t vlen)
{
    char buf[4096];
    size_t klen = strlen(key);
    if (klen + 1 + vlen > sizeof buf)
        vlen = sizeof buf - klen - 1;
    memcpy(buf, key, klen + 1);
    memcpy(buf + klen + 1, value, vlen);
    at__spool_emit(t, th, AT_REC_META, 0, buf, (uint32_t)(klen + 1 + vlen),
                   (uint32_t)(klen + 1 + vlen));
}

struct spool_modules {
    at_tracer *t;
    at_thread *th;
};

static void spool_module(const at_module_info *m, void *arg)
{
    struct spool_modules *sm = arg;
    at_tracer *t = sm->t;
    at__spin_lock(&t->modules_lock);
    uint32_t i = 0;
    while (i < t->nranges && (t->ranges[i].start != m->start || t->ranges[i].end != m->end))
        i++;
    if (i == t->nranges && i < sizeof t->ranges / sizeof t->ranges[0]) {
        t->ranges[i].start = m->start;
        t->ranges[i].end = m->end;
        __atomic_store_n(&t->nranges, i + 1, __ATOMIC_RELEASE);
    }
    at__spin_unlock(&t->modules_lock);
    unsigned char buf[sizeof(at_rec_module) + 4096 + 130];
    at_rec_module r = {m->base, m->start, m->end};
    size_t plen = strlen(m->path), blen = m->build_id ? strlen(m->build_id) : 0;
    if (plen > 4095 || blen > 129)
        return;
    memcpy(buf, &r, sizeof r);
    memcpy(buf + sizeof r, m->path, plen + 1);
    memcpy(buf + sizeof r + plen + 1, m->build_id ? m->build_id : "", blen + 1);
    uint32_t n = (uint32_t)(sizeof r + plen + 1 + blen + 1);
    at__spool_emit(sm->t, sm->th, AT_REC_MODULE, 0, buf, n, n);
}

static void spool_modules(at_tracer *t, at_thread *th)
{
    struct spool_modules sm = {t, th};
    t->modules_generation = at__modules_generation();
    at__modules_foreach(spool_module, &sm);
}

static int ip_in_known_module(at_tracer *t, uintptr_t ip)
{
    uint32_t n = __atomic_load_n(&t->nranges, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < n; i++)
        if (ip >= t->ranges[i].start && ip < t->ranges[i].end)
            return 1;
    return 0;
}

/* A new stack reached code outside every module spooled so far: if an
 * object was loaded or unloaded since the last scan, spool the module map
 * again, while the object is still there to be described.  (Code in no
 * module at all, like a JIT's, costs one generation check per new stack.) */
static void check_stack_modules(at_tracer *t, at_thread *th, const at_stack *s)
{
    for (uint32_t i = 0; i < s->depth; i++) {
        if (!ip_in_known_module(t, s->frames[i])) {
            if (at__modules_generation() != t->modules_generation)
                spool_modules(t, th);
            return;
        }
    }
}

/* What a consumer needs before the first event: the process, its command
 * line, the stack depth, the module map. */
static void spool_start_records(at_tracer *t, at_thread *th, int argc, char *const *argv)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "%ld", (long)getpid());
    spool_meta(t, th, "pid", buf, (size_t)n);
    ssize_t len = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (len > 0)
        spool_meta(t, th, "executable", buf, (size_t)len);
    size_t used = 0;
    for (int i = 0; argv && i < argc && argv[i]; i++) {
        size_t l = strlen(argv[i]) + 1;
        if (used + l > sizeof buf)
            break;
        memcpy(buf + used, argv[i], l);
        used += l;
    }
    spool_meta(t, th, "argv", buf, used);
    n = snprintf(buf, sizeof buf, "%u", t->depth);
    spool_meta(t, th, "stack_depth", buf, (size_t)n);
    spool_modules(t, th);
}

int at__tracer_open_spool(const at_trace_options *opts, const char *spool_path, int create,
                          at_tracer **out)
{
    if (!opts || !out || !spool_path || opts->stack_depth > AT_MAX_STACK_DEPTH)
        return AT_E_INVALID;
    at_tracer *t = calloc(1, sizeof *t);
    if (!t)
        return AT_E_NOMEM;
    int rc = create ? at__spool_create(&t->spool, spool_path) : at__spool_open(&t->spool, spool_path);
    if (rc == 0 && !create && __atomic_load_n(&t->spool.h->producer_pid, __ATOMIC_ACQUIRE) != 0) {
        /* Already written by the process image this one replaced (exec
         * keeps the pid): not ours. */
        at__spool_close(&t->spool);
        rc = AT_E_EXISTS;
    }
    if (rc) {
        free(t);
        return rc;
    }
    t->spooled = 1;
    init_tracer(t, opts);
    t->q.spool = &t->spool;
    if (pthread_key_create(&t->key, thread_exit) != 0) {
        at__spool_close(&t->spool);
        free_tracer(t);
        return AT_E_NOMEM;
    }
    __atomic_store_n(&t->spool.h->producer_pid, (int32_t)getpid(), __ATOMIC_RELEASE);

    at_thread *th = at__thread_get(t);
    spool_start_records(t, th, opts->argc, opts->argv);
    *out = t;
    return 0;
}

static void fork_unlock(at_tracer *t);
static at__spinlock calibration_lock; /* the fast clock's, at__fast_clock_tick */

/* fork(): every lock the tracer's code can hold is taken here, so that the
 * child, where only the forking thread goes on, finds none of them held by
 * a thread it does not have.  One order, outermost first, the order in
 * which the code nests them (a lock is only ever taken while holding locks
 * above it in this list), so that prepare cannot deadlock with a thread
 * that is running:
 *
 *   (preload.c's boot table lock, taken by before_fork before this: the
 *    boot adoption calls into the tracer while holding it)
 *   1. the unwinder gate (backtrace.c): waits until no thread is inside
 *      libunwind, whose own locks cannot be taken from outside; no lock
 *      of the tracer is held around a backtrace
 *   2. threads_mu        held around buffer submission (3.)
 *   3. backends_mu       leaf (the tracing allocators' list)
 *   4. sync_mu           leaf (sync with the in-process writer)
 *   5. stack shards, in index order       take the pool (9.) inside
 *   6. live shards, in index order        take the pool (9.) inside
 *   7. modules_lock      leaf
 *   8. the buffer queue's mutex           takes the pool (9.) inside
 *   9. the fast clock's calibration lock  leaf
 *  10. mem.c's pool lock, innermost: taken inside 5, 6 and 8 and, outside
 *      every other lock, for a new thread's state; it takes none itself.
 *
 * Parent and child release them in the reverse order (in the child the
 * forking thread holds them all; its mutexes are ordinary ones, which
 * the thread that locked them may unlock). */
void at__tracer_fork_prepare(at_tracer *t)
{
    at__backtrace_fork_prepare();
    pthread_mutex_lock(&t->threads_mu);
    pthread_mutex_lock(&t->backends_mu);
    pthread_mutex_lock(&t->sync_mu);
    at__stacks_lock_all(&t->stacks);
    at__live_lock_all(&t->live);
    at__spin_lock(&t->modules_lock);
    at__bufq_lock(&t->q);
    at__spin_lock(&calibration_lock);
    at__mem_lock();
}

static void fork_unlock(at_tracer *t)
{
    at__mem_unlock();
    at__spin_unlock(&calibration_lock);
    at__bufq_unlock(&t->q);
    at__spin_unlock(&t->modules_lock);
    at__live_unlock_all(&t->live);
    at__stacks_unlock_all(&t->stacks);
    pthread_mutex_unlock(&t->sync_mu);
    pthread_mutex_unlock(&t->backends_mu);
    pthread_mutex_unlock(&t->threads_mu);
}

void at__tracer_fork_parent(at_tracer *t)
{
    fork_unlock(t);
    at__backtrace_fork_parent();
}

void at__tracer_fork_child(at_tracer *t)
{
    fork_unlock(t);
    at__backtrace_fork_child();
}

struct child_dump {
    at_tracer *t;
    at_thread *th;
};

static void dump_stack(const at_stack *s, void *arg)
{
    struct child_dump *d = arg;
    at__spool_emit(d->t, d->th, AT_REC_STACK, s->id, s->frames,
                   (uint32_t)(s->depth * sizeof s->frames[0]), s->depth);
}

static void dump_inherited(const at_block_info *b, void *arg)
{
    struct child_dump *d = arg;
    append_alloc(d->th, b, AT_OP_INHERITED);
}

int at__tracer_child_start(at_tracer *t, const char *spool_path, int argc, char *const *argv)
{
    /* The parent's chunks are not ours: forget them before anything is
     * appended, then move to a spool of our own. */
    pthread_mutex_lock(&t->threads_mu);
    for (at_thread *x = t->threads; x; x = x->next) {
        x->buf = NULL;
        x->alloc_calls = x->alloc_bytes = x->free_calls = x->free_bytes = 0;
        x->findings = x->lost = 0;
    }
    pthread_mutex_unlock(&t->threads_mu);
    t->exited_lost = 0;
    at_spool old = t->spool;
    int rc = at__spool_create(&t->spool, spool_path);
    if (rc) {
        t->spool = old;
        return rc;
    }
    at__spool_close(&old);
    __atomic_store_n(&t->spool.h->producer_pid, (int32_t)getpid(), __ATOMIC_RELEASE);
    t->nranges = 0;
    at_thread *th = at__thread_get(t);
    spool_thread(th);
    spool_start_records(t, th, argc, argv);
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld", (long)getppid());
    spool_meta(t, th, "parent_pid", buf, (size_t)n);
    struct child_dump d = {t, th};
    at__stacks_foreach(&t->stacks, dump_stack, &d);
    at__live_foreach(&t->live, dump_inherited, &d);
    return 0;
}

static int close_spool(at_tracer *t)
{
    at_tracer_stats s;
    at_tracer_get_stats(t, &s);
    at_thread *th = at__thread_get(t);
    spool_modules(t, th); /* what was loaded since the start */
    at_rec_end end = {
        .kind = AT_REC_END,
        .alloc_calls = s.alloc_calls,
        .alloc_bytes = s.alloc_bytes,
        .free_calls = s.free_calls,
        .findings = s.findings,
        .lost_events = s.lost_events,
        .duration_ns = at__now_ns() - t->start_ns,
    };
    if (th)
        at__thread_append(th, &end, sizeof end);
    pthread_mutex_lock(&t->threads_mu);
    pthread_key_delete(t->key);
    for (at_thread *x = t->threads; x; x = x->next) {
        if (x->buf) {
            at__bufq_submit(&t->q, x->buf);
            x->buf = NULL;
        }
    }
    pthread_mutex_unlock(&t->threads_mu);
    if (tls_last.serial == t->serial)
        tls_last.serial = 0;
    __atomic_store_n(&t->spool.h->closed, 1, __ATOMIC_RELEASE);
    /* The mapping stays: a thread of this dying process may still hold a
     * chunk.  The tracer's own memory stays too, for the same reason. */
    return 0;
}

static int open_db(at_tracer *t)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(t->path, &t->db, flags, NULL) != SQLITE_OK)
        return AT_E_DB;
    sqlite3_extended_result_codes(t->db, 1);
    int rc = at__sql_exec(t->db, "PRAGMA synchronous=OFF;"
                                 "PRAGMA cache_size=-16384;"
                                 "PRAGMA user_version=" AT_STRINGIFY(AT_SCHEMA_VERSION) ";"
                                 "BEGIN;");
    if (rc == 0)
        rc = at__schema_create(t->db);
    if (rc == 0)
        rc = at__writer_write_meta(t);
    if (rc == 0)
        rc = at__sql_exec(t->db, "COMMIT;");
    return rc;
}

int at_tracer_open(const at_trace_options *opts, at_tracer **out)
{
    if (!opts || !out || !opts->path || !*opts->path || opts->stack_depth > AT_MAX_STACK_DEPTH)
        return AT_E_INVALID;
    int rc = at__create_trace_file(opts->path, opts->overwrite);
    if (rc)
        return rc;

    at_tracer *t = calloc(1, sizeof *t);
    if (!t) {
        unlink(opts->path);
        return AT_E_NOMEM;
    }
    init_tracer(t, opts);

    t->path = strdup(opts->path);
    if (opts->argv && opts->argc > 0) {
        t->argc = opts->argc;
        t->argv = copy_argv(opts->argc, opts->argv);
    }
    rc = !t->path || (opts->argv && opts->argc > 0 && !t->argv) ? AT_E_NOMEM : 0;
    if (rc == 0 && pthread_key_create(&t->key, thread_exit) != 0)
        rc = AT_E_NOMEM;
    else if (rc == 0) {
        rc = open_db(t);
        if (rc == 0 && pthread_create(&t->writer, NULL, at__writer_main, t) != 0)
            rc = AT_E_THREAD;
        if (rc)
            pthread_key_delete(t->key);
    }
    if (rc) {
        sqlite3_close(t->db);
        unlink(opts->path);
        free_tracer(t);
        return rc;
    }
    *out = t;
    return 0;
}

int at_tracer_close(at_tracer *t)
{
    if (!t)
        return 0;
    if (t->spooled)
        return close_spool(t);
    /* No call through the tracer may be running now (see tracer.h), so
     * every thread's partly filled buffer can be taken. */
    pthread_mutex_lock(&t->threads_mu);
    pthread_key_delete(t->key);
    for (at_thread *th = t->threads; th; th = th->next) {
        if (th->buf) {
            at__bufq_submit(&t->q, th->buf);
            th->buf = NULL;
        }
    }
    pthread_mutex_unlock(&t->threads_mu);
    if (tls_last.serial == t->serial)
        tls_last.serial = 0;
    at__bufq_stop(&t->q);
    pthread_join(t->writer, NULL);
    int rc = at__writer_finish(t);
    free_tracer(t);
    return rc;
}

void at_tracer_get_stats(at_tracer *t, at_tracer_stats *out)
{
    memset(out, 0, sizeof *out);
    uint64_t freed = 0, freed_bytes = 0;
    pthread_mutex_lock(&t->threads_mu);
    for (at_thread *th = t->threads; th; th = th->next) {
        out->alloc_calls += __atomic_load_n(&th->alloc_calls, __ATOMIC_RELAXED);
        out->alloc_bytes += __atomic_load_n(&th->alloc_bytes, __ATOMIC_RELAXED);
        freed += __atomic_load_n(&th->free_calls, __ATOMIC_RELAXED);
        freed_bytes += __atomic_load_n(&th->free_bytes, __ATOMIC_RELAXED);
        out->findings += __atomic_load_n(&th->findings, __ATOMIC_RELAXED);
        out->lost_events += __atomic_load_n(&th->lost, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&t->threads_mu);
    out->lost_events += __atomic_load_n(&t->exited_lost, __ATOMIC_RELAXED);
    out->free_calls = freed;
    out->live_blocks = out->alloc_calls - freed;
    out->live_bytes = out->alloc_bytes - freed_bytes;
}

/* ---- the fast clock (clock.h) ------------------------------------------------ */

void at__fast_clock_init(at_fast_clock *c)
{
    memset(c, 0, sizeof *c);
#if defined(__x86_64__)
    unsigned a, b, cc, d;
    /* CPUID 0x80000007, EDX bit 8: the TSC ticks at a constant rate in
     * every power state, the same on every core. */
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(cc), "=d"(d) : "a"(0x80000000u));
    if (a >= 0x80000007u) {
        __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(cc), "=d"(d) : "a"(0x80000007u));
        c->usable = (d >> 8) & 1;
    }
    c->ns0 = at__now_ns();
    c->tsc0 = __rdtsc();
#endif
}

void at__fast_clock_tick(at_fast_clock *c)
{
#if defined(__x86_64__)
    if (!c->usable || __atomic_load_n(&c->calibrated, __ATOMIC_ACQUIRE))
        return;
    uint64_t ns = at__now_ns(), tsc = __rdtsc();
    if (ns - c->ns0 < 10 * 1000 * 1000 || tsc <= c->tsc0)
        return;
    double scale = (double)(ns - c->ns0) / (double)(tsc - c->tsc0);
    /* Several threads may get here at once: the first one decides. */
    at__spin_lock(&calibration_lock);
    if (!c->calibrated) {
        c->ns_per_tick = scale;
        __atomic_store_n(&c->calibrated, 1, __ATOMIC_RELEASE);
    }
    at__spin_unlock(&calibration_lock);
#else
    (void)c;
#endif
}
