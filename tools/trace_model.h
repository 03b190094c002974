/* What `report`, `check` and `html` read from a trace: a summary, the leak
 * sites and the findings, each with its stacks symbolized and trimmed, and
 * what one replay of the live heap says about every stack, so every command
 * shows and judges the same things.
 *
 * Stacks are trimmed at the top and merged into sites by the one rule of
 * lib/trace/sites.h, which finishing stored in the trace (stack_sites): frames
 * of alloctrace itself and of the allocator's entry points are kept but
 * marked (`skip`), so the first frame shown is the code that asked for
 * memory; stacks that read the same once symbolized are one site (a loop
 * the compiler unrolled into three calls is one leak, not three), named
 * by the smallest stack id among them.
 *
 * Conventions: tm_load() returns 0, or -1 after a one-line message on
 * stderr (the trace could not be read: corrupt, truncated...).  Memory
 * exhaustion ends the process with EXIT_TOOL and a message: these are
 * short-lived commands, and half a report is worse than none.
 *
 * Text from the trace (names, paths, meta values) is kept as the trace has
 * it, except that a NUL byte inside it becomes U+FFFD: a name is a C string
 * here, and no part of it may silently disappear.
 */
#ifndef ALLOCTRACE_TRACE_MODEL_H
#define ALLOCTRACE_TRACE_MODEL_H

#include <stddef.h>

#include <sqlite3.h>

#include <alloctrace/vocab.h>

typedef struct tm_frame {
    long long id;            /* frames.id */
    long long ip;            /* the return address, as recorded */
    char *function;          /* demangled; NULL when unknown */
    char *file;              /* source file; NULL when unknown */
    long long line;          /* 0 when unknown */
    char *module;            /* path of the module; NULL when unknown */
    long long module_offset; /* the return address relative to the module's base */
    int inlined;             /* 1: a function the compiler inlined into the next frame, at
                                the same address (id, ip, module and offset are that one's) */
} tm_frame;

typedef struct tm_stack {
    long long id; /* stacks.id, 0 for a block with no stack */
    size_t depth;
    const tm_frame **frames; /* frames[0] is the innermost (level 0); each frame of the
                                trace is its inlined functions, then itself */
    size_t skip;             /* frames[0..skip) are the allocator's: not shown */
    long long site;          /* the site it belongs to (lib/trace/sites.h) */
    char *key;               /* the site, as a string, for merging findings */
    char *names;             /* function names (or module+offset) of the frames shown:
                                what a baseline matches, stable across builds and ASLR */
} tm_stack;

/* Kinds of problems, leaks included, in the order of vocab.h's AT_KINDS.
 * TM_OTHER (AT_KIND_OTHER) is a finding kind this build does not know (a
 * hostile or future trace): shown, never judged. */
#define TM_KIND_ENUM(id, code, name, label, category, rule, level, color, description) TM_##id,
enum tm_kind { AT_KINDS(TM_KIND_ENUM) AT_KIND_OTHER(TM_KIND_ENUM) TM_KINDS };
#undef TM_KIND_ENUM

/* Reachability at exit, in the order of vocab.h's AT_REACH (the order
 * reports show them in): TM_REACH_DEFINITE ... TM_REACH_UNKNOWN. */
#define TM_REACH_ENUM(id, code, name, kind, label, gated, color, description) TM_REACH_##id,
enum tm_reach { AT_REACH(TM_REACH_ENUM) TM_REACHES };
#undef TM_REACH_ENUM

/* A set of classes: bit (1u << r) for each enum tm_reach r. */
typedef unsigned tm_reach_set;

/* One allocation site's leaked blocks of one reachability class: a site
 * whose blocks fall in two classes is two tm_sites. */
typedef struct tm_site {
    const tm_stack *stack;
    enum tm_reach reach;
    long long bytes, blocks, min_size, max_size;
    long long *ids; /* the trace's stacks merged into this site, ascending */
    size_t nids;
    char *pool; /* the blocks' pool (docs/pools.md): its name, "#ID" when unnamed; NULL
                   for malloc's and new's blocks.  A site is one per pool. */
} tm_site;

/* One bug: one kind of bad release (or request) at one pair of stacks
 * (three for a double free), with the same families and alignments; its
 * `count` releases are merged into it whatever their sizes, the first is
 * shown, the sizes as ranges and every release by its sequence number. */
