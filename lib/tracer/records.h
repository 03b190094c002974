/* Records passed from allocating threads to the writer.
 *
 * Fixed-size structs appended to per-thread buffers.  A lifetime record is
 * one complete allocation lifetime: the release carries everything the
 * live-block table knew about the allocation, so the writer inserts one row
 * per lifetime without pairing anything.  Blocks still live at close are
 * written from the table itself, in the same form.
 */
#ifndef AT_RECORDS_H
#define AT_RECORDS_H

#include <stdint.h>

#include <alloctrace/vocab.h>

enum at_rec_kind {
    AT_REC_LIFETIME = 1, /* at_rec_lifetime (the in-process writer's record) */
    AT_REC_FINDING = 2,  /* at_rec_finding */
    /* Spool only (spool.h): the writer is another process, so everything it
     * needs travels as records. */
    AT_REC_STACK = 3,  /* at_rec_stack: a new stack, by its node */
    AT_REC_THREAD = 4, /* at_rec_thread */
    AT_REC_MODULE = 5, /* at_rec_var + at_rec_module + path + build id */
    AT_REC_META = 6,   /* at_rec_var + key + NUL + value */
    AT_REC_END = 7,    /* at_rec_end: the trace was closed properly */
    AT_REC_MARK = 8,   /* at_rec_var (id: thread) + uint64_t seq, uint64_t t + label */
    /* Spool only: the two halves of a lifetime, written when each happens
     * (half the bytes of two full lifetime records); the consumer pairs
     * them by the allocation's sequence number. */
    AT_REC_ALLOC = 9, /* at_rec_alloc */
    AT_REC_FREE = 10, /* at_rec_free */
    /* The reachability scan's verdict, written at close (reach.h): */
    AT_REC_REACH = 11,     /* at_rec_var (id: class, count: seqs) + uint64_t seq[] */
    AT_REC_REACH_END = 12, /* at_rec_reach_end: the scan ran; its figures */
    /* Spool only: the process calls exec (an at_rec_end: the totals so
     * far, `seq` the exec's own sequence number, `thread` the caller); if
     * no EXEC_FAILED follows, the image was replaced and every block
     * still live was released by the exec (AT_OP_EXEC), not leaked. */
    AT_REC_EXEC = 13,
    AT_REC_EXEC_FAILED = 14, /* at_rec_end: that exec failed; tracing goes on */
    AT_REC_NODE = 15,      /* at_rec_node: a new node of the call tree (stacks.h) */
    /* The program's own pools (pools.h, docs/pools.md): */
    AT_REC_POOL = 16,     /* at_rec_var (id: the pool's id, count: bytes of name, its NUL
                           * included) + at_rec_pool + name */
    AT_REC_POOL_REF = 17, /* at_rec_pool_ref: a lifetime or finding is a pool's */
};

/* A pool created or destroyed (AT_REC_POOL's payload before the name). */
enum { AT_POOL_CREATED = 1, AT_POOL_DESTROYED = 2 };

typedef struct at_rec_pool {
    uint64_t ptr; /* the pointer that names the pool in the program */
    uint64_t seq;
    uint64_t t;
    uint32_t event; /* AT_POOL_CREATED, AT_POOL_DESTROYED */
    uint32_t stack;
    uint32_t thread;
    uint32_t pad;
} at_rec_pool;

/* What an AT_REC_POOL_REF ties to its pool: the lifetime allocated at
 * `seq`, or the finding made at `seq`. */
enum { AT_POOL_REF_BLOCK = 1, AT_POOL_REF_FINDING = 2 };

typedef struct at_rec_pool_ref {
    uint8_t kind;
    uint8_t what;    /* AT_POOL_REF_* */
    uint8_t pad[2];
    uint32_t pool;   /* the pool's id */
    uint64_t seq;
    uint64_t chunk;  /* blocks: the seq of the live malloc block holding it, 0: none */
} at_rec_pool_ref;

/* Allocation sequence numbers per AT_REC_REACH record. */
enum { AT_REACH_BATCH = 256 };

/* Operations, as stored in the trace (docs/schema.md; vocab.h, AT_OPS). */
enum at_op {
    AT_OP_NONE = 0,
#define AT_X_OP(id, code, name, description) AT_OP_##id = code,
    AT_OPS(AT_X_OP)
#undef AT_X_OP
};

/* What a release passed of a layout (free_layout_given, given_layout):
 * free() passes nothing, an unsized operator delete only an alignment
 * (the default new alignment, or the one it names). */
#define AT_GIVEN_ALIGN 1
#define AT_GIVEN_SIZE 2

