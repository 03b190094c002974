/* `alloctrace report TRACE`: what a trace says, for a person (text) or a
 * program (JSON, SARIF, JUnit XML; report_formats.c).
 *
 * Everything comes from trace_model: the summary with the exact peak,
 * leak sites largest first, findings in the order they happened, stacks
 * trimmed to start at the caller of the allocator.  Text from the trace is
 * escaped on the way out (escape.h): colour codes are the only control
 * characters this command ever writes, and only when asked or on a
 * terminal.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "escape.h"
#include "report.h"

/* ---- shared by the formats ----------------------------------------------------------- */

int report_site_shown(const tm_trace *t, const report_opts *o, size_t i)
{
    const tm_site *s = &t->sites[i];
    if (s->reach == TM_REACH_REACHABLE && !o->show_reachable)
        return 0;
    size_t rank = i - t->reach_begin[s->reach];
    return s->bytes >= o->min_bytes && (o->top < 0 || (long long)rank < o->top);
}

size_t report_class_shown(const tm_trace *t, const report_opts *o, enum tm_reach r)
{
    size_t n = 0;
    for (size_t i = t->reach_begin[r]; i < t->reach_begin[r + 1]; i++)
        n += (size_t)report_site_shown(t, o, i);
    return n;
}

size_t report_sites_shown(const tm_trace *t, const report_opts *o)
{
    size_t n = 0;
    for (int r = 0; r < TM_REACHES; r++)
        n += report_class_shown(t, o, (enum tm_reach)r);
    return n;
}

size_t report_findings_shown(const tm_trace *t, const report_opts *o)
{
    if (o->top >= 0 && (size_t)o->top < t->nfindings)
        return (size_t)o->top;
    return t->nfindings;
}

const char *report_kind_label(enum tm_kind k)
{
#define KIND_LABEL(id, code, name, label, category, rule, level, color, description) label,
    static const char *const labels[TM_KINDS] = {AT_KINDS(KIND_LABEL) AT_KIND_OTHER(KIND_LABEL)};
#undef KIND_LABEL
    return k < TM_KINDS ? labels[k] : labels[TM_OTHER];
}

/* ", of pool NAME" for a pool's site or finding, "" otherwise. */
static void pool_phrase(char *buf, size_t size, const char *pool)
{
    if (pool)
        snprintf(buf, size, ", of pool %s", pool);
    else
        buf[0] = '\0';
}

void report_site_message(char *buf, size_t size, const tm_site *s)
{
    const char *label = tm_reach_label(s->reach);
    char pool[160];
    pool_phrase(pool, sizeof pool, s->pool);
    if (s->min_size == s->max_size)
        snprintf(buf, size, "%s: %lld bytes in %lld block%s of %lld bytes%s", label, s->bytes,
                 s->blocks, s->blocks == 1 ? "" : "s", s->min_size, pool);
    else
        snprintf(buf, size, "%s: %lld bytes in %lld blocks of %lld to %lld bytes%s", label,
                 s->bytes, s->blocks, s->min_size, s->max_size, pool);
}

void report_finding_message(char *buf, size_t size, const tm_finding *f)
{
    char times[48] = "", pool[160];
    if (f->count > 1)
        snprintf(times, sizeof times, " (%lld times)", f->count);
    pool_phrase(pool, sizeof pool, f->pool);
    snprintf(buf, size, "%s: %s%s%s", report_kind_label(f->kind), f->detail ? f->detail : "",
             pool, times);
}

/* ---- text ------------------------------------------------------------------------------ */

typedef struct style {
    const char *bold, *red, *yellow, *cyan, *dim, *reset;
} style;

static style make_style(int color)
{
    if (!color)
        return (style){"", "", "", "", "", ""};
    return (style){"\033[1m", "\033[1;31m", "\033[33m", "\033[36m", "\033[2m", "\033[0m"};
}

/* Longest function name shown in a stack, for one aligned column. */
static size_t name_width(const tm_stack *s)
{
    size_t w = 2;
    for (size_t i = s->skip; i < s->depth; i++) {
        size_t n = esc_text_width(s->frames[i]->function);
        w = n > w ? n : w;
    }
    return w > 40 ? 40 : w;
}

