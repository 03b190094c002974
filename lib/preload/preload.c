/* liballoctrace_preload.so: traces an unmodified program's global allocator.
 *
 * Each interposed entry point maps its call to a layout and a family
 * (malloc, new, new[]), gets the memory from the allocator the program
 * would have used without us (the next definition of each function in the
 * symbol search order: glibc's, or jemalloc's, mimalloc's, tcmalloc's when
 * the program is linked with one; see "the next allocator" below), and
 * makes one call into the tracer's hot path (tracer.c), exactly as the
 * tracing allocator does.  Nothing else lives here.
 *
 * States:
 *  - BOOT, before our constructor has opened the trace: blocks are served
 *    and remembered in a small static table; once the tracer is ready they
 *    are adopted into its live table, so their release is checked too;
 *  - READY: every call is traced, except on a thread that is running the
 *    tracer itself (at__untraced: the writer, or any thread while it is
 *    inside the hot path), whose allocations are the tracer's own;
 *  - CHILD: in a forked child until its first call, which starts the
 *    child's own trace (a child that only calls exec writes nothing);
 *  - exec: not an end; see traced_exec.
 *  - OFF: after the trace is closed, or when no trace could be opened:
 *    calls go straight to the next allocator.  Every block came from it,
 *    so a block traced earlier can still be freed there.
 *
 * Records go to a spool file (spool.h) that another process turns into
 * the SQLite trace, so that nothing here depends on the program's own
 * SQLite, locks or survival.
 *
 * The environment it reads and the names of traces and spools are the
 * run protocol with `alloctrace run` (run_protocol.h).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdarg.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <alloctrace/alloctrace.h>

#include "backtrace.h"
#include "pools.h"
#include "run_protocol.h"
#include "spinlock.h"
#include "tracer_internal.h"

/* glibc's malloc under its own name, for this library's own blocks that
 * never leave it (the exec environment, the Rust hook's context): always
 * freed with __libc_free, whichever allocator defines the pair. */
extern void *__libc_malloc(size_t size);
extern void __libc_free(void *ptr);

/* The layouts the C and C++ entry points imply: malloc's blocks are
 * aligned for max_align_t, operator new's for
 * __STDCPP_DEFAULT_NEW_ALIGNMENT__, which is the same 16 on every ABI this
 * builds for (C has no macro for the C++ value). */
#define MALLOC_ALIGN ((size_t)_Alignof(max_align_t))
#define NEW_ALIGN ((size_t)16)
_Static_assert(_Alignof(max_align_t) == 16, "NEW_ALIGN assumes a 16-byte max_align_t");

#define EXPORT __attribute__((visibility("default")))
#define INLINE static inline __attribute__((always_inline))

enum { S_BOOT = 0, S_READY = 1, S_OFF = 2, S_CHILD = 3 };
static int state = S_BOOT;
static at_tracer *tracer;

/* ---- the next allocator ---------------------------------------------------
 * Memory comes from the next definition of each function after this
 * library in the symbol search order, as the program would have called it
 * without us: glibc's, or that of an allocator the program is linked with
 * (jemalloc, mimalloc, tcmalloc).  Each is found with dlsym(RTLD_NEXT) on
 * the first call of any of them (before this library's constructor, often
 * in the loader), through the stubs the table starts with; once found, the
 * table holds the allocator's own functions, so over glibc every call costs
 * what a call through the PLT did.
 *
 * dlsym may allocate (an error's message and result, for a name the next
 * allocator lacks: glibc 2.36 has no free_sized): the calls it makes while
 * the table is being filled are served from a static arena, untraced (the
 * thread filling the table is), and released before the table is done
 * (lookup); a release checks arena_owns before the allocator may see the
 * block.  Another thread calling meanwhile waits for the table.  A name
 * the next object lacks falls back: the sized frees to free,
 * malloc_usable_size to 0.  A function that only
 * glibc defines (jemalloc has no pvalloc) is glibc's, as without us. */
