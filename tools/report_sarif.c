/* `alloctrace report --format sarif`: one SARIF 2.1.0 log for one or
 * several traces, in the subset GitHub code scanning takes as it is.
 *
 * - One run, whatever the number of traces.  Code scanning refuses a file
 *   with several runs of one tool and one category, and an alert is about
 *   a place in the code, not about a process: a site that leaks in the
 *   parent and in its forked child is one result, which lists both traces
 *   (properties.traces, indices into the run's properties.traces).
 * - Source files under the source root are URIs relative to %SRCROOT%
 *   (uriBaseId "SRCROOT", the run's originalUriBaseIds says where it is);
 *   any other path stays an absolute file:// URI.
 * - partialFingerprints: a hash of what names the result and stays the
 *   same from run to run (the kind, the class of a leak, and the frames as
 *   function, file relative to the root and line, as lib/trace/sites.h
 *   tells sites apart; layouts and families of a finding, as trace_model.c
 *   tells findings apart), never a pid, sequence number, address or time.
 *   Results with one fingerprint are one result.
 * - One rule per finding kind and one per class of leak (vocab.h's
 *   descriptions), with short and full descriptions and help.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <uthash.h>

#include <alloctrace/alloctrace.h>

#include "report.h"

/* ---- rules ----------------------------------------------------------------------------- */

typedef struct kind_rule {
    const char *name, *text, *level;
} kind_rule;

#define KIND_RULE(id, code, name, label, category, rule, level, color, description) \
    {rule, description, level},
static const kind_rule kind_rules[TM_KINDS] = {AT_KINDS(KIND_RULE) AT_KIND_OTHER(KIND_RULE)};
#undef KIND_RULE

#define REACH_TEXT(id, code, name, kind, label, gated, color, description) description,
static const char *const reach_text[TM_REACHES] = {AT_REACH(REACH_TEXT)};
#undef REACH_TEXT

/* Rules: the classes of leaks first (index r), then the finding kinds
 * (index TM_REACHES + k - 1, TM_LEAK having none of its own). */
static int leak_rule(enum tm_reach r)
{
    return (int)r;
}

static int kind_rule_index(enum tm_kind k)
{
    return TM_REACHES + (int)k - 1;
}

/* "leak/definitely_lost" */
static void leak_rule_id(char *buf, size_t size, enum tm_reach r)
{
    snprintf(buf, size, "%s/%s", tm_kind_name(TM_LEAK), tm_reach_name(r));
}

/* "MemoryLeakDefinitelyLost": the rule's name, the label in Pascal case. */
static void leak_rule_name(char *buf, size_t size, enum tm_reach r)
{
    size_t n = (size_t)snprintf(buf, size, "%s", kind_rules[TM_LEAK].name);
    int up = 1;
    for (const char *p = tm_reach_label(r); *p && n + 1 < size; p++) {
        if (*p == ' ' || *p == '-') {
            up = 1;
            continue;
        }
        buf[n++] = up && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        up = 0;
    }
    buf[n] = 0;
}

static const char HELP_STACKS[] =
    " The result is shown at the first frame of its stack with source information; the stacks "
    "where the block was allocated (and, for a bad release, released) are attached. To see it "
    "again, run the program under `alloctrace run` and read the trace with `alloctrace report` "
    "or `alloctrace html`.";

static void text_obj(jw *w, const char *key, const char *a, const char *b, const char *c)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s%s%s", a, b ? b : "", c ? c : "");
    jw_obj(w, key);
    jw_str(w, "text", buf);
    jw_end(w);
}

static void rule(jw *w, const char *id, const char *name, const char *shortd, const char *full,
                 const char *level)
{
    jw_line(w);
    jw_obj(w, NULL);
    jw_str(w, "id", id);
    jw_str(w, "name", name);
    text_obj(w, "shortDescription", shortd, NULL, NULL);
    text_obj(w, "fullDescription", full, ".", NULL);
    text_obj(w, "help", full, ".", HELP_STACKS);
    jw_obj(w, "defaultConfiguration");
    jw_str(w, "level", level);
    jw_end(w);
    jw_end(w);
}

