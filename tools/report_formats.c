/* `alloctrace report` for programs: JSON (schema in docs/report-json.md)
 * and JUnit XML for CI test reporters (SARIF: report_sarif.c).
 *
 * All show the same leak sites and findings as the text (report.h
 * decides which).  Strings from the trace only ever reach the output
 * through the JSON writer or esc_xml, so they cannot break the document.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

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
    jw_bool(w, "inlined", f->inlined);
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
    if (s->pool)
        jw_str(w, "pool", s->pool);
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
    jw_arr(w, "seqs");
    for (size_t i = 0; i < f->nseqs; i++)
        jw_int(w, NULL, f->seqs[i]);
    jw_end(w);
    jw_str(w, "detail", f->detail);
    if (f->pool)
        jw_str(w, "pool", f->pool);
    if (f->alloc) {
        jw_obj(w, "allocated");
        jw_int(w, "seq", f->alloc_seq);
        jw_int_or_null(w, "size", f->alloc_size, -1);
        jw_int_or_null(w, "min_size", f->alloc_size_min, -1);
        jw_int_or_null(w, "max_size", f->alloc_size_max, -1);
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
    jw_int_or_null(w, "min_size", f->release_size_min, -1);
    jw_int_or_null(w, "max_size", f->release_size_max, -1);
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

/* ---- JUnit XML ------------------------------------------------------------------------------ */

/* One testsuite per trace, named after its program and arguments; one
 * testcase per leak site or finding, named after what it is and where
 * ("definitely lost at leaky_site (preload_prog.c:82)").  Names hold no
 * pid, ordinal or address, so a CI reporter follows a test case from run
 * to run; two cases a name would confuse get their SARIF fingerprint's
 * first 8 digits too, two suites the number of the trace with that name. */

static const tm_frame *anchor(const tm_stack *s)
{
    const tm_frame *f = tm_source_frame(s);
    if (!f && s->skip < s->depth)
        f = s->frames[s->skip];
    return f;
}

/* "definitely lost at leaky_site (preload_prog.c:82)", raw (escape it). */
static char *case_name(const char *what, const tm_stack *s)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m)
        cli_die("out of memory");
    const tm_frame *f = anchor(s);
    fprintf(m, "%s at ", what);
    if (!f)
        fputs("(no stack)", m);
    else if (f->file && f->line > 0)
        fprintf(m, "%s (%s:%lld)", f->function ? f->function : "??", tm_basename(f->file), f->line);
    else
        fprintf(m, "%s (%s)", f->function ? f->function : "??",
                f->module ? tm_basename(f->module) : "?");
    if (fclose(m) != 0 || !text)
        cli_die("out of memory");
    return text;
}

