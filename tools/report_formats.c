/* `alloctrace report` for programs: JSON (schema in docs/report-json.md),
 * SARIF 2.1.0 for code-scanning UIs, JUnit XML for CI test reporters.
 *
 * All three show the same leak sites and findings as the text (report.h
 * decides which).  Strings from the trace only ever reach the output
 * through the JSON writer or esc_xml, so they cannot break the document.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <alloctrace/alloctrace.h>

#include "escape.h"
#include "report.h"

/* ---- JSON -------------------------------------------------------------------------------- */

static void json_frame(jw *w, const tm_frame *f)
{
    jw_line(w);
    jw_obj(w, NULL);
    jw_str(w, "function", f->function);
    jw_str(w, "file", f->file);
    jw_int_or_null(w, "line", f->line, 0);
    jw_str(w, "module", f->module);
    jw_int(w, "module_offset", f->module_offset);
    jw_end(w);
}

void report_json_frames(jw *w, const char *key, const tm_stack *s)
{
    jw_arr(w, key);
    for (size_t i = s->skip; i < s->depth; i++)
        json_frame(w, s->frames[i]);
    jw_end(w);
}

static void json_stack(jw *w, const char *key, const tm_stack *s)
{
    jw_obj(w, key);
    jw_int_or_null(w, "id", s->id, 0);
    jw_int(w, "hidden_frames", (long long)s->skip);
    report_json_frames(w, "frames", s);
    jw_end(w);
}

static void json_program(jw *w, const tm_trace *t)
{
    const tm_summary *s = &t->sum;
    jw_obj(w, "program");
    jw_str(w, "executable", s->executable);
    jw_line(w);
    jw_arr(w, "arguments");
    for (size_t i = 0; i < s->nargs; i++)
        jw_str(w, NULL, s->args[i]);
    jw_end(w);
    jw_int(w, "pid", s->pid);
    jw_str(w, "start_time", s->start_time);
    jw_int(w, "duration_us", s->duration_us);
    jw_int(w, "threads", s->threads);
    jw_str(w, "end", s->program_end);
    jw_str(w, "traced_by", s->library_version);
    jw_end(w);
}

static void json_summary(jw *w, const tm_trace *t)
{
    const tm_summary *s = &t->sum;
    jw_obj(w, "summary");
    jw_int(w, "alloc_calls", s->alloc_calls);
    jw_int(w, "alloc_bytes", s->alloc_bytes);
    jw_int(w, "free_calls", s->free_calls);
    jw_int(w, "peak_bytes", s->peak_bytes);
    jw_int(w, "peak_blocks", s->peak_blocks);
    jw_int_or_null(w, "peak_seq", s->peak_seq, 0);
    jw_int_or_null(w, "peak_time_us", s->peak_seq ? s->peak_time_us : -1, -1);
    jw_int(w, "leaked_blocks", s->leaked_blocks);
    jw_int(w, "leaked_bytes", s->leaked_bytes);
    jw_int(w, "leak_sites", (long long)t->nsites);
    jw_obj(w, "reachability");
    for (int r = 0; r < TM_REACHES; r++) {
        jw_line(w);
        jw_obj(w, tm_reach_name((enum tm_reach)r));
        jw_int(w, "blocks", s->by_reach[r].blocks);
        jw_int(w, "bytes", s->by_reach[r].bytes);
        jw_int(w, "sites", s->by_reach[r].sites);
        jw_end(w);
    }
    jw_end(w);
    jw_str(w, "reach_scan", tm_meta(t, "reach_scan"));
    jw_int(w, "runtime_blocks", s->runtime_blocks);
    jw_int(w, "runtime_bytes", s->runtime_bytes);
    jw_int(w, "findings", s->findings);
    jw_obj(w, "findings_by_kind");
    for (int k = TM_LAYOUT_MISMATCH; k < TM_KINDS; k++)
        if (k != TM_OTHER || s->by_kind[k])
            jw_int(w, tm_kind_name((enum tm_kind)k), s->by_kind[k]);
    jw_end(w);
    jw_int(w, "lost_events", s->lost_events);
    jw_end(w);
}