typedef struct at_rec_lifetime {
    uint8_t kind;
    uint8_t family;
    uint8_t alloc_op;
    uint8_t free_op; /* AT_OP_NONE: still live at close */
    uint8_t align_log2;
    uint8_t free_align_log2;
    uint8_t free_layout_given; /* AT_GIVEN_* bits: what the release passed */
    uint8_t pad;
    uint32_t stack;
    uint32_t thread;
    uint32_t free_thread;
    uint32_t free_stack; /* the release's backtrace; 0: none recorded */
    uint64_t seq;
    uint64_t free_seq;
    uint64_t ptr;
    uint64_t size;
    uint64_t t;
    uint64_t free_t;
    uint64_t free_size;
} at_rec_lifetime;

typedef struct at_rec_finding {
    uint8_t kind;
    uint8_t finding; /* at_finding_kind */
    uint8_t given_family;
    uint8_t given_align_log2;
    uint8_t given_layout; /* AT_GIVEN_* bits: what the release passed */
    uint8_t has_alloc;    /* the alloc_* fields describe a known block */
    uint8_t alloc_family;
    uint8_t alloc_align_log2;
    uint32_t thread;
    uint32_t release_stack;
    uint32_t alloc_stack;
    uint32_t first_free_stack; /* double free: where it was released first */
    uint64_t seq;
    uint64_t t;
    uint64_t ptr;
    uint64_t given_size;
    uint64_t alloc_seq;
    uint64_t alloc_ptr;
    uint64_t alloc_size;
    uint64_t first_free_seq; /* double free: when it was released first */
    /* The alignment passed, as passed (given_align_log2 cannot hold one
     * that is not a power of two); 0 when none was. */
    uint64_t given_align;
} at_rec_finding;

/* free_align_log2 of a release whose alignment is not a power of two: the
 * release is a finding, whose given_align holds the value passed. */
#define AT_ALIGN_NOT_POW2 0xff

typedef struct at_rec_alloc {
    uint8_t kind;
    uint8_t family;
    uint8_t op;
    uint8_t align_log2;
    uint32_t stack;
    uint32_t thread;
    uint32_t pad;
    uint64_t seq;
    uint64_t ptr;
    uint64_t size;
    uint64_t t;
} at_rec_alloc;

typedef struct at_rec_free {
    uint8_t kind;
    uint8_t free_op;
    uint8_t free_align_log2;
    uint8_t free_layout_given;
    uint32_t free_thread;
    uint64_t seq; /* the allocation's */
    uint64_t free_seq;
    uint64_t free_t;
    uint64_t free_size;
    uint32_t free_stack; /* 0: none recorded */
    uint32_t pad;
} at_rec_free;

/* Header of the variable-length records; `size` covers the header, is a
 * multiple of 8, and `id`/`count` mean what the record kind says. */
typedef struct at_rec_var {
    uint8_t kind;
    uint8_t pad[3];
    uint32_t size;
    uint32_t id;
    uint32_t count; /* MODULE, META: bytes of text */
} at_rec_var;

/* A node of the call tree: the stack made of `ip` and the frames of
 * `parent` (0: none, `ip` is an outermost frame); `depth` counts them (the
 * trace does not store it: its stacks have theirs). */
typedef struct at_rec_node {
    uint8_t kind;
    uint8_t pad[3];
    uint32_t id;
    uint32_t parent;
    uint32_t depth;
    uint64_t ip;
} at_rec_node;

/* A backtrace seen for the first time: its id is the node of its innermost
 * frame, whose record the same thread wrote just before or another thread
 * wrote earlier. */
typedef struct at_rec_stack {
    uint8_t kind;
    uint8_t pad[3];
    uint32_t id;
    uint32_t depth;
    uint32_t pad2;
} at_rec_stack;

typedef struct at_rec_module {
    uint64_t base, start, end;
} at_rec_module;

typedef struct at_rec_thread {
    uint8_t kind;
    uint8_t pad[3];
    uint32_t id;
    int32_t tid;
    uint32_t pad2;
    char name[16];
} at_rec_thread;

typedef struct at_rec_reach_end {
    uint8_t kind;
    uint8_t pad[7];
    uint32_t threads, threads_unstopped;
    uint64_t scanned_bytes, skipped_bytes, duration_ns, scan_seq;
    uint64_t blocks; /* verdicts sent (AT_REC_REACH seqs): a reader knows it has them all */
} at_rec_reach_end;

typedef struct at_rec_end {
    uint8_t kind;
    uint8_t pad[3];
    uint32_t thread; /* EXEC, EXEC_FAILED: the calling thread */
    uint64_t seq;    /* EXEC, EXEC_FAILED: the exec's sequence number */
    uint64_t t;      /* EXEC, EXEC_FAILED: when */
    uint64_t alloc_calls, alloc_bytes, free_calls, findings, lost_events, duration_ns;
} at_rec_end;

#endif
