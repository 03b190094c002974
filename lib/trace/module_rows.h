/* The module map in the trace: `modules` rows and the attribution of
 * frames to them (docs/schema.md).  The map itself is read by the tracer
 * layer (tracer/modules.h); this is where it is stored.
 */
#ifndef AT_MODULE_ROWS_H
#define AT_MODULE_ROWS_H

#include <sqlite3.h>

#include "modules.h"

/* Adds a `modules` row for every object loaded in the calling process
 * (skipping any (path, base) already in the table), then sets
 * `frames.module` and `frames.module_offset` of every frame not yet
 * attributed whose ip lies in a module's [start, end).  One transaction:
 * call it outside any.  0, AT_E_NOMEM or AT_E_DB. */
int at__modules_write(sqlite3 *db);

/* Adds one `modules` row unless (path, base) is there already; no
 * transaction of its own.  0 or AT_E_DB. */
int at__modules_insert(sqlite3 *db, const at_module_info *m);

/* Sets frames.module and module_offset where still NULL.  0 or AT_E_DB. */
int at__modules_attribute(sqlite3 *db);

#endif