typedef struct tm_finding {
    enum tm_kind kind;
    char *kind_name; /* as the trace spells it */
    long long count;
    long long seq, time_us, thread, ptr;
    long long alloc_seq, first_free_seq; /* -1 when none */
    const tm_stack *release;
    const tm_stack *alloc; /* NULL when the pointer was never allocated */
    /* double_free: where the block was released the first time (an empty
     * stack when that release recorded none); NULL for other kinds */
    const tm_stack *first_release;
    long long alloc_ptr;   /* -1 when unknown */
    long long release_size, release_align, alloc_size, alloc_align; /* -1 when unknown */
    /* over the merged releases: the smallest and largest size (-1 when
     * none of them knows one) */
    long long release_size_min, release_size_max, alloc_size_min, alloc_size_max;
    long long *seqs; /* every merged release's sequence number, in order */
    size_t nseqs;
    size_t group; /* in TM_RELEASES: its finding, an index into `findings` */
    char *release_family, *alloc_family, *detail;
    char *pool; /* a pool's release (docs/pools.md): as tm_site's; NULL otherwise */
} tm_finding;

typedef struct tm_summary {
    long long alloc_calls, free_calls, alloc_bytes;
    long long peak_bytes, peak_blocks, peak_seq, peak_time_us; /* peak_seq 0: nothing was live */
    long long leaked_blocks, leaked_bytes; /* every class */
    struct {
        long long blocks, bytes, sites; /* sites: with TM_LEAKS only */
    } by_reach[TM_REACHES];
    long long runtime_blocks, runtime_bytes;
    long long findings;
    long long by_kind[TM_KINDS]; /* findings by kind (TM_LEAK unused) */
    long long duration_us, threads, lost_events, pid;
    char *executable, *program_end, *start_time, *library_version;
    char **args;
    size_t nargs;
    char **meta_keys, **meta_values; /* every row of meta, by key (values as text) */
    size_t nmeta;
} tm_summary;

/* What one stack did over the trace (TM_HEAP): one for every stack the
 * lifetimes name (0: allocations with no stack), and for every stack that
 * names a leak site. */
typedef struct tm_stack_heap {
    long long id;                      /* stacks.id */
    long long count, bytes, waste;     /* allocations, bytes asked for, bytes lost to rounding
                                          each size up to its alignment */
    long long peak_bytes, peak_blocks; /* its blocks live at the peak */
    long long leaked_bytes, leaked_blocks, leak_min, leak_max; /* of the leak site it names
                                          (TM_LEAKS too: the site's whole, 0 otherwise) */
} tm_stack_heap;

/* The live heap after an event. */
typedef struct tm_point {
    long long time_us, bytes, blocks;
} tm_point;

typedef struct tm_layout_cell {
    long long count, bytes, waste;
} tm_layout_cell;

enum {
    TM_TIME_BUCKETS = 999, /* the timeline: a low and a high per bucket, plus both ends */
    TM_SIZE_CLASSES = 65,  /* a size's class: the bit length of size - 1 (0 for 0 and 1) */
    TM_ALIGN_CLASSES = 65, /* an alignment's: its log2 (the next power of two's if none) */
};

/* One replay of the lifetimes (lib/trace/replay.h; TM_HEAP). */
typedef struct tm_heap {
    tm_stack_heap *stacks; /* in the order the replay met them */
    size_t nstacks;
    /* The timeline: the trace's duration cut in TM_TIME_BUCKETS, each
     * bucket's lowest and highest point in time order, with the start and
     * the last point; the peak is one of them.  Times never go back. */
    tm_point *timeline;
    size_t ntimeline;
    tm_layout_cell *layout; /* [size class * TM_ALIGN_CLASSES + alignment class] */
    long long waste;        /* bytes lost to rounding, all allocations */
    long long lifetimes, alloc_bytes, free_calls; /* as replayed */
    long long live_bytes_end, live_blocks_end, last_time_us;
    struct tm_heap_index *index; /* private: stack id -> stacks[] */
} tm_heap;

typedef struct tm_cache tm_cache;

typedef struct tm_trace {
    sqlite3 *db;
    const char *path;
    tm_summary sum;
    tm_site *sites; /* by class (AT_REACH's order), largest first within a class */
    size_t nsites;
    size_t reach_begin[TM_REACHES + 1]; /* class r's sites are [reach_begin[r], reach_begin[r+1]) */
    tm_finding *findings; /* in the order they happened */
    size_t nfindings;
    tm_finding *releases; /* TM_RELEASES: the bad releases themselves (count 1), in the
                             order they happened, at most TM_RELEASES_MAX shared
                             between kinds so that a rare kind is among them */
    size_t nreleases;
    tm_heap heap;
    tm_cache *cache; /* frames and stacks, shared by the above */
} tm_trace;

