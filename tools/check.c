/* `alloctrace check TRACE`: a pass/fail verdict on a trace for CI, with
 * exit codes that tell "the program leaks" (1) from "alloctrace could not
 * judge" (2 usage, 125 unreadable trace); docs/ci.md documents the policy.
 *
 * The policy is applied to what `report` shows (trace_model): leak sites
 * and findings, each with symbolized stacks.  A problem is forgiven when a
 * suppression matches a frame of its stack, or when the baseline trace has
 * the same problem at the same symbolized stack (function names, never
 * addresses, so it holds across runs and ASLR).  Blocks the C and C++
 * runtimes keep are not leaks in the trace, so they never fail a check.
 */
#include <ctype.h>
#include <fnmatch.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <uthash.h>

#include "cli.h"
#include "escape.h"
#include "report.h"
#include "trace_model.h"

#include <alloctrace/vocab.h>

/* ---- what fails ----------------------------------------------------------------------- */

/* The categories of --fail-on and of suppressions (vocab.h, AT_CATEGORIES;
 * each kind of AT_KINDS names its own). */
enum category {
#define X_CAT(id, name, alias, gated) CAT_##id,
    AT_CATEGORIES(X_CAT)
#undef X_CAT
    CATS
};

static const char *const cat_names[CATS] = {
#define X_CAT(id, name, alias, gated) [CAT_##id] = name,
    AT_CATEGORIES(X_CAT)
#undef X_CAT
};

static const char *const cat_aliases[CATS] = {
#define X_CAT(id, name, alias, gated) [CAT_##id] = alias,
    AT_CATEGORIES(X_CAT)
#undef X_CAT
};

/* 1: in --fail-on's default. */
static const int cat_gated[CATS] = {
#define X_CAT(id, name, alias, gated) [CAT_##id] = gated,
    AT_CATEGORIES(X_CAT)
#undef X_CAT
};

/* The names, as one string for messages: "leaks, mismatch, ...". */
#define X_CAT_LIST(id, name, alias, gated) ", " name
#define CAT_LIST (AT_CATEGORIES(X_CAT_LIST) + 2)

/* -1 for a finding kind this build does not know: shown, never judged. */
static int category_of(enum tm_kind k)
{
    switch (k) {
#define X_KIND(id, code, name, label, category, rule, level, color, description)                   \
    case TM_##id:                                                                                  \
        return CAT_##category;
        AT_KINDS(X_KIND)
#undef X_KIND
    default:
        return -1;
    }
}

/* A category by name or by its alias ("leak" is "leaks", as in suppression
 * files); -1. */
static int category_named(const char *name, size_t len)
{
    for (int c = 0; c < CATS; c++)
        if ((strlen(cat_names[c]) == len && strncmp(name, cat_names[c], len) == 0) ||
            (strlen(cat_aliases[c]) == len && strncmp(name, cat_aliases[c], len) == 0))
            return c;
    return -1;
}

typedef struct policy {
    int fail_on[CATS];
    tm_reach_set leak_kinds;          /* the classes of leaks counted (--leak-kinds) */
    long long max_bytes, max_blocks; /* of all the classes counted; -1: not given */
    long long reach_max_bytes[TM_REACHES], reach_max_blocks[TM_REACHES]; /* KIND=N; -1 */
} policy;

static int counted(const policy *p, enum tm_reach r)
{
    return (p->leak_kinds >> r) & 1u;
}

/* --max-leaked-*: N (all the classes counted) or KIND=N (that class); 0 or -1. */
static int parse_limit(const char *arg, int size_suffix, long long *total, long long *per)
{
    const char *eq = strchr(arg, '=');
    if (!eq)
        return tm_parse_count(arg, size_suffix, total);
    int r = tm_reach_of_kind(arg, (size_t)(eq - arg));
    return r < 0 ? -1 : tm_parse_count(eq + 1, size_suffix, &per[r]);
}

/* The categories that fail when --fail-on is not given: all but the
 * notes (zero-size requests). */
static void default_fail_on(policy *p)
{
    for (int c = 0; c < CATS; c++)
        p->fail_on[c] = cat_gated[c];
}

/* "leaks,mismatch", "all" or "none"; 0 or -1. */
static int parse_fail_on(const char *list, policy *p)
{
    memset(p->fail_on, 0, sizeof p->fail_on);
    for (const char *s = list;;) {
        size_t len = strcspn(s, ",");
        int c = category_named(s, len);
        if (len == 3 && strncmp(s, "all", 3) == 0) {
            for (c = 0; c < CATS; c++)
                p->fail_on[c] = 1;
        } else if (len == 4 && strncmp(s, "none", 4) == 0) {
            /* nothing fails: the check only reports */
        } else if (c < 0) {
            return -1;
        } else {
            p->fail_on[c] = 1;
        }
        if (!s[len])
            return 0;
        s += len + 1;
    }
}