void report_stack_text(FILE *out, const tm_stack *s, const char *indent, int color)
{
    style c = make_style(color);
    if (s->depth == 0) {
        fprintf(out, "%s%s(no stack: allocated before tracing started)%s\n", indent, c.dim,
                c.reset);
        return;
    }
    size_t width = name_width(s);
    for (size_t i = s->skip; i < s->depth; i++) {
        const tm_frame *f = s->frames[i];
        fputs(indent, out);
        size_t w = f->function ? esc_text(out, f->function) : (fputs("??", out), 2);
        fprintf(out, "%*s  ", (int)(w < width ? width - w : 0), "");
        if (f->file && f->line > 0) {
            fputs(c.cyan, out);
            esc_text(out, f->file);
            fprintf(out, ":%lld%s  ", f->line, c.reset);
        }
        fputs(c.dim, out);
        esc_text(out, f->module ? tm_basename(f->module) : "?");
        if (!f->file || f->line <= 0)
            fprintf(out, "+0x%llx", (unsigned long long)f->module_offset);
        fprintf(out, "%s%s\n", f->inlined ? " (inlined)" : "", c.reset);
    }
}

static void duration(char *buf, size_t size, long long us)
{
    if (us < 1000)
        snprintf(buf, size, "%lld us", us);
    else if (us < 1000000)
        snprintf(buf, size, "%.1f ms", (double)us / 1e3);
    else
        snprintf(buf, size, "%.2f s", (double)us / 1e6);
}

static void text_program(FILE *out, const tm_trace *t, const style *c)
{
    const tm_summary *s = &t->sum;
    char d[32];
    fprintf(out, "  %-12s", "program");
    if (s->nargs == 0)
        esc_text(out, s->executable ? s->executable : "?");
    /* A build's compiler line can have hundreds of arguments: the first
     * few say which run this was. */
    size_t shown = s->nargs > 12 ? 10 : s->nargs;
    for (size_t i = 0; i < shown; i++) {
        if (i)
            fputc(' ', out);
        esc_text(out, s->args[i]);
    }
    if (shown < s->nargs)
        fprintf(out, " ... (%zu more arguments)", s->nargs - shown);
    duration(d, sizeof d, s->duration_us);
    fprintf(out, "\n  %-12spid %lld, ran %s, %lld thread%s", "", s->pid, d, s->threads,
            s->threads == 1 ? "" : "s");
    if (s->program_end && strcmp(s->program_end, "died") == 0)
        fprintf(out, ", %sdied before closing its trace%s", c->yellow, c->reset);
    if (s->program_end && strcmp(s->program_end, "exec") == 0)
        fputs(", then exec'd another program (the blocks it held were released by the exec)",
              out);
    fputc('\n', out);
}

static void text_findings_line(FILE *out, const tm_summary *s, const style *c)
{
    fprintf(out, "  %-12s", "findings");
    if (s->findings == 0) {
        fputs("none\n", out);
        return;
    }
    fprintf(out, "%s%lld%s:", c->red, s->findings, c->reset);
    const char *sep = " ";
    for (int k = TM_LAYOUT_MISMATCH; k < TM_KINDS; k++) {
        if (s->by_kind[k]) {
            fprintf(out, "%s%lld %s", sep, s->by_kind[k], report_kind_label((enum tm_kind)k));
            sep = ", ";
        }
    }
    fputc('\n', out);
}

