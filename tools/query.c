/* `alloctrace query TRACE 'SQL'`: one read-only SQL statement over a
 * trace, printed as an aligned table, CSV or JSON (docs/queries.md has
 * worked questions).
 *
 * Read-only three times over: cli_open_trace opens the file read-only
 * with SQLite's defensive settings, the statement must be one that
 * sqlite3_stmt_readonly() accepts, and an authorizer refuses ATTACH (which
 * that function lets through) so no other file is touched.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "escape.h"
#include "json_writer.h"
#include "trace_model.h"

enum format { FORMAT_TABLE, FORMAT_CSV, FORMAT_JSON };

/* ---- the statement ------------------------------------------------------------------- */

static int authorize(void *unused, int action, const char *a, const char *b, const char *c,
                     const char *d)
{
    (void)unused, (void)a, (void)b, (void)c, (void)d;
    return action == SQLITE_ATTACH || action == SQLITE_DETACH ? SQLITE_DENY : SQLITE_OK;
}

/* Errors of the file rather than of the statement. */
static int is_tool_error(int code)
{
    code &= 0xFF;
    return code == SQLITE_CORRUPT || code == SQLITE_NOTADB || code == SQLITE_IOERR ||
           code == SQLITE_NOMEM || code == SQLITE_CANTOPEN || code == SQLITE_FULL;
}

static int sql_error(sqlite3 *db, const char *what)
{
    fprintf(stderr, "alloctrace: query: %s", what);
    if (db) {
        fputs(": ", stderr);
        esc_text(stderr, sqlite3_errmsg(db));
    }
    fputc('\n', stderr);
    return db && is_tool_error(sqlite3_extended_errcode(db)) ? EXIT_TOOL : EXIT_USAGE;
}

/* The one statement of `sql`; 0 or an exit code after a message. */
static int prepare_one(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
    const char *tail;
    sqlite3_stmt *st = NULL, *next = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, &tail) != SQLITE_OK)
        return sql_error(db, "cannot run the statement");
    if (!st)
        return sql_error(NULL, "no SQL statement given");
    /* Whatever follows must be nothing but blanks and comments. */
    int rc = sqlite3_prepare_v2(db, tail, -1, &next, NULL);
    sqlite3_finalize(next);
    if (rc != SQLITE_OK || next) {
        sqlite3_finalize(st);
        return sql_error(NULL, "one statement at a time");
    }
    if (!sqlite3_stmt_readonly(st)) {
        sqlite3_finalize(st);
        return sql_error(NULL, "only statements that read (SELECT, WITH...): traces are"
                               " read-only");
    }
    *out = st;
    return 0;
}

/* ---- table --------------------------------------------------------------------------- */

/* Rows kept to size the columns, up to TABLE_SAMPLE rows or
 * TABLE_SAMPLE_BYTES of text; later rows are printed with those widths.
 * A column is never padded wider than TABLE_MAX_WIDTH: a longer value is
 * printed whole and pushes its row out of line, nothing more (padding
 * every row to a 1 MB cell made gigabytes of spaces). */
enum { TABLE_SAMPLE = 10000, TABLE_SAMPLE_BYTES = 16 << 20, TABLE_MAX_WIDTH = 80 };

typedef struct cell {
    char *text; /* rendered, unescaped; NULL for SQL NULL */
    int number;
} cell;

static cell render(sqlite3_stmt *st, int i)
{
    cell c = {NULL, 0};
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_NULL: break;
    case SQLITE_BLOB: {
        const unsigned char *b = sqlite3_column_blob(st, i);
        int n = sqlite3_column_bytes(st, i);
        c.text = tm_xrealloc(NULL, 2 * (size_t)n + 4);
        char *p = c.text + sprintf(c.text, "x'");
        for (int k = 0; k < n; k++)
            p += sprintf(p, "%02x", b[k]);
        strcpy(p, "'");
        break;
    }
    case SQLITE_INTEGER:
    case SQLITE_FLOAT: c.number = 1; /* fall through */
    default: c.text = tm_xstrdup((const char *)sqlite3_column_text(st, i));
    }
    return c;
}

static size_t cell_width(const cell *c)
{
    return c->text ? esc_text_width(c->text) : 4;
}

static void print_cell(FILE *out, const cell *c, size_t width, int last)
{
    size_t w = cell_width(c), pad = w < width ? width - w : 0;
    if (c->number)
        fprintf(out, "%*s", (int)pad, "");
    if (c->text)
        esc_text(out, c->text);
    else
        fputs("NULL", out);
    if (!c->number && !last)
        fprintf(out, "%*s", (int)pad, "");
    fputs(last ? "\n" : "  ", out);
}

static void print_row(FILE *out, const cell *row, const size_t *width, int n)
{
    for (int i = 0; i < n; i++)
        print_cell(out, &row[i], width[i], i == n - 1);
}

static void free_row(cell *row, int n)
{
    for (int i = 0; i < n; i++)
        free(row[i].text);
}

static void print_header(FILE *out, sqlite3_stmt *st, const size_t *width, int n)
{
    for (int i = 0; i < n; i++) {
        const char *name = sqlite3_column_name(st, i);
        size_t w = esc_text(out, name);
        if (i < n - 1)
            fprintf(out, "%*s  ", (int)(w < width[i] ? width[i] - w : 0), "");
    }
    fputc('\n', out);
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < width[i]; k++)
            fputc('-', out);
        fputs(i < n - 1 ? "  " : "\n", out);
    }
}

