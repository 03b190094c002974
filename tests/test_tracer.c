/* Integration tests of the tracing allocator: programs written for the
 * purpose run over the system and the arena backends, and the trace they
 * leave is read back with SQLite and checked exactly. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <alloctrace/alloctrace.h>

#include "mem.h"
#include "trace_util.h"

/* ---- backends under test ------------------------------------------------------ */

enum { ARENA_SIZE = 64 << 20 };
static unsigned char *arena_buf;

static at_allocator backend(int which)
{
    if (which == 0)
        return at_system_allocator();
    if (!arena_buf)
        arena_buf = aligned_alloc(4096, ARENA_SIZE);
    ASSERT_NOT_NULL(arena_buf);
    return at_arena_allocator(arena_buf, ARENA_SIZE);
}

static const char *backend_name(int which)
{
    return which == 0 ? "system" : "arena";
}

/* ---- counts, sizes, alignments ------------------------------------------------------ */

static void check_counts(int which)
{
    const char *path = trace_path(backend_name(which));
    at_tracer *t = open_tracer(path);
    at_allocator a = at_tracing_allocator(t, backend(which));
    static const size_t sizes[] = {1, 24, 100, 4096};
    static const size_t aligns[] = {1, 8, 64, 4096};
    void *p[16];
    int n = 0;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            p[n] = at_alloc(a, L(sizes[i], aligns[j]));
            ASSERT_NOT_NULL(p[n]);
            ASSERT_ALIGNED(p[n], aligns[j]);
            n++;
        }
    /* Release the even ones, in reverse so the arena reclaims some. */
    for (int k = 14; k >= 0; k -= 2)
        at_dealloc(a, p[k], L(sizes[k / 4], aligns[k % 4]));
    unsigned char *z = at_alloc_zeroed(a, L(300, 32));
    ASSERT_NOT_NULL(z);
    for (int i = 0; i < 300; i++)
        ASSERT_EQ(z[i], 0);
    unsigned char *r = at_realloc(a, z, L(300, 32), 5000);
    ASSERT_NOT_NULL(r);
    ASSERT_ALIGNED(r, 32);
    at_tracer_stats s;
    at_tracer_get_stats(t, &s);
    ASSERT_EQ(s.alloc_calls, 18);
    ASSERT_EQ(s.free_calls, 9);
    ASSERT_EQ(s.live_blocks, 9);
    ASSERT_EQ(at_tracer_close(t), 0);

    sqlite3 *db = trace_db(path);
    ASSERT_EQ(q_int(db, "PRAGMA user_version"), 7);
    ASSERT_EQ(q_int(db, "SELECT value FROM meta WHERE key='finished'"), 1);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM allocations"), 18);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM allocations WHERE free_seq IS NOT NULL"), 9);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM leaks"), 9);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM findings"), 0);
    /* Every odd block leaked with exactly its layout and pointer. */
    for (int k = 1; k < 16; k += 2)
        ASSERT_EQ(q_int(db,
                        "SELECT count(*) FROM leaks WHERE ptr=%lld AND size=%zu AND align=%zu"
                        " AND family='allocator'",
                        (long long)(uintptr_t)p[k], sizes[k / 4], aligns[k % 4]),
                  1);
    ASSERT_EQ(q_int(db, "SELECT sum(size) FROM leaks"),
              (1 + 24 + 100 + 4096) * 2 + 5000);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM allocations WHERE alloc_op='alloc_zeroed'"
                        " AND size=300 AND align=32 AND free_op='realloc'"),
              1);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM leaks WHERE ptr=%lld AND size=5000 AND align=32",
                    (long long)(uintptr_t)r),
              1);
    /* Storage: info = log2(align) | family << 6 | alloc op << 8 | free op
     * << 11 (docs/schema.md); no release passed a layout of its own. */
    ASSERT_EQ(q_int(db, "SELECT info FROM lifetimes WHERE ptr=%lld AND size=5000",
                    (long long)(uintptr_t)r),
              5 | 3 << 8);
    ASSERT_EQ(q_int(db, "SELECT info FROM lifetimes WHERE size=300"), 5 | 2 << 8 | 3 << 11);
    ASSERT_EQ(q_int(db, "SELECT info FROM lifetimes WHERE ptr=%lld AND size=4096",
                    (long long)(uintptr_t)p[15]),
              12 | 1 << 8);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM lifetimes WHERE info >> 11 = 4"), 8);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM release_layouts"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM allocations a JOIN allocations b"
                        " ON b.alloc_seq > a.free_seq WHERE a.free_op='realloc'"
                        " AND b.alloc_op='realloc'"),
              1);
    /* Sequence numbers are unique and ordered: each release comes after its
     * allocation. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM allocations WHERE free_seq <= alloc_seq"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM allocations WHERE alloc_stack IS NULL"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM threads"), 1);
    sqlite3_close(db);
    if (which == 0)
        for (int k = 1; k < 16; k += 2)
            free(p[k]), (void)0;
    if (which == 0)
        free(r);
}

TEST(counts_system)
{
    check_counts(0);
}

TEST(counts_arena)
{
    check_counts(1);
}

/* ---- stacks ------------------------------------------------------------------------- */

