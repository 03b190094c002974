/* The reachability scan: which of the blocks live now are still pointed
 * to, the way valgrind's and LeakSanitizer's leak checkers decide it.
 *
 * With every other thread of the process stopped (reach_world.c) and every
 * lock of the tracer held, the scan reads the roots (reach_maps.c: the
 * writable mappings of the process that are neither the C library's heap
 * nor the tracer's own memory, each thread's stack from its stack pointer
 * up, every thread's registers), follows every aligned word that points
 * into a live block, and gives each block one class of vocab.h's AT_REACH:
 *
 *   still reachable  a chain of pointers to block starts leads to it;
 *   possibly lost    only chains through an interior pointer do (valgrind's
 *                    heuristics for std::string, new[], 64-bit length
 *                    prefixes and multiple inheritance count as starts);
 *   indirectly lost  only lost blocks point to it;
 *   definitely lost  nothing does (the first block of a lost cycle or
 *                    tree, in address order, as valgrind picks it).
 *
 * A live block of a pool (pools.h) is a block of its own, though it lies
 * inside a malloc'd chunk: a word pointing into it marks the pool block,
 * not the chunk (a word at the start of both, the pool's first block at
 * its chunk's start, marks both); a chunk is scanned without the bytes of
 * its live pool blocks, which are scanned when their block is reached.
 * So the pool's pointer to its chunk reaches the pool's bookkeeping, never
 * every block in it.
 *
 * The scan never faults: roots are copied with process_vm_readv (a page
 * that cannot be read is skipped and counted) and a block is read in place
 * only when the mapping snapshot says it is readable anonymous memory.
 * It never calls malloc: its memory is mapped directly and set aside.
 */
#ifndef AT_REACH_H
#define AT_REACH_H

#include <stddef.h>
#include <stdint.h>

#include <alloctrace/tracer.h>

struct at_tracer;

enum at_reach_class {
#define AT_X_REACH(id, code, name, kind, label, gated, color, description) AT_REACH_##id = code,
    AT_REACH(AT_X_REACH)
#undef AT_X_REACH
};

/* The calling thread's part of the roots: its stack from `sp` up and the
 * callee-saved registers at the point the scan was asked for. */
typedef struct at_reach_self {
    uintptr_t sp;
    uintptr_t regs[16];
    unsigned nregs;
} at_reach_self;

/* Captures the calling function's frame: the stack from its caller's
 * frame up (its own locals are the tracer's, not the program's) and the
 * registers the caller may still hold pointers in. */
#if defined(__x86_64__)
#define AT_REACH_SELF(s)                                                                           \
    do {                                                                                           \
        __asm__ volatile("movq %%rbx, 0(%0)\n\tmovq %%rbp, 8(%0)\n\tmovq %%r12, 16(%0)\n\t"       \
                         "movq %%r13, 24(%0)\n\tmovq %%r14, 32(%0)\n\tmovq %%r15, 40(%0)"         \
                         :                                                                         \
                         : "r"((s)->regs)                                                          \
                         : "memory");                                                              \
        (s)->nregs = 6;                                                                            \
        (s)->sp = (uintptr_t)__builtin_dwarf_cfa();                                                \
    } while (0)
#elif defined(__aarch64__)
#define AT_REACH_SELF(s)                                                                           \
    do {                                                                                           \
        __asm__ volatile("stp x19, x20, [%0, #0]\n\tstp x21, x22, [%0, #16]\n\t"                  \
                         "stp x23, x24, [%0, #32]\n\tstp x25, x26, [%0, #48]\n\t"                 \
                         "stp x27, x28, [%0, #64]\n\tstr x29, [%0, #80]"                          \
                         :                                                                         \
                         : "r"((s)->regs)                                                          \
                         : "memory");                                                              \
        (s)->nregs = 11;                                                                           \
        (s)->sp = (uintptr_t)__builtin_dwarf_cfa();                                                \
    } while (0)
#else
#define AT_REACH_SELF(s)                                                                           \
    do {                                                                                           \
        (s)->nregs = 0;                                                                            \
        (s)->sp = (uintptr_t)__builtin_frame_address(0);                                           \
    } while (0)
#endif

/* One block as the scan saw it, sorted by address. */
typedef struct at_reach_block {
    uintptr_t start;
    uint64_t size;
    uint64_t seq;
} at_reach_block;

/* A scan's verdict: the malloc blocks (sorted by start), each one's class,
 * the same for the pools' blocks (pools.h), and the figures the trace's
 * meta keeps (stats count both kinds). */