static void text_summary(FILE *out, const tm_trace *t, const style *c)
{
    const tm_summary *s = &t->sum;
    char b1[64], b2[64], d[32];
    fprintf(out, "%salloctrace report:%s ", c->bold, c->reset);
    esc_text(out, t->path);
    fputc('\n', out);
    text_program(out, t, c);
    cli_bytes(b1, sizeof b1, s->alloc_bytes);
    fprintf(out, "  %-12s%lld calls, %s; %lld frees\n", "allocations", s->alloc_calls, b1,
            s->free_calls);
    cli_bytes(b1, sizeof b1, s->peak_bytes);
    duration(d, sizeof d, s->peak_time_us);
    if (s->peak_seq > 0)
        fprintf(out, "  %-12s%s at sequence number %lld, %s in\n", "peak heap", b1, s->peak_seq,
                d);
    else
        fprintf(out, "  %-12s%s\n", "peak heap", b1);
    cli_bytes(b1, sizeof b1, s->leaked_bytes);
    fprintf(out, "  %-12s%s%lld block%s, %s%s", "leaked", s->leaked_blocks ? c->red : "",
            s->leaked_blocks, s->leaked_blocks == 1 ? "" : "s", b1,
            s->leaked_blocks ? c->reset : "");
    if (t->nsites)
        fprintf(out, " in %zu site%s", t->nsites, t->nsites == 1 ? "" : "s");
    fputc('\n', out);
    if (s->runtime_blocks) {
        cli_bytes(b2, sizeof b2, s->runtime_bytes);
        fprintf(out, "  %-12s%lld block%s, %s kept by the C/C++ runtime (not leaks)\n",
                "set aside", s->runtime_blocks, s->runtime_blocks == 1 ? "" : "s", b2);
    }
    text_findings_line(out, s, c);
    if (s->lost_events > 0)
        fprintf(out, "  %swarning: %lld events could not be recorded; figures are incomplete, and a block"
                " whose release was one of them counts as leaked unless the exit scan saw it released%s\n",
                c->yellow, s->lost_events, c->reset);
}

/* A class's label as a heading starts: "Definitely lost". */
static void heading_label(FILE *out, enum tm_reach r)
{
    const char *label = tm_reach_label(r);
    fputc(toupper((unsigned char)label[0]), out);
    fputs(label + 1, out);
}

static void blocks_at_sites(FILE *out, long long bytes, long long blocks, long long sites)
{
    char b[64];
    cli_bytes(b, sizeof b, bytes);
    fprintf(out, "%s in %lld block%s", b, blocks, blocks == 1 ? "" : "s");
    if (sites > 0)
        fprintf(out, " at %lld site%s", sites, sites == 1 ? "" : "s");
}

/* valgrind's LEAK SUMMARY: a line per class, in AT_REACH's order; the
 * classes counted by default stand out when they hold anything. */
static void text_leak_summary(FILE *out, const tm_trace *t, const style *c)
{
    const tm_summary *s = &t->sum;
    if (s->leaked_blocks == 0)
        return;
    int width = 0;
    for (int r = 0; r < TM_REACHES; r++) {
        int n = (int)strlen(tm_reach_label((enum tm_reach)r));
        width = n > width ? n : width;
    }
    fprintf(out, "\n%sLeak summary, by reachability at exit%s\n", c->bold, c->reset);
    for (int r = 0; r < TM_REACHES; r++) {
        int loud = s->by_reach[r].blocks > 0 && tm_reach_is_gated((enum tm_reach)r);
        fprintf(out, "  %s%*s:%s ", loud ? c->red : "", width, tm_reach_label((enum tm_reach)r),
                loud ? c->reset : "");
        blocks_at_sites(out, s->by_reach[r].bytes, s->by_reach[r].blocks, s->by_reach[r].sites);
        fputc('\n', out);
    }
}

static void text_site(FILE *out, size_t n, const tm_site *s, const report_opts *o,
                      const style *c)
{
    char b[64];
    cli_bytes(b, sizeof b, s->bytes);
    fprintf(out, "\n  %s#%zu  %s%s in %lld block%s", c->bold, n, b, c->reset, s->blocks,
            s->blocks == 1 ? "" : "s");
    if (s->min_size == s->max_size)
        fprintf(out, " of %lld B", s->min_size);
    else
        fprintf(out, " of %lld to %lld B", s->min_size, s->max_size);
    if (s->pool) {
        fputs(", of pool ", out);
        esc_text(out, s->pool);
    }
    fputc('\n', out);
    report_stack_text(out, s->stack, "      ", o->color);
}