typedef struct next_allocator {
    void *(*malloc)(size_t);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void (*free)(void *);
    void *(*memalign)(size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    size_t (*usable_size)(void *);
    void (*free_sized)(void *, size_t);
    void (*free_aligned_sized)(void *, size_t, size_t);
} next_allocator;

static next_allocator next; /* its stubs are set below, after their definitions */

#define NEXT(fn) (__atomic_load_n(&next.fn, __ATOMIC_RELAXED))

enum { ARENA_SIZE = 1 << 16, ARENA_HEADER = 16 };
static _Alignas(4096) unsigned char arena[ARENA_SIZE];
static size_t arena_used;

INLINE int arena_owns(const void *p)
{
    return __builtin_expect((uintptr_t)p - (uintptr_t)arena < sizeof arena, 0);
}

/* A block of the arena, zeroed (the arena is never reused), its size in
 * the header before it; NULL with ENOMEM once the arena is spent. */
static void *arena_alloc(size_t size, size_t align)
{
    if (align < ARENA_HEADER)
        align = ARENA_HEADER;
    for (;;) {
        size_t used = __atomic_load_n(&arena_used, __ATOMIC_RELAXED);
        size_t start = (used + ARENA_HEADER + align - 1) & ~(align - 1);
        if (align > sizeof arena || start > sizeof arena || size > sizeof arena - start) {
            errno = ENOMEM;
            return NULL;
        }
        if (__atomic_compare_exchange_n(&arena_used, &used, start + size, 0, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
            memcpy(arena + start - ARENA_HEADER, &size, sizeof size);
            return arena + start;
        }
    }
}

static size_t arena_size_of(const void *p)
{
    size_t size;
    memcpy(&size, (const unsigned char *)p - ARENA_HEADER, sizeof size);
    return size;
}

static void *next_symbol(const char *name);

/* dlsym(RTLD_NEXT, name), or NULL; a failed lookup's error (which glibc
 * allocates) is read and discarded at once, the second dlerror freeing
 * what the first formatted. */
static void *lookup(const char *name)
{
    void *sym = next_symbol(name);
    if (!sym) {
        dlerror();
        dlerror();
    }
    return sym;
}

static void missing_free_sized(void *p, size_t size)
{
    (void)size;
    NEXT(free)(p);
}

static void missing_free_aligned_sized(void *p, size_t align, size_t size)
{
    (void)align;
    (void)size;
    NEXT(free)(p);
}

static size_t missing_usable_size(void *p)
{
    (void)p;
    return 0;
}

#define NEXT_SET(field, name, fallback)                                                            \
    do {                                                                                           \
        void *sym_ = lookup(name);                                                                 \
        __typeof__(next.field) fn_ = fallback;                                                     \
        if (sym_)                                                                                  \
            memcpy(&fn_, &sym_, sizeof fn_); /* ISO C has no object-to-function cast */            \
        if (!fn_) {                                                                                \
            static const char msg_[] = "alloctrace: no " name " after the preload library\n";    \
            ssize_t w_ = write(2, msg_, sizeof msg_ - 1);                                          \
            (void)w_;                                                                              \
            abort();                                                                               \
        }                                                                                          \
        __atomic_store_n(&next.field, fn_, __ATOMIC_RELAXED);                                      \
    } while (0)

enum { NEXT_UNRESOLVED, NEXT_RESOLVING, NEXT_RESOLVED };
static int next_state;
static __thread int filling_next __attribute__((tls_model("initial-exec")));

/* 1 once the table holds the next allocator's functions (filling it now
 * if nobody has, or waiting for the thread that is); 0 on the thread
 * filling it (a call from dlsym). */
static int next_ready(void)
{
    int s = __atomic_load_n(&next_state, __ATOMIC_ACQUIRE);
    if (s == NEXT_RESOLVED)
        return 1;
    if (filling_next)
        return 0;
    if (s == NEXT_RESOLVING ||
        !__atomic_compare_exchange_n(&next_state, &s, NEXT_RESOLVING, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        while (__atomic_load_n(&next_state, __ATOMIC_ACQUIRE) != NEXT_RESOLVED)
            sched_yield();
        return 1;
    }
    filling_next = 1;
    int was = at__untraced;
    at__untraced = 1;
    int err = errno;
    NEXT_SET(malloc, "malloc", NULL);
    NEXT_SET(calloc, "calloc", NULL);
    NEXT_SET(realloc, "realloc", NULL);
    NEXT_SET(free, "free", NULL);
    NEXT_SET(memalign, "memalign", NULL);
    NEXT_SET(aligned_alloc, "aligned_alloc", NULL);
    NEXT_SET(posix_memalign, "posix_memalign", NULL);
    NEXT_SET(valloc, "valloc", NULL);
    NEXT_SET(pvalloc, "pvalloc", NULL);
    NEXT_SET(usable_size, "malloc_usable_size", missing_usable_size);
    NEXT_SET(free_sized, "free_sized", missing_free_sized);
    NEXT_SET(free_aligned_sized, "free_aligned_sized", missing_free_aligned_sized);
    errno = err;
    at__untraced = was;
    filling_next = 0;
    __atomic_store_n(&next_state, NEXT_RESOLVED, __ATOMIC_RELEASE);
    return 1;
}

/* The table's first entries: each fills the table and calls what it got,
 * or serves the arena while the table is being filled. */
static void *stub_malloc(size_t size)
{
    return next_ready() ? NEXT(malloc)(size) : arena_alloc(size, MALLOC_ALIGN);
}

static void *stub_calloc(size_t n, size_t size)
{
    size_t total;
    if (next_ready())
        return NEXT(calloc)(n, size);
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return arena_alloc(total, MALLOC_ALIGN);
}

/* Never given an arena block: the entry point handles those. */
static void *stub_realloc(void *p, size_t size)
{
    return next_ready() ? NEXT(realloc)(p, size) : p ? NULL : arena_alloc(size, MALLOC_ALIGN);
}

static void stub_free(void *p)
{
    if (next_ready())
        NEXT(free)(p);
}

static void *stub_memalign(size_t align, size_t size)
{
    return next_ready() ? NEXT(memalign)(align, size) : arena_alloc(size, align);
}

static void *stub_aligned_alloc(size_t align, size_t size)
{
    return next_ready() ? NEXT(aligned_alloc)(align, size) : arena_alloc(size, align);
}

static int stub_posix_memalign(void **out, size_t align, size_t size)
{
    if (next_ready())
        return NEXT(posix_memalign)(out, align, size);
    void *p = arena_alloc(size, align);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

static void *stub_valloc(size_t size)
{
    return next_ready() ? NEXT(valloc)(size) : arena_alloc(size, (size_t)sysconf(_SC_PAGESIZE));
}

static void *stub_pvalloc(size_t size)
{
    return next_ready() ? NEXT(pvalloc)(size) : arena_alloc(size, (size_t)sysconf(_SC_PAGESIZE));
}

static size_t stub_usable_size(void *p)
{
    return next_ready() ? NEXT(usable_size)(p) : 0;
}

static void stub_free_sized(void *p, size_t size)
{
    if (next_ready())
        NEXT(free_sized)(p, size);
}

static void stub_free_aligned_sized(void *p, size_t align, size_t size)
{
    if (next_ready())
        NEXT(free_aligned_sized)(p, align, size);
}

static next_allocator next = {
    stub_malloc,   stub_calloc,         stub_realloc, stub_free,
    stub_memalign, stub_aligned_alloc,  stub_posix_memalign,
    stub_valloc,   stub_pvalloc,        stub_usable_size,
    stub_free_sized, stub_free_aligned_sized,
};

/* ---- bootstrap table ------------------------------------------------------ */

/* Blocks allocated before the tracer is ready, in chunks mapped with mmap
 * (a program's libraries can allocate thousands of blocks in their
 * constructors, before ours runs).  Only used at start-up, so a linear
 * search is fine. */
enum { BOOT_CHUNK = 4096, BOOT_DEPTH = 24 };
struct boot_block {
    void *ptr;
    size_t size, align;
    at_family family;
    uint32_t depth;
    uintptr_t frames[BOOT_DEPTH];
};
struct boot_chunk {
    struct boot_chunk *next;
    unsigned n;
    struct boot_block b[BOOT_CHUNK];
};
static struct boot_chunk *boot_head;
static unsigned long boot_dropped;
static at__spinlock boot_lock;

/* Inlined into the entry point (like on_alloc), so the stack starts at
 * the program's call site. */
INLINE void boot_remember(void *p, size_t size, size_t align, at_family family)
{
    uintptr_t frames[BOOT_DEPTH];
    int depth = at__backtrace(frames, BOOT_DEPTH, 1);
    at__spin_lock(&boot_lock);
    struct boot_chunk *c = boot_head;
    if (!c || c->n == BOOT_CHUNK) {
        c = mmap(NULL, sizeof *c, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (c == MAP_FAILED) {
            boot_dropped++;
            at__spin_unlock(&boot_lock);
            return;
        }
        c->next = boot_head;
        c->n = 0;
        boot_head = c;
    }
    struct boot_block *b = &c->b[c->n++];
    *b = (struct boot_block){p, size, align, family, depth > 0 ? (uint32_t)depth : 0, {0}};
    memcpy(b->frames, frames, b->depth * sizeof frames[0]);
    at__spin_unlock(&boot_lock);
}

static void boot_forget(void *p)
{
    at__spin_lock(&boot_lock);
    for (struct boot_chunk *c = boot_head; c; c = c->next) {
        for (unsigned i = 0; i < c->n; i++) {
            if (c->b[i].ptr == p) {
                /* Fill the hole with the newest entry. */
                struct boot_chunk *h = boot_head;
                c->b[i] = h->b[--h->n];
                if (h->n == 0 && h->next) {
                    boot_head = h->next;
                    munmap(h, sizeof *h);
                }
                at__spin_unlock(&boot_lock);
                return;
            }
        }
    }
    at__spin_unlock(&boot_lock);
}

/* Hands every remembered block to the tracer; called with boot_lock held. */
static void boot_adopt_all(void)
{
    while (boot_head) {
        struct boot_chunk *c = boot_head;
        for (unsigned i = 0; i < c->n; i++)
            at__trace_adopt(tracer, c->b[i].ptr, c->b[i].size, c->b[i].align, c->b[i].family,
                            c->b[i].frames, c->b[i].depth);
        boot_head = c->next;
        munmap(c, sizeof *c);
    }
}

/* ---- the two hooks every entry point calls ------------------------------- */

static int child_start(void);

INLINE int current_state(void)
{
    int s = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
    return __builtin_expect(s == S_CHILD, 0) ? child_start() : s;
}

/* ---- calls from a signal handler ----------------------------------------------------------
 * While a thread is inside a traced call (at__untraced == IN_CALL), only a
 * signal handler that interrupted it can call malloc or free on it: the
 * tracer's own code never does.  Such a call cannot be traced there (the
 * interrupted call may hold the locks it needs), so it waits in the
 * thread's queue and is traced, with no stack, as soon as the interrupted
 * call is done; a release is held back until then too, so that the
 * address is not handed out again before its release is recorded.  A full
 * queue counts the call as lost. */
enum { IN_CALL = 2, DEFERRED_MAX = 256 };
enum { DEFER_ALLOC, DEFER_RELEASE, DEFER_RELEASED };

typedef struct deferred_call {
    void *p;
    size_t size, align;
    uint8_t family, op, what;
} deferred_call;

static __thread unsigned ndeferred __attribute__((tls_model("initial-exec")));
static __thread deferred_call deferred[DEFERRED_MAX] __attribute__((tls_model("initial-exec")));

/* 1 when queued; 0 when the queue is full (counted as lost). */
static int defer(void *p, size_t size, size_t align, at_family family, enum at_op op, int what)
{
    unsigned n = __atomic_load_n(&ndeferred, __ATOMIC_RELAXED);
    if (n == DEFERRED_MAX) {
        if (what == DEFER_ALLOC)
            at__trace_untracked(tracer, 1); /* its release is not a finding */
        else
            at__trace_lost(tracer);
        return 0;
    }
    deferred[n] = (deferred_call){p, size, align, (uint8_t)family, (uint8_t)op, (uint8_t)what};
    __atomic_store_n(&ndeferred, n + 1, __ATOMIC_RELEASE);
    return 1;
}

/* Traces what handlers queued during the call that just ended; what they
 * queue meanwhile is taken too. */
static __attribute__((noinline)) void drain_deferred(void)
{
    for (unsigned i = 0;;) {
        unsigned n = __atomic_load_n(&ndeferred, __ATOMIC_ACQUIRE);
        if (i == n) {
            if (__atomic_compare_exchange_n(&ndeferred, &n, 0, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE))
                return;
            continue;
        }
        deferred_call c = deferred[i++];
        at__untraced = IN_CALL;
        if (c.what == DEFER_ALLOC) {
            at__trace_alloc(tracer, c.p, c.size, c.align, (at_family)c.family, (enum at_op)c.op,
                            AT_NO_STACK);
            at__untraced = 0;
        } else {
            at_block_info actual;
            int ok = at__trace_release(tracer, c.p, c.size, c.align, (at_family)c.family,
                                       (enum at_op)c.op, &actual, NULL, AT_NO_STACK);
            at__untraced = 0;
            if (ok && c.what == DEFER_RELEASE)
                NEXT(free)(c.p);
        }
    }
}

#define AFTER_CALL()                                                                                   do {                                                                                                   at__untraced = 0;                                                                                  if (__builtin_expect(__atomic_load_n(&ndeferred, __ATOMIC_ACQUIRE) != 0, 0))                       drain_deferred();                                                                          } while (0)

/* Inlined into each entry point, so that one frame (the entry point) is
 * skipped and the trace's first frame is the program's call site. */
INLINE void on_alloc(void *p, size_t size, size_t align, at_family family, enum at_op op)
{
    if (!p)
        return;
    if (at__untraced) {
        if (__builtin_expect(at__untraced == IN_CALL, 0))
            defer(p, size, align, family, op, DEFER_ALLOC);
        return;
    }
    int s = current_state();
    if (s == S_READY) {
        at__untraced = IN_CALL;
        at__trace_alloc(tracer, p, size, align, family, op, 1);
        AFTER_CALL();
    } else if (s == S_BOOT) {
        boot_remember(p, size, align, family);
    }
}

/* 1 when `p` must be given back to the next allocator, 0 when the release
 * was bad (a finding is recorded) and the allocator must never see it, or
 * is queued (a signal handler's, which drain_deferred gives back), or `p`
 * is the arena's. */
INLINE int on_release(void *p, size_t size, size_t align, at_family family)
{
    if (at__untraced) {
        if (__builtin_expect(at__untraced == IN_CALL, 0))
            return !defer(p, size, align, family, AT_OP_DEALLOC, DEFER_RELEASE);
        return !arena_owns(p);
    }
    int s = current_state();
    if (s == S_READY) {
        at_block_info actual;
        at__untraced = IN_CALL;
        int ok = at__trace_release(tracer, p, size, align, family, AT_OP_DEALLOC, &actual, NULL, 1);
        AFTER_CALL();
        return ok;
    }
    /* The arena's blocks are untraced, so never in the tracer's table: one
     * that outlived the lookups (none does over glibc 2.36) is an invalid
     * free when traced, and never given to the allocator. */
    if (arena_owns(p))
        return 0;
    if (s == S_BOOT)
        boot_forget(p);
    return 1;
}

/* A request its function's contract rejects or leaves to the
 * implementation (tracer_internal.h, at__trace_request); inlined, like
 * on_alloc, so that the finding's stack starts at the call site.  Off the
 * hot path: a call gets here only when its arguments are bad. */
INLINE void on_request(at_finding_kind kind, void *p, size_t size, size_t align, at_family family)
{
    if (at__untraced || current_state() != S_READY)
        return;
    at__untraced = IN_CALL;
    at__trace_request(tracer, kind, p, size, align, family, 1);
    AFTER_CALL();
}

static int is_pow2(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

static size_t pow2_at_least(size_t x)
{
    size_t p = 1;
    while (p < x && p < ((size_t)1 << (sizeof(size_t) * 8 - 1)))
        p <<= 1;
    return p;
}

/* A block for operator new and realloc: malloc's, or for a larger (power
 * of two) alignment posix_memalign's, which every allocator has and which
 * puts no condition on the size. */
static void *aligned_block(size_t align, size_t size)
{
    if (align <= MALLOC_ALIGN)
        return NEXT(malloc)(size);
    void *p;
    int rc = NEXT(posix_memalign)(&p, align, size);
    if (rc == 0)
        return p;
    errno = rc;
    return NULL;
}

/* ---- the malloc family ---------------------------------------------------- */

/* Every entry point gives the program what the next allocator (or
 * libstdc++) gives it for the same arguments, bad ones included: the same
 * result, errno and exception (tests/requests_test.py compares them with a
 * run without alloctrace).  Bad arguments are findings besides
 * (on_request). */

EXPORT void *malloc(size_t size)
{
    void *p = NEXT(malloc)(size);
    if (__builtin_expect(size == 0, 0))
        on_request(AT_FINDING_ZERO_SIZE, p, 0, MALLOC_ALIGN, AT_FAMILY_MALLOC);
    on_alloc(p, size, MALLOC_ALIGN, AT_FAMILY_MALLOC, AT_OP_ALLOC);
    return p;
}

EXPORT void *calloc(size_t n, size_t size)
{
    void *p = NEXT(calloc)(n, size); /* checks n * size for overflow */
    if (__builtin_expect(n == 0 || size == 0, 0))
        on_request(AT_FINDING_ZERO_SIZE, p, 0, MALLOC_ALIGN, AT_FAMILY_MALLOC);
    on_alloc(p, n * size, MALLOC_ALIGN, AT_FAMILY_MALLOC, AT_OP_ALLOC_ZEROED);
    return p;
}

EXPORT void free(void *p)
{
    if (p && on_release(p, 0, 0, AT_FAMILY_MALLOC))
        NEXT(free)(p);
}

/* realloc is a release and an allocation; the release is checked first
 * and recorded only once the next realloc has succeeded, since a failed
 * realloc leaves the old block live.  A block of the arena moves to the
 * next allocator and is traced as a new one (its allocation was not). */
INLINE void *traced_realloc(void *p, size_t size)
{
    if (!p || arena_owns(p)) {
        void *q = NEXT(malloc)(size);
        if (q && p)
            memcpy(q, p, arena_size_of(p) < size ? arena_size_of(p) : size);
        if (__builtin_expect(size == 0, 0))
            on_request(AT_FINDING_ZERO_SIZE, q, 0, MALLOC_ALIGN, AT_FAMILY_MALLOC);
        on_alloc(q, size, MALLOC_ALIGN, AT_FAMILY_MALLOC, AT_OP_REALLOC);
        return q;
    }
    if (size == 0) { /* glibc frees the block and returns NULL; jemalloc
                        * returns a new block, traced as one */
        on_request(AT_FINDING_ZERO_SIZE, NULL, 0, MALLOC_ALIGN, AT_FAMILY_MALLOC);
        if (!on_release(p, 0, 0, AT_FAMILY_MALLOC))
            return NULL;
        void *q = NEXT(realloc)(p, 0);
        on_alloc(q, 0, MALLOC_ALIGN, AT_FAMILY_MALLOC, AT_OP_REALLOC);
        return q;
    }
    if (__builtin_expect(at__untraced == IN_CALL, 0)) { /* a signal handler's */
        void *q = NEXT(realloc)(p, size);
        if (q) {
            defer(p, 0, 0, AT_FAMILY_MALLOC, AT_OP_REALLOC, DEFER_RELEASED);
            defer(q, size, MALLOC_ALIGN, AT_FAMILY_MALLOC, AT_OP_REALLOC, DEFER_ALLOC);
        }
        return q;
    }
    int s = at__untraced ? S_OFF : current_state();
    if (s != S_READY) {
        void *q = NEXT(realloc)(p, size);
        if (q && s == S_BOOT && !at__untraced) {
            boot_forget(p);
            boot_remember(q, size, MALLOC_ALIGN, AT_FAMILY_MALLOC);
        }
        return q;
    }
    at__untraced = IN_CALL;
    at_block_info old;
    at_rec_lifetime rec;
    void *q = NULL;
    if (!at__trace_release(tracer, p, 0, 0, AT_FAMILY_MALLOC, AT_OP_REALLOC, &old, &rec, 1)) {
        errno = ENOMEM; /* a bad pointer: reported, and never handed to the allocator */
        goto out;
    }
    size_t align = (size_t)1 << old.align_log2;
    if (align <= MALLOC_ALIGN) {
        q = NEXT(realloc)(p, size);
    } else { /* keep the block's alignment, which realloc would not */
        q = aligned_block(align, size);
        if (q) {
            memcpy(q, p, old.size < size ? old.size : size);
            NEXT(free)(p);
        } else {
            errno = ENOMEM;
        }
    }
    if (!q) {
        at__trace_release_undo(tracer, &old);
        goto out;
    }
    at__trace_release_commit(tracer, &rec);
    at__trace_alloc(tracer, q, size, align < MALLOC_ALIGN ? MALLOC_ALIGN : align,
                    AT_FAMILY_MALLOC, AT_OP_REALLOC, 1);
out:
    AFTER_CALL();
    return q;
}

EXPORT void *realloc(void *p, size_t size)
{
    return traced_realloc(p, size);
}

EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return traced_realloc(p, total);
}

/* As glibc: EINVAL, *out untouched, errno unchanged, for an alignment
 * that is not a power-of-two multiple of sizeof(void *); ENOMEM, with
 * errno ENOMEM as memalign leaves it, when there is no memory. */
EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
    void *p = NULL;
    if (!is_pow2(align) || align % sizeof(void *) != 0) {
        on_request(AT_FINDING_INVALID_ALIGNMENT, NULL, size, align, AT_FAMILY_MALLOC);
        int rc = NEXT(posix_memalign)(&p, align, size);
        if (rc == 0) { /* an allocator that takes it: the block is traced */
            on_alloc(p, size, pow2_at_least(align ? align : 1), AT_FAMILY_MALLOC, AT_OP_ALLOC);
            *out = p;
        }
        return rc;
    }
    int rc = NEXT(posix_memalign)(&p, align, size);
    if (rc != 0)
        p = NULL;
    if (__builtin_expect(size == 0, 0))
        on_request(AT_FINDING_ZERO_SIZE, p, 0, align, AT_FAMILY_MALLOC);
    if (!p)
        return rc;
    on_alloc(p, size, align, AT_FAMILY_MALLOC, AT_OP_ALLOC);
    *out = p;
    return 0;
}

/* glibc 2.36's memalign and aligned_alloc are one function: any alignment
 * is rounded up to a power of two, one above SIZE_MAX / 2 + 1 is EINVAL.
 * The next allocator is given the alignment as passed; the block's layout records the
 * rounded one, which is what the block has.  The request's faults are
 * findings: an alignment that is not a power of two, and for
 * aligned_alloc (C11) a size that is not a multiple of it. */
INLINE void *traced_memalign(size_t align, size_t size, int c11)
{
    void *p = c11 ? NEXT(aligned_alloc)(align, size) : NEXT(memalign)(align, size);
    if (__builtin_expect(!is_pow2(align), 0))
        on_request(AT_FINDING_INVALID_ALIGNMENT, p, size, align, AT_FAMILY_MALLOC);
    else if (c11 && __builtin_expect(size % align != 0, 0))
        on_request(AT_FINDING_INVALID_SIZE, p, size, align, AT_FAMILY_MALLOC);
    if (__builtin_expect(size == 0, 0))
        on_request(AT_FINDING_ZERO_SIZE, p, 0, align, AT_FAMILY_MALLOC);
    on_alloc(p, size, pow2_at_least(align ? align : 1), AT_FAMILY_MALLOC, AT_OP_ALLOC);
    return p;
}

EXPORT void *aligned_alloc(size_t align, size_t size)
{
    return traced_memalign(align, size, 1);
}

EXPORT void *memalign(size_t align, size_t size)
{
    return traced_memalign(align, size, 0);
}

EXPORT void *valloc(size_t size)
{
    void *p = NEXT(valloc)(size);
    if (__builtin_expect(size == 0, 0))
        on_request(AT_FINDING_ZERO_SIZE, p, 0, (size_t)sysconf(_SC_PAGESIZE), AT_FAMILY_MALLOC);
    on_alloc(p, size, (size_t)sysconf(_SC_PAGESIZE), AT_FAMILY_MALLOC, AT_OP_ALLOC);
    return p;
}

EXPORT void *pvalloc(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *p = NEXT(pvalloc)(size);
    if (__builtin_expect(size == 0, 0))
        on_request(AT_FINDING_ZERO_SIZE, p, 0, page, AT_FAMILY_MALLOC);
    size_t rounded = size ? (size + page - 1) & ~(page - 1) : page;
    on_alloc(p, rounded, page, AT_FAMILY_MALLOC, AT_OP_ALLOC);
    return p;
}

/* C23's sized frees: their size and alignment are a release layout.
 * glibc 2.36's headers predate them. */
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t align, size_t size);

EXPORT void free_sized(void *p, size_t size)
{
    if (p && on_release(p, size, MALLOC_ALIGN, AT_FAMILY_MALLOC))
        NEXT(free_sized)(p, size);
}

EXPORT void free_aligned_sized(void *p, size_t align, size_t size)
{
    if (!p)
        return;
    /* no alignment, no layout: check the pointer only */
    if (on_release(p, align ? size : 0, align, AT_FAMILY_MALLOC))
        NEXT(free_aligned_sized)(p, align, size);
}

EXPORT size_t malloc_usable_size(void *p)
{
    if (!p)
        return 0;
    if (arena_owns(p))
        return arena_size_of(p);
    return NEXT(usable_size)(p);
}

/* ---- C++ operator new and delete ----------------------------------------- */

typedef void (*new_handler_fn)(void);

typedef void (*void_fn)(void);

/* libstdc++'s own functions, found at run time: a C program never loads
 * libstdc++ because of us. */
static void_fn cxx_symbol(const char *name)
{
    int was = at__untraced;
    at__untraced = 1;
    void *sym = dlsym(RTLD_DEFAULT, name);
    at__untraced = was;
    void_fn f = NULL;
    if (sym)
        memcpy(&f, &sym, sizeof f); /* ISO C has no object-to-function cast */
    return f;
}

/* A failed operator new: std::bad_alloc, or NULL for the nothrow forms.
 * Built with -fexceptions, so the exception unwinds through the entry
 * point's frame. */
static void *new_failed(int nothrow)
{
    if (!nothrow) {
        void_fn throw_bad_alloc = cxx_symbol("_ZSt17__throw_bad_allocv");
        if (throw_bad_alloc)
            throw_bad_alloc();
        abort();
    }
    return NULL;
}

/* operator new's contract: call the new-handler until memory comes or
 * there is no handler, then fail. */
INLINE void *cxx_new(size_t size, size_t align, int nothrow)
{
    for (;;) {
        void *p = aligned_block(align, size);
        if (p)
            return p;
        new_handler_fn (*get)(void) = (new_handler_fn(*)(void))cxx_symbol("_ZSt15get_new_handlerv");
        new_handler_fn h = get ? get() : NULL;
        if (!h)
            break;
        h();
    }
    return new_failed(nothrow);
}

#define NEW_FN(name, params, size, align, family, nothrow)                                         \
    EXPORT void *name params                                                                       \
    {                                                                                              \
        void *p = cxx_new(size, align, nothrow);                                                   \
        on_alloc(p, size, align, family, AT_OP_ALLOC);                                             \
        return p;                                                                                  \
    }

/* The align_val_t forms, as libstdc++ 12 has them: an alignment that is not
 * a power of two fails at once (bad_alloc, or NULL for nothrow; the
 * new-handler is not called); otherwise the size, 0 taken as 1, is rounded
 * up to the alignment for aligned_alloc, where a size within the alignment
 * of SIZE_MAX wraps around to a small block, which it returns.  Both are
 * findings; the wrapped block is traced with the size it has. */
INLINE void *cxx_new_aligned(size_t size, size_t align, int nothrow, at_family family)
{
    if (__builtin_expect(!is_pow2(align), 0)) {
        on_request(AT_FINDING_INVALID_ALIGNMENT, NULL, size, align, family);
        return new_failed(nothrow);
    }
    size_t rounded = ((size ? size : 1) + align - 1) & ~(align - 1);
    int wrapped = rounded < size;
    void *p = cxx_new(wrapped ? rounded : size, align, nothrow);
    if (__builtin_expect(wrapped, 0))
        on_request(AT_FINDING_INVALID_SIZE, p, size, align, family);
    on_alloc(p, wrapped ? rounded : size, align, family, AT_OP_ALLOC);
    return p;
}

#define NEW_ALIGNED_FN(name, params, family, nothrow)                                              \
    EXPORT void *name params                                                                       \
    {                                                                                              \
        return cxx_new_aligned(n, al, nothrow, family);                                            \
    }

typedef struct nothrow_t nothrow_t;
void *_Znwm(size_t);
void *_Znam(size_t);
void *_ZnwmRKSt9nothrow_t(size_t, const nothrow_t *);
void *_ZnamRKSt9nothrow_t(size_t, const nothrow_t *);
void *_ZnwmSt11align_val_t(size_t, size_t);
void *_ZnamSt11align_val_t(size_t, size_t);
void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t, size_t, const nothrow_t *);
void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t, size_t, const nothrow_t *);

NEW_FN(_Znwm, (size_t n), n, NEW_ALIGN, AT_FAMILY_NEW, 0)
NEW_FN(_Znam, (size_t n), n, NEW_ALIGN, AT_FAMILY_NEW_ARRAY, 0)
NEW_FN(_ZnwmRKSt9nothrow_t, (size_t n, const nothrow_t *nt), n, NEW_ALIGN, AT_FAMILY_NEW, 1)
NEW_FN(_ZnamRKSt9nothrow_t, (size_t n, const nothrow_t *nt), n, NEW_ALIGN, AT_FAMILY_NEW_ARRAY, 1)
NEW_ALIGNED_FN(_ZnwmSt11align_val_t, (size_t n, size_t al), AT_FAMILY_NEW, 0)
NEW_ALIGNED_FN(_ZnamSt11align_val_t, (size_t n, size_t al), AT_FAMILY_NEW_ARRAY, 0)
NEW_ALIGNED_FN(_ZnwmSt11align_val_tRKSt9nothrow_t, (size_t n, size_t al, const nothrow_t *nt),
               AT_FAMILY_NEW, 1)
NEW_ALIGNED_FN(_ZnamSt11align_val_tRKSt9nothrow_t, (size_t n, size_t al, const nothrow_t *nt),
               AT_FAMILY_NEW_ARRAY, 1)

/* An unsized delete states the alignment (the default one, or the
 * align_val_t it is given) but not the size. */
#define DELETE_FN(name, params, size, align, family)                                               \
    EXPORT void name params                                                                        \
    {                                                                                              \
        if (p && on_release(p, size, align, family))                                               \
            NEXT(free)(p);                                                                         \
    }

void _ZdlPv(void *);
void _ZdaPv(void *);
void _ZdlPvm(void *, size_t);
void _ZdaPvm(void *, size_t);
void _ZdlPvRKSt9nothrow_t(void *, const nothrow_t *);
void _ZdaPvRKSt9nothrow_t(void *, const nothrow_t *);
void _ZdlPvSt11align_val_t(void *, size_t);
void _ZdaPvSt11align_val_t(void *, size_t);
void _ZdlPvmSt11align_val_t(void *, size_t, size_t);
void _ZdaPvmSt11align_val_t(void *, size_t, size_t);
void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *, size_t, const nothrow_t *);
void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *, size_t, const nothrow_t *);