static void json_site(jw *w, const tm_site *s)
{
    jw_obj(w, NULL);
    jw_str(w, "reachability", tm_reach_name(s->reach));
    jw_int(w, "bytes", s->bytes);
    jw_int(w, "blocks", s->blocks);
    jw_int(w, "min_size", s->min_size);
    jw_int(w, "max_size", s->max_size);
    jw_line(w);
    jw_arr(w, "stack_ids");
    for (size_t i = 0; i < s->nids; i++)
        jw_int(w, NULL, s->ids[i]);
    jw_end(w);
    json_stack(w, "allocated_at", s->stack);
    jw_end(w);
}

static void json_ptr(jw *w, const char *key, long long ptr)
{
    char buf[32];
    snprintf(buf, sizeof buf, "0x%llx", (unsigned long long)ptr);
    jw_str(w, key, buf);
}

static void json_finding(jw *w, const tm_finding *f)
{
    jw_obj(w, NULL);
    jw_str(w, "kind", f->kind_name);
    jw_int(w, "count", f->count);
    jw_str(w, "detail", f->detail);
    if (f->alloc) {
        jw_obj(w, "allocated");
        jw_int(w, "seq", f->alloc_seq);
        jw_int_or_null(w, "size", f->alloc_size, -1);
        jw_int_or_null(w, "align", f->alloc_align, -1);
        jw_str(w, "family", f->alloc_family);
        json_stack(w, "stack", f->alloc);
        jw_end(w);
    } else {
        jw_null(w, "allocated");
    }
    jw_obj(w, "released");
    jw_int(w, "seq", f->seq);
    jw_int(w, "time_us", f->time_us);
    jw_int(w, "thread", f->thread);
    json_ptr(w, "ptr", f->ptr);
    jw_int_or_null(w, "size", f->release_size, -1);
    jw_int_or_null(w, "align", f->release_align, -1);
    jw_str(w, "family", f->release_family);
    jw_int_or_null(w, "first_release_seq", f->first_free_seq, -1);
    json_stack(w, "stack", f->release);
    jw_end(w);
    if (f->first_release) {
        jw_obj(w, "first_released");
        jw_int(w, "seq", f->first_free_seq);
        json_stack(w, "stack", f->first_release);
        jw_end(w);
    } else {
        jw_null(w, "first_released");
    }
    jw_end(w);
}

void report_json(FILE *out, const tm_trace *t, const report_opts *o)
{
    size_t sites = report_sites_shown(t, o), findings = report_findings_shown(t, o);
    jw w;
    jw_init(&w, out);
    jw_obj(&w, NULL);
    jw_str(&w, "format", "alloctrace-report");
    jw_int(&w, "version", 2);
    jw_str(&w, "trace", t->path);
    json_program(&w, t);
    json_summary(&w, t);
    jw_arr(&w, "leak_sites");
    for (size_t i = 0; i < t->nsites; i++) {
        if (report_site_shown(t, o, i))
            json_site(&w, &t->sites[i]);
        tm_progress((double)i / (double)t->nsites);
    }
    jw_end(&w);
    jw_int(&w, "leak_sites_omitted", (long long)(t->nsites - sites));
    jw_arr(&w, "findings");
    for (size_t i = 0; i < findings; i++)
        json_finding(&w, &t->findings[i]);
    jw_end(&w);
    jw_int(&w, "findings_omitted", (long long)(t->nfindings - findings));
    jw_end(&w);
}

/* ---- SARIF 2.1.0 ---------------------------------------------------------------------------- */

typedef struct rule {
    const char *name, *text, *level;
} rule;

/* Indexed by tm_kind (vocab.h's order): results refer to them by ruleIndex too. */
#define KIND_RULE(id, code, name, label, category, rule, level, color, description) \
    {rule, description, level},
static const rule rules[TM_KINDS] = {AT_KINDS(KIND_RULE) AT_KIND_OTHER(KIND_RULE)};
#undef KIND_RULE

/* FNV-1a: a fingerprint that stays the same across runs and rebuilds, for
 * code-scanning UIs to track a result over time. */