/* The leak sites, class by class; still reachable ones as one line unless
 * --show-reachable.  Sites are numbered through the classes. */
static void text_sites(FILE *out, const tm_trace *t, const report_opts *o, const style *c)
{
    size_t n = 0;
    for (int r = 0; r < TM_REACHES; r++) {
        enum tm_reach reach = (enum tm_reach)r;
        size_t total = t->reach_begin[r + 1] - t->reach_begin[r];
        size_t shown = report_class_shown(t, o, reach);
        if (total == 0)
            continue;
        fprintf(out, "\n%s", c->bold);
        heading_label(out, reach);
        if (reach == TM_REACH_REACHABLE && !o->show_reachable) {
            fprintf(out, "%s: ", c->reset);
            blocks_at_sites(out, t->sum.by_reach[r].bytes, t->sum.by_reach[r].blocks,
                            (long long)total);
            fputs(" (not listed: --show-reachable lists them)\n", out);
            continue;
        }
        fprintf(out, ", by allocation site, largest first%s (%zu site%s", c->reset, total,
                total == 1 ? "" : "s");
        if (shown < total)
            fprintf(out, ", %zu shown", shown);
        fputc(')', out);
        if (reach == TM_REACH_UNKNOWN)
            fprintf(out, ": %s", tm_unscanned_reason(t));
        fputc('\n', out);
        for (size_t i = t->reach_begin[r]; i < t->reach_begin[r + 1]; i++)
            if (report_site_shown(t, o, i))
                text_site(out, ++n, &t->sites[i], o, c);
    }
}

/* A value or a range of them ("24\u201348"), or an en dash for a value not
 * known; returns its width in columns. */
static int range_text(char *buf, size_t size, long long lo, long long hi)
{
    if (lo < 0)
        return snprintf(buf, size, "\u2013"), 1;
    if (hi <= lo)
        return snprintf(buf, size, "%lld", lo);
    return snprintf(buf, size, "%lld\u2013%lld", lo, hi) - 2; /* the dash: 3 bytes, 1 column */
}

/* One row of the side-by-side layouts; values that disagree stand out.  A
 * value not known (no allocation; a release that passed no size, like
 * free()) is an en dash; a finding that merges releases of several sizes
 * shows their range. */
static void layout_row(FILE *out, const char *what, long long alo, long long ahi, long long rlo,
                       long long rhi, const style *c)
{
    char av[48], rv[48];
    int aw = range_text(av, sizeof av, alo, ahi);
    range_text(rv, sizeof rv, rlo, rhi);
    int differ = alo >= 0 && rlo >= 0 && (alo != rlo || ahi != rhi);
    fprintf(out, "      %-11s%s%*s%s%s%s\n", what, av, aw < 14 ? 14 - aw : 1, "",
            differ ? c->red : "", rv, differ ? c->reset : "");
}

static void family_row(FILE *out, const tm_finding *f, const style *c)
{
    const char *a = f->alloc ? f->alloc_family : NULL, *r = f->release_family;
    int differ = a && r && strcmp(a, r) != 0;
    fprintf(out, "      %-11s", "family");
    size_t w = esc_text(out, a ? a : "\u2013");
    fprintf(out, "%*s%s", (int)(w < 14 ? 14 - w : 1), "", differ ? c->red : "");
    esc_text(out, r ? r : "\u2013");
    fprintf(out, "%s\n", differ ? c->reset : "");
}