DELETE_FN(_ZdlPv, (void *p), AT_SIZE_UNKNOWN, NEW_ALIGN, AT_FAMILY_NEW)
DELETE_FN(_ZdaPv, (void *p), AT_SIZE_UNKNOWN, NEW_ALIGN, AT_FAMILY_NEW_ARRAY)
DELETE_FN(_ZdlPvm, (void *p, size_t n), n, NEW_ALIGN, AT_FAMILY_NEW)
DELETE_FN(_ZdaPvm, (void *p, size_t n), n, NEW_ALIGN, AT_FAMILY_NEW_ARRAY)
DELETE_FN(_ZdlPvRKSt9nothrow_t, (void *p, const nothrow_t *nt), AT_SIZE_UNKNOWN, NEW_ALIGN,
          AT_FAMILY_NEW)
DELETE_FN(_ZdaPvRKSt9nothrow_t, (void *p, const nothrow_t *nt), AT_SIZE_UNKNOWN, NEW_ALIGN,
          AT_FAMILY_NEW_ARRAY)
DELETE_FN(_ZdlPvSt11align_val_t, (void *p, size_t al), AT_SIZE_UNKNOWN, al, AT_FAMILY_NEW)
DELETE_FN(_ZdaPvSt11align_val_t, (void *p, size_t al), AT_SIZE_UNKNOWN, al, AT_FAMILY_NEW_ARRAY)
DELETE_FN(_ZdlPvmSt11align_val_t, (void *p, size_t n, size_t al), n, al, AT_FAMILY_NEW)
DELETE_FN(_ZdaPvmSt11align_val_t, (void *p, size_t n, size_t al), n, al, AT_FAMILY_NEW_ARRAY)
DELETE_FN(_ZdlPvSt11align_val_tRKSt9nothrow_t, (void *p, size_t al, const nothrow_t *nt),
          AT_SIZE_UNKNOWN, al, AT_FAMILY_NEW)
