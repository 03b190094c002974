/* The tracer's internals, shared by tracer.c (state and hot path),
 * writer.c (the background writer) and tracing_allocator.c (the decorator),
 * and by the preload library, which drives the same hot path.
 */
#ifndef AT_TRACER_INTERNAL_H
#define AT_TRACER_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/types.h>

#include <alloctrace/tracer.h>

#include "buffers.h"
#include "clock.h"
#include "live.h"
#include "records.h"
#include "spinlock.h"
#include "spool.h"
#include "stacks.h"

/* Per (tracer, thread) state.  Only its own thread writes the buffer and
 * counters; others read the counters with relaxed atomic loads. */
typedef struct at_thread {
    struct at_thread *next;            /* tracer's registry */
    struct at_thread *next_unwritten;  /* writer's queue of new threads */
    at_tracer *tracer;
    uint32_t id;
    pid_t tid;
    char name[16];
    at_buf *buf;
    uint64_t alloc_calls, alloc_bytes, free_calls, free_bytes, findings, lost;
    at_stack_cache cache;
} at_thread;

struct at_traced_backend;

struct at_tracer {
    uint64_t serial; /* unique per tracer in this process, for the TLS cache */
    uint64_t seq;    /* atomic: last sequence number handed out */
    uint64_t start_ns;
    at_fast_clock clock;
    unsigned depth;
    int abort_on_finding;
    int frame_pointers; /* AT_UNWIND_FRAME_POINTERS */

    at_live live;
    at_stacks stacks;
    at_bufq q;

    pthread_key_t key;
    pthread_mutex_t threads_mu;
    at_thread *threads;
    at_thread *threads_unwritten; /* atomic */
    uint32_t next_thread_id;      /* atomic */
    uint64_t exited_lost;         /* lost events of threads that exited */

    struct at_traced_backend *backends;
    pthread_mutex_t backends_mu;

    /* Writer. */
    sqlite3 *db;
    struct writer *writer_state;
    char *path;
    pthread_t writer;
    int writer_error; /* first error met by the writer */
    int closing;

    /* abort_on_finding: the writer acknowledges it wrote up to this seq. */
    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cv;
    uint64_t sync_request, sync_done;

    int argc;
    char **argv;

    /* Spool mode (the preload library): records go to a shared file that
     * another process turns into the trace; no SQLite, no writer thread. */
    int spooled;
    at_spool spool;
    /* Spool mode: address ranges of the modules already spooled, so that a
     * stack with a frame outside all of them (a library dlopen'ed since)
     * sends the module map again before the library can be unloaded. */
    at__spinlock modules_lock;
    uint32_t nranges;
    struct {
        uintptr_t start, end;
    } ranges[512];
    unsigned long long modules_generation; /* at the last scan */
};

/* Opens a tracer that writes the spool at `spool_path` instead of a
 * SQLite trace: creating it, or attaching to one a consumer made (which
 * fails with AT_E_EXISTS if another process image wrote it already).  Closed
 * with at_tracer_close, which leaves the mapping in place (threads of a
 * dying process may still be writing). */
int at__tracer_open_spool(const at_trace_options *opts, const char *spool_path, int create,
                          at_tracer **out);

/* fork() in spool mode.  prepare (parent, before fork) takes every lock of
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

/* Creates a trace file: mode 0600, never through a symlink, replacing a
 * regular file only with `overwrite`.  0 or AT_E_EXISTS / AT_E_SYMLINK /
 * AT_E_ACCESS. */
int at__create_trace_file(const char *path, int overwrite);

/* Spool mode: a variable-length record (at_rec_var header + payload). */
void at__spool_emit(at_tracer *t, at_thread *th, uint8_t kind, uint32_t id, const void *payload,
                    uint32_t payload_size, uint32_t count);

/* The calling thread's state for `t`, registering it on first use; NULL
 * when the tracer's memory is exhausted. */
at_thread *at__thread_get(at_tracer *t);

/* Appends a record to the thread's buffer (the record is dropped and
 * counted as lost when no buffer can be had). */
void at__thread_append(at_thread *th, const void *rec, size_t size);

/* Hot path, shared by the decorator and the preload shim.  `skip` is the
 * number of frames between the user's call and these functions that
 * belong to alloctrace itself and are left out of the backtrace. */
void at__trace_alloc(at_tracer *t, void *ptr, size_t size, size_t align, at_family family,
                     enum at_op op, int skip);

/* Checks a release against the live table and records it.  Returns 1 when
 * the block must be passed to the backend, *actual then holding what it was
 * allocated as; 0 when the release is bad and must not be forwarded (the
 * finding is recorded).  `given_size`/`given_align` describe the layout
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

/* `given_size` for a release that states an alignment but no size (C++'s
 * unsized aligned delete): only the alignment is checked. */
#define AT_SIZE_UNKNOWN SIZE_MAX

/* Records a block that was allocated before tracing started (the preload
 * library's bootstrap), so that its release is checked like any other,
 * with the backtrace taken when it was allocated (`depth` 0: none) and
 * time 0. */
void at__trace_adopt(at_tracer *t, void *ptr, size_t size, size_t align, at_family family,
                     const uintptr_t *frames, uint32_t depth);

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

/* Writer thread entry and final pass. */
void *at__writer_main(void *tracer);
int at__writer_finish(at_tracer *t);
int at__writer_write_meta(at_tracer *t);

static inline unsigned at__log2(uint64_t align)
{
    return (unsigned)__builtin_ctzll(align);
}

#endif
