/* The tracer's internals: its state, the hot path, and the sink interface
 * through which its records leave it.  Shared by tracer.c (state and hot
 * path), tracing_allocator.c (the decorator), sink_spool.c (the spool
 * sink), the trace layer's writer (the SQLite sink) and the preload
 * library, which drives the same hot path.
 */
#ifndef AT_TRACER_INTERNAL_H
#define AT_TRACER_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include <alloctrace/tracer.h>

#include "buffers.h"
#include "clock.h"
#include "live.h"
#include "reach.h"
#include "records.h"
#include "spinlock.h"
#include "stacks.h"

/* Per (tracer, thread) state.  Only its own thread writes the buffer and
 * counters; others read the counters with relaxed atomic loads. */
typedef struct at_thread {
    struct at_thread *next; /* tracer's registry */
    at_tracer *tracer;
    uint32_t id;
    pid_t tid;
    char name[16];
    at_buf *buf;
    uint64_t alloc_calls, alloc_bytes, free_calls, free_bytes, findings, lost;
    at_stack_cache cache;
} at_thread;

/* Where the tracer's records go .  Every
 * record of both kinds of trace goes through a thread's buffer; a sink
 * says where the buffers go, and in which form a lifetime travels:
 *
 *  - the SQLite writer (trace/writer.c), in-process: a background thread
 *    drains the buffers into the trace file; a lifetime is one record,
 *    appended when the block is released, since the process that released
 *    it is the one that will write it;
 *  - the spool (tracer/sink_spool.c), for the preload library: buffers are
 *    chunks of a file shared with `alloctrace run`; an allocation is
 *    recorded when it happens and its release when that happens, so that a
 *    process that dies leaves every block it held in the file.
 *
 * The hot path calls `alloc` and `release` through the table and branches
 * on no mode.  Everything else (stacks, threads, modules, marks, findings,
 * the end) is the same record in both and goes through at__thread_append. */
typedef struct at_sink_ops {
    /* An allocation was recorded in the live table.  `op` is what the
     * record says it was (AT_OP_INHERITED for a forked child's blocks). */
    void (*alloc)(at_thread *th, const at_block_info *b, uint8_t op);
    /* A lifetime ended: released, or its address handed out again. */
    void (*release)(at_thread *th, const at_rec_lifetime *l);
    /* An empty buffer for a thread; NULL when none can be had (the record
     * is then dropped and counted as lost). */
    at_buf *(*get_buffer)(at_tracer *t);
    /* A buffer is full, or its thread is done with it. */
    void (*submit_buffer)(at_tracer *t, at_buf *b);
    /* abort_on_finding: returns once the calling thread's records up to
     * now are where they survive the abort() that follows. */
    void (*sync)(at_tracer *t, at_thread *th);
    /* fork(): takes (releases) every lock of the sink's own, in the
     * place at__tracer_fork_prepare gives them in its order. */
    void (*lock)(at_tracer *t);
    void (*unlock)(at_tracer *t);
    /* The tracer is closing: every thread's buffer has been submitted.
     * Finishes the sink's work and frees the tracer when it may
     * (at__tracer_free); 0 or a negative AT_E_* code. */
    int (*close)(at_tracer *t);
} at_sink_ops;

/* Frames at most in a release's backtrace (allocations get the trace's
 * depth): who released a block is told by its innermost frames, and
 * unwinding is the dearest part of a traced call (bench/release_stacks.sh). */
enum { AT_RELEASE_STACK_DEPTH = 8 };

struct at_traced_backend;

struct at_tracer {
    uint64_t serial; /* unique per tracer in this process, for the TLS cache */
    uint64_t start_ns;
    at_fast_clock clock;
    unsigned depth;
    int abort_on_finding;
    int frame_pointers; /* AT_UNWIND_FRAME_POINTERS */
    unsigned release_depth; /* frames per release's backtrace; 0: none */

    /* atomic: the last sequence number handed out.  Every call of every
     * thread takes one: alone on its cache line (padding on both sides),
     * so that the fields above, which every call reads, and the shards'
     * locks below are not lost to another core's increment each time. */
    char seq_pad_before[64];
    uint64_t seq;
    char seq_pad_after[64];