/* Not static: the stacks are checked by name, and exported names are the
 * ones every symbolizer finds. */
void *leaky_function_for_test(at_allocator a);
void *same_site_alloc(at_allocator a);
void *alloc_site_for_finding(at_allocator a, size_t size, size_t align);
void bad_release_site(at_allocator a, void *p, size_t size, size_t align);
void first_release_site(at_allocator a, void *p, size_t size, size_t align);

__attribute__((noinline)) void *leaky_function_for_test(at_allocator a)
{
    void *p = at_alloc(a, L(777, 16));
    __asm__ volatile("" ::: "memory");
    return p;
}

__attribute__((noinline)) void *same_site_alloc(at_allocator a)
{
    void *p = at_alloc(a, L(32, 8));
    __asm__ volatile("" ::: "memory");
    return p;
}

static void check_leak_stack(int which)
{
    const char *path = trace_path("leakstack");
    at_tracer *t = open_tracer(path);
    at_allocator a = at_tracing_allocator(t, backend(which));
    void *leak = leaky_function_for_test(a);
    ASSERT_NOT_NULL(leak);
    for (int i = 0; i < 1000; i++)
        at_dealloc(a, same_site_alloc(a), L(32, 8));
    ASSERT_EQ(at_tracer_close(t), 0);

    sqlite3 *db = trace_db(path);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM leak_sites"), 1);
    ASSERT_EQ(q_int(db, "SELECT bytes FROM leak_sites"), 777);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM leak_sites ls JOIN stack_lines sl"
                        " ON sl.stack = ls.stack WHERE sl.function = 'leaky_function_for_test'"
                        " AND sl.file LIKE '%%test_tracer.c' AND sl.line > 0"),
              1);
    /* The caller of leaky_function_for_test is in the stack too. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM leak_sites ls JOIN stack_lines sl"
                        " ON sl.stack = ls.stack WHERE sl.function = 'check_leak_stack'"),
              1);
    /* A thousand allocations from one call site share one interned stack. */
    ASSERT_EQ(q_int(db, "SELECT count(DISTINCT alloc_stack) FROM allocations WHERE size = 32"), 1);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM allocations WHERE size = 32"), 1000);
    /* Each distinct frame address is stored once. */
    ASSERT_EQ(q_int(db, "SELECT count(*) - count(DISTINCT ip) FROM frames"), 0);
    /* No frame of the tracer itself is recorded. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM frames WHERE function LIKE 'at\\_\\_%%' ESCAPE '\\'"
                        " OR function LIKE 'traced\\_%%' ESCAPE '\\'"),
              0);
    sqlite3_close(db);
    if (which == 0)
        free(leak);
}

TEST(leak_stack_system)
{
    check_leak_stack(0);
}

TEST(leak_stack_arena)
{
    check_leak_stack(1);
}

/* ---- findings ------------------------------------------------------------------------ */

__attribute__((noinline)) void *alloc_site_for_finding(at_allocator a, size_t size, size_t align)
{
    void *p = at_alloc(a, L(size, align));
    __asm__ volatile("" ::: "memory");
    return p;
}

__attribute__((noinline)) void bad_release_site(at_allocator a, void *p, size_t size, size_t align)
{
    at_dealloc(a, p, L(size, align));
    __asm__ volatile("" ::: "memory");
}

