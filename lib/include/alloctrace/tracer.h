/* The tracing allocator: a decorator over any at_allocator that records
 * every allocation and release, with its layout, pointer and backtrace, into
 * a SQLite trace (schema: docs/schema.md).
 *
 * Life cycle: at_tracer_open() creates the trace file and starts the
 * background writer; at_tracing_allocator() wraps backends; at_tracer_close()
 * drains everything still buffered, records the blocks still live as leaks
 * and the module map of the process, then completes the trace: each
 * distinct frame symbolized once, the C/C++ runtime's own blocks set aside,
 * indexes, views, totals, and meta.finished = 1 last.  Until then the file
 * is not a complete trace: each thread's records reach the writer in
 * 256 KiB buffers, when a buffer is full, when the thread exits, or at
 * close.  A process that ends without at_tracer_close() (killed, _exit)
 * leaves meta.finished = 0 and only the lifetimes the writer had committed
 * (those of blocks live then are not among them); alloctrace's read
 * commands refuse such a file and `alloctrace recover TRACE` completes it
 * with what it holds (docs/cli.md).
 *
 * Threads: the tracing allocators may be used from any number of threads at
 * once, including releases on another thread than the allocation.
 * at_tracer_close() must not run concurrently with calls through the
 * tracer's allocators, and none may be made after it: blocks still live
 * then must go back to the inner allocator directly.
 *
 * What the tracer checks on every release, against its table of live blocks
 * (a bad release is recorded as a *finding* with the allocation's and the
 * release's backtrace; one finding per release, the first that applies in
 * this order):
 *  - misaligned free: the pointer is not a multiple of the alignment given,
 *    or it points inside a live block rather than at its start;
 *  - family mismatch: the block was allocated by another family (only the
 *    preload library mixes families: malloc, new, new[]);
 *  - layout mismatch: the layout passed differs from the allocation's in
 *    size or alignment;
 *  - double free: the pointer was released already and its address not
 *    handed out again since (the last 65,536 releases are remembered; an
 *    older one is reported as an invalid free);
 *  - invalid free: the pointer is not a block this tracer handed out.
 * A release of the start of a live block goes to the backend whatever the
 * finding, with the layout the block was allocated with, so the backend is
 * not corrupted and nothing leaks.  A double free, an invalid free and a
 * pointer inside a block are not forwarded, so the program keeps running;
 * a realloc of such a pointer returns NULL.  With abort_on_finding the
 * tracer records the finding, waits until the writer has committed it, and
 * calls abort().
 */
#ifndef ALLOCTRACE_TRACER_H
#define ALLOCTRACE_TRACER_H

#include <stdint.h>
#include <alloctrace/allocator.h>
#include <alloctrace/vocab.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct at_tracer at_tracer;

/* Release families: who allocated a block decides who may release it
 * (vocab.h, AT_FAMILIES: AT_FAMILY_ALLOCATOR for the allocator trait,
 * AT_FAMILY_MALLOC, AT_FAMILY_NEW, AT_FAMILY_NEW_ARRAY). */
typedef enum at_family {
#define AT_X_FAMILY(id, code, name, description) AT_FAMILY_##id = code,
    AT_FAMILIES(AT_X_FAMILY)
#undef AT_X_FAMILY
} at_family;

/* Kinds of problems (vocab.h, AT_KINDS), as stored in the trace's
 * findings.kind column by name.  AT_FINDING_LEAK (0) is never recorded
 * as a finding: a leak is a block still live at the end. */
typedef enum at_finding_kind {
#define AT_X_KIND(id, code, name, label, category, rule, level, color, description)                \
    AT_FINDING_##id = code,
    AT_KINDS(AT_X_KIND)
#undef AT_X_KIND
} at_finding_kind;

#define AT_DEFAULT_STACK_DEPTH 64
#define AT_MAX_STACK_DEPTH 256

typedef struct at_trace_options {
    /* Path of the trace file to create.  Required.  The file is created
     * with mode 0600; an existing file is an error (AT_E_EXISTS) unless
     * `overwrite` is set, and a symbolic link is refused either way. */
    const char *path;
    int overwrite;
    /* Frames recorded per backtrace, 1..AT_MAX_STACK_DEPTH
     * (0 means AT_DEFAULT_STACK_DEPTH). */
    unsigned stack_depth;
    /* Record a finding, write it to the trace, then abort(). */
    int abort_on_finding;
    /* at_tracer_close does not scan the process for pointers to the blocks
     * still live: the trace's leaks are then all of reachability unknown. */
    int no_leak_scan;
    /* Memory the tracer may hold in buffers not yet written, in bytes
     * (0 means 16 MiB), counted in 256 KiB buffers and never fewer than
     * four: each thread's partly filled buffer counts too.  Allocating
     * threads wait when the writer is this far behind: backpressure rather
     * than unbounded growth. */
    size_t buffer_limit;
    /* Recorded in the trace's meta table when set; otherwise the tracer
     * reads them from /proc/self. */
    int argc;
    char *const *argv;
    /* How backtraces are taken: AT_UNWIND_DWARF (the default: libunwind,
     * exact for any code with unwind tables) or AT_UNWIND_FRAME_POINTERS
     * (several times cheaper; exact only where every frame keeps a frame
     * pointer, as with -fno-omit-frame-pointer: elsewhere stacks end
     * early). */
    int unwind;
    /* Releases record no backtrace: `allocations.free_stack` is NULL and a
     * double free shows no stack for its first release (a little cheaper:
     * see docs/cli.md, --no-release-stacks). */
    int no_release_stacks;
} at_trace_options;

enum { AT_UNWIND_DWARF = 0, AT_UNWIND_FRAME_POINTERS = 1 };