static void text_finding(FILE *out, size_t i, const tm_finding *f, const report_opts *o,
                         const style *c)
{
    fprintf(out, "\n  %s#%zu  %s%s%s", c->bold, i + 1, c->red, report_kind_label(f->kind), c->reset);
    if (f->kind == TM_OTHER) {
        fputs(" (", out);
        esc_text(out, f->kind_name);
        fputc(')', out);
    }
    if (f->count > 1)
        fprintf(out, ", %lld times", f->count);
    /* the detail is the first occurrence's: say so when the others differ */
    int sizes_vary =
        f->release_size_min != f->release_size_max || f->alloc_size_min != f->alloc_size_max;
    fputs(sizes_vary ? "; the first: " : ": ", out);
    esc_text(out, f->detail);
    if (tm_kind_is_request(f->kind)) {
        /* unsigned: SQLite's integers are signed, a request's values need not fit */
        fprintf(out, "\n      requested  size %llu, alignment %llu, family ",
                (unsigned long long)f->release_size, (unsigned long long)f->release_align);
        esc_text(out, f->release_family ? f->release_family : "\u2013");
        fprintf(out, "\n    requested at (sequence number %lld, thread %lld):\n", f->seq,
                f->thread);
        report_stack_text(out, f->release, "      ", o->color);
        return;
    }
    fprintf(out, "\n      %-11s%-14s%s\n", "", "allocated", "released");
    layout_row(out, "size", f->alloc ? f->alloc_size_min : -1, f->alloc_size_max,
               f->release_size_min, f->release_size_max, c);
    long long aa = f->alloc ? f->alloc_align : -1;
    layout_row(out, "alignment", aa, aa, f->release_align, f->release_align, c);
    family_row(out, f, c);
    if (f->pool) {
        fprintf(out, "      %-11s", "pool");
        esc_text(out, f->pool);
        fputc('\n', out);
    }
    if (f->alloc) {
        fprintf(out, "    allocated at (sequence number %lld):\n", f->alloc_seq);
        report_stack_text(out, f->alloc, "      ", o->color);
    } else {
        fputs("    never allocated by the traced program\n", out);
    }
    if (f->first_release) {
        fprintf(out, "    first released at (sequence number %lld):\n", f->first_free_seq);
        if (f->first_release->depth)
            report_stack_text(out, f->first_release, "      ", o->color);
        else
            fprintf(out, "      %s(no stack: traced with --no-release-stacks)%s\n", c->dim,
                    c->reset);
    }
    fprintf(out, "    %s at (sequence number %lld, thread %lld",
            f->first_release ? "released again" : "released", f->seq, f->thread);
    if (f->first_free_seq >= 0 && !f->first_release)
        fprintf(out, "; first released at %lld", f->first_free_seq);
    fputs("):\n", out);
    report_stack_text(out, f->release, "      ", o->color);
}

static void text_findings(FILE *out, const tm_trace *t, const report_opts *o, const style *c)
{
    size_t shown = report_findings_shown(t, o);
    if (t->nfindings == 0)
        return;
    int requests = 0;
    for (size_t i = 0; i < t->nfindings; i++)
        requests |= tm_kind_is_request(t->findings[i].kind);
    fprintf(out, "\n%sBad %s, in the order they happened%s (%zu distinct", c->bold,
            requests ? "releases and requests" : "releases", c->reset, t->nfindings);
    if (shown < t->nfindings)
        fprintf(out, ", %zu shown", shown);
    fputs(")\n", out);
    for (size_t i = 0; i < shown; i++)
        text_finding(out, i, &t->findings[i], o, c);
}

static void report_text(FILE *out, const tm_trace *t, const report_opts *o)
{
    style c = make_style(o->color);
    text_summary(out, t, &c);
    text_leak_summary(out, t, &c);
    text_sites(out, t, o, &c);
    text_findings(out, t, o, &c);
}

/* ---- the command ---------------------------------------------------------------------- */

enum format { FORMAT_TEXT, FORMAT_JSON, FORMAT_SARIF, FORMAT_JUNIT };

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("alloctrace: report: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    cli_usage_hint("report");
    return EXIT_USAGE;
}

/* Colour on a terminal unless NO_COLOR (https://no-color.org) or a dumb
 * terminal says otherwise. */
static int want_color(const char *when, FILE *out)
{
    if (strcmp(when, "always") == 0)
        return 1;
    if (strcmp(when, "never") == 0)
        return 0;
    const char *no = getenv("NO_COLOR"), *term = getenv("TERM");
    return isatty(fileno(out)) && !(no && *no) && !(term && strcmp(term, "dumb") == 0);
}

