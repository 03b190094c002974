/* The library tracer's reachability scan: at_tracer_leak_check at any
 * moment, and the scan at_tracer_close records.  A program of its own, so
 * that no earlier test leaves stale words in the process. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <alloctrace/alloctrace.h>

#include "trace_util.h"

/* ---- reachability (at_tracer_leak_check, and the scan at close) -------------------- */

static void *volatile reach_global;   /* a root */
static char *volatile reach_interior; /* points into the middle of a block */

/* Allocates a lost list of three (one definitely lost, two indirectly) and
 * forgets it: nothing of it is left in this frame once it returns. */
__attribute__((noinline)) static void lose_list(at_allocator a)
{
    void **head = at_alloc(a, L(48, 8));
    void **second = at_alloc(a, L(56, 8));
    void **third = at_alloc(a, L(64, 8));
    memset(head, 0, 48);
    memset(second, 0, 56);
    memset(third, 0, 64);
    head[0] = second;
    second[0] = third;
    third[0] = head; /* a cycle: still one leader */
    __asm__ volatile("" ::: "memory");
}

/* A root holding a block that holds another, and a block held only by an
 * interior pointer: kept in globals alone. */
__attribute__((noinline)) static void hold(at_allocator a)
{
    void **root = at_alloc(a, L(72, 8)); /* reachable */
    memset(root, 0, 72);
    root[0] = at_alloc(a, L(80, 8)); /* reachable through the heap */
    memset(root[0], 0, 80);
    reach_global = root;
    char *mid = at_alloc(a, L(88, 8));
    memset(mid, 0, 88);
    reach_interior = mid + 40; /* possibly lost */
    __asm__ volatile("" ::: "memory");
}

/* Gives back, after the trace is closed, the blocks a test leaked on
 * purpose (LeakSanitizer checks the ASan build's runs): their addresses
 * are in the trace. */
static void free_leaks(sqlite3 *db)
{
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT ptr FROM leaks", -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW)
        free((void *)(uintptr_t)sqlite3_column_int64(st, 0));
    sqlite3_finalize(st);
}

TEST(leak_check_classifies_like_valgrind)
{
    const char *path = trace_path("reach");
    at_tracer *t = open_tracer(path);
    at_allocator a = at_tracing_allocator(t, at_system_allocator());
    hold(a);
    lose_list(a);
    at_leak_check c;
    const char *pre = getenv("LD_PRELOAD");
    if (pre && strstr(pre, "vgpreload")) {
        /* Under valgrind (CI's third run) valgrind's own bookkeeping points
         * to every block: the scan refuses, and says so. */
        ASSERT_EQ(at_tracer_leak_check(t, &c), AT_E_INVALID);
        ASSERT_EQ(c.done, 0);
        ASSERT_EQ(at_tracer_close(t), 0);
        sqlite3 *vdb = trace_db(path);
        ASSERT_EQ(q_int(vdb, "SELECT count(*) FROM meta WHERE key='reach_scan'"), 0);
        ASSERT_EQ(q_int(vdb, "SELECT count(*) FROM leaks WHERE reachability='unknown'"), 6);
        free_leaks(vdb);
        sqlite3_close(vdb);
        return;
    }
    ASSERT_EQ(at_tracer_leak_check(t, &c), 0);
    ASSERT_EQ(c.done, 1);
#ifdef __SANITIZE_ADDRESS__
    /* AddressSanitizer's heap is not glibc's: its own bookkeeping, which
     * the scan cannot tell from the program's memory, may point into lost
     * blocks.  What holds whatever the heap: 72 and 80 reachable, every
     * block classified, and dropping the root loses both. */
    uint64_t reachable = c.blocks[4];
    ASSERT_GE(reachable, 2);
    ASSERT_EQ(c.blocks[1] + c.blocks[2] + c.blocks[3] + c.blocks[4], 6);
    ASSERT_EQ(c.blocks[0], 0);
    reach_global = NULL;
    ASSERT_EQ(at_tracer_leak_check(t, &c), 0);
    ASSERT_EQ(c.blocks[4], reachable - 2);
#else
    /* valgrind's classes: the cycle's leader definitely lost and the rest
     * of it indirectly, the block held by an interior pointer possibly,
     * 72 and 80 (a global, then the heap) still reachable. */
    ASSERT_EQ(c.blocks[1], 1);
    ASSERT_EQ(c.blocks[2], 2);
    ASSERT_EQ(c.bytes[1] + c.bytes[2], 48 + 56 + 64);
    ASSERT_EQ(c.blocks[3], 1);
    ASSERT_EQ(c.bytes[3], 88);
    ASSERT_EQ(c.blocks[4], 2);
    ASSERT_EQ(c.bytes[4], 72 + 80);
    ASSERT_EQ(c.blocks[0], 0);
    /* Dropping the root loses what hung from it: 72 definitely lost, 80
     * indirectly. */
    reach_global = NULL;
    ASSERT_EQ(at_tracer_leak_check(t, &c), 0);
    ASSERT_EQ(c.blocks[4], 0);
    ASSERT_EQ(c.blocks[1], 2);
    ASSERT_EQ(c.blocks[2], 3);
    ASSERT_EQ(c.blocks[3], 1);
#endif
    ASSERT_EQ(at_tracer_close(t), 0);
    sqlite3 *db = trace_db(path);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM meta WHERE key='reach_scan' AND value='done'"), 1);
#ifndef __SANITIZE_ADDRESS__
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM leaks WHERE reachability='definitely_lost'"), 2);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM leaks WHERE reachability='indirectly_lost'"), 3);
    ASSERT_EQ(q_int(db, "SELECT size FROM leaks WHERE reachability='possibly_lost'"), 88);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM leaks WHERE reachability='still_reachable'"), 0);
#endif
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM leaks WHERE reachability='unknown'"), 0);
    free_leaks(db);
    sqlite3_close(db);
}

TEST(no_leak_scan_leaves_reachability_unknown)
{
    const char *path = trace_path("noscan");
    at_trace_options o;
    at_trace_options_init(&o);
    o.path = path;
    o.no_leak_scan = 1;
    at_tracer *t = NULL;
    ASSERT_EQ(at_tracer_open(&o, &t), 0);
    at_allocator a = at_tracing_allocator(t, at_system_allocator());
    reach_global = at_alloc(a, L(96, 8));
    ASSERT_EQ(at_tracer_close(t), 0);
    sqlite3 *db = trace_db(path);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM meta WHERE key='reach_scan'"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM leaks WHERE reachability='unknown'"), 1);
    free_leaks(db);
    sqlite3_close(db);
}

TEST_MAIN()
