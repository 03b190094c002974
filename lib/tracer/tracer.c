/* The tracer: opening and closing a trace, per-thread state, and the hot
 * path shared by the tracing allocator and the preload shim.
 *
 * Relies on live.c (which blocks are live), stacks.c (interned
 * backtraces), buffers.c (records on their way to the writer) and writer.c
 * (SQLite).  The hot path takes no global lock and never calls malloc:
 * per event it costs one backtrace (the dominant part; a release's is at
 * most AT_RELEASE_STACK_DEPTH frames, none with no_release_stacks), one
 * atomic increment of the sequence number, one clock read, one
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
#include "pools.h"
#include "tracer_internal.h"

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

static void record_thread(at_thread *th);
static void check_stack_modules(at_tracer *t, at_thread *th, const at_stack *s);

/* pthread key destructor: the thread is exiting, hand its buffer over. */
static void thread_exit(void *arg)
{
    at_thread *th = arg;
    read_thread_name(th);
    record_thread(th); /* its name may have changed since it started */
    if (th->buf) {
        th->tracer->sink->submit_buffer(th->tracer, th->buf);
        th->buf = NULL;
    }
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
        pthread_setspecific(t->key, th);
        record_thread(th);
    }
    tls_last.serial = t->serial;
    tls_last.th = th;
    return th;
}

/* The slow half of an append (tracer_internal.h): the buffer is full or
 * missing. */
__attribute__((noinline)) at_buf *at__thread_next_buffer(at_thread *th)
{
    at_tracer *t = th->tracer;
    at__fast_clock_tick(&t->clock);
    if (th->buf)
        t->sink->submit_buffer(t, th->buf);
    th->buf = t->sink->get_buffer(t);
    if (!th->buf)
        AT_BUMP(th->lost, 1);
    return th->buf;
}

void at__thread_append(at_thread *th, const void *rec, size_t size)
{
    at__append(th, rec, size);
}