DELETE_FN(_ZdaPvSt11align_val_tRKSt9nothrow_t, (void *p, size_t al, const nothrow_t *nt),
          AT_SIZE_UNKNOWN, al, AT_FAMILY_NEW_ARRAY)

/* ---- the program's own pools (alloctrace/annotate.h) ------------------------
 * The macros of annotate.h call these when the dynamic linker bound them,
 * that is under this library only (docs/pools.md).  Each is one call into
 * the tracer (pools.c) with the thread marked as inside a traced call, so
 * that the tracer's own work is not traced; the pool's memory is never
 * touched.  A call from a signal handler that interrupted a traced call,
 * or while the library is not tracing, records nothing (counted lost
 * while tracing). */
void at_pool_create(const void *pool, const char *name);
void at_pool_alloc(const void *pool, const void *ptr, size_t size, size_t align);
void at_pool_free(const void *pool, const void *ptr, size_t size, size_t align);
void at_pool_destroy(const void *pool);

/* 1 when a pool's call may be traced now (then at__untraced is IN_CALL
 * until AFTER_CALL). */
INLINE int pool_call_begins(void)
{
    if (at__untraced) {
        if (at__untraced == IN_CALL && current_state() == S_READY)
            at__trace_lost(tracer);
        return 0;
    }
    if (current_state() != S_READY)
        return 0;
    at__untraced = IN_CALL;
    return 1;
}