    at_live live;
    at_stacks stacks;

    pthread_key_t key;
    pthread_mutex_t threads_mu;
    at_thread *threads;
    uint32_t next_thread_id; /* atomic */
    uint64_t exited_lost;    /* lost events counted on no thread: threads that exited,
                              * calls of signal handlers (at__trace_lost) */
    /* Allocations that reached the program but not the live table (the
     * tracer's memory ran out, a signal handler's queue was full, a block
     * from before the start not remembered): atomic.  Once there is one, a
     * release of a pointer the table does not know may be of such a block:
     * it is counted in lost_events and forwarded, never a finding. */
    uint64_t untracked;

    struct at_traced_backend *backends;
    pthread_mutex_t backends_mu;

    const at_sink_ops *sink;
    void *sink_state; /* the sink's own */

    /* Address ranges of the modules already recorded, so that a stack
     * with a frame outside all of them (a library dlopen'ed since) records
     * the module map again before the library can be unloaded. */
    at__spinlock modules_lock;
    uint32_t nranges;
    struct {
        uintptr_t start, end;
    } ranges[512];
    unsigned long long modules_generation; /* at the last scan */

    /* The reachability scan at exit (reach.h): made by the preload library
     * when the program ends, or by at_tracer_close; recorded at close. */
    int no_leak_scan;
    int reach_done;
    at_reach reach;
    /* The program's own pools (pools.h), made at the first annotation;
     * pools_mu is held around every change of them. */
    pthread_mutex_t pools_mu;
    struct at_pools *pools;
    /* A thread of the tracer's own (the SQLite sink's writer): never
     * stopped by the scan, and its stack is no root. */
    int32_t helper_tid;
    uintptr_t helper_sp;
};

/* The scan at_tracer_close records, made now: by the preload library when
 * the program ends, whose `while_stopped(arg)` (may be NULL) runs after
 * the scan with every other thread still stopped (it turns tracing off, so
 * that the trace ends where the scan saw the heap), or by at_tracer_close
 * itself.  The calling function's frame and registers are the calling
 * thread's roots. */
int at__tracer_exit_scan(at_tracer *t, void (*while_stopped)(void *), void *arg);

/* A tracer with no sink yet: state, live table, stacks, thread key.  The
 * sink's constructor (at_tracer_open, at__tracer_open_spool) then sets
 * `sink` and `sink_state` before any call is traced.  0, AT_E_INVALID or
 * AT_E_NOMEM. */
int at__tracer_new(const at_trace_options *opts, at_tracer **out);

/* Frees what at__tracer_new made; the sink's state is the sink's. */
void at__tracer_free(at_tracer *t);

/* Opens a tracer that writes the spool at `spool_path` instead of a
 * SQLite trace: creating it, or attaching to one a consumer made (which
 * fails with AT_E_EXISTS if another process image wrote it already).  Closed
 * with at_tracer_close, which leaves the mapping in place (threads of a
 * dying process may still be writing). */
int at__tracer_open_spool(const at_trace_options *opts, const char *spool_path, int create,
                          at_tracer **out);

/* fork().  prepare (parent, before fork) takes every lock of
 * the tracer so that no shard is left locked by a thread that does not
 * exist in the child; parent and child release them.  The child then
 * stays silent until child_start, called on its first traced call (a
 * child that only calls exec never writes anything): it gets a spool of
 * its own at `spool_path`, into which the module map, every stack known so
 * far and every block inherited live from the parent (as AT_OP_INHERITED
 * allocations) are written first.  0 or a negative AT_E_* code (the child
 * then runs untraced). */
void at__tracer_fork_prepare(at_tracer *t);
void at__tracer_fork_parent(at_tracer *t);
void at__tracer_fork_child(at_tracer *t);
int at__tracer_child_start(at_tracer *t, const char *spool_path, int argc, char *const *argv);