void at__thread_append_var(at_thread *th, uint8_t kind, uint32_t id, const void *payload,
                           uint32_t payload_size, uint32_t count)
{
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

void at__record_thread(at_thread *th, const at_thread *x)
{
    at_rec_thread r = {.kind = AT_REC_THREAD, .id = x->id, .tid = x->tid};
    memcpy(r.name, x->name, sizeof r.name);
    at__thread_append(th, &r, sizeof r);
}

static void record_thread(at_thread *th)
{
    at__record_thread(th, th);
}

/* ---- hot path --------------------------------------------------------------- */

static uint64_t next_seq(at_tracer *t)
{
    return __atomic_add_fetch(&t->seq, 1, __ATOMIC_RELAXED);
}

static void record_new_stacks(at_tracer *t, at_thread *th);

/* Captures and interns the caller's backtrace, `depth` frames at most;
 * `skip` frames above the caller of this function's caller are dropped. */
__attribute__((noinline)) static uint32_t capture_stack_depth(at_tracer *t, at_thread *th,
                                                              unsigned depth, int skip)
{
    uintptr_t frames[AT_MAX_STACK_DEPTH];
    if (skip >= AT_NO_STACK)
        return 0;
    /* +1: this function. */
    int n = t->frame_pointers ? at__backtrace_fp(frames, (int)depth, skip + 1)
                              : at__backtrace(frames, (int)depth, skip + 1);
    if (n <= 0)
        return 0;
    uint32_t id = at__stacks_intern(&t->stacks, th ? &th->cache : NULL, frames, (uint32_t)n);
    record_new_stacks(t, th);
    return id;
}

/* The same at the trace's depth. */
__attribute__((noinline)) uint32_t at__capture_stack(at_tracer *t, at_thread *th, int skip)
{
    /* +1: this function. */
    uint32_t id = capture_stack_depth(t, th, t->depth, skip + 1);
    __asm__ volatile("" ::: "memory"); /* no tail call: the skip counts this frame */
    return id;
}

/* Stacks interned since the last call (by any thread) go to `th`'s buffer,
 * each once.  Without a thread (the tracer's memory is exhausted) they
 * wait for the next call that has one. */
static void record_new_stacks(at_tracer *t, at_thread *th)
{
    if (!th || !__atomic_load_n(&t->stacks.unwritten, __ATOMIC_RELAXED))
        return;
    /* Stacks first: every stack taken pushed its nodes before itself, so
     * they are taken now if no earlier call took them. */
    at_stack *stacks = at__stacks_take_unwritten(&t->stacks);
    uint32_t first, end;
    at__stacks_take_new_nodes(&t->stacks, &first, &end);
    for (uint32_t id = first; id != end; id++)
        at__record_node(th, id, at__stacks_node(&t->stacks, id));
    for (at_stack *s = stacks; s; s = s->next_unwritten) {
        check_stack_modules(t, th, s);
        at__record_stack(th, s);
    }
}

void at__record_node(at_thread *th, uint32_t id, const at_stack_node *n)
{
    at_rec_node r = {.kind = AT_REC_NODE, .id = id, .parent = n->parent, .depth = n->depth,
                     .ip = n->ip};
    at__thread_append(th, &r, sizeof r);
}

void at__record_stack(at_thread *th, const at_stack *s)
{
    at_rec_stack r = {.kind = AT_REC_STACK, .id = s->id, .depth = s->depth};
    at__thread_append(th, &r, sizeof r);
}

__attribute__((noinline)) void at__trace_alloc(at_tracer *t, void *ptr, size_t size,
                                               size_t align, at_family family, enum at_op op,
                                               int skip)
{
    int saved = errno;
    at__live_prefetch(&t->live, (uintptr_t)ptr); /* its miss overlaps the backtrace */
    at_thread *th = at__thread_get(t);
    at_block_info b = {
        .ptr = (uintptr_t)ptr,
        .size = size,
        .stack = at__capture_stack(t, th, skip + 1),
        .thread = th ? th->id : 0,
        .align_log2 = (uint8_t)at__log2(align),
        .family = (uint8_t)family,
        .op = (uint8_t)op,
    };
    b.seq = next_seq(t);
    b.t = at__fast_now_ns(&t->clock) - t->start_ns;
    at_block_info old;
    int r = at__live_insert(&t->live, &b, &old);
    if (r < 0) {
        /* Not in the live table, so not in the trace either: a spooled
         * allocation whose release the tracer cannot recognize would read
         * as a leak.  Its release is counted too (at_tracer.untracked). */
        at__trace_untracked(t, 1);
        errno = saved;
        return;
    }
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
            t->sink->release(th, &rec);
            AT_BUMP(th->free_calls, 1);
            AT_BUMP(th->free_bytes, old.size);
        }
        AT_BUMP(th->alloc_calls, 1);
        AT_BUMP(th->alloc_bytes, size);
        t->sink->alloc(th, &b, b.op);
    } else {
        __atomic_add_fetch(&t->exited_lost, 1, __ATOMIC_RELAXED); /* no memory for a thread */
    }
    errno = saved;
}

void at__trace_adopt(at_tracer *t, void *ptr, size_t size, size_t align, at_family family,
                     const uintptr_t *frames, uint32_t depth)
{
    at_thread *th = at__thread_get(t);
    uint32_t stack = depth ? at__stacks_intern(&t->stacks, th ? &th->cache : NULL, frames, depth) : 0;
    record_new_stacks(t, th);
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
    if (at__live_insert(&t->live, &b, &old) < 0) {
        at__trace_untracked(t, 1);
        return;
    }
    if (th) {
        AT_BUMP(th->alloc_calls, 1);
        AT_BUMP(th->alloc_bytes, size);
        t->sink->alloc(th, &b, b.op);
    }
}

at_rec_end at__end_record(at_tracer *t, uint8_t kind)
{
    at_tracer_stats s;
    at_tracer_get_stats(t, &s);
    return (at_rec_end){
        .kind = kind,
        .alloc_calls = s.alloc_calls,
        .alloc_bytes = s.alloc_bytes,
        .free_calls = s.free_calls,
        .findings = s.findings,
        .lost_events = s.lost_events,
        .duration_ns = at__now_ns() - t->start_ns,
    };
}

