/* Several traces at once: the traces one `alloctrace run` wrote (its own,
 * the images its program exec'd, its children's), the traces a read
 * command was given (a directory, or several files), and the few lines
 * that say, even under -q, why a trace fails a check. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "escape.h"
#include "run_protocol.h"
#include "trace_model.h"

void cli_paths_add(cli_paths *l, const char *path)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (!l->v)
            cli_die("out of memory");
    }
    l->v[l->n] = strdup(path);
    if (!l->v[l->n])
        cli_die("out of memory");
    l->n++;
}

void cli_paths_free(cli_paths *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    *l = (cli_paths){0};
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int cli_expand_traces(int n, char **args, cli_paths *out)
{
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (stat(args[i], &st) != 0 || !S_ISDIR(st.st_mode)) {
            cli_paths_add(out, args[i]); /* opening it says what is wrong */
            continue;
        }
        DIR *d = opendir(args[i]);
        if (!d) {
            fprintf(stderr, "alloctrace: %s: %s\n", args[i], strerror(errno));
            return -1;
        }
        size_t first = out->n;
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.' || !ends_with(e->d_name, AT_TRACE_SUFFIX))
                continue;
            char path[4096];
            size_t len = strlen(args[i]);
            snprintf(path, sizeof path, "%s%s%s", args[i],
                     len && args[i][len - 1] == '/' ? "" : "/", e->d_name);
            cli_paths_add(out, path);
        }
        closedir(d);
        qsort(out->v + first, out->n - first, sizeof *out->v, by_name);
        if (out->n == first) {
            fprintf(stderr, "alloctrace: %s: no trace (*" AT_TRACE_SUFFIX ") in this directory\n",
                    args[i]);
            return -1;
        }
    }
    return 0;
}

/* ---- why a trace fails, in a few lines ---------------------------------------------- */

/* "function (file:line)" of the first frame shown with a source line, else
 * of the first frame shown, else "no stack". */
static void print_site(const tm_stack *s)
{
    const tm_frame *f = s ? tm_source_frame(s) : NULL;
    if (!f && s && s->skip < s->depth)
        f = s->frames[s->skip];
    if (!f) {
        fputs("(no stack)", stderr);
        return;
    }
    esc_text(stderr, f->function ? f->function : "??");
    if (f->file && f->line > 0) {
        fputs(" (", stderr);
        esc_text(stderr, f->file);
        fprintf(stderr, ":%lld)", f->line);
    } else if (f->module) {
        fputs(" (", stderr);
        esc_text(stderr, tm_basename(f->module));
        fputc(')', stderr);
    }
}

enum { LOG_TOP = 5 };

int cli_log_problems(const char *path, unsigned leak_kinds)
{
    sqlite3 *db;
    if (cli_open_trace(path, &db) != 0)
        return -1;
    tm_trace t;
    int rc = tm_load(&t, db, path, TM_SUMMARY | TM_LEAKS | TM_FINDINGS);
    if (rc == 0) {
        long long blocks = 0, bytes = 0;
        for (int r = 0; r < TM_REACHES; r++)
            if ((leak_kinds >> r) & 1u) {
                blocks += t.sum.by_reach[r].blocks;
                bytes += t.sum.by_reach[r].bytes;
            }
        char b[64];
        cli_bytes(b, sizeof b, bytes);
        fputs("alloctrace: FAILED ", stderr);
        esc_text(stderr, path);
        fputs(" (", stderr);
        esc_text(stderr, tm_basename(t.sum.executable ? t.sum.executable : "?"));
        fprintf(stderr, ", pid %lld): %lld leaked block%s counted, %s; %lld finding%s\n",
                t.sum.pid, blocks, blocks == 1 ? "" : "s", b, t.sum.findings,
                t.sum.findings == 1 ? "" : "s");
        int shown = 0;
        for (size_t i = 0; i < t.nsites && shown < LOG_TOP; i++) {
            const tm_site *s = &t.sites[i];
            if (!((leak_kinds >> s->reach) & 1u))
                continue;
            fprintf(stderr, "alloctrace:   leak, %s: %lld B in %lld block%s at ",
                    tm_reach_label(s->reach), s->bytes, s->blocks, s->blocks == 1 ? "" : "s");
            print_site(s->stack);
            fputc('\n', stderr);
            shown++;
        }
        for (size_t i = 0; i < t.nfindings && i < LOG_TOP; i++) {
            const tm_finding *f = &t.findings[i];
            fprintf(stderr, "alloctrace:   %s (%lld time%s) released at ", tm_kind_name(f->kind),
                    f->count, f->count == 1 ? "" : "s");
            print_site(f->release);
            if (f->alloc) {
                fputs(", allocated at ", stderr);
                print_site(f->alloc);
            }
            fputc('\n', stderr);
        }
        rc = tm_check(&t);
    }
    tm_free(&t);
    sqlite3_close(db);
    return rc;
}