static int parse_format(const char *s, enum format *f)
{
    static const char *const names[] = {"text", "json", "sarif", "junit"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *f = (enum format)i;
            return 0;
        }
    }
    return -1;
}

/* Where -o FILE goes until the last report is written (tools/output.c). */
static cli_output report_output;

static FILE *open_output(const char *output)
{
    return output ? cli_output_open(output, &report_output) : stdout;
}

/* The report of the trace at `path` to `out`; with `header`, a line that
 * names the trace and its program first (one of several). */
static int write_report(const char *path, const char *output, FILE **outp, enum format format,
                        report_opts *o, const char *color, int header)
{
    sqlite3 *db;
    if (cli_open_trace(path, &db) != 0)
        return EXIT_TOOL;
    tm_trace t;
    int rc = tm_load(&t, db, path, TM_SUMMARY | TM_PEAK | TM_LEAKS | TM_FINDINGS);
    if (rc == 0 && !*outp) { /* opened once the first trace could be read */
        if (!(*outp = open_output(output)))
            rc = -1;
        else
            o->color = format == FORMAT_TEXT && want_color(color, *outp);
    }
    FILE *out = *outp;
    if (rc == 0) {
        if (header) {
            fputs("== ", out);
            esc_text(out, path);
            fputs(" (", out);
            esc_text(out, tm_basename(t.sum.executable ? t.sum.executable : "?"));
            fprintf(out, ", pid %lld)\n", t.sum.pid);
        }
        /* Progress while writing only when the report is not going to the
         * terminal the progress line is on. */
        if (!isatty(fileno(out)))
            tm_progress_start("writing the report");
        if (format == FORMAT_TEXT)
            report_text(out, &t, o);
        else
            report_json(out, &t, o);
        tm_progress_done();
        if (header)
            fputc('\n', out);
    }
    tm_free(&t);
    sqlite3_close(db);
    return rc == 0 ? 0 : EXIT_TOOL;
}

/* SARIF and JUnit: every trace of `all` read first, then one document
 * for all of them. */
static int write_document(const cli_paths *all, const char *output, FILE **outp,
                          enum format format, const report_opts *o)
{
    tm_trace *t = calloc(all->n, sizeof *t);
    const tm_trace **tp = calloc(all->n, sizeof *tp);
    sqlite3 **db = calloc(all->n, sizeof *db);
    if (!t || !tp || !db)
        cli_die("out of memory");
    size_t loaded = 0;
    int rc = 0;
    for (; !rc && loaded < all->n; loaded++) {
        const char *path = all->v[loaded];
        if (cli_open_trace(path, &db[loaded]) != 0) {
            rc = EXIT_TOOL;
            break;
        }
        const unsigned what = TM_SUMMARY | TM_PEAK | TM_LEAKS | TM_FINDINGS;
        if (tm_load(&t[loaded], db[loaded], path, what) != 0)
            rc = EXIT_TOOL;
        tp[loaded] = &t[loaded];
    }
    if (!rc && !(*outp = open_output(output)))
        rc = EXIT_TOOL;
    if (!rc) {
        if (!isatty(fileno(*outp)))
            tm_progress_start("writing the report");
        if (format == FORMAT_SARIF)
            report_sarif(*outp, tp, all->n, o);
        else
            report_junit(*outp, tp, all->n, o);
        tm_progress_done();
    }
    for (size_t i = 0; i < loaded; i++) {
        tm_free(&t[i]);
        sqlite3_close(db[i]);
    }
    free(t);
    free(tp);
    free(db);
    return rc;
}