/* ---- suppressions ----------------------------------------------------------------------- */

typedef struct suppression {
    const char *file;
    int line;
    int category;  /* -1 for '*' */
    tm_reach_set reach; /* leak[KINDS]: the classes it applies to (all without) */
    char *rule;    /* the line as written, for messages */
    char *glob;    /* what fnmatch sees */
    long long used; /* problems it matched */
} suppression;

typedef struct suppressions {
    suppression *v;
    size_t n;
} suppressions;

/* LeakSanitizer's pattern rule, so its files work as they are: the
 * pattern may match anywhere in a name unless anchored with ^ or $; the
 * rest is an fnmatch glob. */
static char *glob_of(const char *pattern)
{
    size_t len = strlen(pattern);
    int start = pattern[0] == '^', end = len > (size_t)start && pattern[len - 1] == '$';
    char *g = tm_xrealloc(NULL, len + 3);
    snprintf(g, len + 3, "%s%.*s%s", start ? "" : "*", (int)(len - (size_t)start - (size_t)end),
             pattern + start, end ? "" : "*");
    return g;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* "leak[definite,possible]" before the colon: the classes of leaks a
 * suppression applies to, in --leak-kinds' words; *kind_end is where the
 * kind's name ends.  0, or -1 when the brackets hold no such list. */
static int suppression_classes(char *s, char *colon, char **kind_end, tm_reach_set *set)
{
    char *open = memchr(s, '[', (size_t)(colon - s));
    *kind_end = colon;
    *set = (1u << TM_REACHES) - 1;
    if (!open)
        return 0;
    if (colon[-1] != ']' || colon - 1 == open + 1)
        return -1;
    colon[-1] = '\0';
    int rc = tm_parse_leak_kinds(open + 1, set) != 0 || *set == 0 ? -1 : 0;
    colon[-1] = ']';
    *kind_end = open;
    return rc;
}

/* One line of a suppressions file; 0, or -1 after a message. */
static int parse_suppression(suppressions *ss, const char *file, int lineno, char *line)
{
    char *s = trim(line);
    if (!*s || *s == '#')
        return 0;
    char *colon = strchr(s, ':'), *kind_end = colon;
    tm_reach_set reach = (1u << TM_REACHES) - 1;
    if (colon && suppression_classes(s, colon, &kind_end, &reach) != 0) {
        fprintf(stderr, "alloctrace: %s:%d: expected leak[KINDS]:PATTERN, KINDS a list of %s\n",
                file, lineno, tm_leak_kinds_words());
        return -1;
    }
    int any = colon && kind_end - s == 1 && *s == '*';
    int cat = any ? -1 : colon ? category_named(s, (size_t)(kind_end - s)) : -1;
    if (!colon || (cat < 0 && !any) || (kind_end != colon && cat != CAT_LEAKS)) {
        fprintf(stderr,
                "alloctrace: %s:%d: expected KIND:PATTERN, KIND one of %s, leak, *"
                " (leak[KINDS] for some classes of leaks)\n",
                file, lineno, CAT_LIST);
        return -1;
    }
    /* A comment may follow, after white space: names never hold " #". */
    for (char *h = strchr(colon + 1, '#'); h; h = strchr(h + 1, '#')) {
        if (isspace((unsigned char)h[-1])) {
            *h = '\0';
            break;
        }
    }
    char *pattern = trim(colon + 1);
    if (!*pattern || strcmp(pattern, "^") == 0 || strcmp(pattern, "$") == 0) {
        fprintf(stderr, "alloctrace: %s:%d: empty pattern\n", file, lineno);
        return -1;
    }
    ss->v = tm_xrealloc(ss->v, (ss->n + 1) * sizeof *ss->v);
    ss->v[ss->n++] =
        (suppression){file, lineno, cat, reach, tm_xstrdup(s), glob_of(pattern), 0};
    return 0;
}

static int load_suppressions(suppressions *ss, const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "alloctrace: %s: cannot read the suppressions file\n", file);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    while (rc == 0 && getline(&line, &cap, f) >= 0)
        rc = parse_suppression(ss, file, ++lineno, line);
    free(line);
    fclose(f);
    return rc;
}

static int frame_matches(const tm_frame *f, const char *glob)
{
    return (f->function && fnmatch(glob, f->function, 0) == 0) ||
           (f->file && fnmatch(glob, f->file, 0) == 0) ||
           (f->module && fnmatch(glob, f->module, 0) == 0);
}

/* Any frame, the allocator's own included, as LeakSanitizer does. */
static int stack_matches(const tm_stack *s, const char *glob)
{
    for (size_t i = 0; s && i < s->depth; i++)
        if (frame_matches(s->frames[i], glob))
            return 1;
    return 0;
}

