/* An example: a word-frequency index whose memory comes from an
 * at_allocator, traced into a SQLite trace.
 *
 *   word_index TRACE.db [FILE...]
 *
 * It reads words from the files (or stdin), keeps them in a hash table of
 * chained entries, prints the ten most frequent, and frees the table.  It
 * has two bugs on purpose, the kind alloctrace exists to find: entries of
 * words seen exactly once are not freed when their bucket is emptied (a
 * leak), and each bucket array is released with a layout that forgot the
 * alignment it was allocated with (a layout mismatch).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <alloctrace/alloctrace.h>

struct entry {
    struct entry *next;
    size_t count;
    size_t len;
    char word[];
};

struct index {
    at_allocator a;
    struct entry **buckets;
    size_t nbuckets, nwords;
};

static at_layout entry_layout(size_t len)
{
    at_layout head = AT_LAYOUT_OF(struct entry), text, whole;
    size_t offset;
    if (at_layout_array(AT_LAYOUT_OF(char), len + 1, &text) != 0 ||
        at_layout_extend(head, text, &whole, &offset) != 0)
        abort();
    return at_layout_pad_to_align(whole);
}

static at_layout buckets_layout(size_t n)
{
    at_layout l;
    /* Buckets are cache-line aligned. */
    if (at_layout_from_size_align(n * sizeof(struct entry *), 64, &l) != 0)
        abort();
    return l;
}

static size_t hash(const char *s, size_t len)
{
    size_t h = 1469598103934665603u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211u;
    return h;
}

static void index_grow(struct index *ix)
{
    size_t n = ix->nbuckets ? ix->nbuckets * 2 : 64;
    struct entry **b = at_alloc_zeroed(ix->a, buckets_layout(n));
    if (!b)
        abort();
    for (size_t i = 0; i < ix->nbuckets; i++) {
        for (struct entry *e = ix->buckets[i], *next; e; e = next) {
            next = e->next;
            size_t k = hash(e->word, e->len) & (n - 1);
            e->next = b[k];
            b[k] = e;
        }
    }
    if (ix->buckets) {
        /* Bug: released as if it had the alignment of a pointer. */
        at_layout wrong = {ix->nbuckets * sizeof(struct entry *), _Alignof(struct entry *)};
        at_dealloc(ix->a, ix->buckets, wrong);
    }
    ix->buckets = b;
    ix->nbuckets = n;
}

static void index_add(struct index *ix, const char *w, size_t len)
{
    if (ix->nwords >= ix->nbuckets)
        index_grow(ix);
    size_t k = hash(w, len) & (ix->nbuckets - 1);
    for (struct entry *e = ix->buckets[k]; e; e = e->next)
        if (e->len == len && memcmp(e->word, w, len) == 0) {
            e->count++;
            return;
        }
    struct entry *e = at_alloc(ix->a, entry_layout(len));
    if (!e)
        abort();
    e->count = 1;
    e->len = len;
    memcpy(e->word, w, len);
    e->word[len] = '\0';
    e->next = ix->buckets[k];
    ix->buckets[k] = e;
    ix->nwords++;
}

static void index_free(struct index *ix)
{
    for (size_t i = 0; i < ix->nbuckets; i++) {
        for (struct entry *e = ix->buckets[i], *next; e; e = next) {
            next = e->next;
            if (e->count > 1) /* Bug: singletons are forgotten. */
                at_dealloc(ix->a, e, entry_layout(e->len));
        }
    }
    at_dealloc(ix->a, ix->buckets, buckets_layout(ix->nbuckets));
}

static void read_words(struct index *ix, FILE *f)
{
    char w[128];
    size_t len = 0;
    int c;
    while ((c = getc(f)) != EOF) {
        if (isalnum(c) || c == '_') {
            if (len < sizeof w)
                w[len++] = (char)tolower(c);
        } else if (len) {
            index_add(ix, w, len);
            len = 0;
        }
    }
    if (len)
        index_add(ix, w, len);
}

static void print_top(const struct index *ix, int n)
{
    for (int k = 0; k < n; k++) {
        const struct entry *best = NULL;
        for (size_t i = 0; i < ix->nbuckets; i++)
            for (const struct entry *e = ix->buckets[i]; e; e = e->next)
                if ((!best || e->count > best->count) && (long)e->count > 0)
                    best = e;
        if (!best)
            break;
        /* Each line is formatted in a short-lived buffer. */
        at_layout l = at_layout_from_size_align_unchecked(32 + best->len, 1);
        char *line = at_alloc(ix->a, l);
        if (line) {
            snprintf(line, l.size, "%8zu %s", best->count, best->word);
            puts(line);
            at_dealloc(ix->a, line, l);
        }
        ((struct entry *)best)->count = -best->count; /* mark as printed */
    }
    for (size_t i = 0; i < ix->nbuckets; i++)
        for (struct entry *e = ix->buckets[i]; e; e = e->next)
            if ((long)e->count < 0)
                e->count = -e->count;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s TRACE.db [FILE...]\n", argv[0]);
        return 2;
    }
    at_trace_options opts;
    at_trace_options_init(&opts);
    opts.path = argv[1];
    opts.overwrite = 1;
    at_tracer *tracer;
    int rc = at_tracer_open(&opts, &tracer);
    if (rc != 0) {
        fprintf(stderr, "%s: %s: %s\n", argv[0], argv[1], at_strerror(rc));
        return 1;
    }
    struct index ix = {.a = at_tracing_allocator(tracer, at_system_allocator())};
    if (argc == 2)
        read_words(&ix, stdin);
    for (int i = 2; i < argc; i++) {
        FILE *f = fopen(argv[i], "r");
        if (!f) {
            perror(argv[i]);
            continue;
        }
        read_words(&ix, f);
        fclose(f);
    }
    printf("%zu distinct words\n", ix.nwords);
    /* Everything print_top allocates must be gone when it returns. */
    uint64_t mark = at_tracer_mark(tracer, "print_top");
    print_top(&ix, 10);
    at_live_summary since;
    at_tracer_live_since(tracer, mark, &since);
    if (since.blocks)
        fprintf(stderr, "print_top leaked %llu blocks\n", (unsigned long long)since.blocks);
    index_free(&ix);
    rc = at_tracer_close(tracer);
    if (rc != 0) {
        fprintf(stderr, "%s: writing the trace: %s\n", argv[0], at_strerror(rc));
        return 1;
    }
    return 0;
}
