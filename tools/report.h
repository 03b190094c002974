/* `alloctrace report`: the formats share what is shown (the options) and
 * how a problem is named; report.c writes text, report_formats.c JSON,
 * SARIF and JUnit XML. */
#ifndef ALLOCTRACE_REPORT_H
#define ALLOCTRACE_REPORT_H

#include <stdio.h>

#include "cli.h"
#include "json_writer.h"
#include "trace_model.h"

typedef struct report_opts {
    long long top;       /* leak sites of each class, and findings, shown at most; -1 for all */
    long long min_bytes; /* leak sites smaller than this are left out */
    int show_reachable;  /* still reachable sites are listed, not only counted */
    int color;           /* text only */
    /* SARIF and JUnit: source files under this directory (absolute, no
     * trailing slash but for "/") are named relative to it; NULL: none */
    const char *source_root;
} report_opts;

/* Whether the options show leak site i of the trace (sites are by class,
 * largest first within one: the first --top of each class are shown,
 * still reachable ones only with show_reachable), and how many they show
 * of class r, and in all. */
int report_site_shown(const tm_trace *t, const report_opts *o, size_t i);
size_t report_class_shown(const tm_trace *t, const report_opts *o, enum tm_reach r);
size_t report_sites_shown(const tm_trace *t, const report_opts *o);
size_t report_findings_shown(const tm_trace *t, const report_opts *o);

/* "layout mismatch", "double free"... */
const char *report_kind_label(enum tm_kind k);

/* One sentence about a problem, for messages: "definitely lost: 3003 bytes
 * in 3 blocks of 1000 to 1002 bytes", or the finding's kind and what the
 * trace says about it.  Trace text in it is raw: escape it on output. */
void report_site_message(char *buf, size_t size, const tm_site *s);
void report_finding_message(char *buf, size_t size, const tm_finding *f);

/* The frames shown of a stack, one per line, each line starting with
 * `indent`: function, file:line and module, escaped for plain text. */
void report_stack_text(FILE *out, const tm_stack *s, const char *indent, int color);

/* The frames shown of a stack as a JSON array member `key` (NULL inside
 * an array): function, file, line, module, module_offset. */
void report_json_frames(jw *w, const char *key, const tm_stack *s);

/* `path` relative to o->source_root when it lies under it (a pointer into
 * `path`), else NULL. */
const char *report_relpath(const report_opts *o, const char *path);

/* What SARIF's partialFingerprints and JUnit's names tell results by: 16
 * hex digits of a hash of the kind, a leak's class, the frames (function,
 * file relative to the source root, line), a finding's layouts and
 * families; never a pid, sequence number, address or time. */
void report_site_fingerprint(char out[17], const report_opts *o, const tm_site *s);
void report_finding_fingerprint(char out[17], const report_opts *o, const tm_finding *f);

void report_json(FILE *out, const tm_trace *t, const report_opts *o);
/* One SARIF log (one run) and one JUnit file (one testsuite per trace)
 * for the n traces t[0..n). */
void report_sarif(FILE *out, const tm_trace *const *t, size_t n, const report_opts *o);
void report_junit(FILE *out, const tm_trace *const *t, size_t n, const report_opts *o);

#endif