static void sarif_rules(jw *w)
{
    jw_arr(w, "rules");
    for (int r = 0; r < TM_REACHES; r++) {
        char id[64], name[64], shortd[128], full[512];
        leak_rule_id(id, sizeof id, (enum tm_reach)r);
        leak_rule_name(name, sizeof name, (enum tm_reach)r);
        snprintf(shortd, sizeof shortd, "Memory leak, %s", tm_reach_label((enum tm_reach)r));
        snprintf(full, sizeof full, "%s; %s: %c%s", kind_rules[TM_LEAK].text,
                 tm_reach_label((enum tm_reach)r), reach_text[r][0] | 0x20, reach_text[r] + 1);
        rule(w, id, name, shortd, full,
             tm_reach_is_gated((enum tm_reach)r) ? kind_rules[TM_LEAK].level : "note");
    }
    for (int k = 1; k < TM_KINDS; k++) {
        char shortd[128];
        const char *label = report_kind_label((enum tm_kind)k);
        snprintf(shortd, sizeof shortd, "%c%s", label[0] & ~0x20, label + 1);
        rule(w, tm_kind_name((enum tm_kind)k), kind_rules[k].name, shortd, kind_rules[k].text,
             kind_rules[k].level);
    }
    jw_end(w);
}

/* ---- paths and fingerprints -------------------------------------------------------------- */

const char *report_relpath(const report_opts *o, const char *path)
{
    const char *root = o->source_root;
    if (!path || !root || !*root || path[0] != '/')
        return NULL;
    size_t n = strlen(root);
    if (n == 1) /* "/" */
        return path[1] ? path + 1 : NULL;
    if (strncmp(path, root, n) != 0 || path[n] != '/' || !path[n + 1])
        return NULL;
    return path + n + 1;
}

typedef struct fnv {
    uint64_t h;
} fnv;

static void fnv_str(fnv *f, const char *s)
{
    for (const char *p = s ? s : ""; *p; p++)
        f->h = (f->h ^ (unsigned char)*p) * 1099511628211u;
    f->h = (f->h ^ 0x1f) * 1099511628211u; /* a separator no name holds */
}

static void fnv_int(fnv *f, long long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    fnv_str(f, buf);
}

/* A frame as lib/trace/sites.h tells frames apart, with the file relative
 * to the root (a checkout elsewhere is the same code). */
static void fnv_stack(fnv *f, const report_opts *o, const tm_stack *s)
{
    if (!s) {
        fnv_str(f, "-");
        return;
    }
    fnv_int(f, (long long)(s->depth - s->skip));
    for (size_t i = s->skip; i < s->depth; i++) {
        const tm_frame *fr = s->frames[i];
        fnv_str(f, fr->function);
        if (fr->file && fr->line > 0) {
            const char *rel = report_relpath(o, fr->file);
            fnv_str(f, rel ? rel : fr->file);
            fnv_int(f, fr->line);
        } else {
            fnv_str(f, tm_basename(fr->module));
            fnv_int(f, fr->module_offset);
        }
    }
}

void report_site_fingerprint(char out[17], const report_opts *o, const tm_site *s)
{
    fnv f = {1469598103934665603u};
    fnv_str(&f, tm_kind_name(TM_LEAK));
    /* The class is part of the result's identity: a site that becomes
     * definitely lost is a new result, not the still reachable one. */
    fnv_str(&f, tm_reach_name(s->reach));
    fnv_stack(&f, o, s->stack);
    snprintf(out, 17, "%016llx", (unsigned long long)f.h);
}

void report_finding_fingerprint(char out[17], const report_opts *o, const tm_finding *fd)
{
    fnv f = {1469598103934665603u};
    fnv_str(&f, fd->kind_name);
    fnv_stack(&f, o, fd->release);
    fnv_stack(&f, o, fd->alloc);
    fnv_stack(&f, o, fd->first_release);
    /* what makes a finding one bug (tools/trace_model.c, finding_key): not
     * its sizes, which may vary from run to run */
    fnv_int(&f, fd->release_align);
    fnv_int(&f, fd->alloc_align);
    fnv_str(&f, fd->release_family);
    fnv_str(&f, fd->alloc_family);
    snprintf(out, 17, "%016llx", (unsigned long long)f.h);
}