/* Marks every suppression that matches; 1 when any did.  `reach` is the
 * leak's class (ignored for findings). */
static int suppressed(suppressions *ss, int cat, enum tm_reach reach, const tm_stack *a,
                      const tm_stack *b)
{
    int any = 0;
    for (size_t i = 0; i < ss->n; i++) {
        suppression *s = &ss->v[i];
        if ((s->category == -1 || s->category == cat) &&
            (cat != CAT_LEAKS || ((s->reach >> reach) & 1u)) &&
            (stack_matches(a, s->glob) || stack_matches(b, s->glob))) {
            s->used++;
            any = 1;
        }
    }
    return any;
}

/* ---- the baseline -------------------------------------------------------------------------- */

typedef struct known {
    char *key;
    UT_hash_handle hh;
} known;

/* A leak's identity includes its class: the baseline's still reachable
 * site does not excuse the same site definitely lost now. */
static char *site_key(const tm_site *s)
{
    const char *reach = tm_reach_name(s->reach);
    size_t n = strlen(s->stack->names) + strlen(reach) + 8;
    char *k = tm_xrealloc(NULL, n);
    snprintf(k, n, "leak\x1d%s\x1d%s", reach, s->stack->names);
    return k;
}

static char *finding_key(const tm_finding *f)
{
    const char *a = f->alloc ? f->alloc->names : "-";
    size_t n = strlen(f->kind_name) + strlen(f->release->names) + strlen(a) + 3;
    char *k = tm_xrealloc(NULL, n);
    snprintf(k, n, "%s\x1d%s\x1d%s", f->kind_name, f->release->names, a);
    return k;
}

static void remember(known **set, char *key)
{
    known *e;
    HASH_FIND_STR(*set, key, e);
    if (e) {
        free(key);
        return;
    }
    e = tm_xrealloc(NULL, sizeof *e);
    e->key = key;
    HASH_ADD_KEYPTR(hh, *set, e->key, strlen(e->key), e);
}

static int is_known(known *set, const char *key)
{
    known *e;
    HASH_FIND_STR(set, key, e);
    return e != NULL;
}

/* The problems of the baseline trace; 0, or -1 after a message. */
static int load_baseline(const char *path, known **set)
{
    sqlite3 *db;
    if (cli_open_trace(path, &db) != 0)
        return -1;
    tm_trace t;
    int rc = tm_load(&t, db, path, TM_LEAKS | TM_FINDINGS);
    for (size_t i = 0; rc == 0 && i < t.nsites; i++)
        remember(set, site_key(&t.sites[i]));
    for (size_t i = 0; rc == 0 && i < t.nfindings; i++)
        remember(set, finding_key(&t.findings[i]));
    tm_free(&t);
    sqlite3_close(db);
    return rc;
}

static void forget_all(known **set)
{
    known *e, *tmp;
    HASH_ITER(hh, *set, e, tmp)
    {
        HASH_DEL(*set, e);
        free(e->key);
        free(e);
    }
}

/* ---- the verdict ---------------------------------------------------------------------------- */

/* What happened to one leak site or finding. */
enum fate { FATE_FAILS, FATE_TOLERATED, FATE_SUPPRESSED, FATE_BASELINE, FATE_NOT_CHECKED };

typedef struct tally {
    long long items, blocks, bytes, occurrences; /* not forgiven */
    long long suppressed, baseline;
    int failed;
} tally;

typedef struct verdict {
    enum fate *site_fate, *finding_fate;
    tally cat[CATS];           /* leaks: the classes counted, together */
    tally reach[TM_REACHES];   /* leaks by class, counted or not */
    int failed;
} verdict;

/* Takes `key` (the problem's baseline identity) and frees it.  `checked`:
 * its category is in --fail-on (and for a leak, its class in --leak-kinds). */
static enum fate judge(suppressions *ss, known *base, int checked, int cat, enum tm_reach reach,
                       char *key, const tm_stack *a, const tm_stack *b)
{
    enum fate f = FATE_NOT_CHECKED;
    /* Suppressions are tried first and always, so that a suppression that
     * only the baseline would have made redundant is not reported stale. */
    if (cat < 0)
        f = FATE_NOT_CHECKED;
    else if (suppressed(ss, cat, reach, a, b))
        f = FATE_SUPPRESSED;
    else if (is_known(base, key))
        f = FATE_BASELINE;
    else if (checked)
        f = FATE_FAILS;
    free(key);
    return f;
}

static void count_fate(tally *c, enum fate f, long long occurrences, long long blocks,
                       long long bytes)
{
    if (f == FATE_SUPPRESSED)
        c->suppressed++;
    else if (f == FATE_BASELINE)
        c->baseline++;
    else {
        c->items++;
        c->occurrences = tm_sat_add(c->occurrences, occurrences);
        c->blocks = tm_sat_add(c->blocks, blocks);
        c->bytes = tm_sat_add(c->bytes, bytes);
    }
}

