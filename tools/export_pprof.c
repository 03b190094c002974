/* A pprof profile (perftools.profiles.Profile, profile.proto), gzipped, as
 * `pprof`, speedscope and Pyroscope read it: the sample types of Go's heap
 * profiles (alloc_objects/count, alloc_space/bytes, inuse_objects/count,
 * inuse_space/bytes), one sample per stack, one location per frame of the
 * trace (its inlined functions as the location's first lines, the function
 * around them last, as profile.proto orders them), one function per name
 * and file.  No mappings: every location is symbolized already.
 *
 * The protobuf encoding is written here: varints, tags, length-delimited
 * fields and packed repeated integers are all this message needs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>
#include <zlib.h>

#include "export.h"

/* ---- protobuf ---------------------------------------------------------------- */

typedef struct pb {
    unsigned char *b;
    size_t n, cap;
} pb;

enum { WIRE_VARINT = 0, WIRE_LEN = 2 };

static void pb_put(pb *p, const void *d, size_t n)
{
    if (p->n + n > p->cap) {
        size_t cap = p->cap ? p->cap : 256;
        while (cap < p->n + n)
            cap *= 2;
        p->b = tm_xrealloc(p->b, cap);
        p->cap = cap;
    }
    if (n)
        memcpy(p->b + p->n, d, n);
    p->n += n;
}

static void pb_varint(pb *p, uint64_t v)
{
    unsigned char buf[10];
    size_t n = 0;
    do {
        buf[n++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_put(p, buf, n);
}

static void pb_tag(pb *p, unsigned field, unsigned wire)
{
    pb_varint(p, (uint64_t)field << 3 | wire);
}

/* An integer field; 0, proto3's default, is left out. */
static void pb_int(pb *p, unsigned field, long long v)
{
    if (v) {
        pb_tag(p, field, WIRE_VARINT);
        pb_varint(p, (uint64_t)v);
    }
}

static void pb_bytes(pb *p, unsigned field, const void *d, size_t n)
{
    pb_tag(p, field, WIRE_LEN);
    pb_varint(p, n);
    pb_put(p, d, n);
}

/* `sub` as field `field` of `p`; `sub` is emptied for the next message. */
static void pb_msg(pb *p, unsigned field, pb *sub)
{
    pb_bytes(p, field, sub->b, sub->n);
    sub->n = 0;
}

/* ---- the tables: strings, functions, locations ------------------------------ */

typedef struct str_entry {
    UT_hash_handle hh;
    long long index;
    char s[]; /* the key */
} str_entry;

typedef struct fn_entry {
    UT_hash_handle hh;
    struct {
        long long name, file;
    } key;
    long long id;
} fn_entry;

/* A location is a run of the stack's lines: a frame's inlined functions and
 * the frame itself.  Cached frames are shared between stacks, so the run's
 * first line and its length name it. */
typedef struct loc_entry {
    UT_hash_handle hh;
    struct {
        const tm_frame *first;
        size_t nlines;
    } key;
    long long id;
} loc_entry;

typedef struct encoder {
    pb strings, functions, locations, sub, line; /* encoded tables; scratch messages */
    str_entry *str_by_text;
    long long nstrings;
    fn_entry *fn_by_key;
    long long nfunctions;
    loc_entry *loc_by_key;
    long long nlocations;
} encoder;

static long long string_index(encoder *e, const char *s)
{
    if (!s)
        s = "";
    size_t len = strlen(s);
    str_entry *x;
    HASH_FIND(hh, e->str_by_text, s, len, x);
    if (x)
        return x->index;
    x = tm_xrealloc(NULL, sizeof *x + len + 1);
    memset(x, 0, sizeof *x);
    memcpy(x->s, s, len + 1);
    x->index = e->nstrings++;
    HASH_ADD(hh, e->str_by_text, s[0], len, x);
    pb_bytes(&e->strings, 6, s, len);
    return x->index;
}

static long long function_id(encoder *e, const tm_frame *f)
{
    char buf[4200];
    fn_entry k, *x;
    memset(&k, 0, sizeof k);
    k.key.name = string_index(e, f ? ex_frame_name(f, buf, sizeof buf) : "[no stack]");
    k.key.file = string_index(e, f ? f->file : NULL);
    HASH_FIND(hh, e->fn_by_key, &k.key, sizeof k.key, x);
    if (x)
        return x->id;
    x = tm_xrealloc(NULL, sizeof *x);
    *x = k;
    x->id = ++e->nfunctions;
    HASH_ADD(hh, e->fn_by_key, key, sizeof x->key, x);
    pb_int(&e->sub, 1, x->id);
    pb_int(&e->sub, 2, x->key.name);
    pb_int(&e->sub, 3, x->key.name); /* system_name: the same, demangled */
    pb_int(&e->sub, 4, x->key.file);
    pb_msg(&e->functions, 5, &e->sub);
    return x->id;
}

/* The location of lines[0..n) (NULL, 1: the "[no stack]" pseudo-frame). */
static long long location_id(encoder *e, const tm_frame *const *lines, size_t n)
{
    loc_entry k, *x;
    memset(&k, 0, sizeof k);
    k.key.first = lines ? lines[0] : NULL;
    k.key.nlines = n;
    HASH_FIND(hh, e->loc_by_key, &k.key, sizeof k.key, x);
    if (x)
        return x->id;
    x = tm_xrealloc(NULL, sizeof *x);
    *x = k;
    x->id = ++e->nlocations;
    HASH_ADD(hh, e->loc_by_key, key, sizeof x->key, x);
    pb loc = {0};
    pb_int(&loc, 1, x->id);
    if (lines)
        pb_int(&loc, 3, lines[n - 1]->ip);
    for (size_t i = 0; i < n; i++) {
        const tm_frame *f = lines ? lines[i] : NULL;
        pb_int(&e->line, 1, function_id(e, f));
        pb_int(&e->line, 2, f ? f->line : 0);
        pb_msg(&loc, 4, &e->line);
    }
    pb_msg(&e->locations, 4, &loc);
    free(loc.b);
    return x->id;
}

/* ---- the profile -------------------------------------------------------------- */

static void encode_sample(encoder *e, pb *out, tm_trace *t, const ex_sample *s)
{
    const tm_frame *const *frames;
    size_t n = ex_frames(t, s->stack, &frames);
    pb ids = {0}, values = {0}, sample = {0};
    if (n == 0)
        pb_varint(&ids, (uint64_t)location_id(e, NULL, 1));
    /* Leaf first; a frame's inlined functions (flagged) run up to the
     * frame itself. */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && frames[j]->inlined)
            j++;
        pb_varint(&ids, (uint64_t)location_id(e, frames + i, j - i + 1));
        i = j + 1;
    }
    for (int v = 0; v < EX_VALUES; v++)
        pb_varint(&values, (uint64_t)s->v[v]);
    pb_msg(&sample, 1, &ids);
    pb_msg(&sample, 2, &values);
    pb_msg(out, 2, &sample);
    free(ids.b);
    free(values.b);
    free(sample.b);
}