EXPORT void at_pool_create(const void *pool, const char *name)
{
    if (!pool_call_begins())
        return;
    at__pool_create(tracer, pool, name, 1);
    AFTER_CALL();
}

EXPORT void at_pool_alloc(const void *pool, const void *ptr, size_t size, size_t align)
{
    if (!pool_call_begins())
        return;
    at__pool_alloc(tracer, pool, (void *)ptr, size, align, 1);
    AFTER_CALL();
}

EXPORT void at_pool_free(const void *pool, const void *ptr, size_t size, size_t align)
{
    if (!pool_call_begins())
        return;
    at__pool_free(tracer, pool, (void *)ptr, size, align, 1);
    AFTER_CALL();
}

EXPORT void at_pool_destroy(const void *pool)
{
    if (!pool_call_begins())
        return;
    at__pool_destroy(tracer, pool, 1);
    AFTER_CALL();
}

/* ---- allocators that trace through this library: the Rust crate --------- */

/* The Rust crate alloctrace (bindings/rust, docs/rust.md) decorates a
 * program's global allocator with the exact layout of every call.  Under
 * `alloctrace run` it finds at_preload_hook with dlsym(RTLD_DEFAULT) and
 * traces through this library's tracer instead of opening a trace of its
 * own: one trace, one record per allocation, with Rust's layouts.  Its
 * inner allocator (Rust's System calls malloc, posix_memalign, realloc and
 * free) runs untraced here, as the tracer's own calls do; the decorator's
 * calls are traced in the allocator family, as at_tracing_allocator's.
 * Calls while this library is not tracing (after the trace is closed, or
 * when none could be opened) go to the inner allocator as they are. */
typedef struct at_preload_hooks {
    at_allocator allocator; /* decorates the allocator given */
    uint64_t (*mark)(const char *label);
    void (*live_since)(uint64_t mark, int this_thread, at_live_summary *out);
} at_preload_hooks;

int at_preload_hook(const at_allocator *inner, at_preload_hooks *out);

struct hooked {
    at_allocator inner;
};

/* 1 when the call is to be traced: not on a thread running the tracer or
 * a signal handler that interrupted it, and while tracing. */
INLINE int hook_traced(void)
{
    return !at__untraced && current_state() == S_READY;
}

INLINE void *hook_alloc_op(void *ctx, at_layout l, int zeroed)
{
    at_allocator inner = ((struct hooked *)ctx)->inner;
    int traced = hook_traced();
    int was = at__untraced;
    at__untraced = 1;
    void *p = zeroed ? at_alloc_zeroed(inner, l) : at_alloc(inner, l);
    at__untraced = was;
    if (p && traced) {
        at__untraced = IN_CALL;
        at__trace_alloc(tracer, p, l.size, l.align, AT_FAMILY_ALLOCATOR,
                        zeroed ? AT_OP_ALLOC_ZEROED : AT_OP_ALLOC, 1);
        AFTER_CALL();
    }
    return p;
}

