/* The call tree of a trace's stacks (docs/schema.md, `stack_nodes`), read
 * into memory: a reader that walks many stacks follows parents in an array
 * instead of asking SQLite for each stack's frames. */
#ifndef AT_STACK_TREE_H
#define AT_STACK_TREE_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

typedef struct at_stack_tree {
    int64_t n;       /* node ids lie in 1..n-1 */
    int64_t *parent; /* 0: an outermost frame, or no such node */
    int64_t *frame;  /* frames.id; 0: no such node */
} at_stack_tree;

/* Reads every node; 0, AT_E_DB (no table, or ids far sparser than any
 * tracer writes them: a hostile trace) or AT_E_NOMEM. */
int at__stack_tree_load(sqlite3 *db, at_stack_tree *t);
void at__stack_tree_free(at_stack_tree *t);

/* The ids of the `frames` table lie in 1..*n-1 (a reader indexes arrays
 * by them): 0, or AT_E_DB when the table cannot be read or its ids are
 * far sparser than any tracer numbers them (a hostile trace). */
int at__frame_ids(sqlite3 *db, int64_t *n);

/* The frames of stack `id`, innermost (level 0) first, at most `max` of
 * them (a bound against a cycle in a hostile trace); their count. */
size_t at__stack_tree_frames(const at_stack_tree *t, int64_t id, int64_t *out, size_t max);

#endif