static void junit_file_attrs(FILE *out, const report_opts *o, const tm_stack *s)
{
    const tm_frame *f = tm_source_frame(s);
    if (!f)
        return;
    const char *rel = report_relpath(o, f->file);
    fputs(" file=\"", out);
    esc_xml(out, rel ? rel : f->file, 1);
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

/* A test case's opening: a failure (fails) or the output of a passing
 * case, with `msg` as its message. */
static void junit_case_open(FILE *out, const char *classname, const char *name,
                            const char *suffix, const report_opts *o, const tm_stack *s,
                            int fails, const char *type, const char *msg)
{
    fputs("    <testcase classname=\"", out);
    esc_xml(out, classname, 1);
    fputs("\" name=\"", out);
    esc_xml(out, name, 1);
    if (suffix)
        fprintf(out, " [%.8s]", suffix);
    fputc('"', out);
    junit_file_attrs(out, o, s);
    if (fails) {
        fputs(">\n      <failure type=\"", out);
        esc_xml(out, type, 1);
        fputs("\" message=\"", out);
        esc_xml(out, msg, 1);
        fputs("\">", out);
    } else {
        fputs(">\n      <system-out>", out);
        esc_xml(out, msg, 0);
        fputc('\n', out);
    }
}

static void junit_case_close(FILE *out, int fails)
{
    fputs(fails ? "</failure>\n    </testcase>\n" : "</system-out>\n    </testcase>\n", out);
}

/* A failing test case for a class check counts by default (vocab.h's
 * GATED), a passing one with the message and stack as its output for the
 * others: a CI test reporter fails on what the gate fails on. */
static void junit_site(FILE *out, const report_opts *o, const tm_site *s, const char *name,
                       const char *suffix)
{
    char msg[256], classname[64];
    int fails = tm_reach_is_gated(s->reach);
    report_site_message(msg, sizeof msg, s);
    snprintf(classname, sizeof classname, "alloctrace.leak.%s", tm_reach_name(s->reach));
    junit_case_open(out, classname, name, suffix, o, s->stack, fails, "leak", msg);
    junit_stack(out, "allocated at:", s->stack);
    junit_case_close(out, fails);
}

static void junit_finding(FILE *out, const report_opts *o, const tm_finding *f, const char *name,
                          const char *suffix)
{
    char msg[512], classname[128];
    report_finding_message(msg, sizeof msg, f);
    snprintf(classname, sizeof classname, "alloctrace.%s", f->kind_name);
    /* As check by default: a note (a zero-size request) passes, its
     * message and stack as its output. */
    int fails = tm_kind_gated(f->kind);
    junit_case_open(out, classname, name, suffix, o, f->release, fails, f->kind_name, msg);
    junit_stack(out,
                tm_kind_is_request(f->kind) ? "requested at:"
                : f->first_release          ? "released again at:"
                                            : "released at:",
                f->release);
    if (f->alloc)
        junit_stack(out, "allocated at:", f->alloc);
    if (f->first_release && f->first_release->depth)
        junit_stack(out, "first released at:", f->first_release);
    junit_case_close(out, fails);
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

/* The program and its arguments, as a shell would read them back:
 * "preload_prog leak", "prog 'a b'".  The program by its file name only,
 * so that a checkout elsewhere names the same suite; a forked child's
 * suite says so. */
static char *suite_name(const tm_trace *t)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m)
        cli_die("out of memory");
    const tm_summary *s = &t->sum;
    const char *prog = s->executable ? s->executable : s->nargs ? s->args[0] : "?";
    fputs(tm_basename(prog), m);
    for (size_t i = 1; i < s->nargs; i++) {
        const char *a = s->args[i];
        int plain = *a != 0;
        for (const char *p = a; *p && plain; p++)
            plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                           "-_./=:,+@%",
                           *p) != NULL;
        if (plain) {
            fprintf(m, " %s", a);
            continue;
        }
        fputs(" '", m);
        for (const char *p = a; *p; p++)
            fputs(*p == '\'' ? "'\\''" : (char[2]){*p, 0}, m);
        fputc('\'', m);
    }
    /* A forked child runs the program of its parent: told apart by that. */
    if (tm_meta(t, "parent_pid"))
        fputs(" (forked child)", m);
    if (fclose(m) != 0 || !text)
        cli_die("out of memory");
    return text;
}

/* Counts of names, to tell the ones that repeat. */
typedef struct name_count {
    char *name;
    size_t n, seen;
    UT_hash_handle hh;
} name_count;

static name_count *name_add(name_count **set, char *name)
{
    name_count *e;
    HASH_FIND_STR(*set, name, e);
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e)
            cli_die("out of memory");
        e->name = name;
        HASH_ADD_KEYPTR(hh, *set, e->name, strlen(e->name), e);
    } else {
        free(name);
    }
    e->n++;
    return e;
}

static void names_free(name_count **set)
{
    name_count *e, *tmp;
    HASH_ITER(hh, *set, e, tmp)
    {
        HASH_DEL(*set, e);
        free(e->name);
        free(e);
    }
}

typedef struct suite_count {
    size_t tests, failures;
} suite_count;

