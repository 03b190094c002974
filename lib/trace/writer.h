/* The SQLite sink (writer.c): at_tracer_open's tracer writes its trace
 * from a thread of its own.  Its entry point is public (tracer.h); what
 * the rest of the trace layer shares with it is here. */
#ifndef AT_WRITER_H
#define AT_WRITER_H

/* Creates a trace file: mode 0600, never through a symlink, replacing a
 * regular file only with `overwrite`.  0 or AT_E_EXISTS / AT_E_SYMLINK /
 * AT_E_ACCESS. */
int at__create_trace_file(const char *path, int overwrite);

#endif
