/* What the HTML report embeds beyond the trace model's own records
 * (tools/trace_model.h): the strings of the page, interned; the frames of
 * the stacks the page lists; the stack tree its flamegraph draws.  Built
 * by html_data.c, written as JSON by html.c. */
#ifndef ALLOCTRACE_HTML_DATA_H
#define ALLOCTRACE_HTML_DATA_H

#include <stddef.h>

#include "trace_model.h"

enum {
    HD_TREE_NODE_CAP = 20000, /* nodes of the stack tree */
    HD_SLICES = 50,           /* the time slices that the page's range filter counts in */
    HD_SLICE_ENTRY_CAP = 100000, /* non-empty (node or site, slice) entries, each part */
};

/* Per time slice (the trace's span in HD_SLICES), what a tree node's own
 * stacks allocated and leaked, and what a listed leak site leaked: the
 * page's time filter sums the slices a range covers. */
enum { HD_S_COUNT, HD_S_BYTES, HD_S_LEAKED, HD_S_LEAK_BLOCKS, HD_S_FIELDS };
typedef struct hd_slices {
    long long span_us;
    long long **node; /* [node][slice * HD_S_FIELDS + field], NULL: nothing */
    long long **site; /* [listed leak site][slice * HD_S_FIELDS + field] */
    size_t nnode, nsite;
    int nodes_truncated, sites_truncated; /* over HD_SLICE_ENTRY_CAP: left out */
    int unavailable; /* an aggregated trace: not every allocation is a row */
} hd_slices;

/* The four metrics of the stack tree, in the order of the JSON arrays;
 * HD_WASTE ranks the sites that lose most to rounding. */
enum { HD_LEAKED, HD_PEAK, HD_TOTAL, HD_COUNT, HD_METRICS, HD_WASTE = HD_METRICS };

typedef struct hd_node {
    int parent, name, file, module; /* strings */
    long long line;
    int lines_vary; /* frames merged here have different lines */
    long long m[HD_METRICS];
} hd_node;

/* A frame as the page shows it. */
typedef struct hd_frame {
    int name, file, module; /* strings */
    long long line;
    int inlined; /* the compiler inlined it into the next frame */
} hd_frame;

/* A stack the page writes: listed (its frames, for a row) or in the tree
 * (its leaf, for the flamegraph), or both. */
typedef struct hd_stack {
    long long id;
    const tm_stack *stack; /* NULL: in the tree only */
    int leaf;              /* tree node of its innermost frame, -1 none */
    int *frames;           /* listed: indexes into frames, innermost first */
} hd_stack;

typedef struct hd_strings hd_strings;
typedef struct hd_index hd_index;

typedef struct hd_data {
    tm_trace *tm;
    int max_sites;
    hd_strings *strings;
    hd_frame *frames;
    size_t nframes, frames_cap;
    hd_node *nodes; /* parents before children; 0 is the root */
    size_t nnodes, nodes_cap;
    int tree_stacks, tree_truncated;
    hd_stack *stacks; /* ascending id, after hd_build */
    size_t nstacks;
    size_t *waste_sites; /* indexes into tm->heap.stacks, heaviest first */
    size_t nwaste_sites;
    hd_slices slices;
    int other_node; /* "(other stacks)", -1 none */
    hd_index *index; /* private */
} hd_data;

/* Builds it from a trace loaded with TM_SUMMARY, TM_HEAP, TM_LEAKS and
 * TM_RELEASES; free it with hd_free() whatever happens.  0, or -1 after a
 * message (the trace could not be read). */
int hd_build(hd_data *d, tm_trace *tm, int max_sites);
void hd_free(hd_data *d);

/* The string's index in the page's strings (made if new); 0 is "" and
 * stands for NULL too. */
int hd_string(hd_data *d, const char *s);
size_t hd_nstrings(const hd_data *d);
const char *hd_string_at(const hd_data *d, size_t i);

#endif