static void *hook_alloc(void *ctx, at_layout l)
{
    return hook_alloc_op(ctx, l, 0);
}

static void *hook_alloc_zeroed(void *ctx, at_layout l)
{
    return hook_alloc_op(ctx, l, 1);
}

static void hook_inner_dealloc(at_allocator inner, void *p, at_layout l)
{
    int was = at__untraced;
    at__untraced = 1;
    at_dealloc(inner, p, l);
    at__untraced = was;
}

/* As tracing_allocator.c: the release is checked and recorded first, and
 * the inner allocator gets the block's own layout. */
static void hook_dealloc(void *ctx, void *p, at_layout l)
{
    at_allocator inner = ((struct hooked *)ctx)->inner;
    if (!hook_traced()) {
        hook_inner_dealloc(inner, p, l);
        return;
    }
    at_block_info actual;
    at__untraced = IN_CALL;
    if (at__trace_release(tracer, p, l.size, l.align, AT_FAMILY_ALLOCATOR, AT_OP_DEALLOC, &actual,
                          NULL, 1))
        hook_inner_dealloc(inner, p, (at_layout){(size_t)actual.size, (size_t)1 << actual.align_log2});
    AFTER_CALL();
}

static void *hook_realloc(void *ctx, void *p, at_layout l, size_t new_size)
{
    at_allocator inner = ((struct hooked *)ctx)->inner;
    if (!hook_traced()) {
        int was = at__untraced;
        at__untraced = 1;
        void *q = at_realloc(inner, p, l, new_size);
        at__untraced = was;
        return q;
    }
    at_block_info old;
    at_rec_lifetime rec;
    void *q = NULL;
    at__untraced = IN_CALL;
    if (at__trace_release(tracer, p, l.size, l.align, AT_FAMILY_ALLOCATOR, AT_OP_REALLOC, &old,
                          &rec, 1)) {
        at_layout real = {(size_t)old.size, (size_t)1 << old.align_log2};
        at__untraced = 1;
        q = at_realloc(inner, p, real, new_size);
        at__untraced = IN_CALL;
        if (!q) {
            at__trace_release_undo(tracer, &old);
        } else {
            at__trace_release_commit(tracer, &rec);
            at__trace_alloc(tracer, q, new_size, real.align, AT_FAMILY_ALLOCATOR, AT_OP_REALLOC, 1);
        }
    }
    AFTER_CALL();
    return q;
}

static const at_allocator_ops hook_ops = {
    .alloc = hook_alloc,
    .dealloc = hook_dealloc,
    .alloc_zeroed = hook_alloc_zeroed,
    .realloc = hook_realloc,
    .name = "tracing (preload)",
};

static uint64_t hook_mark(const char *label)
{
    if (!hook_traced())
        return 0;
    at__untraced = 1;
    uint64_t m = at_tracer_mark(tracer, label);
    at__untraced = 0;
    return m;
}

static void hook_live_since(uint64_t mark, int this_thread, at_live_summary *out)
{
    if (!hook_traced()) {
        memset(out, 0, sizeof *out);
        return;
    }
    at__untraced = 1;
    if (this_thread)
        at_tracer_live_since_thread(tracer, mark, out);
    else
        at_tracer_live_since(tracer, mark, out);
    at__untraced = 0;
}

/* 0 and *out set while this library traces; AT_E_INVALID otherwise
 * (the caller then traces on its own), AT_E_NOMEM. */
EXPORT int at_preload_hook(const at_allocator *inner, at_preload_hooks *out)
{
    if (!inner || !out || !hook_traced())
        return AT_E_INVALID;
    struct hooked *h = __libc_malloc(sizeof *h); /* kept for the whole run */
    if (!h)
        return AT_E_NOMEM;
    h->inner = *inner;
    *out = (at_preload_hooks){{&hook_ops, h}, hook_mark, hook_live_since};
    return 0;
}

/* ---- start and finish ------------------------------------------------------ */

/* The command line, from /proc (no allocation: static storage). */
static char cmdline[32768];
static char *cmd_argv[512];

static int read_cmdline(void)
{
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, cmdline, sizeof cmdline - 1);
    close(fd);
    if (n <= 0)
        return 0;
    cmdline[n] = '\0';
    int argc = 0;
    for (char *s = cmdline; s < cmdline + n && argc < (int)(sizeof cmd_argv / sizeof *cmd_argv) - 1;
         s += strlen(s) + 1)
        cmd_argv[argc++] = s;
    cmd_argv[argc] = NULL;
    return argc;
}

/* Takes this library out of LD_PRELOAD, in place (setenv would allocate),
 * so that programs this one starts run untraced. */
static void leave_ld_preload(void)
{
    char *v = getenv("LD_PRELOAD");
    if (!v)
        return;
    char *out = v;
    for (char *s = v; *s;) {
        size_t len = strcspn(s, ": ");
        char *sep = s + len;
        int ours = len >= sizeof AT_PRELOAD_NAME + 1 &&
                   memmem(s, len, AT_PRELOAD_NAME, sizeof AT_PRELOAD_NAME - 1) != NULL;
        if (!ours) {
            if (out != v)
                *out++ = ':';
            memmove(out, s, len);
            out += len;
        }
        s = *sep ? sep + 1 : sep;
    }
    *out = '\0';
}

static char trace_path[4096];
/* The working directory at start: relative trace names are resolved in it
 * (a forked child that changed directory before its first call writes
 * where the run looks for it). */
static char start_cwd[4096];

static void make_absolute(void)
{
    if (trace_path[0] == '/' || !start_cwd[0])
        return;
    char rel[sizeof trace_path];
    memcpy(rel, trace_path, sizeof rel);
    const char *r = strncmp(rel, "./", 2) == 0 ? rel + 2 : rel;
    if ((size_t)snprintf(trace_path, sizeof trace_path, "%s/%s", start_cwd, r) >= sizeof trace_path)
        memcpy(trace_path, rel, sizeof rel); /* too long: as it was */
}

/* Said once by a process that cannot write its spool: it runs untraced. */
static void say_untraced(int rc, int err)
{
    fprintf(stderr, "alloctrace: process %ld cannot write the spool for %s: %s (%s); running untraced\n",
            (long)getpid(), trace_path, at_strerror(rc), strerror(err));
}

/* The trace of this process image.  The run's own is AT_ENV_OUTPUT; any
 * other (a forked child, a followed program, an image exec'd by the run's
 * program) is PROG.PID.db in AT_ENV_OUTPUT_DIR when that is set, else
 * named after the run's trace (run_protocol.h). */
static void choose_path(const char *prog, int ours)
{
    const char *out = getenv(AT_ENV_OUTPUT);
    const char *dir = getenv(AT_ENV_OUTPUT_DIR);
    pid_t pid = getpid();
    if (out && *out && ours)
        snprintf(trace_path, sizeof trace_path, "%s", out);
    else if (dir && *dir)
        at__run_dir_trace(trace_path, sizeof trace_path, dir, prog, pid);
    else if (out && *out)
        at__run_child_trace(trace_path, sizeof trace_path, out, pid);
    else
        at__run_default_trace(trace_path, sizeof trace_path, prog, pid);
    make_absolute();
}

/* Whether the pid in AT_ENV_PID is this process's: the run's program. */
static int run_owner(void)
{
    const char *owner = getenv(AT_ENV_PID);
    return owner && atol(owner) == (long)getpid();
}

/* Opens (through `open_one`) the spool of trace_path, or, while that trace
 * or its spool exists already (an earlier image of the same name and pid,
 * replaced by exec), of trace_path numbered 2, 3...  0 or the last error. */
static int open_numbered(int (*open_one)(const char *spool, void *arg), void *arg)
{
    char base[sizeof trace_path];
    snprintf(base, sizeof base, "%s", trace_path);
    static char spool[sizeof trace_path + sizeof AT_SPOOL_SUFFIX];
    int rc = AT_E_EXISTS;
    for (int n = 1; n <= 100 && rc == AT_E_EXISTS; n++) {
        if (n > 1)
            at__run_numbered_trace(trace_path, sizeof trace_path, base, n);
        if (access(trace_path, F_OK) == 0)
            continue;
        at__run_spool_of(spool, sizeof spool, trace_path);
        rc = open_one(spool, arg);
    }
    return rc;
}