/* exec, in a spool-backed tracer: _begin just before the exec system call
 * (an AT_REC_EXEC with the totals so far; the spool's header says an exec
 * is under way), _failed when it returned (AT_REC_EXEC_FAILED: tracing goes
 * on as before).  No reachability scan: nothing of an image that is
 * replaced is a leak. */
void at__tracer_exec_begin(at_tracer *t);
void at__tracer_exec_failed(at_tracer *t);

/* A meta row of the trace (key, value), from a spool-backed tracer. */
void at__tracer_note(at_tracer *t, const char *key, const char *value);

/* Appends a variable-length record (at_rec_var header + payload). */
void at__thread_append_var(at_thread *th, uint8_t kind, uint32_t id, const void *payload,
                           uint32_t payload_size, uint32_t count);

/* Records thread `x`'s id, tid and name in `th`'s buffer. */
void at__record_thread(at_thread *th, const at_thread *x);
/* Records a node of the call tree, or a stack by its node (records.h). */
void at__record_node(at_thread *th, uint32_t id, const at_stack_node *n);
void at__record_stack(at_thread *th, const at_stack *s);

/* Records the module map (every object loaded now) in `th`'s buffer. */
void at__record_modules(at_tracer *t, at_thread *th);

/* The calling thread's state for `t`, registering it on first use; NULL
 * when the tracer's memory is exhausted. */
at_thread *at__thread_get(at_tracer *t);

/* Appends a record to the thread's buffer (the record is dropped and
 * counted as lost when no buffer can be had). */
void at__thread_append(at_thread *th, const void *rec, size_t size);

/* A counter only its own thread writes, read by others. */
#define AT_BUMP(field, by) __atomic_store_n(&(field), (field) + (by), __ATOMIC_RELAXED)

/* The slow half of at__append: hands the full buffer to the sink and takes
 * another; NULL (the record is lost, and counted) when none can be had. */
at_buf *at__thread_next_buffer(at_thread *th);

/* at__thread_append for the hot path: inlined where `size` is a constant,
 * so the copy is a few moves rather than a call to memcpy. */
static inline __attribute__((always_inline)) void at__append(at_thread *th, const void *rec,
                                                             size_t size)
{
    at_buf *b = th->buf;
    if (__builtin_expect(!b || b->cap - b->used < size, 0)) {
        b = at__thread_next_buffer(th);
        if (!b)
            return;
    }
    memcpy(b->data + b->used, rec, size);
    /* Ask for the line a few records ahead in writable state now, so that
     * writing it later does not stall (the buffer was last read by the
     * writer, on another core).  A prefetch past the end is harmless. */
    __builtin_prefetch(b->data + b->used + 256, 1);
    /* Release: a consumer in another process (the spool's) reads `used`,
     * then the bytes before it. */
    __atomic_store_n(&b->used, b->used + size, __ATOMIC_RELEASE);
}

/* Hot path, shared by the decorator and the preload shim.  `skip` is the
 * number of frames between the user's call and these functions that
 * belong to alloctrace itself and are left out of the backtrace;
 * AT_NO_STACK or more records the call with no stack (the preload shim's
 * calls made by a signal handler, traced once the call they interrupted
 * is done, where the stack would be the wrong one). */
enum { AT_NO_STACK = 1 << 20 };

/* An END-shaped record (END, EXEC, EXEC_FAILED) with the totals so far and
 * the time since the start (duration_ns); the caller sets the rest. */
at_rec_end at__end_record(at_tracer *t, uint8_t kind);

/* A call the tracer could not record (the preload shim's queue of a
 * signal handler's calls was full): counted in lost_events.
 * Async-signal-safe. */
void at__trace_lost(at_tracer *t);

/* `n` allocations the program got that the tracer could not record (a
 * signal handler's queue was full, a block from before the start not
 * remembered): counted in lost_events, and their releases are not
 * findings (at_tracer.untracked).  Async-signal-safe. */
void at__trace_untracked(at_tracer *t, uint64_t n);

void at__trace_alloc(at_tracer *t, void *ptr, size_t size, size_t align, at_family family,
                     enum at_op op, int skip);

