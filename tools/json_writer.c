/* The JSON writer (see json_writer.h). */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "escape.h"
#include "json_writer.h"

void jw_init(jw *w, FILE *out)
{
    jw_init_flags(w, out, 0);
}

void jw_init_flags(jw *w, FILE *out, unsigned flags)
{
    w->out = out;
    w->flags = flags;
    w->depth = 0;
    w->line_depth = 0;
    w->line_next = 0;
}

/* Members of levels at or below line_depth go on their value's line. */
static int inline_level(const jw *w, int depth)
{
    return w->line_depth > 0 && depth >= w->line_depth;
}

/* A string for JW_SCRIPT (json_writer.h). */
static void script_str(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
    fputc('"', out);
    for (size_t n = 0; p < end; p += n) {
        long cp = esc_utf8_next(p, (size_t)(end - p), &n);
        if (cp == '"' || cp == '\\') {
            fputc('\\', out);
            fputc((int)cp, out);
        } else if (cp < 0) {
            fputs("\\ufffd", out);
        } else if (cp < 0x20 || cp == 0x7f || cp == '<' || cp == '>' || cp == '&' ||
                   cp == 0x2028 || cp == 0x2029) {
            fprintf(out, "\\u%04lx", cp);
        } else {
            fwrite(p, 1, n, out);
        }
    }
    fputc('"', out);
}

static void str(jw *w, const char *s)
{
    if (s && (w->flags & JW_SCRIPT))
        script_str(w->out, s);
    else
        esc_json(w->out, s);
}

/* Separator, line break and indentation, and key before a value. */
static void member(jw *w, const char *key)
{
    if (w->depth > 0) {
        int level = w->depth - 1;
        if (w->count[level])
            fputc(',', w->out);
        if (w->flags & JW_COMPACT) {
            /* nothing between values */
        } else if (inline_level(w, w->depth)) {
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
        str(w, key);
        fputs(w->flags & JW_COMPACT ? ":" : ": ", w->out);
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
    if (w->count[w->depth] && !on_line && !(w->flags & JW_COMPACT)) {
        fputc('\n', w->out);
        for (int i = 0; i < w->depth; i++)
            fputs("  ", w->out);
    }
    fputc(w->close[w->depth], w->out);
    if (w->depth == 0 && !(w->flags & JW_COMPACT))
        fputc('\n', w->out);
}

void jw_str(jw *w, const char *key, const char *value)
{
    member(w, key);
    str(w, value);
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

void jw_ints(jw *w, const char *key, const long long *v, size_t n)
{
    jw_arr(w, key);
    for (size_t i = 0; i < n; i++)
        jw_int(w, NULL, v[i]);
    jw_end(w);
}