static void check_findings(int which)
{
    const char *path = trace_path("findings");
    at_tracer *t = open_tracer(path);
    at_allocator a = at_tracing_allocator(t, backend(which));

    /* 1. layout mismatch: wrong size.  The block is still released. */
    char *m = alloc_site_for_finding(a, 64, 16);
    bad_release_site(a, m, 48, 16);
    /* 2. interior free: a pointer inside a live block.  Not forwarded. */
    char *in = alloc_site_for_finding(a, 128, 16);
    bad_release_site(a, in + 8, 120, 8);
    /* 3. misaligned free: the pointer is not a multiple of the alignment
     *    it is released with. */
    char *al = alloc_site_for_finding(a, 100, 16);
    /* Twice the lowest set bit of the address: a power of two that the
     * address is certainly not a multiple of. */
    size_t wrong_align = ((uintptr_t)al & (0 - (uintptr_t)al)) << 1;
    bad_release_site(a, al, 100, wrong_align);
    /* 4. double free. */
    char *d = alloc_site_for_finding(a, 40, 8);
    at_dealloc(a, d, L(40, 8));
    bad_release_site(a, d, 40, 8);
    /* 5. a pointer never allocated (on the stack: forwarding it to free()
     *    would crash the test). */
    char local[64];
    bad_release_site(a, local, 64, 1);
    /* The program is still alive, and the interior block can be released
     * properly. */
    at_dealloc(a, in, L(128, 16));
    at_tracer_stats s;
    at_tracer_get_stats(t, &s);
    ASSERT_EQ(s.findings, 5);
    ASSERT_EQ(at_tracer_close(t), 0);

    sqlite3 *db = trace_db(path);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM findings"), 5);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM findings WHERE kind='layout_mismatch'"
                        " AND release_size=48 AND alloc_size=64 AND alloc_align=16"
                        " AND ptr=%lld",
                    (long long)(uintptr_t)m),
              1);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM findings WHERE kind='interior_free'"
                        " AND ptr=%lld AND alloc_ptr=%lld AND detail LIKE '%%8 bytes inside%%'",
                    (long long)(uintptr_t)(in + 8), (long long)(uintptr_t)in),
              1);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM findings WHERE kind='misaligned_free'"
                        " AND ptr=%lld AND release_align=%lld",
                    (long long)(uintptr_t)al, (long long)wrong_align),
              1);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM findings WHERE kind='double_free'"
                        " AND ptr=%lld AND first_free_seq < seq AND alloc_size=40",
                    (long long)(uintptr_t)d),
              1);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM findings WHERE kind='invalid_free'"
                        " AND ptr=%lld AND alloc_seq IS NULL",
                    (long long)(uintptr_t)local),
              1);
    /* Both stacks, for every finding that has an allocation: the release
     * stack names the releasing function, the allocation stack the
     * allocating one. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM findings_detail"
                        " WHERE release_stack_text LIKE '%%bad_release_site%%'"),
              5);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM findings_detail WHERE alloc_seq IS NOT NULL"
                        " AND alloc_stack_text LIKE '%%alloc_site_for_finding%%'"),
              4);
    /* The mismatched and misaligned blocks were released (the tracer
     * forwards a live block's exact address with its real layout); the
     * interior one was released properly later: nothing leaked. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM leaks"), 0);
    ASSERT_EQ(q_int(db, "SELECT free_size FROM allocations WHERE ptr=%lld AND size=64",
                    (long long)(uintptr_t)m),
              48);
    ASSERT_EQ(q_int(db, "SELECT free_align FROM allocations WHERE ptr=%lld AND size=64",
                    (long long)(uintptr_t)m),
              16);
    ASSERT_EQ(q_int(db, "SELECT free_align FROM allocations WHERE ptr=%lld AND size=100",
                    (long long)(uintptr_t)al),
              (long long)wrong_align);
    /* Only the two releases whose layout differed from the allocation's
     * have a row of their own. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM release_layouts"), 2);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM lifetimes l JOIN release_layouts r USING (seq)"
                        " WHERE l.info & 16384"),
              2);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM lifetimes WHERE info & 16384"), 2);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM allocations"
                        " WHERE free_size != size OR free_align != align"),
              2);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM allocations WHERE free_seq IS NOT NULL"
                        " AND (free_size IS NULL OR free_align IS NULL)"),
              0);
    sqlite3_close(db);
}

TEST(findings_system)
{
    check_findings(0);
}

TEST(findings_arena)
{
    check_findings(1);
}

/* ---- release stacks ------------------------------------------------------------------ */

__attribute__((noinline)) void first_release_site(at_allocator a, void *p, size_t size,
                                                  size_t align)
{
    at_dealloc(a, p, L(size, align));
    __asm__ volatile("" ::: "memory");
}

/* A double free and an ordinary release through the tracing allocator,
 * with release stacks (the default) or without (no_release_stacks). */
