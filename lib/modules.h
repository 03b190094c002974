/* The module map: which objects (executable, shared libraries, vdso) are
 * mapped in the process, where, and with which GNU build id.
 *
 * Written once when the trace closes, so that frames can be attributed to
 * a module and symbolized later, in this process or offline from the
 * trace file alone.
 */
#ifndef AT_MODULES_H
#define AT_MODULES_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

/* Adds a `modules` row for every object loaded in the calling process
 * (skipping any (path, base) already in the table), then sets
 * `frames.module` and `frames.module_offset` of every frame not yet
 * attributed whose ip lies in a module's [start, end).  One transaction:
 * call it outside any.  0, AT_E_NOMEM or AT_E_DB. */
int at__modules_write(sqlite3 *db);

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

/* Calls `fn` for every object loaded in the calling process. */
void at__modules_foreach(void (*fn)(const at_module_info *m, void *arg), void *arg);

/* Adds one `modules` row unless (path, base) is there already; no
 * transaction of its own.  0 or AT_E_DB. */
int at__modules_insert(sqlite3 *db, const at_module_info *m);

/* Changes whenever an object is loaded or unloaded (glibc's dlpi_adds +
 * dlpi_subs). */
unsigned long long at__modules_generation(void);

/* Sets frames.module and module_offset where still NULL.  0 or AT_E_DB. */
int at__modules_attribute(sqlite3 *db);

#endif
