/* alloctrace export: a trace's blocks by allocation stack, for the tools
 * people already use (docs/cli.md).
 *
 *   --format pprof    a gzipped pprof profile (export_pprof.c)
 *   --format folded   one `frame;frame;frame VALUE` line per distinct stack,
 *                     root first (Brendan Gregg's format: flamegraph.pl,
 *                     inferno, speedscope)
 *   --what leaks         the blocks live at the end but the runtimes' own
 *                        (the `leaks` view): alloc_* = inuse_*
 *   --what allocations   every allocation (alloc_*), and of them the
 *                        leaks (inuse_*), as a Go heap profile at exit
 *   --what peak          the blocks live at the peak (meta.peak_seq):
 *                        alloc_* = inuse_*
 *
 * The trace is only read; the output goes through cli_output_open. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "export.h"

enum format { FORMAT_PPROF, FORMAT_FOLDED };

/* ---- frames ---------------------------------------------------------------- */

size_t ex_frames(tm_trace *t, long long stack, const tm_frame *const **out)
{
    *out = NULL;
    if (stack == 0)
        return 0;
    const tm_stack *s = tm_stack_of(t, stack);
    if (s->depth == 0)
        return 0;
    size_t skip = s->skip < s->depth ? s->skip : 0;
    *out = s->frames + skip;
    return s->depth - skip;
}

const char *ex_frame_name(const tm_frame *f, char *buf, size_t size)
{
    if (f->function)
        return f->function;
    if (f->module)
        snprintf(buf, size, "%s+0x%llx", tm_basename(f->module),
                 (unsigned long long)f->module_offset);
    else
        snprintf(buf, size, "0x%llx", (unsigned long long)f->ip);
    return buf;
}

/* ---- the samples ------------------------------------------------------------ */

/* Each row: stack, then the EX_VALUES values.  Blocks with no stack are
 * stack 0. */
static const char *samples_sql(enum ex_what what)
{
    switch (what) {
    case EX_LEAKS:
        return "SELECT coalesce(stack, 0) AS s, count(*), sum(size), count(*), sum(size)"
               " FROM leaks GROUP BY s ORDER BY s";
    case EX_ALLOCATIONS:
        return "WITH a AS (SELECT coalesce(stack, 0) AS s, count(*) AS n, sum(size) AS b"
               "           FROM lifetimes GROUP BY s),"
               " k AS (SELECT coalesce(stack, 0) AS s, count(*) AS n, sum(size) AS b"
               "       FROM leaks GROUP BY s)"
               " SELECT a.s, a.n, a.b, coalesce(k.n, 0), coalesce(k.b, 0)"
               " FROM a LEFT JOIN k ON k.s = a.s ORDER BY a.s";
    case EX_PEAK:
        /* docs/schema.md's blocks live at the peak, from the table itself. */
        return "SELECT coalesce(stack, 0) AS s, count(*), sum(size), count(*), sum(size)"
               " FROM lifetimes WHERE ?1 > 0 AND seq <= ?1"
               " AND (free_dseq IS NULL OR seq + free_dseq > ?1) GROUP BY s ORDER BY s";
    }
    return NULL;
}

/* 0, or -1 after a message (a query failed: corrupt trace, a sum that
 * overflows). */
static int load_samples(ex_profile *p)
{
    sqlite3 *db = p->t->db;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, samples_sql(p->what), -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "alloctrace: export: cannot read %s: %s\n", p->t->path,
                sqlite3_errmsg(db));
        return -1;
    }
    if (p->what == EX_PEAK)
        sqlite3_bind_int64(st, 1, p->t->sum.peak_seq);
    size_t cap = 0;
    int rc;
    tm_progress_start("reading the blocks");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (p->n == cap) {
            cap = cap ? cap * 2 : 256;
            p->samples = tm_xrealloc(p->samples, cap * sizeof *p->samples);
        }
        ex_sample *s = &p->samples[p->n++];
        s->stack = sqlite3_column_int64(st, 0);
        for (int v = 0; v < EX_VALUES; v++)
            s->v[v] = sqlite3_column_int64(st, 1 + v);
        tm_progress(-1);
    }
    tm_progress_done();
    if (rc != SQLITE_DONE)
        fprintf(stderr, "alloctrace: export: cannot read %s: %s\n", p->t->path,
                sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- folded ------------------------------------------------------------------- */

typedef struct folded_line {
    char *text; /* the frames, root first */
    long long value;
} folded_line;

/* A frame as folded text: ';' would split it and a line break end the
 * line, so they and every other control character become '_'. */
static void append_frame(char **s, size_t *len, const char *name)
{
    size_t n = strlen(name);
    *s = tm_xrealloc(*s, *len + n + 2);
    if (*len)
        (*s)[(*len)++] = ';';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        (*s)[(*len)++] = c == ';' || c < 0x20 || c == 0x7f ? '_' : (char)c;
    }
    (*s)[*len] = '\0';
}

static char *folded_text(tm_trace *t, long long stack)
{
    const tm_frame *const *frames;
    size_t n = ex_frames(t, stack, &frames);
    char *s = NULL, buf[4200];
    size_t len = 0;
    if (n == 0)
        append_frame(&s, &len, "[no stack]");
    for (size_t i = n; i-- > 0;)
        append_frame(&s, &len, ex_frame_name(frames[i], buf, sizeof buf));
    return s;
}