static void fingerprint(char out[17], const char *a, const char *b, const char *c)
{
    uint64_t h = 1469598103934665603u;
    const char *parts[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        for (const char *p = parts[i] ? parts[i] : ""; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211u;
        h = (h ^ 0x1d) * 1099511628211u;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static void sarif_physical(jw *w, const tm_frame *f)
{
    int source = f->file && f->line > 0;
    if (!source && !f->module)
        return;
    jw_line(w);
    jw_obj(w, "physicalLocation");
    jw_obj(w, "artifactLocation");
    jw_uri(w, "uri", source ? f->file : f->module);
    jw_end(w);
    if (source) {
        jw_obj(w, "region");
        jw_int(w, "startLine", f->line);
        jw_end(w);
    }
    jw_end(w);
}

/* A location object for frame f (NULL: an empty location). */
static void sarif_location(jw *w, const char *key, const tm_frame *f, int id, const char *message)
{
    jw_obj(w, key);
    if (id > 0)
        jw_int(w, "id", id);
    if (f) {
        sarif_physical(w, f);
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

static void sarif_stack(jw *w, const tm_stack *s, const char *what)
{
    jw_obj(w, NULL);
    jw_line(w);
    jw_obj(w, "message");
    jw_str(w, "text", what);
    jw_end(w);
    jw_arr(w, "frames");
    for (size_t i = s->skip; i < s->depth; i++) {
        jw_obj(w, NULL);
        sarif_location(w, "location", s->frames[i], 0, NULL);
        jw_str(w, "module", tm_basename(s->frames[i]->module));
        jw_end(w);
    }
    jw_end(w);
    jw_end(w);
}

static void sarif_result_head(jw *w, enum tm_kind k, const char *level, const char *message)
{
    jw_str(w, "ruleId", tm_kind_name(k));
    jw_int(w, "ruleIndex", k);
    jw_str(w, "level", level);
    jw_line(w);
    jw_obj(w, "message");
    jw_str(w, "text", message);
    jw_end(w);
}

static void sarif_site(jw *w, const tm_site *s)
{
    char msg[256], fp[17];
    report_site_message(msg, sizeof msg, s);
    /* The class is part of the result's identity: a site that becomes
     * definitely lost is a new result, not the still reachable one. */
    fingerprint(fp, "leak", s->stack->names, tm_reach_name(s->reach));
    jw_obj(w, NULL);
    /* What check counts by default is the rule's level; the rest, notes. */
    sarif_result_head(w, TM_LEAK, tm_reach_is_gated(s->reach) ? rules[TM_LEAK].level : "note",
                      msg);
    jw_arr(w, "locations");
    sarif_location(w, NULL, anchor(s->stack), 0, NULL);
    jw_end(w);
    jw_arr(w, "stacks");
    sarif_stack(w, s->stack, "allocated");
    jw_end(w);
    jw_obj(w, "partialFingerprints");
    jw_str(w, "alloctraceStack/v1", fp);
    jw_end(w);
    jw_obj(w, "properties");
    jw_str(w, "reachability", tm_reach_name(s->reach));
    jw_int(w, "bytes", s->bytes);
    jw_int(w, "blocks", s->blocks);
    jw_end(w);
    jw_end(w);
}

static void sarif_finding(jw *w, const tm_finding *f)
{
    char msg[512], fp[17];
    report_finding_message(msg, sizeof msg, f);
    fingerprint(fp, f->kind_name, f->release->names, f->alloc ? f->alloc->names : NULL);
    jw_obj(w, NULL);
    sarif_result_head(w, f->kind, rules[f->kind].level, msg);
    jw_arr(w, "locations");
    sarif_location(w, NULL, anchor(f->release), 0, NULL);
    jw_end(w);
    const tm_frame *at_alloc = f->alloc ? anchor(f->alloc) : NULL;
    const tm_frame *at_first = f->first_release ? anchor(f->first_release) : NULL;
    if (at_alloc || at_first) {
        jw_arr(w, "relatedLocations");
        if (at_alloc)
            sarif_location(w, NULL, at_alloc, 1, "allocated here");
        if (at_first)
            sarif_location(w, NULL, at_first, 2, "first released here");
        jw_end(w);
    }
    jw_arr(w, "stacks");
    sarif_stack(w, f->release, f->first_release ? "released again" : "released");
    if (f->alloc)
        sarif_stack(w, f->alloc, "allocated");
    if (f->first_release && f->first_release->depth)
        sarif_stack(w, f->first_release, "first released");
    jw_end(w);
    jw_obj(w, "partialFingerprints");
    jw_str(w, "alloctraceStack/v1", fp);
    jw_end(w);
    jw_obj(w, "properties");
    jw_int(w, "count", f->count);
    jw_end(w);
    jw_end(w);
}

static void sarif_rules(jw *w)
{
    jw_arr(w, "rules");
    for (int k = 0; k < TM_KINDS; k++) {
        jw_obj(w, NULL);
        jw_str(w, "id", tm_kind_name((enum tm_kind)k));
        jw_str(w, "name", rules[k].name);
        jw_obj(w, "shortDescription");
        jw_str(w, "text", rules[k].text);
        jw_end(w);
        jw_obj(w, "defaultConfiguration");
        jw_str(w, "level", rules[k].level);
        jw_end(w);
        jw_end(w);
    }
    jw_end(w);
}

void report_sarif(FILE *out, const tm_trace *t, const report_opts *o)
{
    size_t findings = report_findings_shown(t, o);
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
    jw_arr(&w, "results");
    for (size_t i = 0; i < t->nsites; i++) {
        if (report_site_shown(t, o, i))
            sarif_site(&w, &t->sites[i]);
        tm_progress((double)i / (double)t->nsites);
    }
    for (size_t i = 0; i < findings; i++)
        sarif_finding(&w, &t->findings[i]);
    jw_end(&w);
    jw_end(&w);
    jw_end(&w);
    jw_end(&w);
}

/* ---- JUnit XML ------------------------------------------------------------------------------ */

/* "leaky_site (preload_prog.c:82)": how a test case is named. */
static void junit_where(FILE *out, const tm_stack *s)
{
    const tm_frame *f = anchor(s);
    if (!f) {
        fputs("(no stack)", out);
        return;
    }
    esc_xml(out, f->function ? f->function : "??", 1);
    if (f->file && f->line > 0) {
        fputs(" (", out);
        esc_xml(out, tm_basename(f->file), 1);
        fprintf(out, ":%lld)", f->line);
    }
}

static void junit_file_attrs(FILE *out, const tm_stack *s)
{
    const tm_frame *f = tm_source_frame(s);
    if (!f)
        return;
    fputs(" file=\"", out);
    esc_xml(out, f->file, 1);
    fprintf(out, "\" line=\"%lld\"", f->line);
}

/* Stacks as plain text, then escaped for XML: one escaping per layer. */
static void junit_stack(FILE *out, const char *title, const tm_stack *s)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem)
        return;
    fprintf(mem, "%s\n", title);
    report_stack_text(mem, s, "    ", 0);
    fclose(mem);
    esc_xml(out, text, 0);
    free(text);
}

/* A failing test case for a class check counts by default (vocab.h's
 * GATED), a passing one with the message and stack as its output for the
 * others: a CI test reporter fails on what the gate fails on. */
static void junit_site(FILE *out, size_t i, const tm_site *s)
{
    char msg[256];
    int fails = tm_reach_is_gated(s->reach);
    report_site_message(msg, sizeof msg, s);
    fprintf(out, "    <testcase classname=\"alloctrace.leak.%s\" name=\"%s #%zu at ",
            tm_reach_name(s->reach), tm_reach_label(s->reach), i + 1);
    junit_where(out, s->stack);
    fputc('"', out);
    junit_file_attrs(out, s->stack);
    if (fails) {
        fprintf(out, ">\n      <failure type=\"leak\" message=\"");
        esc_xml(out, msg, 1);
        fputs("\">", out);
    } else {
        fputs(">\n      <system-out>", out);
        esc_xml(out, msg, 0);
        fputc('\n', out);
    }
    junit_stack(out, "allocated at:", s->stack);
    fputs(fails ? "</failure>\n    </testcase>\n" : "</system-out>\n    </testcase>\n", out);
}

static void junit_finding(FILE *out, size_t i, const tm_finding *f)
{
    char msg[512];
    report_finding_message(msg, sizeof msg, f);
    fputs("    <testcase classname=\"alloctrace.", out);
    esc_xml(out, f->kind_name, 1);
    fprintf(out, "\" name=\"%s #%zu at ", report_kind_label(f->kind), i + 1);
    junit_where(out, f->release);
    fputc('"', out);
    junit_file_attrs(out, f->release);
    /* As check by default: a note (a zero-size request) passes, its
     * message and stack as its output. */
    int fails = tm_kind_gated(f->kind);
    if (fails) {
        fputs(">\n      <failure type=\"", out);
        esc_xml(out, f->kind_name, 1);
        fputs("\" message=\"", out);
        esc_xml(out, msg, 1);
        fputs("\">", out);
    } else {
        fputs(">\n      <system-out>", out);
        esc_xml(out, msg, 0);
        fputc('\n', out);
    }
    junit_stack(out,
                tm_kind_is_request(f->kind) ? "requested at:"
                : f->first_release          ? "released again at:"
                                            : "released at:",
                f->release);
    if (f->alloc)
        junit_stack(out, "allocated at:", f->alloc);
    if (f->first_release && f->first_release->depth)
        junit_stack(out, "first released at:", f->first_release);
    fputs(fails ? "</failure>\n    </testcase>\n" : "</system-out>\n    </testcase>\n", out);
}

static void junit_property(FILE *out, const char *name, const char *value)
{
    fprintf(out, "      <property name=\"%s\" value=\"", name);
    esc_xml(out, value, 1);
    fputs("\"/>\n", out);
}

static void junit_properties(FILE *out, const tm_trace *t)
{
    const tm_summary *s = &t->sum;
    char buf[64];
    fputs("    <properties>\n", out);
    junit_property(out, "trace", t->path);
    junit_property(out, "executable", s->executable);
    snprintf(buf, sizeof buf, "%lld", s->leaked_bytes);
    junit_property(out, "leaked_bytes", buf);
    snprintf(buf, sizeof buf, "%lld", s->leaked_blocks);
    junit_property(out, "leaked_blocks", buf);
    for (int r = 0; r < TM_REACHES; r++) {
        char name[64];
        snprintf(name, sizeof name, "%s_bytes", tm_reach_name((enum tm_reach)r));
        snprintf(buf, sizeof buf, "%lld", s->by_reach[r].bytes);
        junit_property(out, name, buf);
        snprintf(name, sizeof name, "%s_blocks", tm_reach_name((enum tm_reach)r));
        snprintf(buf, sizeof buf, "%lld", s->by_reach[r].blocks);
        junit_property(out, name, buf);
    }
    snprintf(buf, sizeof buf, "%lld", s->findings);
    junit_property(out, "findings", buf);
    snprintf(buf, sizeof buf, "%lld", s->peak_bytes);
    junit_property(out, "peak_bytes", buf);
    fputs("    </properties>\n", out);
}

void report_junit(FILE *out, const tm_trace *t, const report_opts *o)
{
    size_t sites = report_sites_shown(t, o), findings = report_findings_shown(t, o);
    size_t failures = 0;
    for (size_t i = 0; i < findings; i++)
        failures += (size_t)tm_kind_gated(t->findings[i].kind);
    for (size_t i = 0; i < t->nsites; i++)
        failures += report_site_shown(t, o, i) && tm_reach_is_gated(t->sites[i].reach);
    /* An empty category is one passing test case, so a clean run still
     * shows as tests that ran. */
    size_t tests = sites + findings + (sites == 0) + (t->nfindings == 0);
    double secs = (double)t->sum.duration_us / 1e6;
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", out);
    fprintf(out, "<testsuites name=\"alloctrace\" tests=\"%zu\" failures=\"%zu\" errors=\"0\""
                 " time=\"%.6f\">\n", tests, failures, secs);
    fputs("  <testsuite name=\"alloctrace: ", out);
    esc_xml(out, t->path, 1);
    fprintf(out, "\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"0\" time=\"%.6f\"",
            tests, failures, secs);
    if (t->sum.start_time) {
        fputs(" timestamp=\"", out);
        esc_xml(out, t->sum.start_time, 1);
        fputc('"', out);
    }
    fputs(">\n", out);
    junit_properties(out, t);
    for (size_t i = 0, n = 0; i < t->nsites; i++) {
        if (report_site_shown(t, o, i))
            junit_site(out, n++, &t->sites[i]);
        tm_progress((double)i / (double)t->nsites);
    }
    if (sites == 0) /* none, or none listed (still reachable ones without --show-reachable) */
        fprintf(out, "    <testcase classname=\"alloctrace.leak\" name=\"%s\"/>\n",
                t->nsites ? "no leaks listed" : "no leaks");
    for (size_t i = 0; i < findings; i++)
        junit_finding(out, i, &t->findings[i]);
    if (t->nfindings == 0)
        fputs("    <testcase classname=\"alloctrace.findings\" name=\"no bad releases\"/>\n", out);
    fputs("  </testsuite>\n</testsuites>\n", out);
}
