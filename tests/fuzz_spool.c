/* A mutation fuzzer of the spool reader (lib/trace/spool_reader.c): the
 * code behind `alloctrace recover SPOOL`, which reads a file anybody can
 * hand it.  Built and run only in the sanitizer build (tests/meson.build,
 * suite 'fuzz'), where a bad read or write, an undefined shift or a leak
 * stops it with the sanitizer's report.
 *
 *   fuzz_spool DIR ITERATIONS SECONDS
 *
 * The seed is a real spool, written here by the tracer's spool sink (the
 * preload library's) while this program allocates through it: several
 * threads, stacks, marks, leaks, bad releases, the END record.  Each
 * iteration mutates a copy of its used part (header, chunk headers,
 * records: bit flips, boundary values, copied and cut ranges), writes it
 * to DIR/input.spool (as large as the seed's file, sparse) and reads it as `recover` does.  The input of a run
 * that crashes stays there; a run that takes more than 20 s is a hang:
 * its input is kept as DIR/hang.spool and the fuzzer fails.  The reader's
 * memory must stay bounded by the input's size: an input that grows the
 * largest resident set by over 256 MiB is kept as DIR/memory.spool and
 * fails it, and the largest resident set over the whole run is checked
 * at the end.  Prints how many inputs ran,
 * how many the reader refused, how many became traces. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <alloctrace/alloctrace.h>

#include "spool.h"
#include "spool_reader.h"
#include "test.h"
#include "tracer_internal.h"

const char *test_current = "fuzz_spool";

static char input_path[4096], db_path[4096], hang_path[4096], memory_path[4096];
static unsigned char *input;
static size_t input_len;
static off_t file_size; /* the seed's: the spool's full, sparse, size */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long max_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* The input as the reader was given it (the reader changes the file). */
static void save_input(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        ssize_t w = write(fd, input, input_len);
        (void)w;
        int t = ftruncate(fd, file_size);
        (void)t;
        close(fd);
    }
}

static void on_alarm(int sig)
{
    (void)sig;
    save_input(hang_path); /* open, write, ftruncate: async-signal-safe */
    static const char msg[] = "fuzz_spool: the reader hung (over 20 s); input kept\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(1);
}

/* ---- the seed: a spool written by the tracer ------------------------------------------ */

static void *worker(void *arg)
{
    at_allocator a = *(at_allocator *)arg;
    void *keep[64];
    for (int i = 0; i < 64; i++)
        keep[i] = at_alloc(a, (at_layout){(size_t)(16 + 8 * i), (size_t)1 << (i % 7)});
    for (int i = 0; i < 64; i += 2)
        at_dealloc(a, keep[i], (at_layout){(size_t)(16 + 8 * i), (size_t)1 << (i % 7)});
    return NULL; /* the odd ones leak */
}

static at_tracer *volatile seed_tracer;

static void write_seed(const char *path)
{
    at_trace_options o;
    at_trace_options_init(&o);
    o.no_leak_scan = 1;
    /* shallow stacks: frames of this program only, so that reading each
     * input does not open and decompress the debug data of every library */
    o.stack_depth = 1;
    at_tracer *t;
    if (at__tracer_open_spool(&o, path, 1, &t) != 0)
        TEST_FAIL("cannot create the seed spool %s", path);
    /* The blocks come from an arena and the spool tracer stays, as it does
     * in a dying process: nothing of the seed is a leak of this program. */
    static _Alignas(64) unsigned char arena[1 << 20];
    seed_tracer = t;
    at_allocator a = at_tracing_allocator(t, at_arena_allocator(arena, sizeof arena));
    at_tracer_mark(t, "start");
    void *blocks[300];
    for (int i = 0; i < 300; i++)
        blocks[i] = at_alloc(a, (at_layout){(size_t)(i * 13 % 500 + 1), 8});
    for (int i = 0; i < 300; i += 3)
        at_dealloc(a, blocks[i], (at_layout){(size_t)(i * 13 % 500 + 1), 8});
    at_dealloc(a, blocks[1], (at_layout){7, 8}); /* layout mismatch */
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, worker, &a);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    at_tracer_mark(t, "end");
    void *twice = at_alloc(a, (at_layout){40, 8});
    at_dealloc(a, twice, (at_layout){40, 8});
    at_dealloc(a, twice, (at_layout){40, 8}); /* double free: reported, not forwarded */
    at_tracer_close(t);
}

/* The spool's used part: its header and the chunks ever taken. */
static unsigned char *read_seed(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        TEST_FAIL("cannot open %s", path);
    at_spool_header h;
    if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
        TEST_FAIL("short spool %s", path);
    size_t n = AT_SPOOL_HEADER + (size_t)h.nchunks * h.chunk_size;
    unsigned char *buf = malloc(n);
    if (!buf || pread(fd, buf, n, 0) != (ssize_t)n)
        TEST_FAIL("cannot read %zu bytes of %s", n, path);
    struct stat st;
    if (fstat(fd, &st) != 0)
        TEST_FAIL("cannot stat %s", path);
    file_size = st.st_size;
    close(fd);
    *len = n;
    return buf;
}

/* ---- mutations ----------------------------------------------------------------------- */

static const uint64_t boundary[] = {0,          1,          2,          7,
                                    8,          255,        4095,       4096,
                                    65535,      0x7fffffff, 0x80000000, 0xffffffff,
                                    0x100000000, (uint64_t)1 << 62, UINT64_MAX - 1, UINT64_MAX};

/* An offset where a mutation matters most often: the header, a chunk's
 * header and buffer header, or anywhere in the records. */
