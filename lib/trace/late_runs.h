/* Lifetimes set aside while a trace is recorded, packed in runs.
 *
 * The writer sets aside the lifetimes of a sorted batch whose allocation
 * lies far below the newest row of `lifetimes` (rows.c, LATE_DISTANCE);
 * they go, a batch at a time, into one row of `late.lifetimes_late_runs`
 * (schema.h): `rows` lifetimes in `seq` order, packed in `data`.  Writing
 * a run is one blob where a row a lifetime cost SQLite's work of a row,
 * and merging the runs at completion (complete.c) needs no sorter: each
 * run is read in order.
 *
 * A row in `data`: the mask of its NULL columns, then its `seq` less the
 * previous row's (the first row's less 0), then every other column that
 * is not NULL, in the order of `lifetimes`; each an unsigned LEB128 of
 * the value's 64 bits.  `seq` is never NULL and grows within a run.
 */
#ifndef AT_LATE_RUNS_H
#define AT_LATE_RUNS_H

#include <stddef.h>
#include <stdint.h>

enum {
    AT_LATE_COLS = 11,                          /* the columns of `lifetimes` */
    AT_LATE_ROW_MAX = 10 * (AT_LATE_COLS + 1), /* bytes a packed row takes at most */
};

static inline size_t at__late_put_u64(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

/* Packs row v (nulls: a bit a NULL column) after the row of `prev_seq`;
 * the bytes written, at most AT_LATE_ROW_MAX. */
static inline size_t at__late_put(uint8_t *out, uint64_t prev_seq, const int64_t *v,
                                  uint32_t nulls)
{
    size_t n = at__late_put_u64(out, nulls);
    n += at__late_put_u64(out + n, (uint64_t)v[0] - prev_seq);
    for (int c = 1; c < AT_LATE_COLS; c++)
        if (!(nulls >> c & 1))
            n += at__late_put_u64(out + n, (uint64_t)v[c]);
    return n;
}

static inline size_t at__late_get_u64(const uint8_t *in, size_t avail, uint64_t *v)
{
    uint64_t x = 0;
    for (size_t n = 0; n < avail && n < 10; n++) {
        x |= (uint64_t)(in[n] & 0x7f) << (7 * n);
        if (!(in[n] & 0x80)) {
            *v = x;
            return n + 1;
        }
    }
    return 0;
}

/* Unpacks the row at `in` (avail bytes there) that follows the row of
 * `prev_seq`: the bytes it took, or 0 when they do not make a row (cut
 * short, a mask naming `seq` or columns that do not exist, a `seq` that
 * does not grow). */
static inline size_t at__late_get(const uint8_t *in, size_t avail, uint64_t prev_seq, int64_t *v,
                                  uint32_t *nulls)
{
    uint64_t x;
    size_t n = at__late_get_u64(in, avail, &x), k;
    if (!n || x >> AT_LATE_COLS || (x & 1))
        return 0;
    *nulls = (uint32_t)x;
    if (!(k = at__late_get_u64(in + n, avail - n, &x)) || x == 0 || prev_seq + x < prev_seq)
        return 0;
    n += k;
    v[0] = (int64_t)(prev_seq + x);
    for (int c = 1; c < AT_LATE_COLS; c++) {
        v[c] = 0;
        if (*nulls >> c & 1)
            continue;
        if (!(k = at__late_get_u64(in + n, avail - n, &x)))
            return 0;
        v[c] = (int64_t)x;
        n += k;
    }
    return n;
}

#endif