/* Fills `opts` with the defaults (no path). */
AT_API void at_trace_options_init(at_trace_options *opts);

/* Creates the trace and starts its writer.  0 and *out set, or a negative
 * code: AT_E_INVALID (opts, out or path NULL, empty path, stack_depth above
 * AT_MAX_STACK_DEPTH), AT_E_EXISTS, AT_E_SYMLINK, AT_E_ACCESS (directory
 * missing or not writable; with `overwrite`, a path that is not a regular
 * file), AT_E_DB, AT_E_NOMEM, AT_E_THREAD.  Nothing is left at `path` on
 * failure: with `overwrite`, a file that was there is gone too.  An
 * `unwind` value other than AT_UNWIND_FRAME_POINTERS means DWARF. */
AT_API int at_tracer_open(const at_trace_options *opts, at_tracer **out);

/* Finishes, completes and closes the trace (see above) and frees the
 * tracer.  Returns 0 or the first error met while writing or completing
 * (also recorded as meta.writer_error when it came before completion); the
 * tracer is freed either way.  Accepts NULL. */
AT_API int at_tracer_close(at_tracer *tracer);

/* An allocator that forwards to `inner` and records every call into
 * `tracer`.  Valid until the tracer is closed.  When `tracer` is NULL or
 * the decorator itself cannot be allocated, `inner` is returned as it is:
 * calls work, untraced.  If the tracer later cannot remember a block (out
 * of its own memory) the allocator still forwards every call and the trace
 * counts the events it lost (meta.lost_events). */
AT_API at_allocator at_tracing_allocator(at_tracer *tracer, at_allocator inner);

/* Counters kept by the tracer, readable at any time (approximate while
 * other threads are running). */
typedef struct at_tracer_stats {
    uint64_t alloc_calls;  /* successful allocations, reallocations included */
    uint64_t alloc_bytes;  /* bytes requested by them */
    uint64_t free_calls;   /* accepted releases (a release of the start of a
                            * live block, finding or not), reallocations
                            * included */
    uint64_t live_blocks;
    uint64_t live_bytes;
    uint64_t findings;
    uint64_t lost_events; /* events the tracer could not record */
} at_tracer_stats;

AT_API void at_tracer_get_stats(at_tracer *tracer, at_tracer_stats *out);

/* Scoped leak checks, for tests (like dhat's heap testing):
 *
 *   uint64_t mark = at_tracer_mark(tracer, "parse_config");
 *   parse_config(a, path);                  // allocates through `a`
 *   at_live_summary s;
 *   at_tracer_live_since(tracer, mark, &s);
 *   assert(s.blocks == 0);                  // it freed everything
 *
 * at_tracer_mark returns the sequence number of the last event so far and
 * records the mark, with `label` (may be NULL; its first 255 bytes), in the
 * trace's `marks` table; at_tracer_live_since counts the blocks allocated
 * after `mark` that are still live: blocks, bytes, and distinct allocation
 * stacks (undercounted if the tracer runs out of its own memory; blocks
 * and bytes stay exact).  Both may be called from any thread; live_since
 * walks the whole live-block table, so it costs time in proportion to the
 * live blocks.  at_tracer_live_since_thread counts only the blocks the
 * calling thread allocated (whichever thread releases them), so that tests
 * running on several threads at once each see their own. */
typedef struct at_live_summary {
    uint64_t blocks;
    uint64_t bytes;
    uint64_t sites; /* distinct allocation stacks */
} at_live_summary;

AT_API uint64_t at_tracer_mark(at_tracer *tracer, const char *label);
AT_API void at_tracer_live_since(at_tracer *tracer, uint64_t mark, at_live_summary *out);
AT_API void at_tracer_live_since_thread(at_tracer *tracer, uint64_t mark, at_live_summary *out);

/* Leak check now: classifies every block live through `tracer` by scanning
 * the process's memory for pointers to it, as valgrind and LeakSanitizer do
 * (LSan's __lsan_do_recoverable_leak_check): the caller's stack from its
 * frame up, every other thread's stack and registers (each thread is
 * stopped for the scan), and every writable mapping that is neither the C
 * library's heap nor the tracer's own memory.  `blocks` and `bytes` are
 * indexed by class, vocab.h's AT_REACH codes (1 definitely lost,
 * 2 indirectly lost, 3 possibly lost, 4 still reachable; 0 unknown, which
 * a completed scan leaves empty).  Blocks the C and C++ runtimes keep on
 * purpose are counted too: the trace sets them aside later.  The heap of
 * the C library is no root (its free chunks hold stale pointers): a
 * pointer kept only in memory the program got from malloc without the
 * tracer does not count, so the check is exact when every allocation goes
 * through the tracer (alloctrace run) or the program keeps its pointers
 * in globals, stacks and traced blocks.  Nothing is
 * written to the trace; at_tracer_close records the same scan, made then,
 * unless `no_leak_scan` was set.  Returns 0, or a negative AT_E_* code
 * when the scan was impossible (`done` is then 0): out of memory, no
 * signal to stop threads with, or the process runs under valgrind, whose
 * own bookkeeping points to every block (AT_E_INVALID). */
typedef struct at_leak_check {
    uint64_t blocks[5];
    uint64_t bytes[5];
    uint32_t threads;           /* other threads stopped for the scan */
    uint32_t threads_unstopped; /* ... that did not stop (scanned as they ran) */
    uint64_t scanned_bytes;     /* roots and blocks read */
    uint64_t skipped_bytes;     /* roots that could not be read */
    uint64_t duration_ns;
    int done;
} at_leak_check;

AT_API int at_tracer_leak_check(at_tracer *tracer, at_leak_check *out);

#ifdef __cplusplus
}
#endif
#endif
