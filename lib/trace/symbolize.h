/* Frame symbolization: function, offset, source file and line of every
 * frame attributed to a module, from the `modules` table alone.
 *
 * Needs only the trace and the module files (plus their separate debug
 * info, found the standard way: build id, .gnu_debuglink, /usr/lib/debug),
 * so it works at close in the traced process and offline on a trace file.
 */
#ifndef AT_SYMBOLIZE_H
#define AT_SYMBOLIZE_H

#include <sqlite3.h>

/* Fills function (C++ and Rust names demangled), function_offset, file and line of
 * every frame with a module and no function yet, and inlined_frames with
 * the functions the compiler inlined at its address (the frame's own file
 * and line are then where the real function called the outermost of
 * them: docs/schema.md).  Frames nothing is known
 * about stay NULL; missing files or debug info are not errors.  One
 * transaction: call it outside any.  0, AT_E_NOMEM or AT_E_DB. */
int at__symbolize_frames(sqlite3 *db);

/* The demangled form of a C++ or Rust (legacy or v0) symbol name, from
 * malloc (free() it); Rust names without their hash.  NULL if `name` is
 * not a valid mangled name (or memory ran out).  libiberty's demangler,
 * linked in statically. */
char *at__demangle(const char *name);

#endif