void at__trace_lost(at_tracer *t)
{
    __atomic_add_fetch(&t->exited_lost, 1, __ATOMIC_RELAXED);
}

void at__trace_untracked(at_tracer *t, uint64_t n)
{
    __atomic_add_fetch(&t->untracked, n, __ATOMIC_RELAXED);
    __atomic_add_fetch(&t->exited_lost, n, __ATOMIC_RELAXED);
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
    at__thread_append_var(th, AT_REC_MARK, th ? th->id : 0, payload, (uint32_t)(16 + len + 1),
                   (uint32_t)(16 + len + 1));
    errno = saved;
    return seq;
}

struct live_since {
    uint64_t mark;
    uint32_t thread; /* 0: every thread's blocks */
    at_live_summary *out;
    uint32_t *stacks;
    size_t n, cap;
};

static void count_since(const at_block_info *b, void *arg)
{
    struct live_since *ls = arg;
    if (b->seq <= ls->mark || (ls->thread && b->thread != ls->thread))
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

static void live_since(at_tracer *t, uint64_t mark, uint32_t thread, at_live_summary *out)
{
    memset(out, 0, sizeof *out);
    struct live_since ls = {.mark = mark, .thread = thread, .out = out};
    at__live_foreach_locked(&t->live, count_since, &ls);
    if (ls.n) {
        qsort(ls.stacks, ls.n, sizeof *ls.stacks, cmp_u32);
        for (size_t i = 0; i < ls.n; i++)
            out->sites += i == 0 || ls.stacks[i] != ls.stacks[i - 1];
        at__mem_free(ls.stacks, ls.cap * sizeof *ls.stacks);
    }
}

void at_tracer_live_since(at_tracer *t, uint64_t mark, at_live_summary *out)
{
    live_since(t, mark, 0, out);
}

void at_tracer_live_since_thread(at_tracer *t, uint64_t mark, at_live_summary *out)
{
    int saved = errno;
    at_thread *th = at__thread_get(t);
    errno = saved;
    if (!th) { /* no memory to register the thread: it cannot have traced blocks */
        memset(out, 0, sizeof *out);
        return;
    }
    live_since(t, mark, th->id, out);
}

/* The AT_GIVEN_* bits of a release that passed `given_size` (AT_SIZE_UNKNOWN:
 * none) and `given_align` (0: no layout at all). */
static uint8_t given_bits(size_t given_size, size_t given_align)
{
    if (!given_align)
        return 0;
    return (uint8_t)(AT_GIVEN_ALIGN | (given_size != AT_SIZE_UNKNOWN ? AT_GIVEN_SIZE : 0));
}

/* An alignment as the records hold it: log2 of a power of two, or
 * AT_ALIGN_NOT_POW2 (0 for none). */
static uint8_t align_code(size_t align)
{
    if (!align)
        return 0;
    return (align & (align - 1)) == 0 ? (uint8_t)at__log2(align) : AT_ALIGN_NOT_POW2;
}

/* 1 for the kinds that are notes (vocab.h's LEVEL "note": zero-size
 * requests), which --abort-on-finding lets pass. */
static int finding_is_note(int finding)
{
    switch (finding) {
#define AT_X_NOTE(id, code, name, label, category, rule, level, color, description)               \
    case code:                                                                                     \
        return __builtin_strcmp(level, "note") == 0;
        AT_KINDS(AT_X_NOTE)
#undef AT_X_NOTE
    default:
        return 0;
    }
}

/* A finding about the release of `ptr`; `b` describes the allocation when
 * `known`.  `stack` is the release's backtrace when it was taken at the
 * trace's depth already (0: take it here).  Off the hot path: only bad
 * releases get here. */
__attribute__((noinline)) void at__release_finding(at_tracer *t, at_thread *th, int finding,
                                                   void *ptr, size_t given_size,
                                                   size_t given_align, uint8_t given,
                                                   at_family family, uint64_t seq,
                                                   uint64_t now, int known,
                                                   const at_block_info *b, uint32_t stack,
                                                   int skip)
{
    at_rec_finding f = {
        .kind = AT_REC_FINDING,
        .finding = (uint8_t)finding,
        .given_family = (uint8_t)family,
        .given_layout = given,
        .given_align_log2 = align_code(given_align),
        .given_align = given_align,
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
        if (finding == AT_FINDING_DOUBLE_FREE) {
            f.first_free_seq = b->free_seq;
            f.first_free_stack = b->free_stack;
        }
    }
    f.release_stack = stack ? stack : at__capture_stack(t, th, skip + 1);
    if (!th) {
        __atomic_add_fetch(&t->exited_lost, 1, __ATOMIC_RELAXED);
        return;
    }
    at__append(th, &f, sizeof f);
    AT_BUMP(th->findings, 1);
    if (t->abort_on_finding && !finding_is_note(finding)) {
        t->sink->sync(t, th); /* the finding is on disk before the abort */
        abort();
    }
}

__attribute__((noinline)) int at__trace_release(at_tracer *t, void *ptr, size_t given_size,
                                                size_t given_align, at_family family,
                                                enum at_op op, at_block_info *actual,
                                                at_rec_lifetime *deferred, int skip)
{
    int saved = errno;
    if (t->release_depth) /* its miss overlaps the backtrace */
        at__live_prefetch(&t->live, (uintptr_t)ptr);
    at_thread *th = at__thread_get(t);
    uint64_t seq = next_seq(t);
    uint64_t now = at__fast_now_ns(&t->clock) - t->start_ns;
    /* The release's backtrace, before the lookup: a tombstone keeps it
     * for a second release to show where the first one was. */
    uint32_t stack = t->release_depth ? capture_stack_depth(t, th, t->release_depth, skip + 1) : 0;
    at_block_info b;
    enum at_live_lookup found = at__live_release(&t->live, (uintptr_t)ptr, seq, stack, &b);

    if (found == AT_LIVE_FOUND) {
        size_t alloc_align = (size_t)1 << b.align_log2;
        size_t size_passed = given_size;
        if (given_size == AT_SIZE_UNKNOWN)
            given_size = b.size; /* only the alignment is checked */
        int finding = 0;
        /* An alignment that is not a power of two matches no block: a
         * layout mismatch, told with the value passed (rows.c). */
        int pow2 = (given_align & (given_align - 1)) == 0;
        if (given_align && pow2 && (uintptr_t)ptr % given_align != 0)
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
            rec.free_stack = stack;
            rec.free_layout_given = given_bits(size_passed, given_align);
            rec.free_size = given_size;
            rec.free_align_log2 = align_code(given_align);
            if (deferred)
                *deferred = rec;
            else
                at__trace_release_commit(t, &rec);
        } else {
            /* no memory for the thread: the release is not recorded, and
             * counted (its block would read as live) */
            __atomic_add_fetch(&t->exited_lost, 1, __ATOMIC_RELAXED);
            if (deferred)
                deferred->kind = 0;
        }
        *actual = b;
        if (finding)
            at__release_finding(t, th, finding, ptr, size_passed, given_align,
                                given_bits(size_passed, given_align), family, seq, now, 1, &b,
                                t->release_depth == t->depth ? stack : 0, skip + 1);
        errno = saved;
        return 1;
    }

    if (found == AT_LIVE_UNKNOWN && __atomic_load_n(&t->untracked, __ATOMIC_RELAXED)) {
        /* Maybe a block whose allocation the tracer could not record: the
         * program gave it, so the allocator gets it back, and the trace
         * counts a release it cannot show. */
        __atomic_add_fetch(&t->exited_lost, 1, __ATOMIC_RELAXED);
        *actual = (at_block_info){.ptr = (uintptr_t)ptr, .align_log2 = 4, .family = (uint8_t)family};
        if (deferred)
            deferred->kind = 0;
        errno = saved;
        return 1;
    }
    int finding = found == AT_LIVE_RELEASED   ? AT_FINDING_DOUBLE_FREE
                  : found == AT_LIVE_INTERIOR ? AT_FINDING_INTERIOR_FREE
                                              : AT_FINDING_INVALID_FREE;
    at__release_finding(t, th, finding, ptr, given_size, given_align,
                        given_bits(given_size, given_align), family, seq, now,
                        found != AT_LIVE_UNKNOWN, &b, t->release_depth == t->depth ? stack : 0,
                        skip + 1);
    errno = saved;
    return 0;
}

