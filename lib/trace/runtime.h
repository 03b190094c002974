/* Blocks the C and C++ runtimes keep on purpose until the process ends. */
#ifndef AT_RUNTIME_H
#define AT_RUNTIME_H

#include <sqlite3.h>

#include "stack_tree.h"

/* Fills runtime_owned with the blocks still live at close that belong to
 * the runtimes rather than to the program (see runtime.c for the rules).
 * Needs symbolized frames; may be run again (it starts over).  `tree` is
 * the trace's call tree, loaded by the caller (completion shares it with
 * the sites).  0 or AT_E_DB. */
int at__classify_runtime(sqlite3 *db, const at_stack_tree *tree);

#endif
