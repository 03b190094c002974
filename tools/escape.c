/* Escaping for every output format (see escape.h).  One UTF-8 decoder
 * decides what is a character; each writer decides what a character may
 * look like in its format. */
#include <string.h>

#include "escape.h"

long esc_utf8_next(const unsigned char *s, size_t len, size_t *used)
{
    unsigned c = s[0];
    *used = 1;
    if (c < 0x80)
        return (long)c;
    size_t n;
    long cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return -1; /* a continuation byte, C0/C1 (overlong), or F5..FF */
    }
    if (len < n)
        return -1;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return -1;
    *used = n;
    return cp;
}

static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

void esc_json(FILE *out, const char *s)
{
    if (!s) {
        fputs("null", out);
        return;
    }
    fputc('"', out);
    const unsigned char *bytes = (const unsigned char *)s, *end = bytes + strlen(s);
    for (size_t n = 0; bytes < end; bytes += n) {
        long cp = esc_utf8_next(bytes, (size_t)(end - bytes), &n);
        switch (cp) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        case '\b': fputs("\\b", out); break;
        case '\f': fputs("\\f", out); break;
        default:
            if (cp < 0)
                fputs(replacement, out);
            else if (cp < 0x20)
                fprintf(out, "\\u%04lx", cp);
            else
                fwrite(bytes, 1, n, out);
        }
    }
    fputc('"', out);
}

void esc_xml(FILE *out, const char *s, int attribute)
{
    if (!s)
        return;
    const unsigned char *bytes = (const unsigned char *)s, *end = bytes + strlen(s);
    for (size_t n = 0; bytes < end; bytes += n) {
        long cp = esc_utf8_next(bytes, (size_t)(end - bytes), &n);
        switch (cp) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&apos;", out); break;
        case '\t':
        case '\n':
        case '\r':
            if (attribute)
                fprintf(out, "&#%ld;", cp);
            else
                fputc((int)cp, out);
            break;
        default:
            if (cp < 0 || cp == 0xFFFE || cp == 0xFFFF)
                fputs(replacement, out);
            else if (cp < 0x20)
                fprintf(out, "\\x%02lX", cp);
            else
                fwrite(bytes, 1, n, out);
        }
    }
}

/* The visible form of one character in plain text, or NULL when the
 * character is printed as it is; `buf` holds at least 16 bytes. */
static const char *text_escape(long cp, const unsigned char *bytes, char *buf)
{
    if (cp < 0)
        snprintf(buf, 16, "\\x%02X", bytes[0]);
    else if (cp < 0x20 || cp == 0x7F)
        snprintf(buf, 16, "\\x%02lX", cp);
    else if (cp >= 0x80 && cp <= 0x9F) /* C1 controls: 0x9B is a CSI to some terminals */
        snprintf(buf, 16, "\\u%04lX", cp);
    else
        return NULL;
    return buf;
}

size_t esc_text(FILE *out, const char *s)
{
    if (!s)
        return 0;
    size_t cols = 0;
    char buf[16];
    const unsigned char *bytes = (const unsigned char *)s, *end = bytes + strlen(s);
    for (size_t n = 0; bytes < end; bytes += n) {
        long cp = esc_utf8_next(bytes, (size_t)(end - bytes), &n);
        const char *e = text_escape(cp, bytes, buf);
        if (e) {
            fputs(e, out);
            cols += strlen(e);
        } else {
            fwrite(bytes, 1, n, out);
            cols++;
        }
    }
    return cols;
}

size_t esc_text_width(const char *s)
{
    if (!s)
        return 0;
    size_t cols = 0;
    char buf[16];
    const unsigned char *bytes = (const unsigned char *)s, *end = bytes + strlen(s);
    for (size_t n = 0; bytes < end; bytes += n) {
        long cp = esc_utf8_next(bytes, (size_t)(end - bytes), &n);
        const char *e = text_escape(cp, bytes, buf);
        cols += e ? strlen(e) : 1;
    }
    return cols;
}

void esc_uri(FILE *out, const char *path)
{
    if (!path)
        return;
    if (path[0] == '/')
        fputs("file://", out);
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        unsigned c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-._~/", (int)c))
            fputc((int)c, out);
        else
            fprintf(out, "%%%02X", c);
    }
}

void esc_csv(FILE *out, const char *s, size_t len)
{
    if (!s)
        return;
    int quote = len > 0 && (s[0] == ' ' || s[len - 1] == ' ');
    for (size_t i = 0; i < len && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    if (!quote) {
        fwrite(s, 1, len, out);
        return;
    }
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"')
            fputc('"', out);
        fputc(s[i], out);
    }
    fputc('"', out);
}