__attribute__((noinline)) void at__trace_request(at_tracer *t, at_finding_kind finding,
                                                 void *ptr, size_t size, size_t align,
                                                 at_family family, int skip)
{
    int saved = errno;
    at_thread *th = at__thread_get(t);
    uint64_t seq = next_seq(t);
    uint64_t now = at__fast_now_ns(&t->clock) - t->start_ns;
    /* a request states both, whatever their values */
    at__release_finding(t, th, (int)finding, ptr, size, align, AT_GIVEN_ALIGN | AT_GIVEN_SIZE,
                        family, seq, now, 0, NULL, 0, skip + 1);
    errno = saved;
}

void at__trace_release_commit(at_tracer *t, const at_rec_lifetime *rec)
{
    at_thread *th = at__thread_get(t);
    if (!th || rec->kind != AT_REC_LIFETIME)
        return;
    t->sink->release(th, rec);
    AT_BUMP(th->free_calls, 1);
    AT_BUMP(th->free_bytes, rec->size);
}

void at__trace_release_undo(at_tracer *t, const at_block_info *actual)
{
    if (actual->seq == 0) /* a block the tracer never knew (at__trace_release) */
        return;
    at__live_unrelease(&t->live, actual);
}

/* ---- the module map -------------------------------------------------------- */