typedef struct at_reach {
    at_reach_block *blocks;
    uint8_t *cls;
    size_t n;
    size_t map_bytes; /* what blocks and cls were mapped with */
    at_reach_block *pool_blocks;
    uint8_t *pool_cls;
    size_t pool_n;
    size_t pool_map_bytes;
    uint64_t scan_seq; /* the last sequence number handed out when it ran */
    at_leak_check stats;
} at_reach;

/* Stops the world, scans, calls `while_stopped(arg)` (may be NULL) before
 * the other threads go on, and fills `out`.  0, or a negative AT_E_* code
 * with out->stats.done == 0 (nothing known). */
int at__reach_run(struct at_tracer *t, const at_reach_self *self, void (*while_stopped)(void *),
                  void *arg, at_reach *out);

/* emit(seq, class, arg) for every block live now, malloc's and the
 * pools', with the class the scan `r` gave it (still reachable for one it never saw: a thread it
 * stopped halfway through allocating it holds it).  Takes pools_mu and
 * the live table's locks; emit must not.  0 or AT_E_NOMEM. */
int at__reach_verdict(struct at_tracer *t, const at_reach *r,
                      void (*emit)(uint64_t seq, int cls, void *arg), void *arg);

void at__reach_free(at_reach *r);

/* ---- reach_world.c: the other threads ---------------------------------------- */

typedef struct at_reach_thread {
    int32_t tid;
    int32_t state; /* futex word: 0 asked, 1 stopped, 2 gone on */
    uintptr_t sp;
    uintptr_t regs[32];
    unsigned nregs;
} at_reach_thread;

typedef struct at_reach_world {
    at_reach_thread *threads;
    size_t n;
    size_t map_bytes;
    uint32_t stopped, unstopped;
} at_reach_world;

/* Stops every thread of the process but the caller (up to a deadline:
 * one that does not stop, its signal blocked, is counted in `unstopped`
 * and scanned as it is); at__reach_world_resume lets them go on. */
int at__reach_world_stop(at_reach_world *w, int32_t skip_tid);
void at__reach_world_resume(at_reach_world *w);

/* ---- reach_maps.c: the process's memory -------------------------------------- */

typedef struct at_range {
    uintptr_t lo, hi;
} at_range;

/* A growable array of ranges in memory mapped for the scan alone. */
typedef struct at_ranges {
    at_range *r;
    size_t n, cap;
} at_ranges;

int at__ranges_add(at_ranges *rs, uintptr_t lo, uintptr_t hi);
void at__ranges_free(at_ranges *rs);
/* Sorts and merges overlapping and adjacent ranges. */
void at__ranges_normalize(at_ranges *rs);

typedef struct at_vma {
    uintptr_t lo, hi;
    uint8_t read, write, exec, anon, heap, skip; /* skip: a device or the kernel's */
} at_vma;

typedef struct at_vmas {
    at_vma *v;
    size_t n, cap;
    char *text; /* what /proc/self/maps said, kept mapped until the scan ends: */
    size_t text_cap; /* the snapshot shows it */
} at_vmas;

/* The mappings of the process now, sorted (/proc/self/maps). */
int at__vmas_read(at_vmas *out);
void at__vmas_free(at_vmas *v);
/* 1 when [lo, hi) lies in readable anonymous mappings. */
int at__vmas_readable_anon(const at_vmas *v, uintptr_t lo, uintptr_t hi);
const at_vma *at__vmas_find(const at_vmas *v, uintptr_t addr);

/* The C library's (glibc's) heap: the brk heap, every arena's heaps and
 * every block it mapped on its own, given the live blocks. */
int at__reach_heap_ranges(const at_vmas *v, const at_reach_block *b, size_t n, at_ranges *out);

/* The stacks glibc keeps from threads that have exited (with their
 * thread-local storage): no roots.  `buf` (16 KiB at least) is memory of
 * the scan's, mapped after the snapshot: what it copies there must not be
 * found again as a root. */
int at__reach_dead_stacks(const at_vmas *v, at_ranges *out, void *buf, size_t len);

/* The writable ranges of the object (executable or library) that holds
 * this code, found when the tracer starts (dl_iterate_phdr is not called
 * during a scan: a stopped thread may hold the loader's lock). */
void at__reach_note_self(void);
void at__reach_self_ranges(at_ranges *out);

/* Copies [addr, addr+len) into buf, zero where it cannot be read; returns
 * the bytes that could not be. */
size_t at__reach_copy(uintptr_t addr, void *buf, size_t len);

/* Memory for the scan's own use, mapped directly; NULL when refused. */
void *at__reach_map(size_t size);
void at__reach_unmap(void *p, size_t size);
/* The mappings the scan holds now (none of them is a root). */
void at__reach_own_ranges(at_ranges *out);

#endif
