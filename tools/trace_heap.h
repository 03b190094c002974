/* The trace model's replay of the live heap (trace_model.h, TM_HEAP):
 * per stack what it allocated, lost to rounding and held at the peak, the
 * timeline and allocations by size and alignment, all from one pass of
 * lib/trace/replay.h over the lifetimes.  Private to trace_model.c. */
#ifndef ALLOCTRACE_TRACE_HEAP_H
#define ALLOCTRACE_TRACE_HEAP_H

#include <sqlite3.h>

#include "replay.h"
#include "trace_model.h"

/* Fills `h` (zeroed) and `peak` from `db`'s lifetimes; `span_us` is the
 * time the timeline's buckets divide (the trace's duration, 0 unknown).
 * 0, or -1 when a query failed (sqlite3_errmsg(db) says which). */
int tm__heap_load(tm_heap *h, sqlite3 *db, long long span_us, at_replay_peak *peak);

/* The entry of stack `id`, made (all zero) if there is none. */
tm_stack_heap *tm__heap_entry(tm_heap *h, long long id);

/* The entry of stack `id`, or NULL. */
const tm_stack_heap *tm__heap_find(const tm_heap *h, long long id);

void tm__heap_free(tm_heap *h);

#endif
