/* The spool sink: the tracer's records go to a file shared with
 * `alloctrace run` (spool.h), for the preload library.
 *
 * An allocation is recorded when it happens (an at_rec_alloc), its release
 * when that happens (an at_rec_free), so that whatever a process held when
 * it died, SIGKILL included, is in the file; the consumer pairs the two
 * halves.  The buffers are the spool's chunks.  Nothing here writes
 * SQLite: the consumer does, in its own process (docs/design.md says why).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <alloctrace/alloctrace.h>

#include "clock.h"
#include "pools.h"
#include "run_protocol.h"
#include "spool.h"
#include "tracer_internal.h"

static at_spool *spool_of(at_tracer *t)
{
    return t->sink_state;
}

static void spool_alloc(at_thread *th, const at_block_info *b, uint8_t op)
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
    at__append(th, &r, sizeof r);
}

/* AT_ENV_FAULT_DROP_RELEASES: drop every Nth release (0: none). */
static long drop_releases;
static unsigned long releases_seen;

static void spool_release(at_thread *th, const at_rec_lifetime *l)
{
    if (drop_releases &&
        __atomic_add_fetch(&releases_seen, 1, __ATOMIC_RELAXED) % (unsigned long)drop_releases == 0) {
        at__trace_lost(th->tracer);
        return;
    }
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
        .free_stack = l->free_stack,
    };
    at__append(th, &r, sizeof r);
}

static at_buf *spool_get_buffer(at_tracer *t)
{
    return at__spool_get(spool_of(t));
}

static void spool_submit_buffer(at_tracer *t, at_buf *b)
{
    at__spool_submit(spool_of(t), b);
}

static void spool_sync(at_tracer *t, at_thread *th)
{
    (void)t;
    (void)th; /* every record is in the shared mapping as soon as it is appended */
}

static void spool_lock(at_tracer *t)
{
    (void)t; /* nothing to take: chunks change hands by atomic operations */
}

static int spool_close(at_tracer *t)
{
    __atomic_store_n(&spool_of(t)->h->closed, 1, __ATOMIC_RELEASE);
    /* The mapping stays: a thread of this dying process may still hold a
     * chunk.  The tracer and its memory stay too, for the same reason. */
    return 0;
}

static const at_sink_ops spool_sink = {
    .alloc = spool_alloc,
    .release = spool_release,
    .get_buffer = spool_get_buffer,
    .submit_buffer = spool_submit_buffer,
    .sync = spool_sync,
    .lock = spool_lock,
    .unlock = spool_lock,
    .close = spool_close,
};

static void spool_meta(at_thread *th, const char *key, const char *value, size_t vlen)
{
    char buf[4096];
    size_t klen = strlen(key);
    if (klen + 1 + vlen > sizeof buf)
        vlen = sizeof buf - klen - 1;
    memcpy(buf, key, klen + 1);
    memcpy(buf + klen + 1, value, vlen);
    at__thread_append_var(th, AT_REC_META, 0, buf, (uint32_t)(klen + 1 + vlen),
                          (uint32_t)(klen + 1 + vlen));
}

/* The command line as "argv" records, each of whole arguments (the reader
 * appends each record's to meta.arguments): none is dropped, however long
 * the line.  An argument longer than a record is cut, and says so. */
static void spool_arguments(at_thread *th, int argc, char *const *argv)
{
    /* what at__thread_append_var takes (a payload of up to 8 *
     * AT_MAX_STACK_DEPTH + 64 bytes), less the key */
    enum { ROOM = 8 * AT_MAX_STACK_DEPTH };
    char buf[ROOM];
    size_t used = 0;
    int any = 0;
    for (int i = 0; argv && i < argc && argv[i]; i++) {
        size_t l = strlen(argv[i]);
        if (used && used + l + 1 > ROOM) {
            spool_meta(th, "argv", buf, used);
            used = 0;
            any = 1;
        }
        if (l + 1 > ROOM) {
            char note[64];
            int n = snprintf(note, sizeof note, " [cut by alloctrace: %zu bytes]", l);
            size_t keep = ROOM - 1 - (size_t)n;
            memcpy(buf, argv[i], keep);
            memcpy(buf + keep, note, (size_t)n + 1);
            spool_meta(th, "argv", buf, ROOM);
            any = 1;
            continue;
        }
        memcpy(buf + used, argv[i], l + 1);
        used += l + 1;
    }
    if (used || !any)
        spool_meta(th, "argv", buf, used);
}

/* What a consumer needs before the first event: the process, its command
 * line, the stack depth, the module map. */
static void spool_start_records(at_tracer *t, at_thread *th, int argc, char *const *argv)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "%ld", (long)getpid());
    spool_meta(th, "pid", buf, (size_t)n);
    ssize_t len = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (len > 0)
        spool_meta(th, "executable", buf, (size_t)len);
    spool_arguments(th, argc, argv);
    n = snprintf(buf, sizeof buf, "%u", t->depth);
    spool_meta(th, "stack_depth", buf, (size_t)n);
    at__record_modules(t, th);
}

/* Maps `path` (created, or made by a consumer that waits for it) into `s`
 * and claims it for this process. */