/* ---- locations --------------------------------------------------------------------------- */

/* `in_root`: a relative path is one in the root (known_source). */
static void artifact(jw *w, const report_opts *o, const char *path, int in_root)
{
    const char *rel = path[0] == '/' ? report_relpath(o, path) : in_root ? path : NULL;
    jw_obj(w, "artifactLocation");
    jw_uri(w, "uri", rel ? rel : path);
    if (rel)
        jw_str(w, "uriBaseId", "SRCROOT");
    jw_end(w);
}

/* A file name the debug information gives relative to a directory it does
 * not say (a build with -ffile-prefix-map, the C library's "csu/...") is a
 * source file when the root has it, else unknown. */
static int known_source(const report_opts *o, const tm_frame *f)
{
    if (!f->file || f->line <= 0)
        return 0;
    if (f->file[0] == '/')
        return 1;
    if (!o->source_root)
        return 0;
    char path[8192];
    struct stat st;
    int n = snprintf(path, sizeof path, "%s/%s", o->source_root, f->file);
    return n > 0 && (size_t)n < sizeof path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void sarif_physical(jw *w, const report_opts *o, const tm_frame *f)
{
    int source = known_source(o, f);
    if (!source && !f->module)
        return;
    jw_line(w);
    jw_obj(w, "physicalLocation");
    artifact(w, o, source ? f->file : f->module, source);
    if (source) {
        jw_obj(w, "region");
        jw_int(w, "startLine", f->line);
        jw_end(w);
    }
    jw_end(w);
}

/* A location object for frame f (NULL: an empty location). */
static void sarif_location(jw *w, const report_opts *o, const char *key, const tm_frame *f, int id,
                           const char *message)
{
    jw_obj(w, key);
    if (id > 0)
        jw_int(w, "id", id);
    if (f) {
        sarif_physical(w, o, f);
        if (f->function) {
            jw_line(w);
            jw_arr(w, "logicalLocations");
            jw_obj(w, NULL);
            jw_str(w, "fullyQualifiedName", f->function);
            jw_str(w, "kind", "function");
            jw_end(w);
            jw_end(w);
        }
    }
    if (message) {
        jw_line(w);
        jw_obj(w, "message");
        jw_str(w, "text", message);
        jw_end(w);
    }
    jw_end(w);
}

/* Where a result is shown: the first frame with source information, else
 * the first frame shown at all. */
static const tm_frame *anchor(const tm_stack *s)
{
    const tm_frame *f = tm_source_frame(s);
    if (!f && s->skip < s->depth)
        f = s->frames[s->skip];
    return f;
}

static void sarif_stack(jw *w, const report_opts *o, const tm_stack *s, const char *what)
{
    jw_obj(w, NULL);
    jw_line(w);
    jw_obj(w, "message");
    jw_str(w, "text", what);
    jw_end(w);
    jw_arr(w, "frames");
    for (size_t i = s->skip; i < s->depth; i++) {
        jw_obj(w, NULL);
        sarif_location(w, o, "location", s->frames[i], 0, NULL);
        jw_str(w, "module", tm_basename(s->frames[i]->module));
        if (s->frames[i]->inlined) { /* the compiler inlined it into the next frame */
            jw_obj(w, "properties");
            jw_bool(w, "inlined", 1);
            jw_end(w);
        }
        jw_end(w);
    }
    jw_end(w);
    jw_end(w);
}

/* ---- results ----------------------------------------------------------------------------- */

/* One result: the first trace's site or finding that has its fingerprint,
 * and every trace that has one. */
typedef struct result {
    char fp[17];
    const tm_site *site;       /* or */
    const tm_finding *finding; /* the first one */
    long long bytes, blocks, count;
    size_t *traces, ntraces;
    UT_hash_handle hh;
} result;

typedef struct results {
    result *by_fp;  /* hash */
    result **order; /* as first seen */
    size_t n, cap;
} results;

static void results_add(results *rs, const char *fp, size_t trace, const tm_site *s,
                        const tm_finding *f)
{
    result *r;
    HASH_FIND_STR(rs->by_fp, fp, r);
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r || (rs->n == rs->cap &&
                   !(rs->order = realloc(rs->order, (rs->cap = rs->cap ? 2 * rs->cap : 64) *
                                                        sizeof *rs->order))))
            cli_die("out of memory");
        memcpy(r->fp, fp, sizeof r->fp);
        r->site = s;
        r->finding = f;
        HASH_ADD_STR(rs->by_fp, fp, r);
        rs->order[rs->n++] = r;
    }
    r->bytes += s ? s->bytes : 0;
    r->blocks += s ? s->blocks : 0;
    r->count += f ? f->count : 0;
    if (!r->ntraces || r->traces[r->ntraces - 1] != trace) {
        r->traces = realloc(r->traces, (r->ntraces + 1) * sizeof *r->traces);
        if (!r->traces)
            cli_die("out of memory");
        r->traces[r->ntraces++] = trace;
    }
}