/* Checks a release against the live table and records it.  Returns 1 when
 * the block must be passed to the backend, *actual then holding what it was
 * allocated as (seq 0 and alignment 16 for a block the tracer never knew,
 * after an allocation it could not record); 0 when the release is bad and
 * must not be forwarded (the finding is recorded).  `given_size`/`given_align` describe the layout
 * passed by the caller, or are both 0 when the caller passed none (free()).
 * With `deferred` non-NULL the lifetime record is not appended but stored
 * there, for a realloc to commit once the backend has succeeded. */
int at__trace_release(at_tracer *t, void *ptr, size_t given_size, size_t given_align,
                      at_family family, enum at_op op, at_block_info *actual,
                      at_rec_lifetime *deferred, int skip);
void at__trace_release_commit(at_tracer *t, const at_rec_lifetime *rec);

/* A realloc whose release was accepted failed in the backend: the old
 * block is live again, as it was. */
void at__trace_release_undo(at_tracer *t, const at_block_info *actual);

/* A request the allocation function's contract rejects, or leaves to the
 * implementation (vocab.h: invalid_alignment, invalid_size, zero_size): a
 * finding of its own, which describes the request (`size`, `align` as
 * passed, or the one the function implies) and `ptr`, what the call
 * returned (NULL included).  It is no allocation: a block the call
 * returned is traced by at__trace_alloc as any other. */
void at__trace_request(at_tracer *t, at_finding_kind finding, void *ptr, size_t size,
                       size_t align, at_family family, int skip);

/* `given_size` for a release that states an alignment but no size (C++'s
 * unsized aligned delete): only the alignment is checked. */
#define AT_SIZE_UNKNOWN SIZE_MAX

/* Records a block that was allocated before tracing started (the preload
 * library's bootstrap), so that its release is checked like any other,
 * with the backtrace taken when it was allocated (`depth` 0: none) and
 * time 0. */
void at__trace_adopt(at_tracer *t, void *ptr, size_t size, size_t align, at_family family,
                     const uintptr_t *frames, uint32_t depth);

/* The calling thread's backtrace at the trace's depth, interned; `skip`
 * as for at__trace_alloc (this function's caller is skipped too, so call
 * it from a noinline function of the tracer's own). */
uint32_t at__capture_stack(at_tracer *t, at_thread *th, int skip);

/* A finding about the release of `ptr` (or a request): appended to `th`'s
 * buffer, counted, and abort() with abort_on_finding.  `given` holds the
 * AT_GIVEN_* bits of what the release passed; `b` describes the
 * allocation when `known` (a double free: its first release too); `stack`
 * is the release's backtrace when taken at the trace's depth already (0:
 * take it here, which a caller holding a lock of the tracer must not
 * ask). */
void at__release_finding(at_tracer *t, at_thread *th, int finding, void *ptr, size_t given_size,
                         size_t given_align, uint8_t given, at_family family, uint64_t seq,
                         uint64_t now, int known, const at_block_info *b, uint32_t stack,
                         int skip);

/* The next sequence number. */
static inline uint64_t at__next_seq(at_tracer *t)
{
    return __atomic_add_fetch(&t->seq, 1, __ATOMIC_RELAXED);
}

/* Set on threads whose allocations must never be traced: the writer (and,
 * in the preload library, any thread while it runs tracer code). */
extern __thread int at__untraced __attribute__((tls_model("initial-exec")));

/* A lifetime record for block `b`, with no release yet. */
static inline void at__lifetime_from_block(at_rec_lifetime *r, const at_block_info *b)
{
    *r = (at_rec_lifetime){
        .kind = AT_REC_LIFETIME,
        .family = b->family,
        .alloc_op = b->op,
        .align_log2 = b->align_log2,
        .stack = b->stack,
        .thread = b->thread,
        .seq = b->seq,
        .ptr = b->ptr,
        .size = b->size,
        .t = b->t,
    };
}

/* Frees the decorators made by at_tracing_allocator(). */
void at__tracing_backends_free(at_tracer *t);

static inline unsigned at__log2(uint64_t align)
{
    return (unsigned)__builtin_ctzll(align);
}

#endif