static int table(FILE *out, sqlite3_stmt *st)
{
    int n = sqlite3_column_count(st), rc = SQLITE_DONE;
    size_t *width = tm_xrealloc(NULL, (size_t)n * sizeof *width);
    cell *rows = NULL;
    size_t nrows = 0;
    for (int i = 0; i < n; i++)
        width[i] = esc_text_width(sqlite3_column_name(st, i));
    size_t sampled = 0;
    while (nrows < TABLE_SAMPLE && sampled < TABLE_SAMPLE_BYTES &&
           (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rows = tm_xrealloc(rows, (nrows + 1) * (size_t)n * sizeof *rows);
        for (int i = 0; i < n; i++) {
            cell *c = &rows[nrows * (size_t)n + (size_t)i];
            *c = render(st, i);
            size_t w = cell_width(c);
            sampled += c->text ? strlen(c->text) : 0;
            if (w > TABLE_MAX_WIDTH)
                w = TABLE_MAX_WIDTH;
            width[i] = w > width[i] ? w : width[i];
        }
        nrows++;
    }
    print_header(out, st, width, n);
    for (size_t r = 0; r < nrows; r++) {
        print_row(out, &rows[r * (size_t)n], width, n);
        free_row(&rows[r * (size_t)n], n);
    }
    free(rows);
    if (rc == SQLITE_ROW) { /* the sample ended at a limit: rows may follow */
        cell *row = tm_xrealloc(NULL, (size_t)n * sizeof *row);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            for (int i = 0; i < n; i++)
                row[i] = render(st, i);
            print_row(out, row, width, n);
            free_row(row, n);
        }
        free(row);
    }
    free(width);
    return rc;
}

/* ---- CSV and JSON --------------------------------------------------------------------- */

static int csv(FILE *out, sqlite3_stmt *st)
{
    int n = sqlite3_column_count(st), rc;
    for (int i = 0; i < n; i++) {
        const char *name = sqlite3_column_name(st, i);
        esc_csv(out, name, strlen(name));
        fputs(i < n - 1 ? "," : "\r\n", out);
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < n; i++) {
            if (sqlite3_column_type(st, i) == SQLITE_BLOB) {
                cell c = render(st, i);
                fputs(c.text, out);
                free(c.text);
            } else if (sqlite3_column_type(st, i) != SQLITE_NULL) {
                const char *v = (const char *)sqlite3_column_text(st, i);
                esc_csv(out, v, (size_t)sqlite3_column_bytes(st, i));
            }
            fputs(i < n - 1 ? "," : "\r\n", out);
        }
    }
    return rc;
}

static int json(FILE *out, sqlite3_stmt *st)
{
    int n = sqlite3_column_count(st), rc;
    jw w;
    jw_init(&w, out);
    jw_arr(&w, NULL);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        jw_line(&w);
        jw_obj(&w, NULL);
        for (int i = 0; i < n; i++) {
            const char *name = sqlite3_column_name(st, i);
            switch (sqlite3_column_type(st, i)) {
            case SQLITE_NULL: jw_null(&w, name); break;
            case SQLITE_INTEGER: jw_int(&w, name, sqlite3_column_int64(st, i)); break;
            case SQLITE_FLOAT: jw_double(&w, name, sqlite3_column_double(st, i)); break;
            case SQLITE_BLOB: {
                cell c = render(st, i);
                jw_str(&w, name, c.text);
                free(c.text);
                break;
            }
            default: jw_str(&w, name, (const char *)sqlite3_column_text(st, i));
            }
        }
        jw_end(&w);
    }
    jw_end(&w);
    return rc;
}

/* ---- the command ---------------------------------------------------------------------- */

static int run_query(const char *path, const char *sql, enum format format)
{
    sqlite3 *db;
    if (cli_open_trace(path, &db) != 0)
        return EXIT_TOOL;
    sqlite3_set_authorizer(db, authorize, NULL);
    sqlite3_stmt *st = NULL;
    int rc = prepare_one(db, sql, &st);
    if (rc == 0) {
        int step = format == FORMAT_CSV ? csv(stdout, st)
                   : format == FORMAT_JSON ? json(stdout, st)
                                           : table(stdout, st);
        if (step != SQLITE_DONE)
            rc = sql_error(db, "the statement failed");
        else if (fflush(stdout) != 0)
            rc = EXIT_TOOL;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

int cmd_query(int argc, char **argv)
{
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    enum format format = FORMAT_TABLE;
    int c;
    optind = 0; /* 0, not 1: glibc then starts over, ordering mode included */
    while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
        switch (c) {
        case 'f':
            if (strcmp(optarg, "table") == 0)
                format = FORMAT_TABLE;
            else if (strcmp(optarg, "csv") == 0)
                format = FORMAT_CSV;
            else if (strcmp(optarg, "json") == 0)
                format = FORMAT_JSON;
            else {
                fprintf(stderr, "alloctrace: query: --format is table, csv or json\n");
                return EXIT_USAGE;
            }
            break;
        case 'h': cli_command_help(stdout, "query"); return 0;
        default: return EXIT_USAGE;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "alloctrace: query: a trace and one SQL statement\n");
        cli_usage_hint("query");
        return EXIT_USAGE;
    }
    return run_query(argv[optind], argv[optind + 1], format);
}
