/* Sites: which stacks of a trace are one place in the program, the one
 * rule that the text report, JSON, SARIF, check, the SQL views and the
 * HTML page all follow.  Belongs in the trace layer (lib/trace/).
 *
 * A stack is read as its lines, the views' and the reports' frames: each
 * frame is the functions the compiler inlined at its address
 * (inlined_frames, innermost first), then itself.  Those are trimmed at
 * the top: the allocator's entry points (malloc, free, operator new...,
 * the trait's at_* dispatchers) and alloctrace's own frames say nothing
 * about who allocated, and are `skip`ped (all of them kept if nothing
 * else is left; `skip` counts lines).  Two stacks whose remaining lines
 * read the same once symbolized (in every line the same function, file
 * and line; the module offset where there is no line, the module and
 * offset where there is no function) are one site: a loop the compiler
 * unrolled into four calls, or a function called twice from one line, is
 * one site, not four or two; an inlined helper called from two lines is
 * two sites, its caller's line telling them apart.  A site is named by
 * the smallest stack id among its stacks.
 *
 * Finishing stores each stack's site in `stack_sites(stack, site, skip)`
 * once the frames are symbolized (at__sites_store); the views leak_sites
 * and finding_sites group by it.  A reader of a trace that lacks the
 * table (finished by an older alloctrace) computes the same with
 * at__sites_compute, without writing.
 */
#ifndef AT_SITES_H
#define AT_SITES_H

#include <stdint.h>

#include <sqlite3.h>

#include "stack_tree.h"

/* Called once for every stack that has frames, in ascending stack id. */
typedef void at_site_fn(void *arg, int64_t stack, int64_t site, int skip);

/* Computes every stack's site from frames and the call tree (read only):
 * `tree` loaded by the caller, or NULL to have it read here.  0, AT_E_DB
 * or AT_E_NOMEM. */
int at__sites_compute(sqlite3 *db, const at_stack_tree *tree, at_site_fn *fn, void *arg);

/* Fills stack_sites (creating it if the trace has none), inside the
 * caller's transaction if any; `tree` as for at__sites_compute.  Call it
 * after symbolization. */
int at__sites_store(sqlite3 *db, const at_stack_tree *tree);

#endif