static void check_release_stacks(int off)
{
    const char *path = trace_path(off ? "no-release-stacks" : "release-stacks");
    at_trace_options o;
    at_trace_options_init(&o);
    o.path = path;
    o.no_release_stacks = off;
    at_tracer *t = NULL;
    ASSERT_EQ(at_tracer_open(&o, &t), 0);
    at_allocator a = at_tracing_allocator(t, backend(0));
    char *d = alloc_site_for_finding(a, 40, 8);
    first_release_site(a, d, 40, 8);
    bad_release_site(a, d, 40, 8);
    char *ok = alloc_site_for_finding(a, 72, 8);
    first_release_site(a, ok, 72, 8);
    ASSERT_EQ(at_tracer_close(t), 0);

    sqlite3 *db = trace_db(path);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM findings_detail WHERE kind='double_free'"
                        " AND first_free_seq < seq AND alloc_stack_text LIKE '%%alloc_site_for_finding%%'"
                        " AND release_stack_text LIKE '%%bad_release_site%%'"),
              1);
    if (off) {
        ASSERT_EQ(q_int(db, "SELECT count(*) FROM findings WHERE first_free_stack IS NULL"), 1);
        ASSERT_EQ(q_int(db, "SELECT count(*) FROM allocations WHERE free_stack IS NOT NULL"), 0);
    } else {
        ASSERT_EQ(q_int(db, "SELECT count(*) FROM findings_detail"
                            " WHERE first_free_stack_text LIKE '%%first_release_site%%'"),
                  1);
        /* Both lifetimes: who freed them. */
        ASSERT_EQ(q_int(db, "SELECT count(*) FROM allocations a JOIN stack_text s"
                            " ON s.stack = a.free_stack WHERE a.size IN (40, 72)"
                            " AND s.text LIKE '%%first_release_site%%'"),
                  2);
        /* The lifetime's release stack is the one the finding names. */
        ASSERT_EQ(q_int(db, "SELECT count(*) FROM findings f JOIN allocations a"
                            " ON a.alloc_seq = f.alloc_seq AND a.free_stack = f.first_free_stack"),
                  1);
    }
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM allocations WHERE free_seq IS NOT NULL"
                        " AND size IN (40, 72)"),
              2);
    sqlite3_close(db);
}

TEST(release_stacks)
{
    check_release_stacks(0);
}

TEST(no_release_stacks)
{
    check_release_stacks(1);
}

/* ---- insert order ------------------------------------------------------------------------ */

/* Lifetimes reach the writer in the order of their releases and are
 * written in the order of their allocations: every row must stay whole. */
TEST(releases_in_any_order)
{
    enum { N = 4099, STEP = 1031 }; /* N prime: k * STEP % N visits every block */
    const char *path = trace_path("order");
    at_tracer *t = open_tracer(path);
    at_allocator a = at_tracing_allocator(t, at_system_allocator());
    static void *p[N];
    long long check = 0;
    for (int i = 0; i < N; i++) {
        p[i] = at_alloc(a, L((size_t)i + 1, 8));
        ASSERT_NOT_NULL(p[i]);
        check += (long long)((uintptr_t)p[i] % 1000003) * (i + 1);
    }
    for (int k = 0; k < N; k++) {
        int i = (int)((long long)k * STEP % N);
        at_dealloc(a, p[i], L((size_t)i + 1, 8));
    }
    /* and a second round released last allocated first */
    for (int i = 0; i < N; i++)
        ASSERT_NOT_NULL(p[i] = at_alloc(a, L((size_t)i + 1, 8)));
    for (int i = N - 1; i >= 0; i--)
        at_dealloc(a, p[i], L((size_t)i + 1, 8));
    ASSERT_EQ(at_tracer_close(t), 0);

    sqlite3 *db = trace_db(path);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM allocations WHERE free_op = 'dealloc'"), 2 * N);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM allocations WHERE alloc_seq <= %d", N), N);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM (SELECT size, lag(size) OVER (ORDER BY alloc_seq)"
                        " AS prev FROM allocations WHERE alloc_seq <= %d) WHERE size != prev + 1",
                    N),
              0);
    ASSERT_EQ(q_int(db, "SELECT sum(ptr %% 1000003 * size) FROM allocations WHERE alloc_seq <= %d",
                    N),
              check);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM (SELECT size, row_number() OVER (ORDER BY"
                        " free_seq) - 1 AS k FROM allocations WHERE alloc_seq <= %d)"
                        " WHERE size - 1 != k * %d %% %d",
                    N, STEP, N),
              0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM (SELECT size, row_number() OVER (ORDER BY free_seq)"
                        " AS k FROM allocations WHERE alloc_seq > %d) WHERE size != %d - k + 1",
                    N, N),
              0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM allocations WHERE free_seq <= alloc_seq"
                        " OR free_time_us < alloc_time_us OR free_thread != alloc_thread"),
              0);
    sqlite3_close(db);
}

