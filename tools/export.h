/* `alloctrace export` (cmd_export.c): a trace's blocks by stack, written as
 * a pprof profile (export_pprof.c) or as folded stacks (cmd_export.c). */
#ifndef ALLOCTRACE_EXPORT_H_TOOLS
#define ALLOCTRACE_EXPORT_H_TOOLS

#include <stdio.h>

#include "trace_model.h"

/* The values of a sample, in the order of the profile's sample types (Go's
 * heap profiles'). */
enum { EX_ALLOC_OBJECTS, EX_ALLOC_SPACE, EX_INUSE_OBJECTS, EX_INUSE_SPACE, EX_VALUES };

/* What is exported (--what). */
enum ex_what { EX_LEAKS, EX_ALLOCATIONS, EX_PEAK };

typedef struct ex_sample {
    long long stack; /* stacks.id; 0: blocks with no stack */
    long long v[EX_VALUES];
} ex_sample;

typedef struct ex_profile {
    tm_trace *t; /* loaded with TM_SUMMARY at least */
    enum ex_what what;
    ex_sample *samples; /* by stack id, ascending */
    size_t n;
} ex_profile;

/* The frames a stack shows, innermost first: the trace model's frames
 * after the allocator's own (all of them when that leaves none).  Sets
 * *out (NULL for no frame at all) and returns their count. */
size_t ex_frames(tm_trace *t, long long stack, const tm_frame *const **out);

/* A frame's name: its function, else MODULE+0xOFFSET, else 0xIP. */
const char *ex_frame_name(const tm_frame *f, char *buf, size_t size);

/* The profile as a gzipped profile.proto to `out`.  0, or -1 after a
 * one-line message. */
int ex_write_pprof(FILE *out, const ex_profile *p);

#endif
