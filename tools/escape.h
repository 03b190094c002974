/* Writing strings from a trace: a trace is untrusted input, and a symbol
 * or a path in it may hold any bytes (quotes, markup, control characters,
 * invalid UTF-8).  Every string that leaves report, check or query goes
 * through one of these, so each output format stays valid and a terminal
 * never receives a control sequence it did not ask for.
 *
 * Every function accepts NULL for the string: JSON writes `null`, the
 * others write nothing.
 */
#ifndef ALLOCTRACE_ESCAPE_H
#define ALLOCTRACE_ESCAPE_H

#include <stddef.h>
#include <stdio.h>

/* Decodes the UTF-8 sequence at s[0..len): the code point, with *used set
 * to its length, or -1 with *used = 1 when it is not well-formed UTF-8
 * (overlong forms, surrogates and values above U+10FFFF included).
 * Requires len >= 1. */
long esc_utf8_next(const unsigned char *s, size_t len, size_t *used);

/* A JSON string literal, quotes included: `"` and `\` escaped, control
 * characters as \uXXXX (\n, \t... in their short forms), each byte that is
 * not valid UTF-8 replaced by U+FFFD. */
void esc_json(FILE *out, const char *s);

/* XML 1.0 character data or attribute value (without the quotes): the five
 * markup characters as entities; tab, newline and carriage return as
 * character references when `attribute` (attribute normalization would
 * turn them into spaces); other C0 controls, which XML 1.0 cannot carry
 * at all, as the visible text \xNN; invalid UTF-8 and U+FFFE/U+FFFF as
 * U+FFFD. */
void esc_xml(FILE *out, const char *s, int attribute);

/* Plain text for a terminal or a log: printable characters as they are,
 * C0 and C1 controls and DEL as \xNN or \u{NN}, invalid UTF-8 bytes as
 * \xNN.  Returns the number of columns written (one per character; wide
 * characters are rare in symbols and paths). */
size_t esc_text(FILE *out, const char *s);

/* Columns esc_text would write for `s`. */
size_t esc_text_width(const char *s);

/* A URI reference for a file path: `file://` + the path for an absolute
 * path, the path alone for a relative one, every byte outside RFC 3986's
 * unreserved set and `/` percent-encoded (so the result is ASCII). */
void esc_uri(FILE *out, const char *path);

/* One CSV field (RFC 4180): quoted, with quotes doubled, when it holds a
 * comma, a quote, a line break or leading or trailing space.  The bytes
 * are kept as they are: CSV is read by programs, not terminals. */
void esc_csv(FILE *out, const char *s, size_t len);

#endif