static void add_tally(tally *to, const tally *from)
{
    to->items = tm_sat_add(to->items, from->items);
    to->blocks = tm_sat_add(to->blocks, from->blocks);
    to->bytes = tm_sat_add(to->bytes, from->bytes);
    to->occurrences = tm_sat_add(to->occurrences, from->occurrences);
    to->suppressed = tm_sat_add(to->suppressed, from->suppressed);
    to->baseline = tm_sat_add(to->baseline, from->baseline);
}

static int over(const tally *c, long long max_bytes, long long max_blocks)
{
    return (max_bytes >= 0 && c->bytes > max_bytes) || (max_blocks >= 0 && c->blocks > max_blocks);
}

/* Leaks may be tolerated up to the limits.  A class with limits of its own
 * (KIND=N) fails beyond them; the limits without a class apply to all the
 * classes counted together; a class that no limit covers fails on any
 * leak.  Either exceeded fails the class's sites. */
static void judge_leak_limits(verdict *v, const tm_trace *t, const policy *p)
{
    if (!p->fail_on[CAT_LEAKS])
        return;
    int total_limit = p->max_bytes >= 0 || p->max_blocks >= 0;
    int over_total = over(&v->cat[CAT_LEAKS], p->max_bytes, p->max_blocks);
    int fails[TM_REACHES];
    for (int r = 0; r < TM_REACHES; r++) {
        long long mb = p->reach_max_bytes[r], mn = p->reach_max_blocks[r];
        int own = mb >= 0 || mn >= 0;
        fails[r] = over_total || (own ? over(&v->reach[r], mb, mn)
                                      : !total_limit && v->reach[r].items > 0);
    }
    for (size_t i = 0; i < t->nsites; i++)
        if (v->site_fate[i] == FATE_FAILS && !fails[t->sites[i].reach])
            v->site_fate[i] = FATE_TOLERATED;
}

static void decide_leaks(verdict *v, const tm_trace *t, const policy *p, suppressions *ss,
                         known *base)
{
    for (size_t i = 0; i < t->nsites; i++) {
        const tm_site *s = &t->sites[i];
        int checked = p->fail_on[CAT_LEAKS] && counted(p, s->reach);
        v->site_fate[i] =
            judge(ss, base, checked, CAT_LEAKS, s->reach, site_key(s), s->stack, NULL);
        count_fate(&v->reach[s->reach], v->site_fate[i], s->blocks, s->blocks, s->bytes);
    }
    for (int r = 0; r < TM_REACHES; r++)
        if (counted(p, (enum tm_reach)r))
            add_tally(&v->cat[CAT_LEAKS], &v->reach[r]);
    judge_leak_limits(v, t, p);
    for (size_t i = 0; i < t->nsites; i++) {
        if (v->site_fate[i] == FATE_FAILS) {
            v->reach[t->sites[i].reach].failed = 1;
            v->cat[CAT_LEAKS].failed = 1;
        }
    }
}

static void decide(verdict *v, const tm_trace *t, const policy *p, suppressions *ss, known *base)
{
    memset(v, 0, sizeof *v);
    v->site_fate = tm_xrealloc(NULL, (t->nsites + 1) * sizeof *v->site_fate);
    v->finding_fate = tm_xrealloc(NULL, (t->nfindings + 1) * sizeof *v->finding_fate);
    decide_leaks(v, t, p, ss, base);
    for (size_t i = 0; i < t->nfindings; i++) {
        const tm_finding *f = &t->findings[i];
        int cat = category_of(f->kind);
        v->finding_fate[i] = judge(ss, base, cat >= 0 && p->fail_on[cat], cat, TM_REACH_UNKNOWN,
                                   finding_key(f), f->release, f->alloc);
        if (cat >= 0)
            count_fate(&v->cat[cat], v->finding_fate[i], f->count, 0, 0);
    }
    for (size_t i = 0; i < t->nfindings; i++) {
        int cat = category_of(t->findings[i].kind);
        if (cat >= 0 && v->finding_fate[i] == FATE_FAILS)
            v->cat[cat].failed = 1;
    }
    for (int c = 0; c < CATS; c++)
        v->failed |= v->cat[c].failed;
}

/* ---- output ------------------------------------------------------------------------------- */

/* Failing problems listed per category at most; the report has them all. */
enum { LIST_MAX = 20 };

static void allowed(FILE *out, long long max_bytes, long long max_blocks)
{
    if (max_bytes >= 0 && max_blocks >= 0)
        fprintf(out, " (allowed: %lld B, %lld blocks)", max_bytes, max_blocks);
    else if (max_bytes >= 0)
        fprintf(out, " (allowed: %lld B)", max_bytes);
    else if (max_blocks >= 0)
        fprintf(out, " (allowed: %lld blocks)", max_blocks);
}

