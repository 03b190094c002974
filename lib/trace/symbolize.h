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

/* Fills function (C++ names demangled), function_offset, file and line of
 * every frame with a module and no function yet.  Frames nothing is known
 * about stay NULL; missing files or debug info are not errors.  One
 * transaction: call it outside any.  0, AT_E_NOMEM or AT_E_DB. */
int at__symbolize_frames(sqlite3 *db);

/* The demangled form of a C++ symbol name, from malloc (free() it); NULL
 * if `name` is not a mangled name or the process has no demangler (the
 * one in libstdc++ is used when libstdc++ is loaded, never loaded for it). */
char *at__demangle(const char *name);

/* Set by a process that may load libstdc++ to demangle (the alloctrace
 * tool); a traced program never gets a library loaded behind its back. */
extern int at__demangle_may_load;

#endif
