/* Row batches as an eponymous virtual table (see rowbatch.h).
 *
 * Relies on SQLite's virtual table interface: the module has no xCreate, so
 * the table exists only under its module's name on the connection that
 * registered it, never in the file's schema.  The batch reaches the module
 * as the module's client data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <alloctrace/error.h>

#include "rowbatch.h"

typedef struct batch_cursor {
    sqlite3_vtab_cursor base;
    size_t i;
} batch_cursor;

typedef struct batch_vtab {
    sqlite3_vtab base;
    at_rowbatch *b;
} batch_vtab;

static int batch_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                         sqlite3_vtab **out, char **err)
{
    (void)argc;
    (void)argv;
    (void)err;
    at_rowbatch *b = aux;
    int rc = sqlite3_declare_vtab(db, b->decl);
    if (rc != SQLITE_OK)
        return rc;
    batch_vtab *v = sqlite3_malloc(sizeof *v);
    if (!v)
        return SQLITE_NOMEM;
    memset(v, 0, sizeof *v);
    v->b = b;
    *out = &v->base;
    return SQLITE_OK;
}

static int batch_disconnect(sqlite3_vtab *v)
{
    sqlite3_free(v);
    return SQLITE_OK;
}

static int batch_best_index(sqlite3_vtab *v, sqlite3_index_info *info)
{
    /* A full scan is the only plan; the rows' count is the estimate. */
    at_rowbatch *b = ((batch_vtab *)v)->b;
    info->estimatedRows = (sqlite3_int64)b->n;
    info->estimatedCost = (double)b->n + 1;
    return SQLITE_OK;
}

static int batch_open(sqlite3_vtab *v, sqlite3_vtab_cursor **out)
{
    (void)v;
    batch_cursor *c = sqlite3_malloc(sizeof *c);
    if (!c)
        return SQLITE_NOMEM;
    memset(c, 0, sizeof *c);
    *out = &c->base;
    return SQLITE_OK;
}

static int batch_close(sqlite3_vtab_cursor *c)
{
    sqlite3_free(c);
    return SQLITE_OK;
}

static int batch_filter(sqlite3_vtab_cursor *c, int idx, const char *idx_str, int argc,
                        sqlite3_value **argv)
{
    (void)idx;
    (void)idx_str;
    (void)argc;
    (void)argv;
    ((batch_cursor *)c)->i = 0;
    return SQLITE_OK;
}

static int batch_next(sqlite3_vtab_cursor *c)
{
    ((batch_cursor *)c)->i++;
    return SQLITE_OK;
}

static int batch_eof(sqlite3_vtab_cursor *c)
{
    const at_rowbatch *b = ((batch_vtab *)c->pVtab)->b;
    return ((batch_cursor *)c)->i >= b->n;
}

static int batch_column(sqlite3_vtab_cursor *c, sqlite3_context *ctx, int col)
{
    const at_rowbatch *b = ((batch_vtab *)c->pVtab)->b;
    size_t row = ((batch_cursor *)c)->i;
    if (b->nulls[row] >> col & 1)
        sqlite3_result_null(ctx);
    else
        sqlite3_result_int64(ctx, b->vals[row * b->ncols + (unsigned)col]);
    return SQLITE_OK;
}

static int batch_rowid(sqlite3_vtab_cursor *c, sqlite3_int64 *rowid)
{
    *rowid = (sqlite3_int64)((batch_cursor *)c)->i;
    return SQLITE_OK;
}

static const sqlite3_module batch_module = {
    .iVersion = 1,
    .xCreate = NULL, /* eponymous only */
    .xConnect = batch_connect,
    .xBestIndex = batch_best_index,
    .xDisconnect = batch_disconnect,
    .xDestroy = batch_disconnect,
    .xOpen = batch_open,
    .xClose = batch_close,
    .xFilter = batch_filter,
    .xNext = batch_next,
    .xEof = batch_eof,
    .xColumn = batch_column,
    .xRowid = batch_rowid,
};

void at__rowbatch_destroy(at_rowbatch *b)
{
    free(b->vals);
    free(b->nulls);
    free(b->decl);
    memset(b, 0, sizeof *b);
}

int at__rowbatch_init(at_rowbatch *b, sqlite3 *db, const char *name, const char *columns,
                      unsigned ncols, size_t cap)
{
    memset(b, 0, sizeof *b);
    if (ncols == 0 || ncols > 32 || cap == 0 || cap > UINT32_MAX)
        return AT_E_INVALID;
    b->ncols = ncols;
    b->cap = cap;
    size_t dlen = strlen(columns) + sizeof "CREATE TABLE x()";
    b->vals = malloc(cap * ncols * sizeof *b->vals);
    b->nulls = malloc(cap * sizeof *b->nulls);
    b->decl = malloc(dlen);
    if (!b->vals || !b->nulls || !b->decl) {
        at__rowbatch_destroy(b);
        return AT_E_NOMEM;
    }
    snprintf(b->decl, dlen, "CREATE TABLE x(%s)", columns);
    if (sqlite3_create_module_v2(db, name, &batch_module, b, NULL) != SQLITE_OK) {
        at__rowbatch_destroy(b);
        return AT_E_DB;
    }
    return 0;
}

void at__rowbatch_clear(at_rowbatch *b)
{
    b->n = 0;
}