struct record_modules {
    at_tracer *t;
    at_thread *th;
};

static void record_module(const at_module_info *m, void *arg)
{
    struct record_modules *rm = arg;
    at_tracer *t = rm->t;
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
    at__thread_append_var(rm->th, AT_REC_MODULE, 0, buf, n, n);
}

void at__record_modules(at_tracer *t, at_thread *th)
{
    struct record_modules rm = {t, th};
    t->modules_generation = at__modules_generation();
    at__modules_foreach(record_module, &rm);
}

static int ip_in_known_module(at_tracer *t, uintptr_t ip)
{
    uint32_t n = __atomic_load_n(&t->nranges, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < n; i++)
        if (ip >= t->ranges[i].start && ip < t->ranges[i].end)
            return 1;
    return 0;
}

/* A new stack reached code outside every module recorded so far: if an
 * object was loaded or unloaded since the last scan, record the module
 * map again, while the object is still there to be described.  (Code in
 * no module at all, like a JIT's, costs one generation check per new
 * stack.) */
static void check_stack_modules(at_tracer *t, at_thread *th, const at_stack *s)
{
    for (uint32_t i = 0; i < s->depth; i++) {
        if (!ip_in_known_module(t, s->frames[i])) {
            if (at__modules_generation() != t->modules_generation)
                at__record_modules(t, th);
            return;
        }
    }
}

/* ---- opening and closing ----------------------------------------------------- */