static int attach(at_spool *s, const char *path, int create)
{
    s->windowed = 1; /* the program's address space holds only the chunks it uses */
    int rc = create ? at__spool_create(s, path) : at__spool_open(s, path);
    if (rc == 0 && !create && __atomic_load_n(&s->h->producer_pid, __ATOMIC_ACQUIRE) != 0) {
        /* Already written by the process image this one replaced (exec
         * keeps the pid): not ours. */
        at__spool_close(s);
        rc = AT_E_EXISTS;
    }
    if (rc == 0) {
        const char *run = getenv(AT_ENV_RUN);
        if (run && *run)
            __atomic_store_n(&s->h->run_pid, (int32_t)atol(run), __ATOMIC_RELEASE);
        __atomic_store_n(&s->h->producer_pid, (int32_t)getpid(), __ATOMIC_RELEASE);
        /* run_protocol.h: what tells `alloctrace recover` this process
         * still writes the spool.  Without it (no locks on this file
         * system) the spool is taken as written by nobody once the
         * process is gone, as before. */
        at__run_hold_spool(s->fd);
    }
    return rc;
}

int at__tracer_open_spool(const at_trace_options *opts, const char *spool_path, int create,
                          at_tracer **out)
{
    if (!spool_path)
        return AT_E_INVALID;
    at_spool *s = calloc(1, sizeof *s);
    if (!s)
        return AT_E_NOMEM;
    at_tracer *t;
    int rc = at__tracer_new(opts, &t);
    if (rc == 0) {
        rc = attach(s, spool_path, create);
        if (rc)
            at__tracer_free(t);
    }
    if (rc) {
        free(s);
        return rc;
    }
    t->sink = &spool_sink;
    t->sink_state = s;
    const char *drop = getenv(AT_ENV_FAULT_DROP_RELEASES);
    drop_releases = drop ? strtol(drop, NULL, 10) : 0;
    if (drop_releases < 0)
        drop_releases = 0;
    at_thread *th = at__thread_get(t);
    spool_start_records(t, th, opts->argc, opts->argv);
    *out = t;
    return 0;
}

struct child_dump {
    at_tracer *t;
    at_thread *th;
    uint64_t now; /* when the child's trace begins: its inherited blocks enter it then */
};

static void dump_node(uint32_t id, const at_stack_node *n, void *arg)
{
    struct child_dump *d = arg;
    at__record_node(d->th, id, n);
}

static void dump_stack(const at_stack *s, void *arg)
{
    struct child_dump *d = arg;
    at__record_stack(d->th, s);
}

static void dump_inherited(const at_block_info *b, void *arg)
{
    struct child_dump *d = arg;
    at_block_info c = *b; /* the table keeps no allocation times (live.h) */
    c.t = d->now;
    spool_alloc(d->th, &c, AT_OP_INHERITED);
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
    at_spool *s = spool_of(t);
    at_spool old = *s;
    int rc = attach(s, spool_path, 1);
    if (rc) {
        *s = old;
        return rc;
    }
    at__spool_close(&old);
    t->nranges = 0;
    at_thread *th = at__thread_get(t);
    at__record_thread(th, th);
    spool_start_records(t, th, argc, argv);
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld", (long)getppid());
    spool_meta(th, "parent_pid", buf, (size_t)n);
    struct child_dump d = {t, th, at__fast_now_ns(&t->clock) - t->start_ns};
    /* Everything interned goes to the new spool below, queued or not. */
    at__stacks_take_unwritten(&t->stacks);
    uint32_t first, end;
    at__stacks_take_new_nodes(&t->stacks, &first, &end);
    at__stacks_foreach_node(&t->stacks, dump_node, &d);
    at__stacks_foreach(&t->stacks, dump_stack, &d);
    at__live_foreach(&t->live, dump_inherited, &d);
    at__pools_dump_inherited(t, th);
    return 0;
}

/* ---- exec: the image may be replaced (records.h, AT_REC_EXEC) -------------------- */

static void exec_record(at_tracer *t, uint8_t kind, uint64_t seq)
{
    at_thread *th = at__thread_get(t);
    if (!th)
        return;
    at_rec_end e = at__end_record(t, kind);
    e.thread = th->id;
    e.seq = seq;
    e.t = e.duration_ns;
    at__thread_append(th, &e, sizeof e);
}

void at__tracer_exec_begin(at_tracer *t)
{
    uint64_t seq = __atomic_add_fetch(&t->seq, 1, __ATOMIC_RELAXED);
    at_thread *th = at__thread_get(t);
    if (th) /* what was loaded since: the stacks of the image symbolize */
        at__record_modules(t, th);
    exec_record(t, AT_REC_EXEC, seq);
    __atomic_store_n(&spool_of(t)->h->exec_seq, seq, __ATOMIC_RELEASE);
}

void at__tracer_exec_failed(at_tracer *t)
{
    __atomic_store_n(&spool_of(t)->h->exec_seq, 0, __ATOMIC_RELEASE);
    exec_record(t, AT_REC_EXEC_FAILED, __atomic_add_fetch(&t->seq, 1, __ATOMIC_RELAXED));
}

void at__tracer_note(at_tracer *t, const char *key, const char *value)
{
    at_thread *th = at__thread_get(t);
    if (th)
        spool_meta(th, key, value, strlen(value));
}