static void leak_counts(FILE *out, const tally *t)
{
    char b[64];
    cli_bytes(b, sizeof b, t->bytes);
    fprintf(out, "%lld site%s, %lld block%s, %s", t->items, t->items == 1 ? "" : "s", t->blocks,
            t->blocks == 1 ? "" : "s", b);
}

static void forgiven(FILE *out, const tally *t)
{
    if (t->suppressed)
        fprintf(out, "; %lld suppressed", t->suppressed);
    if (t->baseline)
        fprintf(out, "; %lld in the baseline", t->baseline);
}

/* Under `leaks`, what each class holds and whether it was counted. */
static void text_classes(FILE *out, const tm_trace *tr, const verdict *v, const policy *p)
{
    int width = 0;
    for (int r = 0; r < TM_REACHES; r++) {
        int n = (int)strlen(tm_reach_label((enum tm_reach)r));
        width = n > width ? n : width;
    }
    for (int r = 0; r < TM_REACHES; r++) {
        const tally *t = &v->reach[r];
        int checked = p->fail_on[CAT_LEAKS] && counted(p, (enum tm_reach)r);
        fprintf(out, "    %-*s %-5s", width, tm_reach_label((enum tm_reach)r),
                t->failed ? "FAIL" : checked ? "ok" : "-");
        leak_counts(out, t);
        if (checked)
            allowed(out, p->reach_max_bytes[r], p->reach_max_blocks[r]);
        forgiven(out, t);
        if (p->fail_on[CAT_LEAKS] && !checked)
            fputs(" (not in --leak-kinds)", out);
        if (r == TM_REACH_UNKNOWN && tr->sum.by_reach[r].blocks > 0)
            fprintf(out, ": %s", tm_unscanned_reason(tr));
        fputc('\n', out);
    }
}

static void text_category(FILE *out, int c, const tally *t, const policy *p)
{
    const char *state = t->failed ? "FAIL" : p->fail_on[c] ? "ok" : "-";
    fprintf(out, "  %-15s %-5s", cat_names[c], state);
    if (c == CAT_LEAKS) {
        leak_counts(out, t);
        allowed(out, p->max_bytes, p->max_blocks);
    } else {
        fprintf(out, "%lld site%s, %lld time%s", t->items, t->items == 1 ? "" : "s",
                t->occurrences, t->occurrences == 1 ? "" : "s");
    }
    forgiven(out, t);
    if (!p->fail_on[c])
        fputs(" (not in --fail-on)", out);
    fputc('\n', out);
}

static void text_failures(FILE *out, const tm_trace *t, const verdict *v)
{
    size_t listed = 0, failing = 0;
    for (size_t i = 0; i < t->nsites; i++) {
        if (v->site_fate[i] != FATE_FAILS || failing++ >= LIST_MAX)
            continue;
        char msg[256];
        report_site_message(msg, sizeof msg, &t->sites[i]);
        fprintf(out, "\nleak, %s\n", msg);
        report_stack_text(out, t->sites[i].stack, "    ", 0);
        listed++;
    }
    for (size_t i = 0; i < t->nfindings; i++) {
        const tm_finding *f = &t->findings[i];
        if (v->finding_fate[i] != FATE_FAILS || failing++ >= LIST_MAX)
            continue;
        char msg[512];
        report_finding_message(msg, sizeof msg, f);
        fputc('\n', out);
        esc_text(out, msg);
        fputs(tm_kind_is_request(f->kind) ? "\n  requested at:\n" : "\n  released at:\n", out);
        report_stack_text(out, f->release, "    ", 0);
        if (f->alloc) {
            fputs("  allocated at:\n", out);
            report_stack_text(out, f->alloc, "    ", 0);
        }
        listed++;
    }
    if (listed < failing)
        fprintf(out, "\n... and %zu more: alloctrace report shows them all\n", failing - listed);
}

static void check_text(FILE *out, const tm_trace *t, const policy *p, const verdict *v)
{
    fputs("alloctrace check: ", out);
    esc_text(out, t->path);
    fputc('\n', out);
    for (int c = 0; c < CATS; c++) {
        text_category(out, c, &v->cat[c], p);
        if (c == CAT_LEAKS)
            text_classes(out, t, v, p);
    }
    if (t->sum.lost_events > 0)
        fprintf(out, "  note: %lld events could not be recorded; problems may be missing, and a block whose"
                " release was one of them counts as leaked unless the exit scan saw it released\n",
                t->sum.lost_events);
    if (t->sum.program_end && strcmp(t->sum.program_end, "died") == 0)
        fputs("  note: the program died before closing its trace; what it held then counts as"
              " leaked, of unknown reachability\n",
              out);
    text_failures(out, t, v);
    fprintf(out, "\n%s\n", v->failed ? "FAILED" : "passed");
}


