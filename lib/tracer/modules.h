/* The module map: which objects (executable, shared libraries, vdso) are
 * mapped in the process, where, and with which GNU build id.
 *
 * The tracer layer only reads it (and the spool sink sends it to the
 * consumer); the trace layer stores it (trace/module_rows.h), so that
 * frames can be attributed to a module and symbolized later, in this
 * process or offline from the trace file alone.
 */
#ifndef AT_MODULES_H
#define AT_MODULES_H

#include <stddef.h>
#include <stdint.h>

/* The path recorded for a loaded object whose dl_iterate_phdr name (or
 * link_map l_name) is `name`: the executable's real path for the empty
 * name, an absolute path for a relative one, `name` itself otherwise (the
 * vdso keeps "linux-vdso.so.1").  Returns `name` or `buf`. */
const char *at__module_path(const char *name, char *buf, size_t size);

/* One loaded object, as recorded in `modules` (build_id NULL if none). */
typedef struct at_module_info {
    const char *path;
    uintptr_t base, start, end;
    const char *build_id;
} at_module_info;

/* Calls `fn` for every object loaded in the calling process, after the
 * loader's list has been copied.  0, or AT_E_NOMEM when some object could
 * not be copied (the others were passed to `fn`). */
int at__modules_foreach(void (*fn)(const at_module_info *m, void *arg), void *arg);

/* Changes whenever an object is loaded or unloaded (glibc's dlpi_adds +
 * dlpi_subs). */
unsigned long long at__modules_generation(void);

#endif