TEST(abort_on_finding_writes_trace_first)
{
    const char *path = trace_path("abort");
    char saved[4096];
    snprintf(saved, sizeof saved, "%s", path);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        at_trace_options o;
        at_trace_options_init(&o);
        o.path = saved;
        o.abort_on_finding = 1;
        at_tracer *t;
        if (at_tracer_open(&o, &t) != 0)
            _exit(3);
        at_allocator a = at_tracing_allocator(t, at_system_allocator());
        void *p = at_alloc(a, L(10, 1));
        at_dealloc(a, p, L(10, 1));
        at_dealloc(a, p, L(10, 1)); /* aborts here */
        _exit(4);
    }
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status));
    ASSERT_EQ(WTERMSIG(status), SIGABRT);
    sqlite3 *db = trace_db(saved);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM findings WHERE kind='double_free'"), 1);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM lifetimes WHERE size=10"), 1);
    sqlite3_close(db);
}

/* ---- threads ----------------------------------------------------------------------------- */

enum { RING = 1024, PER_THREAD = 20000, PRODUCERS = 2 };

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void *slot[RING];
    size_t size[RING];
    unsigned head, tail;
    int done;
} ring = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static at_allocator shared;

static void *producer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t size = 1 + (seed >> 8) % 2000;
        void *p = at_alloc(shared, L(size, 16));
        ASSERT_NOT_NULL(p);
        if (seed & 0x10000) { /* half freed here, half by the consumer */
            at_dealloc(shared, p, L(size, 16));
            continue;
        }
        pthread_mutex_lock(&ring.mu);
        while (ring.head - ring.tail == RING)
            pthread_cond_wait(&ring.cv, &ring.mu);
        ring.slot[ring.head % RING] = p;
        ring.size[ring.head % RING] = size;
        ring.head++;
        pthread_cond_broadcast(&ring.cv);
        pthread_mutex_unlock(&ring.mu);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&ring.mu);
        while (ring.head == ring.tail && !ring.done)
            pthread_cond_wait(&ring.cv, &ring.mu);
        if (ring.head == ring.tail && ring.done) {
            pthread_mutex_unlock(&ring.mu);
            return NULL;
        }
        void *p = ring.slot[ring.tail % RING];
        size_t size = ring.size[ring.tail % RING];
        ring.tail++;
        pthread_cond_broadcast(&ring.cv);
        pthread_mutex_unlock(&ring.mu);
        at_dealloc(shared, p, L(size, 16));
    }
}

TEST(threads_cross_thread_frees)
{
    const char *path = trace_path("threads");
    at_trace_options o;
    at_trace_options_init(&o);
    o.path = path;
    o.buffer_limit = 1; /* the minimum: exercises backpressure */
    at_tracer *t;
    ASSERT_EQ(at_tracer_open(&o, &t), 0);
    shared = at_tracing_allocator(t, at_system_allocator());
    pthread_t prod[PRODUCERS], cons;
    ASSERT_EQ(pthread_create(&cons, NULL, consumer, NULL), 0);
    for (int i = 0; i < PRODUCERS; i++)
        ASSERT_EQ(pthread_create(&prod[i], NULL, producer, (void *)(uintptr_t)(i + 1)), 0);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(prod[i], NULL);
    pthread_mutex_lock(&ring.mu);
    ring.done = 1;
    pthread_cond_broadcast(&ring.cv);
    pthread_mutex_unlock(&ring.mu);
    pthread_join(cons, NULL);
    at_tracer_stats s;
    at_tracer_get_stats(t, &s);
    ASSERT_EQ(s.alloc_calls, PRODUCERS * PER_THREAD);
    ASSERT_EQ(s.free_calls, PRODUCERS * PER_THREAD);
    ASSERT_EQ(s.live_blocks, 0);
    ASSERT_EQ(s.findings, 0);
    ASSERT_EQ(s.lost_events, 0);
    ASSERT_EQ(at_tracer_close(t), 0);

    sqlite3 *db = trace_db(path);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM allocations"), PRODUCERS * PER_THREAD);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM leaks"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM findings"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(DISTINCT alloc_seq) FROM allocations"), PRODUCERS * PER_THREAD);
    ASSERT_EQ(q_int(db, "SELECT count(DISTINCT free_seq) FROM allocations"), PRODUCERS * PER_THREAD);
    ASSERT_EQ(q_int(db, "SELECT max(free_seq) FROM allocations"), 2 * PRODUCERS * PER_THREAD);
    /* The consumer freed blocks the producers allocated. */
    ASSERT_GT(q_int(db, "SELECT count(*) FROM allocations WHERE free_thread != alloc_thread"),
              PER_THREAD / 2);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM threads"), PRODUCERS + 1);
    ASSERT_EQ(q_int(db, "SELECT value FROM meta WHERE key='lost_events'"), 0);
    sqlite3_close(db);
}

