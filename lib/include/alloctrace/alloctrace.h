/* alloctrace: an allocator trait, backends, and a tracing allocator that
 * records every layout, pointer and backtrace into a SQLite trace. */
#ifndef ALLOCTRACE_ALLOCTRACE_H
#define ALLOCTRACE_ALLOCTRACE_H

#include <alloctrace/error.h>
#include <alloctrace/layout.h>
#include <alloctrace/allocator.h>
#include <alloctrace/backends.h>
#include <alloctrace/tracer.h>
#include <alloctrace/version.h>

#endif