static void json_failures(jw *w, const tm_trace *t, const verdict *v)
{
    jw_arr(w, "failures");
    for (size_t i = 0; i < t->nsites; i++) {
        const tm_site *s = &t->sites[i];
        if (v->site_fate[i] != FATE_FAILS)
            continue;
        jw_obj(w, NULL);
        jw_str(w, "kind", "leak");
        jw_str(w, "category", cat_names[CAT_LEAKS]);
        jw_str(w, "reachability", tm_reach_name(s->reach));
        jw_int(w, "bytes", s->bytes);
        jw_int(w, "blocks", s->blocks);
        if (s->pool)
            jw_str(w, "pool", s->pool);
        report_json_frames(w, "allocated_at", s->stack);
        jw_end(w);
    }
    for (size_t i = 0; i < t->nfindings; i++) {
        const tm_finding *f = &t->findings[i];
        if (v->finding_fate[i] != FATE_FAILS)
            continue;
        jw_obj(w, NULL);
        jw_str(w, "kind", f->kind_name);
        jw_str(w, "category", cat_names[category_of(f->kind)]);
        jw_int(w, "count", f->count);
        jw_str(w, "detail", f->detail);
        if (f->pool)
            jw_str(w, "pool", f->pool);
        report_json_frames(w, "released_at", f->release);
        if (f->alloc)
            report_json_frames(w, "allocated_at", f->alloc);
        else
            jw_null(w, "allocated_at");
        jw_end(w);
    }
    jw_end(w);
}

/* categories.leaks.reachability: each class, counted or not. */
static void json_classes(jw *w, const policy *p, const verdict *v)
{
    jw_obj(w, "reachability");
    for (int r = 0; r < TM_REACHES; r++) {
        const tally *t = &v->reach[r];
        jw_line(w);
        jw_obj(w, tm_reach_name((enum tm_reach)r));
        jw_bool(w, "checked", p->fail_on[CAT_LEAKS] && counted(p, (enum tm_reach)r));
        jw_bool(w, "failed", t->failed);
        jw_int(w, "sites", t->items);
        jw_int(w, "blocks", t->blocks);
        jw_int(w, "bytes", t->bytes);
        jw_int(w, "suppressed", t->suppressed);
        jw_int(w, "in_baseline", t->baseline);
        jw_int_or_null(w, "max_leaked_bytes", p->reach_max_bytes[r], -1);
        jw_int_or_null(w, "max_leaked_blocks", p->reach_max_blocks[r], -1);
        jw_end(w);
    }
    jw_end(w);
}

static void json_categories(jw *w, const policy *p, const verdict *v)
{
    jw_obj(w, "categories");
    for (int c = 0; c < CATS; c++) {
        const tally *t = &v->cat[c];
        jw_line(w);
        jw_obj(w, cat_names[c]);
        jw_bool(w, "checked", p->fail_on[c]);
        jw_bool(w, "failed", t->failed);
        jw_int(w, "sites", t->items);
        if (c == CAT_LEAKS) {
            jw_int(w, "blocks", t->blocks);
            jw_int(w, "bytes", t->bytes);
        } else {
            jw_int(w, "occurrences", t->occurrences);
        }
        jw_int(w, "suppressed", t->suppressed);
        jw_int(w, "in_baseline", t->baseline);
        if (c == CAT_LEAKS)
            json_classes(w, p, v);
        jw_end(w);
    }
    jw_end(w);
}

static void check_json(FILE *out, const tm_trace *t, const policy *p, const verdict *v,
                       const suppressions *ss, const char *baseline)
{
    jw w;
    jw_init(&w, out);
    jw_obj(&w, NULL);
    jw_str(&w, "format", "alloctrace-check");
    jw_int(&w, "version", 2);
    jw_str(&w, "trace", t->path);
    jw_str(&w, "baseline", baseline);
    jw_str(&w, "result", v->failed ? "fail" : "pass");
    jw_int(&w, "exit_code", v->failed ? EXIT_CHECK_FAILED : 0);
    jw_str(&w, "program_end", t->sum.program_end);
    jw_int(&w, "lost_events", t->sum.lost_events);
    jw_int(&w, "peak_bytes", t->sum.peak_bytes);
    jw_obj(&w, "policy");
    jw_line(&w);
    jw_arr(&w, "fail_on");
    for (int c = 0; c < CATS; c++)
        if (p->fail_on[c])
            jw_str(&w, NULL, cat_names[c]);
    jw_end(&w);
    jw_line(&w);
    jw_arr(&w, "leak_kinds");
    for (int r = 0; r < TM_REACHES; r++)
        if (counted(p, (enum tm_reach)r))
            jw_str(&w, NULL, tm_reach_kind((enum tm_reach)r));
    jw_end(&w);
    jw_int_or_null(&w, "max_leaked_bytes", p->max_bytes, -1);
    jw_int_or_null(&w, "max_leaked_blocks", p->max_blocks, -1);
    jw_end(&w);
    json_categories(&w, p, v);
    json_failures(&w, t, v);
    jw_arr(&w, "unused_suppressions");
    for (size_t i = 0; i < ss->n; i++) {
        if (ss->v[i].used)
            continue;
        jw_line(&w);
        jw_obj(&w, NULL);
        jw_str(&w, "file", ss->v[i].file);
        jw_int(&w, "line", ss->v[i].line);
        jw_str(&w, "rule", ss->v[i].rule);
        jw_end(&w);
    }
    jw_end(&w);
    jw_end(&w);
}