/* ---- the trace file -------------------------------------------------------------------------- */

TEST(file_is_private_and_never_overwritten)
{
    const char *path = trace_path("file");
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    at_tracer *t = open_tracer(p);
    ASSERT_EQ(at_tracer_close(t), 0);
    struct stat st;
    ASSERT_EQ(stat(p, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    off_t size = st.st_size;

    at_trace_options o;
    at_trace_options_init(&o);
    o.path = p;
    at_tracer *t2 = NULL;
    ASSERT_EQ(at_tracer_open(&o, &t2), AT_E_EXISTS);
    ASSERT_NULL(t2);
    ASSERT_EQ(stat(p, &st), 0);
    ASSERT_EQ(st.st_size, size);
    o.overwrite = 1;
    ASSERT_EQ(at_tracer_open(&o, &t2), 0);
    ASSERT_EQ(at_tracer_close(t2), 0);

    char link[4200];
    snprintf(link, sizeof link, "%s.link", p);
    unlink(link);
    ASSERT_EQ(symlink(p, link), 0);
    o.path = link;
    ASSERT_EQ(at_tracer_open(&o, &t2), AT_E_SYMLINK);
    unlink(link);
    ASSERT_EQ(symlink("/nonexistent-target", link), 0);
    ASSERT_EQ(at_tracer_open(&o, &t2), AT_E_SYMLINK);
    unlink(link);

    o.path = "/nonexistent-dir/trace.db";
    ASSERT_EQ(at_tracer_open(&o, &t2), AT_E_ACCESS);
    snprintf(link, sizeof link, "%s/under-a-file.db", p);
    o.path = link;
    ASSERT_EQ(at_tracer_open(&o, &t2), AT_E_ACCESS);
    o.path = NULL;
    ASSERT_EQ(at_tracer_open(&o, &t2), AT_E_INVALID);
    o.path = p;
    o.stack_depth = AT_MAX_STACK_DEPTH + 1;
    ASSERT_EQ(at_tracer_open(&o, &t2), AT_E_INVALID);
    ASSERT_EQ(at_tracer_close(NULL), 0);
    unlink(p);
}

/* Both unwinders give the same innermost frames for code with frame
 * pointers (this file is built with -fno-omit-frame-pointer). */
static void leak_with_unwinder(const char *path, int unwind)
{
    at_trace_options o;
    at_trace_options_init(&o);
    o.path = path;
    o.overwrite = 1;
    o.unwind = unwind;
    at_tracer *t;
    ASSERT_EQ(at_tracer_open(&o, &t), 0);
    at_allocator a = at_tracing_allocator(t, at_system_allocator());
    void *p = leaky_function_for_test(a);
    ASSERT_NOT_NULL(p);
    ASSERT_EQ(at_tracer_close(t), 0);
    free(p);
}

TEST(frame_pointer_unwinding_matches_dwarf)
{
    char dwarf_path[4096], fp_path[4096];
    snprintf(dwarf_path, sizeof dwarf_path, "%s", trace_path("unwind-dwarf"));
    snprintf(fp_path, sizeof fp_path, "%s", trace_path("unwind-fp"));
    leak_with_unwinder(dwarf_path, AT_UNWIND_DWARF);
    leak_with_unwinder(fp_path, AT_UNWIND_FRAME_POINTERS);
    char dwarf[4096], fp[4096];
    sqlite3 *db = trace_db(dwarf_path);
    snprintf(dwarf, sizeof dwarf, "%s",
             q_text(db, "SELECT s.text FROM leaks l JOIN stack_text s ON s.stack = l.stack"));
    sqlite3_close(db);
    db = trace_db(fp_path);
    snprintf(fp, sizeof fp, "%s",
             q_text(db, "SELECT s.text FROM leaks l JOIN stack_text s ON s.stack = l.stack"));
    sqlite3_close(db);
    /* Up to the test harness's main, frame by frame. */
    const char *upto = "main";
    char *d = strstr(dwarf, upto), *f = strstr(fp, upto);
    ASSERT_NOT_NULL(d);
    ASSERT_NOT_NULL(f);
    ASSERT_EQ((long)(d - dwarf), (long)(f - fp));
    ASSERT_EQ(strncmp(dwarf, fp, (size_t)(d - dwarf)), 0);
    ASSERT_NOT_NULL(strstr(fp, "leaky_function_for_test"));
}

/* A unit test asserting that a function leaks nothing, dhat-style. */
static void check_marks(int which)
{
    const char *path = trace_path("marks");
    at_tracer *t = open_tracer(path);
    at_allocator a = at_tracing_allocator(t, backend(which));
    void *before = at_alloc(a, L(10, 8)); /* live, but before the mark */
    uint64_t m = at_tracer_mark(t, "step one");
    void *x = at_alloc(a, L(100, 16));
    void *y = leaky_function_for_test(a);
    void *z = at_alloc(a, L(300, 16));
    at_dealloc(a, x, L(100, 16));
    at_live_summary s;
    at_tracer_live_since(t, m, &s);
    ASSERT_EQ(s.blocks, 2);
    ASSERT_EQ(s.bytes, 777 + 300);
    ASSERT_EQ(s.sites, 2);
    at_dealloc(a, z, L(300, 16));
    at_dealloc(a, y, L(777, 16));
    at_tracer_live_since(t, m, &s);
    ASSERT_EQ(s.blocks, 0);
    ASSERT_EQ(s.bytes, 0);
    uint64_t m2 = at_tracer_mark(t, NULL);
    ASSERT_GT(m2, m);
    at_dealloc(a, before, L(10, 8));
    ASSERT_EQ(at_tracer_close(t), 0);
    sqlite3 *db = trace_db(path);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM marks"), 2);
    ASSERT_EQ(q_int(db, "SELECT seq FROM marks WHERE label = 'step one'"), (long long)m);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM marks WHERE label IS NULL OR label = ''"), 1);
    /* The same question, asked of the trace afterwards: allocated after the
     * mark and still live at the second one. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM allocations WHERE alloc_seq > %lld AND"
                        " (free_seq IS NULL OR free_seq > %lld)",
                    (long long)m, (long long)m2),
              0);
    sqlite3_close(db);
}

TEST(marks_system)
{
    check_marks(0);
}

TEST(marks_arena)
{
    check_marks(1);
}

TEST(meta_describes_the_run)
{
    const char *path = trace_path("meta");
    at_trace_options o;
    at_trace_options_init(&o);
    o.path = path;
    o.stack_depth = 20;
    char *argv[] = {"prog", "quote\"and\\backslash", NULL};
    o.argc = 2;
    o.argv = argv;
    at_tracer *t;
    ASSERT_EQ(at_tracer_open(&o, &t), 0);
    ASSERT_EQ(at_tracer_close(t), 0);
    sqlite3 *db = trace_db(path);
    ASSERT_EQ(q_int(db, "SELECT value FROM meta WHERE key='pid'"), getpid());
    ASSERT_EQ(q_int(db, "SELECT value FROM meta WHERE key='stack_depth'"), 20);
    ASSERT_STREQ(q_text(db, "SELECT value FROM meta WHERE key='format'"), "alloctrace-trace");
    ASSERT_STREQ(q_text(db, "SELECT value FROM meta WHERE key='library_version'"), AT_VERSION_STRING);
    ASSERT_STREQ(q_text(db, "SELECT json_extract(value, '$[1]') FROM meta WHERE key='arguments'"),
                 "quote\"and\\backslash");
    ASSERT_TRUE(strstr(q_text(db, "SELECT value FROM meta WHERE key='executable'"), "test_tracer"));
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM modules WHERE path LIKE '%%test_tracer'"), 1);
    sqlite3_close(db);
}

/* ---- failures inside the tracer ---------------------------------------------------------------- */

TEST(realloc_failure_keeps_old_block_live)
{
    const char *path = trace_path("reallocfail");
    static unsigned char small[4096];
    at_tracer *t = open_tracer(path);
    at_allocator a = at_tracing_allocator(t, at_arena_allocator(small, sizeof small));
    char *p = at_alloc(a, L(100, 8));
    ASSERT_NOT_NULL(p);
    memset(p, 7, 100);
    ASSERT_NULL(at_realloc(a, p, L(100, 8), 1 << 20));
    ASSERT_EQ(p[99], 7);
    ASSERT_EQ(at_tracer_close(t), 0);
    sqlite3 *db = trace_db(path);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM allocations"), 1);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM leaks WHERE size=100 AND ptr=%lld",
                    (long long)(uintptr_t)p),
              1);
    sqlite3_close(db);
}

TEST(tracer_out_of_memory_keeps_program_running)
{
    const char *path = trace_path("oom");
    at_tracer *t = open_tracer(path);
    at_allocator a = at_tracing_allocator(t, at_system_allocator());
    /* Warm up so the thread state and a buffer exist, then starve the
     * tracer's own memory at every possible point in turn. */
    void *w = at_alloc(a, L(8, 8));
    at_dealloc(a, w, L(8, 8));
    for (long budget = 0; budget < 64; budget++) {
        at__mem_fail_after(budget);
        void *blocks[256];
        for (int i = 0; i < 256; i++) {
            blocks[i] = at_alloc(a, L((size_t)i + 1, 8));
            ASSERT_NOT_NULL(blocks[i]); /* the program's allocations never fail */
            memset(blocks[i], 1, (size_t)i + 1);
        }
        for (int i = 0; i < 256; i++)
            at_dealloc(a, blocks[i], L((size_t)i + 1, 8));
    }
    at__mem_fail_after(-1);
    at_tracer_stats s;
    at_tracer_get_stats(t, &s);
    /* Blocks the live table could not remember are not in the trace (their
     * allocation and their release are lost events), and their release is
     * no finding: it went to the backend, as untraced (ASan and valgrind
     * see every block given back). */
    ASSERT_TRUE(s.alloc_calls < 64 * 256 + 1);
    ASSERT_TRUE(s.lost_events >= 2 * (64 * 256 + 1 - s.alloc_calls));
    ASSERT_EQ(at_tracer_close(t), 0);
    sqlite3 *db = trace_db(path);
    long long lost = q_int(db, "SELECT value FROM meta WHERE key='lost_events'");
    ASSERT_EQ(lost, (long long)s.lost_events);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM findings"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM allocations"), (long long)s.alloc_calls);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM leaks"), 0); /* every traced block was freed */
    sqlite3_close(db);
}