static void results_free(results *rs)
{
    result *r, *tmp;
    HASH_ITER(hh, rs->by_fp, r, tmp)
    {
        HASH_DEL(rs->by_fp, r);
        free(r->traces);
        free(r);
    }
    free(rs->order);
}

static void collect(results *rs, const tm_trace *const *t, size_t n, const report_opts *o)
{
    char fp[17];
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < t[i]->nsites; k++) {
            if (report_site_shown(t[i], o, k)) {
                report_site_fingerprint(fp, o, &t[i]->sites[k]);
                results_add(rs, fp, i, &t[i]->sites[k], NULL);
            }
        }
        size_t findings = report_findings_shown(t[i], o);
        for (size_t k = 0; k < findings; k++) {
            report_finding_fingerprint(fp, o, &t[i]->findings[k]);
            results_add(rs, fp, i, NULL, &t[i]->findings[k]);
        }
    }
}

static void result_head(jw *w, const char *rule_id, int index, const char *level,
                        const char *message, const result *r)
{
    char msg[640];
    if (r->ntraces > 1)
        snprintf(msg, sizeof msg, "%s (in %zu traced processes)", message, r->ntraces);
    else
        snprintf(msg, sizeof msg, "%s", message);
    jw_str(w, "ruleId", rule_id);
    jw_int(w, "ruleIndex", index);
    jw_str(w, "level", level);
    jw_line(w);
    jw_obj(w, "message");
    jw_str(w, "text", msg);
    jw_end(w);
}

static void result_tail(jw *w, const result *r)
{
    jw_obj(w, "partialFingerprints");
    jw_str(w, "alloctraceStack/v3", r->fp);
    jw_end(w);
    jw_obj(w, "properties");
    if (r->site) {
        jw_str(w, "reachability", tm_reach_name(r->site->reach));
        jw_int(w, "bytes", r->bytes);
        jw_int(w, "blocks", r->blocks);
    } else {
        jw_int(w, "count", r->count);
    }
    jw_line(w);
    jw_arr(w, "traces");
    for (size_t i = 0; i < r->ntraces; i++)
        jw_int(w, NULL, (long long)r->traces[i]);
    jw_end(w);
    jw_end(w);
}

static void sarif_site(jw *w, const report_opts *o, const result *r)
{
    const tm_site *s = r->site;
    char msg[256], id[64];
    tm_site merged = *s;
    merged.bytes = r->bytes;
    merged.blocks = r->blocks;
    report_site_message(msg, sizeof msg, r->ntraces > 1 ? &merged : s);
    leak_rule_id(id, sizeof id, s->reach);
    jw_obj(w, NULL);
    /* What check counts by default is the rule's level; the rest, notes. */
    result_head(w, id, leak_rule(s->reach),
                tm_reach_is_gated(s->reach) ? kind_rules[TM_LEAK].level : "note", msg, r);
    jw_arr(w, "locations");
    sarif_location(w, o, NULL, anchor(s->stack), 0, NULL);
    jw_end(w);
    jw_arr(w, "stacks");
    sarif_stack(w, o, s->stack, "allocated");
    jw_end(w);
    result_tail(w, r);
    jw_end(w);
}