static size_t pick_offset(const at_spool_header *h, size_t len)
{
    unsigned what = (unsigned)(next_random() % 8);
    if (what == 0)
        return next_random() % sizeof *h;
    if (what <= 2 && h->nchunks && h->chunk_size) {
        size_t chunk = next_random() % h->nchunks;
        size_t off = AT_SPOOL_HEADER + chunk * h->chunk_size + next_random() % 64;
        if (off < len)
            return off;
    }
    return next_random() % len;
}

static void mutate(unsigned char *buf, size_t *len)
{
    at_spool_header h;
    memcpy(&h, buf, sizeof h);
    size_t off = pick_offset(&h, *len);
    switch (next_random() % 6) {
    case 0: /* a bit */
        buf[off] ^= (unsigned char)(1u << (next_random() % 8));
        break;
    case 1: /* a byte */
        buf[off] = (unsigned char)next_random();
        break;
    case 2: { /* a boundary value, 1, 2, 4 or 8 bytes wide */
        uint64_t v = boundary[next_random() % (sizeof boundary / sizeof *boundary)];
        size_t w = (size_t)1 << (next_random() % 4);
        if (off + w <= *len)
            memcpy(buf + off, &v, w);
        break;
    }
    case 3: { /* a range copied over another (records out of place) */
        size_t from = next_random() % *len, n = 1 + next_random() % 256;
        if (from + n <= *len && off + n <= *len)
            memmove(buf + off, buf + from, n);
        break;
    }
    case 4: /* cut short */
        if (next_random() % 4 == 0)
            *len = off > sizeof h ? off : *len;
        break;
    default: { /* a small integer nearby: counts and lengths off by a little */
        uint32_t v;
        if (off + 4 <= *len) {
            memcpy(&v, buf + off, 4);
            v += (uint32_t)(next_random() % 33) - 16;
            memcpy(buf + off, &v, 4);
        }
        break;
    }
    }
}

/* ---- the loop ------------------------------------------------------------------------ */

static int write_input(void)
{
    int fd = open(input_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < input_len) {
        ssize_t w = write(fd, input + done, input_len - done);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)w;
    }
    /* as large as the seed, sparse, as the producer leaves a spool */
    if (ftruncate(fd, file_size) != 0) {
        close(fd);
        return -1;
    }
    return close(fd);
}

/* Reads the input as `alloctrace recover` does: 1 a trace came of it, 0
 * the reader refused it. */
static int read_input(void)
{
    at_spool_reader *r;
    unlink(db_path);
    if (at__spool_reader_open(input_path, db_path, 1, &r) != 0)
        return 0;
    int closed = 0;
    return at__spool_reader_finish(r, &closed) == 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s DIR ITERATIONS SECONDS\n", argv[0]);
        return 2;
    }
    long iterations = atol(argv[2]);
    double seconds = atof(argv[3]);
    char seed_path[4096];
    snprintf(seed_path, sizeof seed_path, "%s/seed.%d.spool", argv[1], (int)getpid());
    snprintf(input_path, sizeof input_path, "%s/input.spool", argv[1]);
    snprintf(db_path, sizeof db_path, "%s/input.db", argv[1]);
    snprintf(hang_path, sizeof hang_path, "%s/hang.spool", argv[1]);
    snprintf(memory_path, sizeof memory_path, "%s/memory.spool", argv[1]);
    unlink(seed_path);
    write_seed(seed_path);
    size_t seed_len;
    unsigned char *seed = read_seed(seed_path, &seed_len);
    unlink(seed_path);
    input = malloc(seed_len);
    if (!input)
        return 1;
    signal(SIGALRM, on_alarm);

    /* the seed itself reads back into a trace */
    memcpy(input, seed, seed_len);
    input_len = seed_len;
    if (write_input() != 0)
        TEST_FAIL("cannot write %s", input_path);
    at_spool_reader *r;
    int rc = at__spool_reader_open(input_path, db_path, 1, &r);
    int closed = 0;
    if (rc != 0 || (rc = at__spool_reader_finish(r, &closed)) != 0 || !closed)
        TEST_FAIL("the unmutated seed does not read back: %s, closed %d", at_strerror(rc), closed);

    double start = now_s();
    long ran = 0, traces = 0;
    for (; ran < iterations && now_s() - start < seconds; ran++) {
        memcpy(input, seed, seed_len);
        input_len = seed_len;
        int n = 1 + (int)(next_random() % 8);
        for (int k = 0; k < n; k++)
            mutate(input, &input_len);
        if (write_input() != 0)
            TEST_FAIL("cannot write %s: %s", input_path, strerror(errno));
        long before = max_rss_kib();
        alarm(20);
        traces += read_input();
        alarm(0);
        /* one input that makes the reader take far more memory than it
         * holds: kept, for the record */
        if (max_rss_kib() - before > 256 * 1024) {
            save_input(memory_path);
            TEST_FAIL("input %ld grew the reader by %ld KiB; kept as %s", ran,
                      max_rss_kib() - before, memory_path);
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("fuzz_spool: %ld inputs of %zu bytes in %.1f s: %ld became traces, %ld refused;"
           " largest resident set %ld KiB\n",
           ran, seed_len, now_s() - start, traces, ran - traces, ru.ru_maxrss);
    /* bounded by the input: the sanitizer's own shadow and SQLite's cache
     * aside, a few times the seed */
    if ((size_t)ru.ru_maxrss * 1024 > 512u * 1024 * 1024 + 64 * seed_len)
        TEST_FAIL("the reader used %ld KiB for inputs of %zu bytes", ru.ru_maxrss, seed_len);
    if (ran < 100)
        TEST_FAIL("only %ld inputs ran", ran);
    unlink(input_path);
    unlink(db_path);
    free(seed);
    free(input);
    return 0;
}