static void finish(void);
static int leak_scan = 1; /* AT_ENV_LEAK_SCAN */

/* fork(): the boot table's lock first (the boot adoption calls into the
 * tracer while holding it), then every lock of the tracer, in the order
 * documented at at__tracer_fork_prepare.  What prepare took is released
 * afterwards even if another thread changed `state` meanwhile (a trace
 * closed by exit on another thread). */
static at_tracer *fork_locked;

static void before_fork(void)
{
    at__spin_lock(&boot_lock);
    fork_locked = __atomic_load_n(&state, __ATOMIC_ACQUIRE) == S_READY ? tracer : NULL;
    if (fork_locked)
        at__tracer_fork_prepare(fork_locked);
}

static void after_fork_parent(void)
{
    if (fork_locked)
        at__tracer_fork_parent(fork_locked);
    fork_locked = NULL;
    at__spin_unlock(&boot_lock);
}

/* This image was forked from a traced process: an exec it calls starts
 * another program, traced only with AT_ENV_FOLLOW_CHILDREN.  The pid the
 * tracer writes for, to tell a vfork child (which shares our memory) from
 * us. */
static int forked;
static pid_t traced_pid;

static void after_fork_child(void)
{
    forked = 1;
    at_tracer *t = fork_locked;
    fork_locked = NULL;
    if (t)
        at__tracer_fork_child(t);
    at__spin_unlock(&boot_lock);
    int expected = S_READY;
    if (t)
        __atomic_compare_exchange_n(&state, &expected, S_CHILD, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE);
}

/* The forked child's first traced call: its own spool, named like a
 * followed child's, which `alloctrace run` (or recover) turns into
 * `<trace>.<pid>.db`.  Runs alone: the child has one thread until it
 * creates more, and creating one allocates first. */
static int child_open(const char *spool, void *arg)
{
    return at__tracer_child_start(tracer, spool, *(int *)arg, cmd_argv);
}

static int child_start(void)
{
    int was = at__untraced;
    at__untraced = 1;
    int argc = read_cmdline();
    choose_path(argc > 0 ? cmd_argv[0] : "program", 0);
    int rc = open_numbered(child_open, &argc);
    if (rc == 0)
        traced_pid = getpid();
    else
        say_untraced(rc, errno);
    int s = rc == 0 ? S_READY : S_OFF;
    __atomic_store_n(&state, s, __ATOMIC_RELEASE);
    at__untraced = was;
    return s;
}

static void on_quick_exit(void)
{
    finish();
}

static void save_environment(void);

static int own_open(const char *spool, void *arg)
{
    return at__tracer_open_spool(arg, spool, 1, &tracer);
}

/* The image exec'd by a traced one of this pid: AT_ENV_EXEC_FROM names the
 * predecessor's trace, recorded as meta exec_from. */
static void note_exec_from(void)
{
    const char *from = getenv(AT_ENV_EXEC_FROM);
    char *end;
    if (from && strtol(from, &end, 10) == (long)getpid() && *end == ':')
        at__tracer_note(tracer, "exec_from", end + 1);
}

/* Opens the spool: the one `alloctrace run` made and reads, for the run's
 * own program; else one of this process's own, for `alloctrace run` or
 * `alloctrace recover` to turn into a trace later (plain LD_PRELOAD, a
 * child it follows, or an image that replaced the run's program by exec,
 * whose spool is written already). */
static int open_spool(at_trace_options *o, const char *prog)
{
    const char *spool = getenv(AT_ENV_SPOOL);
    int ours = spool && *spool && run_owner();
    choose_path(prog, ours);
    int rc = ours ? at__tracer_open_spool(o, spool, 0, &tracer) : AT_E_EXISTS;
    if (rc == AT_E_EXISTS) {
        if (ours) /* exec'd by the run's program: a trace of its own */
            choose_path(prog, 0);
        rc = open_numbered(own_open, o);
    }
    if (rc != 0)
        say_untraced(rc, errno);
    return rc;
}

__attribute__((constructor(101))) static void preload_start(void)
{
    at__untraced = 1;
    if (!getcwd(start_cwd, sizeof start_cwd))
        start_cwd[0] = '\0';
    int argc = read_cmdline();
    save_environment();
    const char *follow = getenv(AT_ENV_FOLLOW_CHILDREN);
    if (!follow || strcmp(follow, AT_FLAG_ON) != 0)
        leave_ld_preload();

    at_trace_options o;
    at_trace_options_init(&o);
    o.path = trace_path;
    o.argc = argc;
    o.argv = cmd_argv;
    const char *depth = getenv(AT_ENV_DEPTH);
    if (depth && atoi(depth) > 0)
        o.stack_depth = (unsigned)atoi(depth);
    const char *unwind = getenv(AT_ENV_UNWIND);
    if (unwind && strcmp(unwind, AT_UNWIND_VALUE_FP) == 0)
        o.unwind = AT_UNWIND_FRAME_POINTERS;
    const char *abort_on = getenv(AT_ENV_ABORT_ON_FINDING);
    o.abort_on_finding = abort_on && strcmp(abort_on, AT_FLAG_ON) == 0;
    const char *scan = getenv(AT_ENV_LEAK_SCAN);
    leak_scan = !(scan && strcmp(scan, AT_FLAG_OFF) == 0);
    o.no_leak_scan = !leak_scan;
    const char *release_stacks = getenv(AT_ENV_RELEASE_STACKS);
    o.no_release_stacks = release_stacks && strcmp(release_stacks, AT_FLAG_OFF) == 0;
    if (open_spool(&o, argc > 0 ? cmd_argv[0] : "program") != 0) {
        __atomic_store_n(&state, S_OFF, __ATOMIC_RELEASE);
        at__untraced = 0;
        return;
    }
    traced_pid = getpid();
    note_exec_from();
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
    at_quick_exit(on_quick_exit);
    at__reach_note_self();

    at__spin_lock(&boot_lock);
    boot_adopt_all();
    if (boot_dropped) /* their releases are not findings */
        at__trace_untracked(tracer, boot_dropped);
    __atomic_store_n(&state, S_READY, __ATOMIC_RELEASE);
    at__spin_unlock(&boot_lock);
    if (boot_dropped)
        fprintf(stderr, "alloctrace: %lu blocks allocated before tracing started are not tracked\n",
                boot_dropped);
    at__untraced = 0;
}

/* Tracing ends here, once: `won` tells the one exit path that closes. */
static void seal(void *won)
{
    int expected = S_READY;
    *(int *)won = __atomic_compare_exchange_n(&state, &expected, S_OFF, 0, __ATOMIC_ACQ_REL,
                                              __ATOMIC_ACQUIRE);
}

/* Closes the trace once, from whichever exit path comes first: the last
 * destructor, quick_exit, or a direct _exit. */
