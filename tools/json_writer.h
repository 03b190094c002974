/* A streaming JSON writer for the commands' machine-readable output:
 * indentation, commas and escaping done once, here, so no output can be
 * malformed by a missed comma or an unescaped name.
 *
 *   jw w;
 *   jw_init(&w, stdout);
 *   jw_obj(&w, NULL);               // the top-level value has no key
 *   jw_str(&w, "format", "alloctrace-report");
 *   jw_arr(&w, "items");
 *   jw_line(&w);                    // what follows, to its end, on one line
 *   jw_obj(&w, NULL); jw_int(&w, "n", 1); jw_end(&w);
 *   jw_end(&w);
 *   jw_end(&w);                     // the final newline comes with the last end
 *
 * `key` is the member name inside an object and must be NULL inside an
 * array.  Strings go through esc_json: any bytes are safe.
 *
 * jw_init_flags(&w, out, JW_COMPACT | JW_SCRIPT) writes for a page
 * instead (alloctrace html): no spaces or line breaks, and strings that
 * are safe inside an HTML <script> element: `<`, `>` and `&` (so no
 * `</script>` and no `<!--`), U+2028 and U+2029 (line breaks to old
 * JavaScript), DEL and every control character as \uXXXX, bytes that are
 * not UTF-8 as \ufffd; the output is then the bytes of the strings' valid
 * UTF-8 plus ASCII.
 */
#ifndef ALLOCTRACE_JSON_WRITER_H
#define ALLOCTRACE_JSON_WRITER_H

#include <stdio.h>

enum { JW_MAX_DEPTH = 32 };

enum {
    JW_COMPACT = 1, /* no whitespace; no final newline */
    JW_SCRIPT = 2,  /* strings safe inside an HTML <script> (above) */
};

typedef struct jw {
    FILE *out;
    unsigned flags;
    int depth;
    int line_depth;                /* > 0: depth of the value being written on one line */
    int line_next;                 /* jw_line() was called: the next value opened is */
    char close[JW_MAX_DEPTH];      /* '}' or ']' per open level */
    unsigned char count[JW_MAX_DEPTH]; /* 0: nothing written at this level yet */
} jw;

void jw_init(jw *w, FILE *out);
void jw_init_flags(jw *w, FILE *out, unsigned flags);
void jw_obj(jw *w, const char *key);
void jw_arr(jw *w, const char *key);
/* The next object or array, and everything in it, goes on one line. */
void jw_line(jw *w);
void jw_end(jw *w);
void jw_str(jw *w, const char *key, const char *value); /* null for NULL */
void jw_int(jw *w, const char *key, long long value);
/* A file path as a URI reference string (esc_uri); null for NULL. */
void jw_uri(jw *w, const char *key, const char *path);
/* An integer, or null when value == none. */
void jw_int_or_null(jw *w, const char *key, long long value, long long none);
void jw_double(jw *w, const char *key, double value); /* null when not finite */
void jw_bool(jw *w, const char *key, int value);
void jw_null(jw *w, const char *key);
/* An array of integers (a member `key`, or an element when NULL). */
void jw_ints(jw *w, const char *key, const long long *v, size_t n);

#endif
