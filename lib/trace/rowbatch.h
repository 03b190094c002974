/* A batch of rows for one INSERT ... SELECT.
 *
 * Binding a dozen parameters and stepping a statement per row costs more
 * than SQLite's work of storing the row.  A row batch collects rows of
 * integer columns in memory and shows them to SQL as an eponymous virtual
 * table of the connection it is registered on, so that one statement,
 * `INSERT INTO t SELECT * FROM name`, moves the whole batch, in the order
 * the rows were added.
 *
 * Values are 64-bit integers; a bit set in a row's `nulls` mask makes that
 * column NULL.  Up to 32 columns.  Not thread-safe: one batch per
 * connection, used by the connection's thread.  Memory from malloc: the
 * writers that use it are never on a traced program's hot path.
 */
#ifndef AT_ROWBATCH_H
#define AT_ROWBATCH_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

typedef struct at_rowbatch {
    unsigned ncols;
    size_t n, cap;  /* rows held, rows of room */
    int64_t *vals;  /* cap * ncols */
    uint32_t *nulls; /* cap */
    char *decl;      /* the table's declaration, for sqlite3_declare_vtab */
} at_rowbatch;

/* Registers the table `name` with the columns `columns` (an SQL column
 * list such as "seq, ptr, size") on `db`; `b` must outlive the
 * connection's use of it.  Returns 0 or AT_E_NOMEM / AT_E_DB. */
int at__rowbatch_init(at_rowbatch *b, sqlite3 *db, const char *name, const char *columns,
                      unsigned ncols, size_t cap);
void at__rowbatch_destroy(at_rowbatch *b);

/* Room for the next row: its ncols values, to fill in; NULL when full. */
static inline int64_t *at__rowbatch_add(at_rowbatch *b, uint32_t nulls)
{
    if (b->n == b->cap)
        return NULL;
    b->nulls[b->n] = nulls;
    return &b->vals[b->n++ * b->ncols];
}

/* Forgets every row (after the INSERT ... SELECT that used them). */
void at__rowbatch_clear(at_rowbatch *b);

#endif