/* Every trace of `args` (files, directories) to `output` or stdout. */
static int write_reports(int n, char **args, const char *output, enum format format,
                         report_opts *o, const char *color)
{
    cli_paths all = {0};
    if (cli_expand_traces(n, args, &all) != 0)
        return EXIT_TOOL;
    struct stat st;
    int several = n > 1 || (stat(args[0], &st) == 0 && S_ISDIR(st.st_mode));
    if (several && format == FORMAT_JSON) {
        cli_paths_free(&all);
        return usage_error("%s", "several traces: --format text, sarif or junit (one json"
                                 " report per trace)");
    }
    FILE *out = NULL;
    int rc = 0;
    if (format == FORMAT_SARIF || format == FORMAT_JUNIT)
        rc = write_document(&all, output, &out, format, o);
    for (size_t i = 0; format <= FORMAT_JSON && !rc && i < all.n; i++)
        rc = write_report(all.v[i], output, &out, format, o, color, several);
    if (out && out != stdout) {
        if (cli_output_close(out, &report_output, rc != 0) != 0)
            rc = EXIT_TOOL;
    } else if (out && (ferror(out) | fflush(out))) {
        fprintf(stderr, "alloctrace: writing the report failed\n");
        rc = EXIT_TOOL;
    }
    cli_paths_free(&all);
    return rc;
}

/* --source-root's default: the top of the git work tree around the
 * current directory, else the current directory.  Malloc'd, absolute. */
static char *default_source_root(void)
{
    char line[4096] = "";
    FILE *git = popen("git rev-parse --show-toplevel 2>/dev/null", "r");
    if (git) {
        if (!fgets(line, sizeof line, git))
            line[0] = 0;
        if (pclose(git) != 0)
            line[0] = 0;
    }
    line[strcspn(line, "\n")] = 0;
    char *root = line[0] == '/' ? realpath(line, NULL) : NULL;
    return root ? root : realpath(".", NULL);
}

static void strip_slashes(char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        dir[--n] = 0;
}

int cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {
        {"top", required_argument, NULL, 't'},
        {"min-bytes", required_argument, NULL, 'm'},
        {"show-reachable", no_argument, NULL, 'r'},
        {"format", required_argument, NULL, 'f'},
        {"color", required_argument, NULL, 'c'},
        {"colour", required_argument, NULL, 'c'},
        {"output", required_argument, NULL, 'o'},
        {"source-root", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    report_opts o = {.top = -2, .min_bytes = 0};
    enum format format = FORMAT_TEXT;
    const char *output = NULL, *color = "auto", *source_root = NULL;
    int c;
    optind = 0; /* 0, not 1: glibc then starts over, ordering mode included */
    while ((c = cli_getopt(argc, argv, "o:h", opts)) != -1) {
        switch (c) {
        case 't':
            if (tm_parse_count(optarg, 0, &o.top) != 0)
                return usage_error("--top needs a number, not '%s'", optarg);
            break;
        case 'm':
            if (tm_parse_count(optarg, 1, &o.min_bytes) != 0)
                return usage_error("--min-bytes needs a size (N, NK, NM, NG), not '%s'", optarg);
            break;
        case 'f':
            if (parse_format(optarg, &format) != 0)
                return usage_error("unknown format '%s' (text, json, sarif, junit)", optarg);
            break;
        case 'c':
            if (strcmp(optarg, "auto") && strcmp(optarg, "always") && strcmp(optarg, "never"))
                return usage_error("--color is auto, always or never, not '%s'", optarg);
            color = optarg;
            break;
        case 'r': o.show_reachable = 1; break;
        case 'o': output = optarg; break;
        case 's': source_root = optarg; break;
        case 'h': cli_command_help(stdout, "report"); return 0;
        default: return EXIT_USAGE;
        }
    }
    if (argc - optind < 1)
        return usage_error("%s", "no trace given");
    /* A person reads the first ten; a program gets everything. */
    if (o.top == -2)
        o.top = format == FORMAT_TEXT ? 10 : -1;
    char *root = NULL;
    if (format == FORMAT_SARIF || format == FORMAT_JUNIT) {
        struct stat st;
        if (source_root && (stat(source_root, &st) != 0 || !S_ISDIR(st.st_mode)))
            return usage_error("--source-root: '%s' is no directory", source_root);
        root = source_root ? realpath(source_root, NULL) : default_source_root();
        if (!root)
            return usage_error("%s", "--source-root: cannot resolve the directory");
        strip_slashes(root);
        o.source_root = root;
    }
    int rc = write_reports(argc - optind, argv + optind, output, format, &o, color);
    free(root);
    return rc;
}