enum {
    TM_SUMMARY = 1,  /* counts, program, findings by kind */
    TM_PEAK = 2,     /* the exact peak (lib/trace/replay.h): stored, or one pass over the lifetimes */
    TM_LEAKS = 4,    /* sites */
    TM_FINDINGS = 8, /* findings */
    TM_HEAP = 16,    /* one replay: `heap`, and the peak (TM_PEAK not needed) */
    TM_RELEASES = 32, /* releases */
};

enum { TM_RELEASES_MAX = 1000 };

/* Reads what `what` asks for from an open trace (cli_open_trace).  `t` is
 * zeroed first; free it with tm_free() whatever this returns. */
int tm_load(tm_trace *t, sqlite3 *db, const char *path, unsigned what);
void tm_free(tm_trace *t);

/* The stack of stacks.id `id` (0: none), read on first use; never NULL
 * (a stack whose frames could not be read has none: see tm_check). */
const tm_stack *tm_stack_of(tm_trace *t, long long id);

/* 0, or -1 after tm_load's one-line message when a read since tm_load
 * (tm_stack_of) failed. */
int tm_check(tm_trace *t);

/* The heap entry of stack `id` (TM_HEAP), or NULL if the replay met none. */
const tm_stack_heap *tm_heap_stack(const tm_trace *t, long long id);

/* meta's value for `key`, or NULL (TM_SUMMARY). */
const char *tm_meta(const tm_trace *t, const char *key);

/* The first frame shown that has a file and a line, or NULL. */
const tm_frame *tm_source_frame(const tm_stack *s);

/* ---- reachability (reach.c) ---- */

/* vocab.h's fields of class r: NAME ("definitely_lost", as the leaks view
 * and JSON spell it), KIND ("definite", the word --leak-kinds takes), LABEL
 * ("definitely lost", for text), COLOR, DESCRIPTION, GATED. */
const char *tm_reach_name(enum tm_reach r);
const char *tm_reach_kind(enum tm_reach r);
const char *tm_reach_label(enum tm_reach r);
const char *tm_reach_color(enum tm_reach r);
const char *tm_reach_description(enum tm_reach r);
int tm_reach_is_gated(enum tm_reach r);

/* The classes GATED in vocab.h: what check and run --check count by default. */
tm_reach_set tm_reach_gated(void);

/* The class the leaks view names `name`; TM_REACH_UNKNOWN for anything else. */
enum tm_reach tm_reach_named(const char *name);

/* The class whose KIND is s[0..len), or -1. */
int tm_reach_of_kind(const char *s, size_t len);

/* --leak-kinds: a comma-separated list of KIND words, `all` or `none`;
 * 0, or -1 when `list` is not one. */
int tm_parse_leak_kinds(const char *list, tm_reach_set *out);

/* "definite, indirect, possible, reachable, unknown": for messages. */
const char *tm_leak_kinds_words(void);

/* The KIND words of `set`, comma-separated ("definite,indirect"), or "none". */
void tm_leak_kinds_text(char *buf, size_t size, tm_reach_set set);

/* Why the trace's unknown blocks were never classified, one phrase (TM_SUMMARY):
 * the program died, no scan ran, the scan said something else than done. */
const char *tm_unscanned_reason(const tm_trace *t);

/* "leak", "layout_mismatch"... (the trace's spelling); "other" for TM_OTHER. */
const char *tm_kind_name(enum tm_kind k);
/* 1 when findings of kind `k` fail a check by default (zero-size requests
 * are notes: 0). */
int tm_kind_gated(enum tm_kind k);
/* 1 for the kinds about a request (a bad alignment or size, a zero size):
 * their release_* fields describe the request, their `release` stack is
 * where it was made, and no block was released. */
int tm_kind_is_request(enum tm_kind k);

/* What follows the last '/' of path (path itself if none; NULL for NULL). */
const char *tm_basename(const char *path);

/* A line on stderr saying what is being done, shown only when stderr is a
 * terminal and the command has been working for more than a second;
 * `fraction` < 0 when unknown.  tm_progress_done() clears it (call it
 * before writing anything else to stderr). */
void tm_progress_start(const char *what);
void tm_progress(double fraction);
void tm_progress_done(void);

/* A count or a size from the command line: decimal digits, for a size
 * optionally followed by K, M or G (KiB, MiB, GiB).  0, or -1 when `s` is
 * not one (negative, garbage, too large). */
int tm_parse_count(const char *s, int size_suffix, long long *out);

/* a + b, saturated: sums of values from a hostile trace must not overflow. */
long long tm_sat_add(long long a, long long b);

/* Allocation that cannot fail: exits with EXIT_TOOL instead. */
void *tm_xrealloc(void *p, size_t n);
char *tm_xstrdup(const char *s);

#endif
