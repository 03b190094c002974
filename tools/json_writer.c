/* The JSON writer (see json_writer.h). */
#include <assert.h>
#include <math.h>

#include "escape.h"
#include "json_writer.h"

void jw_init(jw *w, FILE *out)
{
    w->out = out;
    w->depth = 0;
    w->line_depth = 0;
    w->line_next = 0;
}

/* Members of levels at or below line_depth go on their value's line. */
static int inline_level(const jw *w, int depth)
{
    return w->line_depth > 0 && depth >= w->line_depth;
}

/* Separator, line break and indentation, and key before a value. */
static void member(jw *w, const char *key)
{
    if (w->depth > 0) {
        int level = w->depth - 1;
        if (w->count[level])
            fputc(',', w->out);
        if (inline_level(w, w->depth)) {
            if (w->count[level])
                fputc(' ', w->out);
        } else {
            fputc('\n', w->out);
            for (int i = 0; i < w->depth; i++)
                fputs("  ", w->out);
        }
        w->count[level] = 1;
    }
    assert((key != NULL) == (w->depth > 0 && w->close[w->depth - 1] == '}'));
    if (key) {
        esc_json(w->out, key);
        fputs(": ", w->out);
    }
}

static void open_value(jw *w, const char *key, char c)
{
    assert(w->depth < JW_MAX_DEPTH);
    member(w, key);
    fputc(c, w->out);
    w->close[w->depth] = c == '{' ? '}' : ']';
    w->count[w->depth] = 0;
    w->depth++;
    if (w->line_next && !w->line_depth)
        w->line_depth = w->depth;
    w->line_next = 0;
}

void jw_obj(jw *w, const char *key)
{
    open_value(w, key, '{');
}

void jw_arr(jw *w, const char *key)
{
    open_value(w, key, '[');
}

void jw_line(jw *w)
{
    w->line_next = 1;
}

void jw_end(jw *w)
{
    assert(w->depth > 0);
    int on_line = inline_level(w, w->depth);
    if (w->line_depth == w->depth)
        w->line_depth = 0;
    w->depth--;
    if (w->count[w->depth] && !on_line) {
        fputc('\n', w->out);
        for (int i = 0; i < w->depth; i++)
            fputs("  ", w->out);
    }
    fputc(w->close[w->depth], w->out);
    if (w->depth == 0)
        fputc('\n', w->out);
}

void jw_str(jw *w, const char *key, const char *value)
{
    member(w, key);
    esc_json(w->out, value);
}

void jw_int(jw *w, const char *key, long long value)
{
    member(w, key);
    fprintf(w->out, "%lld", value);
}

void jw_uri(jw *w, const char *key, const char *path)
{
    member(w, key);
    if (!path) {
        fputs("null", w->out);
        return;
    }
    fputc('"', w->out); /* esc_uri writes ASCII with no quote or backslash */
    esc_uri(w->out, path);
    fputc('"', w->out);
}

void jw_int_or_null(jw *w, const char *key, long long value, long long none)
{
    if (value == none)
        jw_null(w, key);
    else
        jw_int(w, key, value);
}

void jw_double(jw *w, const char *key, double value)
{
    member(w, key);
    if (isfinite(value))
        fprintf(w->out, "%.17g", value);
    else
        fputs("null", w->out);
}

void jw_bool(jw *w, const char *key, int value)
{
    member(w, key);
    fputs(value ? "true" : "false", w->out);
}

void jw_null(jw *w, const char *key)
{
    member(w, key);
    fputs("null", w->out);
}