int at__tracer_new(const at_trace_options *opts, at_tracer **out)
{
    if (!opts || !out || opts->stack_depth > AT_MAX_STACK_DEPTH)
        return AT_E_INVALID;
    at_tracer *t = calloc(1, sizeof *t);
    if (!t)
        return AT_E_NOMEM;
    t->serial = __atomic_fetch_add(&next_serial, 1, __ATOMIC_RELAXED);
    t->depth = opts->stack_depth ? opts->stack_depth : AT_DEFAULT_STACK_DEPTH;
    t->abort_on_finding = opts->abort_on_finding;
    t->no_leak_scan = opts->no_leak_scan;
    t->frame_pointers = opts->unwind == AT_UNWIND_FRAME_POINTERS;
    t->release_depth = opts->no_release_stacks ? 0
                       : t->depth < AT_RELEASE_STACK_DEPTH ? t->depth
                                                           : AT_RELEASE_STACK_DEPTH;
    t->start_ns = at__now_ns();
    at__fast_clock_init(&t->clock);
    pthread_mutex_init(&t->threads_mu, NULL);
    pthread_mutex_init(&t->backends_mu, NULL);
    pthread_mutex_init(&t->pools_mu, NULL);
    at__live_init(&t->live);
    at__stacks_init(&t->stacks);
    at__backtrace_init();
    if (pthread_key_create(&t->key, thread_exit) != 0) {
        at__tracer_free(t);
        return AT_E_NOMEM;
    }
    *out = t;
    return 0;
}