static suite_count junit_count(const tm_trace *t, const report_opts *o)
{
    size_t sites = report_sites_shown(t, o), findings = report_findings_shown(t, o);
    suite_count c = {0, 0};
    for (size_t i = 0; i < findings; i++)
        c.failures += (size_t)tm_kind_gated(t->findings[i].kind);
    for (size_t i = 0; i < t->nsites; i++)
        c.failures += report_site_shown(t, o, i) && tm_reach_is_gated(t->sites[i].reach);
    /* An empty category is one passing test case, so a clean run still
     * shows as tests that ran. */
    c.tests = sites + findings + (sites == 0) + (t->nfindings == 0);
    return c;
}

/* The test cases of one trace: names first, to find those that repeat. */
static void junit_cases(FILE *out, const tm_trace *t, const report_opts *o)
{
    size_t sites = report_sites_shown(t, o), findings = report_findings_shown(t, o);
    name_count *set = NULL, **of = calloc(t->nsites + findings + 1, sizeof *of);
    if (!of)
        cli_die("out of memory");
    for (size_t i = 0; i < t->nsites; i++)
        if (report_site_shown(t, o, i))
            of[i] = name_add(&set, case_name(tm_reach_label(t->sites[i].reach), t->sites[i].stack));
    for (size_t i = 0; i < findings; i++)
        of[t->nsites + i] = name_add(
            &set, case_name(report_kind_label(t->findings[i].kind), t->findings[i].release));
    char fp[17];
    for (size_t i = 0; i < t->nsites; i++) {
        if (!of[i])
            continue;
        report_site_fingerprint(fp, o, &t->sites[i]);
        junit_site(out, o, &t->sites[i], of[i]->name, of[i]->n > 1 ? fp : NULL);
        tm_progress((double)i / (double)t->nsites);
    }
    if (sites == 0) /* none, or none listed (still reachable ones without --show-reachable) */
        fprintf(out, "    <testcase classname=\"alloctrace.leak\" name=\"%s\"/>\n",
                t->nsites ? "no leaks listed" : "no leaks");
    for (size_t i = 0; i < findings; i++) {
        name_count *e = of[t->nsites + i];
        report_finding_fingerprint(fp, o, &t->findings[i]);
        junit_finding(out, o, &t->findings[i], e->name, e->n > 1 ? fp : NULL);
    }
    if (t->nfindings == 0)
        fputs("    <testcase classname=\"alloctrace.findings\" name=\"no bad releases\"/>\n", out);
    names_free(&set);
    free(of);
}

static void junit_suite(FILE *out, const tm_trace *t, const report_opts *o, name_count *name)
{
    suite_count c = junit_count(t, o);
    fputs("  <testsuite name=\"", out);
    esc_xml(out, name->name, 1);
    if (name->n > 1)
        fprintf(out, " (%zu)", ++name->seen);
    fprintf(out, "\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"0\" time=\"%.6f\"",
            c.tests, c.failures, (double)t->sum.duration_us / 1e6);
    if (t->sum.start_time) {
        fputs(" timestamp=\"", out);
        esc_xml(out, t->sum.start_time, 1);
        fputc('"', out);
    }
    fputs(">\n", out);
    junit_properties(out, t);
    junit_cases(out, t, o);
    fputs("  </testsuite>\n", out);
}

void report_junit(FILE *out, const tm_trace *const *t, size_t n, const report_opts *o)
{
    size_t tests = 0, failures = 0;
    double secs = 0;
    name_count *set = NULL, **names = calloc(n + 1, sizeof *names);
    if (!names)
        cli_die("out of memory");
    for (size_t i = 0; i < n; i++) {
        suite_count c = junit_count(t[i], o);
        tests += c.tests;
        failures += c.failures;
        secs += (double)t[i]->sum.duration_us / 1e6;
        names[i] = name_add(&set, suite_name(t[i]));
    }
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", out);
    fprintf(out, "<testsuites name=\"alloctrace\" tests=\"%zu\" failures=\"%zu\" errors=\"0\""
                 " time=\"%.6f\">\n", tests, failures, secs);
    for (size_t i = 0; i < n; i++)
        junit_suite(out, t[i], o, names[i]);
    fputs("</testsuites>\n", out);
    names_free(&set);
    free(names);
}
