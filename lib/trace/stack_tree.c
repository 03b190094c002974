/* The call tree in memory (see stack_tree.h). */
#include <stdlib.h>
#include <string.h>

#include <alloctrace/error.h>

#include "stack_tree.h"

/* Ids of a real trace are dense (one counter in the tracer); a table this
 * much sparser is not one, and is not worth the memory. */
static int too_sparse(int64_t max_id, int64_t count)
{
    return max_id < 0 || max_id > 16 * count + 65536 || max_id > INT32_MAX;
}

static int64_t one_int(sqlite3 *db, const char *sql, int *rc)
{
    sqlite3_stmt *st = NULL;
    int64_t v = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
        *rc = AT_E_DB;
    else
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

int at__frame_ids(sqlite3 *db, int64_t *n)
{
    int rc = 0;
    int64_t max_id = one_int(db, "SELECT coalesce(max(id), 0) FROM frames", &rc);
    int64_t count = one_int(db, "SELECT count(*) FROM frames", &rc);
    if (rc || too_sparse(max_id, count))
        return AT_E_DB;
    *n = max_id + 1;
    return 0;
}

int at__stack_tree_load(sqlite3 *db, at_stack_tree *t)
{
    memset(t, 0, sizeof *t);
    int rc = 0;
    int64_t max_id = one_int(db, "SELECT coalesce(max(id), 0) FROM stack_nodes", &rc);
    int64_t count = one_int(db, "SELECT count(*) FROM stack_nodes", &rc);
    if (rc || too_sparse(max_id, count))
        return AT_E_DB;
    t->n = max_id + 1;
    t->parent = calloc((size_t)t->n, sizeof *t->parent);
    t->frame = calloc((size_t)t->n, sizeof *t->frame);
    if (!t->parent || !t->frame) {
        at__stack_tree_free(t);
        return AT_E_NOMEM;
    }
    sqlite3_stmt *st = NULL;
    int step = sqlite3_prepare_v2(db, "SELECT id, coalesce(parent, 0), frame FROM stack_nodes", -1,
                                  &st, NULL);
    while (step == SQLITE_OK || step == SQLITE_ROW) {
        if ((step = sqlite3_step(st)) != SQLITE_ROW)
            break;
        int64_t id = sqlite3_column_int64(st, 0);
        if (id <= 0 || id >= t->n)
            continue;
        t->parent[id] = sqlite3_column_int64(st, 1);
        t->frame[id] = sqlite3_column_int64(st, 2);
    }
    rc = step == SQLITE_DONE ? 0 : AT_E_DB;
    sqlite3_finalize(st);
    if (rc)
        at__stack_tree_free(t);
    return rc;
}

void at__stack_tree_free(at_stack_tree *t)
{
    free(t->parent);
    free(t->frame);
    memset(t, 0, sizeof *t);
}

size_t at__stack_tree_frames(const at_stack_tree *t, int64_t id, int64_t *out, size_t max)
{
    size_t n = 0;
    while (n < max && id > 0 && id < t->n && t->frame[id]) {
        out[n++] = t->frame[id];
        id = t->parent[id];
    }
    return n;
}