static int by_text(const void *a, const void *b)
{
    return strcmp(((const folded_line *)a)->text, ((const folded_line *)b)->text);
}

/* Stacks that read the same (other return addresses, one line) are one
 * line, their values added; lines in byte order, values of 0 left out. */
static int write_folded(FILE *out, const ex_profile *p, int value)
{
    folded_line *lines = tm_xrealloc(NULL, (p->n ? p->n : 1) * sizeof *lines);
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++)
        if (p->samples[i].v[value] != 0)
            lines[n++] = (folded_line){folded_text(p->t, p->samples[i].stack),
                                       p->samples[i].v[value]};
    qsort(lines, n, sizeof *lines, by_text);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        long long sum = lines[i].value;
        for (; j < n && strcmp(lines[j].text, lines[i].text) == 0; j++)
            sum = tm_sat_add(sum, lines[j].value);
        fprintf(out, "%s %lld\n", lines[i].text, sum);
        i = j;
    }
    for (size_t i = 0; i < n; i++)
        free(lines[i].text);
    free(lines);
    return tm_check(p->t);
}

/* ---- the command ---------------------------------------------------------------- */

typedef struct export_opts {
    enum format format;
    enum ex_what what;
    int value; /* EX_ALLOC_SPACE or EX_ALLOC_OBJECTS */
    const char *output, *trace;
} export_opts;

static int pick(const char *arg, const char *option, const char *const *words, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(arg, words[i]) == 0)
            return i;
    fprintf(stderr, "alloctrace: export: %s is ", option);
    for (int i = 0; i < n; i++)
        fprintf(stderr, "%s%s", words[i], i + 2 < n ? ", " : i + 1 < n ? " or " : "\n");
    return -1;
}

/* 0, or an exit status after a message; -1 for --help. */
static int parse(int argc, char **argv, export_opts *o)
{
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'}, {"what", required_argument, NULL, 'w'},
        {"value", required_argument, NULL, 'v'},  {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    static const char *const formats[] = {"pprof", "folded"};
    static const char *const whats[] = {"leaks", "allocations", "peak"};
    static const char *const values[] = {"bytes", "blocks"};
    int c, i;
    *o = (export_opts){FORMAT_PPROF, EX_LEAKS, EX_ALLOC_SPACE, NULL, NULL};
    optind = 0;
    while ((c = cli_getopt(argc, argv, "o:h", opts)) != -1) {
        switch (c) {
        case 'f':
            if ((i = pick(optarg, "--format", formats, 2)) < 0)
                return EXIT_USAGE;
            o->format = (enum format)i;
            break;
        case 'w':
            if ((i = pick(optarg, "--what", whats, 3)) < 0)
                return EXIT_USAGE;
            o->what = (enum ex_what)i;
            break;
        case 'v':
            if ((i = pick(optarg, "--value", values, 2)) < 0)
                return EXIT_USAGE;
            o->value = i == 0 ? EX_ALLOC_SPACE : EX_ALLOC_OBJECTS;
            break;
        case 'o': o->output = optarg; break;
        case 'h': cli_command_help(stdout, "export"); return -1;
        default: return EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "alloctrace: export: one trace, %d given (alloctrace export --help)\n",
                argc - optind);
        return EXIT_USAGE;
    }
    o->trace = argv[optind];
    return 0;
}

/* Refuses an output that would replace the trace, or binary on a terminal. */
static int check_output(const export_opts *o)
{
    struct stat in, out;
    if (o->output && stat(o->output, &out) == 0 && stat(o->trace, &in) == 0 &&
        in.st_dev == out.st_dev && in.st_ino == out.st_ino) {
        fprintf(stderr, "alloctrace: export: -o %s is the trace itself\n", o->output);
        return EXIT_USAGE;
    }
    if (!o->output && o->format == FORMAT_PPROF && isatty(STDOUT_FILENO)) {
        fprintf(stderr, "alloctrace: export: a pprof profile is binary: give -o FILE\n");
        return EXIT_USAGE;
    }
    return 0;
}

static int write_profile(const export_opts *o, const ex_profile *p)
{
    cli_output out;
    FILE *f = o->output ? cli_output_open(o->output, &out) : stdout;
    if (!f)
        return EXIT_TOOL;
    tm_progress_start("writing the profile");
    int rc = o->format == FORMAT_PPROF ? ex_write_pprof(f, p) : write_folded(f, p, o->value);
    tm_progress_done();
    if (o->output)
        rc = cli_output_close(f, &out, rc != 0) != 0 ? -1 : rc;
    else if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "alloctrace: export: cannot write the output\n");
        rc = -1;
    }
    return rc == 0 ? 0 : EXIT_TOOL;
}

int cmd_export(int argc, char **argv)
{
    export_opts o;
    int rc = parse(argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if ((rc = check_output(&o)) != 0)
        return rc;
    sqlite3 *db;
    if (cli_open_trace(o.trace, &db) != 0)
        return EXIT_TOOL;
    tm_trace t;
    ex_profile p = {&t, o.what, NULL, 0};
    rc = tm_load(&t, db, o.trace, TM_SUMMARY | (o.what == EX_PEAK ? TM_PEAK : 0));
    if (rc == 0)
        rc = load_samples(&p);
    rc = rc == 0 ? write_profile(&o, &p) : EXIT_TOOL;
    free(p.samples);
    tm_free(&t);
    sqlite3_close(db);
    return rc;
}