static void sarif_finding(jw *w, const report_opts *o, const result *r)
{
    const tm_finding *f = r->finding;
    char msg[512];
    report_finding_message(msg, sizeof msg, f);
    jw_obj(w, NULL);
    result_head(w, tm_kind_name(f->kind), kind_rule_index(f->kind), kind_rules[f->kind].level,
                msg, r);
    jw_arr(w, "locations");
    sarif_location(w, o, NULL, anchor(f->release), 0, NULL);
    jw_end(w);
    const tm_frame *at_alloc = f->alloc ? anchor(f->alloc) : NULL;
    const tm_frame *at_first = f->first_release ? anchor(f->first_release) : NULL;
    if (at_alloc || at_first) {
        jw_arr(w, "relatedLocations");
        if (at_alloc)
            sarif_location(w, o, NULL, at_alloc, 1, "allocated here");
        if (at_first)
            sarif_location(w, o, NULL, at_first, 2, "first released here");
        jw_end(w);
    }
    jw_arr(w, "stacks");
    sarif_stack(w, o, f->release, f->first_release ? "released again" : "released");
    if (f->alloc)
        sarif_stack(w, o, f->alloc, "allocated");
    if (f->first_release && f->first_release->depth)
        sarif_stack(w, o, f->first_release, "first released");
    jw_end(w);
    result_tail(w, r);
    jw_end(w);
}

/* ---- the log ------------------------------------------------------------------------------- */

static void run_traces(jw *w, const tm_trace *const *t, size_t n)
{
    jw_obj(w, "properties");
    jw_arr(w, "traces");
    for (size_t i = 0; i < n; i++) {
        jw_line(w);
        jw_obj(w, NULL);
        jw_str(w, "trace", t[i]->path);
        jw_str(w, "executable", t[i]->sum.executable);
        jw_arr(w, "arguments");
        for (size_t k = 0; k < t[i]->sum.nargs; k++)
            jw_str(w, NULL, t[i]->sum.args[k]);
        jw_end(w);
        jw_int(w, "pid", t[i]->sum.pid);
        jw_end(w);
    }
    jw_end(w);
    jw_end(w);
}

static void base_ids(jw *w, const report_opts *o)
{
    if (!o->source_root || !*o->source_root)
        return;
    size_t n = strlen(o->source_root);
    char *dir = malloc(n + 2);
    if (!dir)
        cli_die("out of memory");
    snprintf(dir, n + 2, "%s%s", o->source_root, o->source_root[n - 1] == '/' ? "" : "/");
    jw_obj(w, "originalUriBaseIds");
    jw_obj(w, "SRCROOT");
    jw_uri(w, "uri", dir);
    jw_end(w);
    jw_end(w);
    free(dir);
}

void report_sarif(FILE *out, const tm_trace *const *t, size_t n, const report_opts *o)
{
    results rs = {0};
    collect(&rs, t, n, o);
    jw w;
    jw_init(&w, out);
    jw_obj(&w, NULL);
    jw_str(&w, "$schema", "https://json.schemastore.org/sarif-2.1.0.json");
    jw_str(&w, "version", "2.1.0");
    jw_arr(&w, "runs");
    jw_obj(&w, NULL);
    jw_obj(&w, "tool");
    jw_obj(&w, "driver");
    jw_str(&w, "name", "alloctrace");
    jw_str(&w, "semanticVersion", AT_VERSION_STRING);
    sarif_rules(&w);
    jw_end(&w);
    jw_end(&w);
    base_ids(&w, o);
    jw_arr(&w, "results");
    for (size_t i = 0; i < rs.n; i++) {
        if (rs.order[i]->site)
            sarif_site(&w, o, rs.order[i]);
        else
            sarif_finding(&w, o, rs.order[i]);
        tm_progress((double)i / (double)rs.n);
    }
    jw_end(&w);
    run_traces(&w, t, n);
    jw_end(&w);
    jw_end(&w);
    jw_end(&w);
    results_free(&rs);
}