static void value_type(encoder *e, pb *out, unsigned field, const char *type, const char *unit)
{
    pb_int(&e->sub, 1, string_index(e, type));
    pb_int(&e->sub, 2, string_index(e, unit));
    pb_msg(out, field, &e->sub);
}

static void encode_profile(encoder *e, pb *out, const ex_profile *p)
{
    string_index(e, ""); /* string_table[0] must be "" */
    static const char *const types[EX_VALUES][2] = {
        {"alloc_objects", "count"},
        {"alloc_space", "bytes"},
        {"inuse_objects", "count"},
        {"inuse_space", "bytes"},
    };
    for (int v = 0; v < EX_VALUES; v++)
        value_type(e, out, 1, types[v][0], types[v][1]);
    for (size_t i = 0; i < p->n; i++) {
        encode_sample(e, out, p->t, &p->samples[i]);
        if ((i & 1023) == 0)
            tm_progress((double)i / (double)p->n);
    }
    pb_put(out, e->locations.b, e->locations.n);
    pb_put(out, e->functions.b, e->functions.n);
    pb_int(out, 10, p->t->sum.duration_us > 0 ? p->t->sum.duration_us * 1000 : 0);
    value_type(e, out, 11, "space", "bytes");
    pb_int(out, 12, 1);
    static const char *const what[] = {"leaks", "allocations", "peak"};
    char comment[512];
    snprintf(comment, sizeof comment, "alloctrace export --what %s: %s", what[p->what],
             p->t->sum.executable ? p->t->sum.executable : "?");
    pb_int(out, 13, string_index(e, comment));
    pb_int(out, 14, string_index(e, p->what == EX_ALLOCATIONS ? "alloc_space" : "inuse_space"));
    /* Last: every string is known now. */
    pb_put(out, e->strings.b, e->strings.n);
}

static void encoder_free(encoder *e)
{
    str_entry *s, *ts;
    HASH_ITER(hh, e->str_by_text, s, ts)
    {
        HASH_DEL(e->str_by_text, s);
        free(s);
    }
    fn_entry *f, *tf;
    HASH_ITER(hh, e->fn_by_key, f, tf)
    {
        HASH_DEL(e->fn_by_key, f);
        free(f);
    }
    loc_entry *l, *tl;
    HASH_ITER(hh, e->loc_by_key, l, tl)
    {
        HASH_DEL(e->loc_by_key, l);
        free(l);
    }
    free(e->strings.b);
    free(e->functions.b);
    free(e->locations.b);
    free(e->sub.b);
    free(e->line.b);
}

/* ---- gzip (zlib) -------------------------------------------------------------- */

static int gzip_to(FILE *out, const unsigned char *d, size_t n)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* 15 + 16: a gzip header and trailer around the deflate stream. */
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return -1;
    unsigned char buf[65536];
    int rc = Z_OK;
    size_t done = 0;
    while (rc != Z_STREAM_END) {
        size_t chunk = n - done < (1u << 30) ? n - done : (1u << 30);
        z.next_in = (unsigned char *)(uintptr_t)(d + done);
        z.avail_in = (uInt)chunk;
        int flush = done + chunk == n ? Z_FINISH : Z_NO_FLUSH;
        do {
            z.next_out = buf;
            z.avail_out = sizeof buf;
            rc = deflate(&z, flush);
            if (rc == Z_STREAM_ERROR ||
                fwrite(buf, 1, sizeof buf - z.avail_out, out) != sizeof buf - z.avail_out) {
                deflateEnd(&z);
                return -1;
            }
        } while (z.avail_out == 0);
        done += chunk - z.avail_in;
    }
    deflateEnd(&z);
    return 0;
}

int ex_write_pprof(FILE *out, const ex_profile *p)
{
    encoder e;
    memset(&e, 0, sizeof e);
    pb profile = {0};
    encode_profile(&e, &profile, p);
    encoder_free(&e);
    if (tm_check(p->t) != 0) {
        free(profile.b);
        return -1;
    }
    int rc = gzip_to(out, profile.b, profile.n);
    free(profile.b);
    if (rc != 0)
        fprintf(stderr, "alloctrace: export: cannot write the profile\n");
    return rc;
}