/* A release in a thread the tracer has no memory to register is not
 * recorded: it is counted, so that readers say a block shown live may have
 * been released (in a spooled trace its allocation has no release). */
struct release_arg {
    at_allocator a;
    void *p;
};

static void *release_in_new_thread(void *arg)
{
    struct release_arg *r = arg;
    at__mem_fail_after(0); /* from here the tracer gets no memory */
    at_dealloc(r->a, r->p, L(48, 8));
    at__mem_fail_after(-1);
    return NULL;
}

TEST(release_without_thread_state_is_counted)
{
    const char *path = trace_path("nothread");
    at_tracer *t = open_tracer(path);
    at_allocator a = at_tracing_allocator(t, at_system_allocator());
    struct release_arg r = {a, at_alloc(a, L(48, 8))};
    ASSERT_NOT_NULL(r.p);
    at_tracer_stats before, after;
    at_tracer_get_stats(t, &before);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, release_in_new_thread, &r), 0);
    ASSERT_EQ(pthread_join(th, NULL), 0);
    at_tracer_get_stats(t, &after);
    ASSERT_EQ(after.free_calls, before.free_calls);
    ASSERT_EQ(after.lost_events, before.lost_events + 1);
    ASSERT_EQ(at_tracer_close(t), 0);
    sqlite3 *db = trace_db(path);
    ASSERT_EQ(q_int(db, "SELECT value FROM meta WHERE key='lost_events'"), 1);
    sqlite3_close(db);
}

/* Without a lost allocation, a pointer the tracer never saw is still an
 * invalid free, and is not given to the backend. */
TEST(unknown_pointer_is_invalid_free_without_losses)
{
    const char *path = trace_path("unknownfree");
    at_tracer *t = open_tracer(path);
    at_allocator a = at_tracing_allocator(t, at_system_allocator());
    static char not_a_block[64];
    at_dealloc(a, not_a_block + 16, L(8, 8));
    ASSERT_EQ(at_tracer_close(t), 0);
    sqlite3 *db = trace_db(path);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM findings WHERE kind='invalid_free'"), 1);
    ASSERT_EQ(q_int(db, "SELECT value FROM meta WHERE key='lost_events'"), 0);
    sqlite3_close(db);
}

TEST_MAIN()