static void finish(void)
{
    int expected = S_READY;
    /* A vfork child (another pid, sharing our memory and our tracer) that
     * exits, after a failed exec or without one, ends its own image only:
     * the trace is ours and goes on. */
    if (getpid() != traced_pid)
        return;
    if (at__untraced || !__atomic_compare_exchange_n(&state, &expected, S_READY, 0,
                                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return;
    /* libstdc++ keeps its emergency exception pool for the whole run and
     * gives it back only when asked, as valgrind does at exit. */
    void_fn freeres = cxx_symbol("_ZN9__gnu_cxx9__freeresEv");
    if (freeres)
        freeres();
    /* Which blocks the program still points to, with every other thread
     * stopped; tracing ends before they go on, so the trace ends with the
     * heap the scan saw. */
    int won = 0;
    at__untraced = 1;
    if (leak_scan)
        at__tracer_exit_scan(tracer, seal, &won);
    else
        seal(&won);
    if (!won) {
        at__untraced = 0;
        return;
    }
    int rc = at_tracer_close(tracer);
    tracer = NULL;
    if (rc != 0)
        fprintf(stderr, "alloctrace: writing the trace %s: %s\n", trace_path, at_strerror(rc));
}

/* Libraries that started before this one (the program's own dependencies,
 * libstdc++...) are finalized after it, and their destructors free what
 * their constructors allocated.  So the trace is not closed here but from
 * an exit handler registered now: glibc runs handlers registered while it
 * is running exit handlers after the current one, that is after every
 * destructor. */
__attribute__((destructor(101))) static void preload_finish(void)
{
    if (at__untraced || __atomic_load_n(&state, __ATOMIC_ACQUIRE) != S_READY)
        return;
    at__untraced = 1; /* atexit's own block is not the program's */
    int rc = atexit(finish);
    at__untraced = 0;
    if (rc != 0)
        finish();
}

/* ---- exec: the image is replaced, the process goes on ----------------------- */

/* An exec does not end the process: blocks live when it succeeds are
 * released by it (AT_REC_EXEC; the trace's program_end is `exec`, no
 * reachability scan), and the new image writes a trace of its own, whose
 * meta exec_from names this one.  The new image of the run's program (not
 * of a forked child) is traced whatever AT_ENV_FOLLOW_CHILDREN says: its
 * environment gets our LD_PRELOAD entry back, and the run's variables if
 * the caller's environment lost them.  A failed exec changes nothing
 * (AT_REC_EXEC_FAILED). */

/* The environment the program started with, as far as tracing goes:
 * LD_PRELOAD's entry for this library and every ALLOCTRACE_ variable
 * (static storage: nothing here may allocate before the tracer is up). */
static char env_pool[16384];
static char *env_saved[24];
static char preload_entry[4096]; /* our library's path, as LD_PRELOAD named it */
static char exec_from[sizeof trace_path + 64];

static void save_environment(void)
{
    size_t used = 0, n = 0;
    for (char **e = environ; e && *e; e++) {
        size_t len = strlen(*e) + 1;
        if (strncmp(*e, "ALLOCTRACE_", 11) != 0 || strncmp(*e, AT_ENV_EXEC_FROM "=", 21) == 0 ||
            used + len > sizeof env_pool || n + 1 >= sizeof env_saved / sizeof *env_saved)
            continue;
        env_saved[n++] = memcpy(env_pool + used, *e, len);
        used += len;
    }
    const char *v = getenv("LD_PRELOAD");
    for (const char *s = v; s && *s;) {
        size_t len = strcspn(s, ": ");
        if (memmem(s, len, AT_PRELOAD_NAME, sizeof AT_PRELOAD_NAME - 1) && len < sizeof preload_entry) {
            memcpy(preload_entry, s, len);
            preload_entry[len] = '\0';
            break;
        }
        s += len;
        s += *s != '\0';
    }
}

static size_t name_len(const char *entry)
{
    const char *eq = strchr(entry, '=');
    return eq ? (size_t)(eq - entry) : strlen(entry);
}

static int env_has(char *const envp[], const char *entry)
{
    size_t n = name_len(entry);
    for (char *const *e = envp; e && *e; e++)
        if (strncmp(*e, entry, n) == 0 && (*e)[n] == '=')
            return 1;
    return 0;
}

/* LD_PRELOAD=OURS[:the caller's value], in glibc's allocator; NULL when
 * the caller's value has our library already. */
static char *preload_with_us(char *const envp[])
{
    const char *cur = "";
    for (char *const *e = envp; e && *e; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) == 0)
            cur = *e + 11;
    if (strstr(cur, AT_PRELOAD_NAME))
        return NULL;
    size_t n = 11 + strlen(preload_entry) + 1 + strlen(cur) + 1;
    char *v = __libc_malloc(n);
    if (v)
        snprintf(v, n, "LD_PRELOAD=%s%s%s", preload_entry, *cur ? ":" : "", cur);
    return v;
}

/* The environment for the new image: envp, less a stale AT_ENV_EXEC_FROM,
 * plus ours (`keep_traced`: LD_PRELOAD and the run's variables too).  In
 * glibc's allocator, freed by exec_env_free if the exec fails; NULL (out
 * of memory) leaves envp as it is. */
static char **exec_env(char *const envp[], int keep_traced, char **preload)
{
    size_t n = 0;
    for (char *const *e = envp; e && *e; e++)
        n++;
    char **out = __libc_malloc((n + sizeof env_saved / sizeof *env_saved + 3) * sizeof *out);
    *preload = keep_traced && preload_entry[0] ? preload_with_us(envp) : NULL;
    if (!out)
        return NULL;
    size_t k = 0;
    for (char *const *e = envp; e && *e; e++)
        if (strncmp(*e, AT_ENV_EXEC_FROM "=", 21) != 0 &&
            !(*preload && strncmp(*e, "LD_PRELOAD=", 11) == 0))
            out[k++] = *e;
    if (*preload)
        out[k++] = *preload;
    for (size_t i = 0; keep_traced && env_saved[i]; i++)
        if (!env_has(envp, env_saved[i]))
            out[k++] = env_saved[i];
    snprintf(exec_from, sizeof exec_from, AT_ENV_EXEC_FROM "=%ld:%s", (long)getpid(), trace_path);
    out[k++] = exec_from;
    out[k] = NULL;
    return out;
}

typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);

static void *next_symbol(const char *name)
{
    int was = at__untraced;
    at__untraced = 1;
    void *f = dlsym(RTLD_NEXT, name);
    at__untraced = was;
    return f;
}

/* One exec, by `name` (execve, execvpe: a path or file and argv; fexecve:
 * `fd`). */
static int traced_exec(const char *name, const char *file, int fd, char *const argv[],
                       char *const envp[])
{
    void *sym = next_symbol(name);
    if (!sym) {
        errno = ENOSYS;
        return -1;
    }
    execve_fn by_path = NULL;
    fexecve_fn by_fd = NULL;
    if (file)
        memcpy(&by_path, &sym, sizeof by_path);
    else
        memcpy(&by_fd, &sym, sizeof by_fd);
    /* Only an image that writes a trace, in its own process (a vfork child
     * shares our memory and our pid's trace is not its own). */
    if (at__untraced || __atomic_load_n(&state, __ATOMIC_ACQUIRE) != S_READY ||
        getpid() != traced_pid)
        return by_path ? by_path(file, argv, envp) : by_fd(fd, argv, envp);
    at__untraced = 1;
    char *preload = NULL;
    char **env = exec_env(envp, !forked, &preload);
    at__tracer_exec_begin(tracer);
    at__untraced = 0;
    char *const *use = env ? env : envp;
    int rc = by_path ? by_path(file, argv, use) : by_fd(fd, argv, use);
    int e = errno;
    at__untraced = 1;
    at__tracer_exec_failed(tracer);
    __libc_free(env);
    __libc_free(preload);
    at__untraced = 0;
    errno = e;
    return rc;
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    return traced_exec("execve", path, -1, argv, envp);
}

EXPORT int execv(const char *path, char *const argv[])
{
    return traced_exec("execve", path, -1, argv, environ);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    return traced_exec("execvpe", file, -1, argv, envp);
}

EXPORT int execvp(const char *file, char *const argv[])
{
    return traced_exec("execvpe", file, -1, argv, environ);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    return traced_exec("fexecve", NULL, fd, argv, envp);
}

/* The execl family: the arguments into an array (from glibc's own
 * allocator, freed if exec fails), then the vector form. */
static char **collect_args(const char *first, va_list ap, char *const **envp)
{
    va_list count;
    va_copy(count, ap);
    size_t n = 1;
    while (va_arg(count, char *))
        n++;
    va_end(count);
    char **argv = __libc_malloc((n + 1) * sizeof *argv);
    if (!argv) {
        errno = ENOMEM;
        return NULL;
    }
    argv[0] = (char *)first;
    for (size_t i = 1; i <= n; i++)
        argv[i] = va_arg(ap, char *);
    if (envp)
        *envp = va_arg(ap, char *const *);
    return argv;
}

EXPORT int execl(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    char **argv = collect_args(arg, ap, NULL);
    va_end(ap);
    int rc = argv ? execve(path, argv, environ) : -1;
    __libc_free(argv);
    return rc;
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    char **argv = collect_args(arg, ap, NULL);
    va_end(ap);
    int rc = argv ? execvp(file, argv) : -1;
    __libc_free(argv);
    return rc;
}

EXPORT int execle(const char *path, const char *arg, ...)
{
    va_list ap;
    char *const *envp = NULL;
    va_start(ap, arg);
    char **argv = collect_args(arg, ap, &envp);
    va_end(ap);
    int rc = argv ? execve(path, argv, envp) : -1;
    __libc_free(argv);
    return rc;
}

EXPORT void _exit(int status)
{
    finish();
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

EXPORT void _Exit(int status)
{
    _exit(status);
}
