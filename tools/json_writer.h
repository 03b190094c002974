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
 */
#ifndef ALLOCTRACE_JSON_WRITER_H
#define ALLOCTRACE_JSON_WRITER_H

#include <stdio.h>

enum { JW_MAX_DEPTH = 32 };

typedef struct jw {
    FILE *out;
    int depth;
    int line_depth;                /* > 0: depth of the value being written on one line */
    int line_next;                 /* jw_line() was called: the next value opened is */
    char close[JW_MAX_DEPTH];      /* '}' or ']' per open level */
    unsigned char count[JW_MAX_DEPTH]; /* 0: nothing written at this level yet */
} jw;

void jw_init(jw *w, FILE *out);
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

#endif