void at__tracer_free(at_tracer *t)
{
    while (t->threads) {
        at_thread *th = t->threads;
        t->threads = th->next;
        at__mem_free(th, sizeof *th);
    }
    at__tracing_backends_free(t);
    at__pools_free(t);
    at__live_destroy(&t->live);
    at__stacks_destroy(&t->stacks);
    pthread_mutex_destroy(&t->threads_mu);
    pthread_mutex_destroy(&t->backends_mu);
    pthread_mutex_destroy(&t->pools_mu);
    free(t);
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
 *   1b. pools_mu         held around a pool's change (pools.c), which
 *      may look up the live table (5.) and submit a buffer (2.)
 *   2. threads_mu        held around buffer submission (the sink's, 7.)
 *   3. backends_mu       leaf (the tracing allocators' list)
 *   4. stack shards, in index order       take the pool (9.) inside
 *   5. live shards, in index order        take the pool (9.) inside
 *   6. modules_lock      leaf
 *   7. the sink's own (sink->lock): the SQLite sink's writer sync mutex, a
 *      leaf, then its buffer queue's mutex, which takes the pool inside;
 *      the spool sink has none (its chunks change hands by atomics)
 *   8. the fast clock's calibration lock  leaf
 *   9. mem.c's pool lock, innermost: taken inside 4, 5 and 7 and, outside
 *      every other lock, for a new thread's state; it takes none itself.
 *
 * Parent and child release them in the reverse order (in the child the
 * forking thread holds them all; its mutexes are ordinary ones, which
 * the thread that locked them may unlock). */
void at__tracer_fork_prepare(at_tracer *t)
{
    at__backtrace_fork_prepare();
    pthread_mutex_lock(&t->pools_mu);
    pthread_mutex_lock(&t->threads_mu);
    pthread_mutex_lock(&t->backends_mu);
    at__stacks_lock_all(&t->stacks);
    at__live_lock_all(&t->live);
    at__spin_lock(&t->modules_lock);
    t->sink->lock(t);
    at__spin_lock(&calibration_lock);
    at__mem_lock();
}

static void fork_unlock(at_tracer *t)
{
    at__mem_unlock();
    at__spin_unlock(&calibration_lock);
    t->sink->unlock(t);
    at__spin_unlock(&t->modules_lock);
    at__live_unlock_all(&t->live);
    at__stacks_unlock_all(&t->stacks);
    pthread_mutex_unlock(&t->backends_mu);
    pthread_mutex_unlock(&t->threads_mu);
    pthread_mutex_unlock(&t->pools_mu);
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

/* ---- reachability (reach.h) ------------------------------------------------- */

int at_tracer_leak_check(at_tracer *t, at_leak_check *out)
{
    memset(out, 0, sizeof *out);
    if (!t)
        return AT_E_INVALID;
    at_reach_self self;
    AT_REACH_SELF(&self);
    at_reach r;
    int rc = at__reach_run(t, &self, NULL, NULL, &r);
    *out = r.stats;
    at__reach_free(&r);
    return rc;
}

int at__tracer_exit_scan(at_tracer *t, void (*while_stopped)(void *), void *arg)
{
    at_reach_self self;
    AT_REACH_SELF(&self);
    int rc = at__reach_run(t, &self, while_stopped, arg, &t->reach);
    t->reach_done = 1;
    return rc;
}

typedef struct reach_out {
    at_tracer *t;
    at_thread *th;
    uint64_t seqs[5][AT_REACH_BATCH];
    uint32_t n[5];
    uint64_t sent;
} reach_out;

static void reach_flush(reach_out *o, int c)
{
    if (o->n[c])
        at__thread_append_var(o->th, AT_REC_REACH, (uint32_t)c, o->seqs[c],
                              o->n[c] * (uint32_t)sizeof o->seqs[c][0], o->n[c]);
    o->n[c] = 0;
}

static void reach_one(uint64_t seq, int c, void *arg)
{
    reach_out *o = arg;
    o->seqs[c][o->n[c]++] = seq;
    o->sent++;
    if (o->n[c] == AT_REACH_BATCH)
        reach_flush(o, c);
}

static void record_reachability(at_tracer *t, at_thread *th)
{
    if (!t->reach_done && !t->no_leak_scan)
        at__tracer_exit_scan(t, NULL, NULL);
    if (!t->reach_done || !t->reach.stats.done)
        return;
    reach_out *o = at__mem_alloc(sizeof *o);
    if (!o)
        return; /* nothing recorded: the leaks read as unknown */
    o->t = t;
    o->th = th;
    memset(o->n, 0, sizeof o->n);
    o->sent = 0;
    /* The verdict copies the live table under its locks, then emits. */
    int rc = at__reach_verdict(t, &t->reach, reach_one, o);
    for (int c = 0; c < 5; c++)
        reach_flush(o, c);
    if (rc) {
        at__mem_free(o, sizeof *o);
        at__reach_free(&t->reach);
        return; /* the leaks read as unknown */
    }
    uint64_t sent = o->sent;
    at__mem_free(o, sizeof *o);
    const at_leak_check *st = &t->reach.stats;
    at_rec_reach_end e = {
        .kind = AT_REC_REACH_END,
        .threads = st->threads,
        .threads_unstopped = st->threads_unstopped,
        .scanned_bytes = st->scanned_bytes,
        .skipped_bytes = st->skipped_bytes,
        .duration_ns = st->duration_ns,
        .scan_seq = t->reach.scan_seq,
        .blocks = sent,
    };
    at__thread_append(th, &e, sizeof e);
    at__reach_free(&t->reach);
}

int at_tracer_close(at_tracer *t)
{
    if (!t)
        return 0;
    /* No call through the tracer may be running now (see tracer.h), so
     * every thread's partly filled buffer can be taken.  What the consumer
     * learns last: what was loaded since the start, every thread's name as
     * it is now, and the counts (the END record). */
    at_rec_end end = at__end_record(t, AT_REC_END);
    /* A thread that never used the tracer is not made one of its threads
     * by closing it: its records go through a buffer of its own. */
    at_thread closer = {.tracer = t};
    at_thread *th = pthread_getspecific(t->key);
    if (!th)
        th = &closer;
    record_reachability(t, th);
    at__record_modules(t, th);
    pthread_mutex_lock(&t->threads_mu);
    for (at_thread *x = t->threads; x; x = x->next)
        at__record_thread(th, x);
    at__thread_append(th, &end, sizeof end);
    if (closer.buf)
        t->sink->submit_buffer(t, closer.buf);
    closer.buf = NULL;
    pthread_key_delete(t->key);
    for (at_thread *x = t->threads; x; x = x->next) {
        if (x->buf) {
            t->sink->submit_buffer(t, x->buf);
            x->buf = NULL;
        }
    }
    pthread_mutex_unlock(&t->threads_mu);
    if (tls_last.serial == t->serial)
        tls_last.serial = 0;
    return t->sink->close(t);
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
