/* The module map's rows (see module_rows.h). */
#include <alloctrace/error.h>

#include "module_rows.h"
#include "schema.h"

/* Attributes frames to modules by address range.  Frames already
 * attributed keep their module, which makes repeated calls cheap. */
static const char attribute_sql[] =
    "UPDATE frames SET module = m.id, module_offset = frames.ip - m.base FROM modules AS m"
    " WHERE frames.module IS NULL AND frames.ip >= m.start AND frames.ip < m.end";

typedef struct inserter {
    sqlite3_stmt *seen, *ins;
    int rc;
} inserter;

static int inserter_open(inserter *w, sqlite3 *db)
{
    w->seen = w->ins = NULL;
    w->rc = 0;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM modules WHERE path = ?1 AND base = ?2", -1,
                           &w->seen, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT INTO modules(path, base, start, end, build_id)"
                           " VALUES(?1, ?2, ?3, ?4, ?5)",
                           -1, &w->ins, NULL) != SQLITE_OK)
        w->rc = AT_E_DB;
    return w->rc;
}

static void inserter_close(inserter *w)
{
    sqlite3_finalize(w->seen);
    sqlite3_finalize(w->ins);
}

static void insert_one(const at_module_info *m, void *arg)
{
    inserter *w = arg;
    if (w->rc)
        return;
    sqlite3_bind_text(w->seen, 1, m->path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(w->seen, 2, (sqlite3_int64)m->base);
    int s = sqlite3_step(w->seen);
    sqlite3_reset(w->seen);
    if (s == SQLITE_ROW)
        return; /* written by an earlier call */
    if (s != SQLITE_DONE) {
        w->rc = AT_E_DB;
        return;
    }
    sqlite3_bind_text(w->ins, 1, m->path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(w->ins, 2, (sqlite3_int64)m->base);
    sqlite3_bind_int64(w->ins, 3, (sqlite3_int64)m->start);
    sqlite3_bind_int64(w->ins, 4, (sqlite3_int64)m->end);
    if (m->build_id && m->build_id[0])
        sqlite3_bind_text(w->ins, 5, m->build_id, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(w->ins, 5);
    s = sqlite3_step(w->ins);
    sqlite3_reset(w->ins);
    if (s != SQLITE_DONE)
        w->rc = AT_E_DB;
}

int at__modules_write(sqlite3 *db)
{
    int rc = at__sql_exec(db, "BEGIN");
    if (rc)
        return rc;
    inserter w;
    int nomem = 0;
    if (inserter_open(&w, db) == 0)
        nomem = at__modules_foreach(insert_one, &w);
    rc = w.rc;
    inserter_close(&w);
    if (!rc)
        rc = at__sql_exec(db, attribute_sql);
    if (!rc)
        rc = at__sql_exec(db, "COMMIT");
    if (rc)
        at__sql_exec(db, "ROLLBACK");
    /* What could be recorded is; the rest is reported, not fatal. */
    return rc ? rc : nomem;
}

int at__modules_insert(sqlite3 *db, const at_module_info *m)
{
    inserter w;
    if (inserter_open(&w, db) == 0)
        insert_one(m, &w);
    inserter_close(&w);
    return w.rc;
}

int at__modules_attribute(sqlite3 *db)
{
    return at__sql_exec(db, attribute_sql);
}