/* Stale suppressions go to stderr whatever the format, where a CI log
 * shows them next to the verdict. */
static void warn_unused(const suppressions *ss)
{
    for (size_t i = 0; i < ss->n; i++) {
        if (ss->v[i].used)
            continue;
        fprintf(stderr, "alloctrace: %s:%d: suppression '", ss->v[i].file, ss->v[i].line);
        esc_text(stderr, ss->v[i].rule);
        fputs("' matched nothing\n", stderr);
    }
}

/* ---- the command ------------------------------------------------------------------------------ */

typedef struct check_args {
    char **traces; /* TRACE|DIR... */
    int ntraces;
    const char *baseline;
    int json;
    policy policy;
    suppressions supp;
} check_args;

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("alloctrace: check: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    cli_usage_hint("check");
    return EXIT_USAGE;
}

/* 0, or an exit code (usage error, or 0 for --help with *done set). */
static int parse_args(int argc, char **argv, check_args *a, int *done)
{
    static const struct option opts[] = {
        {"fail-on", required_argument, NULL, 'F'},
        {"leak-kinds", required_argument, NULL, 'L'},
        {"max-leaked-bytes", required_argument, NULL, 'B'},
        {"max-leaked-blocks", required_argument, NULL, 'N'},
        {"suppressions", required_argument, NULL, 'S'},
        {"baseline", required_argument, NULL, 'b'},
        {"format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 0; /* 0, not 1: glibc then starts over, ordering mode included */
    policy *p = &a->policy;
    default_fail_on(p);
    p->leak_kinds = tm_reach_gated();
    p->max_bytes = p->max_blocks = -1;
    for (int r = 0; r < TM_REACHES; r++)
        p->reach_max_bytes[r] = p->reach_max_blocks[r] = -1;
    while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
        switch (c) {
        case 'F':
            if (parse_fail_on(optarg, &a->policy) != 0)
                return usage_error("--fail-on: '%s' is not a list of %s (or all, none)", optarg,
                                   CAT_LIST);
            break;
        case 'L':
            if (tm_parse_leak_kinds(optarg, &p->leak_kinds) != 0)
                return usage_error("--leak-kinds: '%s' is not a list of %s (or all, none)",
                                   optarg, tm_leak_kinds_words());
            break;
        case 'B':
            if (parse_limit(optarg, 1, &p->max_bytes, p->reach_max_bytes) != 0)
                return usage_error("--max-leaked-bytes needs a size or KIND=size, not '%s'",
                                   optarg);
            break;
        case 'N':
            if (parse_limit(optarg, 0, &p->max_blocks, p->reach_max_blocks) != 0)
                return usage_error("--max-leaked-blocks needs a number or KIND=number, not '%s'",
                                   optarg);
            break;
        case 'S':
            if (load_suppressions(&a->supp, optarg) != 0)
                return EXIT_USAGE;
            break;
        case 'b': a->baseline = optarg; break;
        case 'f':
            if (strcmp(optarg, "text") && strcmp(optarg, "json"))
                return usage_error("--format is text or json, not '%s'", optarg);
            a->json = strcmp(optarg, "json") == 0;
            break;
        case 'h': cli_command_help(stdout, "check"); *done = 1; return 0;
        default: return EXIT_USAGE;
        }
    }
    if (argc - optind < 1)
        return usage_error("%s", "no trace given");
    int limited = p->max_bytes >= 0 || p->max_blocks >= 0;
    for (int r = 0; r < TM_REACHES; r++) {
        int own = p->reach_max_bytes[r] >= 0 || p->reach_max_blocks[r] >= 0;
        if (own && !counted(p, (enum tm_reach)r))
            return usage_error("--max-leaked-*: %s leaks are not in --leak-kinds",
                               tm_reach_kind((enum tm_reach)r));
        limited |= own;
    }
    if (limited && !p->fail_on[CAT_LEAKS])
        return usage_error("%s", "--max-leaked-* limit leaks, which --fail-on leaves out");
    if (limited && !p->leak_kinds)
        return usage_error("%s", "--max-leaked-* limit leaks, which --leak-kinds none leaves out");
    a->traces = argv + optind;
    a->ntraces = argc - optind;
    return 0;
}

static void free_args(check_args *a)
{
    for (size_t i = 0; i < a->supp.n; i++) {
        free(a->supp.v[i].rule);
        free(a->supp.v[i].glob);
    }
    free(a->supp.v);
}

/* How one trace of several is shown (check_one). */
enum show { SHOW_ONE, SHOW_FAILING, SHOW_JSON_ITEM };

/* Judges the trace at `path`: its verdict on stdout (SHOW_FAILING: only if
 * it fails; SHOW_JSON_ITEM: `sep` first); the program and pid into
 * `who`.  0 pass, EXIT_CHECK_FAILED, or EXIT_TOOL. */
static int check_one(check_args *a, const char *path, known *base, enum show show,
                     const char *sep, char *who, size_t size)
{
    sqlite3 *db;
    if (cli_open_trace(path, &db) != 0)
        return EXIT_TOOL;
    tm_trace t;
    int rc = EXIT_TOOL;
    if (tm_load(&t, db, path, TM_SUMMARY | TM_PEAK | TM_LEAKS | TM_FINDINGS) == 0) {
        verdict v;
        decide(&v, &t, &a->policy, &a->supp, base);
        if (show == SHOW_JSON_ITEM)
            fputs(sep, stdout);
        if (a->json)
            check_json(stdout, &t, &a->policy, &v, &a->supp, a->baseline);
        else if (show == SHOW_ONE || v.failed)
            check_text(stdout, &t, &a->policy, &v);
        snprintf(who, size, "%s, pid %lld",
                 tm_basename(t.sum.executable ? t.sum.executable : "?"), t.sum.pid);
        rc = v.failed ? EXIT_CHECK_FAILED : 0;
        free(v.site_fate);
        free(v.finding_fate);
    }
    tm_free(&t);
    sqlite3_close(db);
    return rc;
}

/* Several traces (or a directory): each failing one's verdict in full,
 * then a line per failing trace and the count of those that passed; one
 * verdict over all.  With --format json, an array of the verdicts. */
static int check_all(check_args *a, const cli_paths *all, known *base)
{
    int failed = 0, passed = 0, broken = 0;
    char *fails = calloc(all->n, 1);
    char (*who)[160] = calloc(all->n, sizeof *who);
    if (!fails || !who)
        cli_die("out of memory");
    if (a->json)
        fputs("[", stdout);
    for (size_t i = 0; i < all->n; i++) {
        int rc = check_one(a, all->v[i], base, a->json ? SHOW_JSON_ITEM : SHOW_FAILING,
                           i ? "," : "", who[i], sizeof who[i]);
        fails[i] = rc == EXIT_CHECK_FAILED;
        failed += rc == EXIT_CHECK_FAILED;
        passed += rc == 0;
        broken += rc == EXIT_TOOL;
    }
    if (a->json) {
        fputs("]\n", stdout);
    } else {
        printf("%salloctrace check: %zu traces\n", failed ? "\n" : "", all->n);
        for (size_t i = 0; i < all->n; i++) {
            if (!fails[i])
                continue;
            fputs("FAIL ", stdout);
            esc_text(stdout, all->v[i]);
            fputs(" (", stdout);
            esc_text(stdout, who[i]);
            fputs(")\n", stdout);
        }
        printf("%d failed, %d clean (not listed)%s\n\n%s\n", failed, passed,
               broken ? ", some could not be read" : "", failed || broken ? "FAILED" : "passed");
    }
    free(fails);
    free(who);
    return broken ? EXIT_TOOL : failed ? EXIT_CHECK_FAILED : 0;
}

static int run_check(check_args *a)
{
    known *base = NULL;
    if (a->baseline && load_baseline(a->baseline, &base) != 0)
        return EXIT_TOOL;
    cli_paths all = {0};
    int rc = cli_expand_traces(a->ntraces, a->traces, &all) != 0 ? EXIT_TOOL : 0;
    struct stat st;
    int single = a->ntraces == 1 && !(stat(a->traces[0], &st) == 0 && S_ISDIR(st.st_mode));
    if (rc == 0 && single) {
        char who[160];
        rc = check_one(a, all.v[0], base, SHOW_ONE, "", who, sizeof who);
    } else if (rc == 0) {
        rc = check_all(a, &all, base);
    }
    if (rc != EXIT_TOOL || all.n)
        warn_unused(&a->supp);
    if (fflush(stdout) != 0)
        rc = EXIT_TOOL;
    cli_paths_free(&all);
    forget_all(&base);
    return rc;
}

int cmd_check(int argc, char **argv)
{
    check_args a = {0};
    int done = 0, rc = parse_args(argc, argv, &a, &done);
    if (rc == 0 && !done)
        rc = run_check(&a);
    free_args(&a);
    return rc;
}
