/* SQLite's memory for the commands that write a trace (run, recover): its
 * page cache pages (a 16 KiB page and SQLite's header for it, the
 * spool reader's cache holding up to 16 MiB of them) come from one
 * mapping that asks for transparent huge pages, handed out as they are
 * first needed and reused once freed; everything else SQLite allocates
 * comes from malloc.
 *
 * Why: from malloc, the pages were faulted in 4 KiB at a time (a sixth of
 * the reader's CPU on a 2 M block run).  SQLite's own page-cache buffer
 * (SQLITE_CONFIG_PAGECACHE) fixed that, but SQLite writes into every slot
 * of it when it starts, so the whole buffer was resident (66 MB) in every
 * run, however small. */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <sqlite3.h>

#include "cli.h"

/* A slot holds any request from PAGE_MIN to SLOT bytes: a page of the
 * trace's size with SQLite's header and extra bytes for it. */
enum { PAGE_MIN = 16384, SLOT = 16384 + 1024, SLOTS = 1024 + 256 };

typedef struct free_slot {
    struct free_slot *next;
} free_slot;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *region, *region_end, *bump;
static free_slot *free_list;
static sqlite3_mem_methods fallback; /* SQLite's own, over malloc */

static int is_slot(const void *p)
{
    return (const char *)p >= region && (const char *)p < region_end;
}

static void *take_slot(void)
{
    pthread_mutex_lock(&lock);
    void *p = NULL;
    if (free_list) {
        p = free_list;
        free_list = free_list->next;
    } else if (bump < region_end) {
        p = bump;
        bump += SLOT;
    }
    pthread_mutex_unlock(&lock);
    return p;
}

static void *pages_malloc(int n)
{
    void *p = n >= PAGE_MIN && n <= SLOT ? take_slot() : NULL;
    return p ? p : fallback.xMalloc(n);
}

static void pages_free(void *p)
{
    if (!is_slot(p)) {
        fallback.xFree(p);
        return;
    }
    pthread_mutex_lock(&lock);
    free_slot *s = p;
    s->next = free_list;
    free_list = s;
    pthread_mutex_unlock(&lock);
}

static int pages_size(void *p)
{
    return is_slot(p) ? SLOT : fallback.xSize(p);
}

static void *pages_realloc(void *p, int n)
{
    if (!is_slot(p))
        return fallback.xRealloc(p, n);
    if (n <= SLOT && n >= PAGE_MIN)
        return p;
    void *q = fallback.xMalloc(n);
    if (q) {
        memcpy(q, p, (size_t)(n < SLOT ? n : SLOT));
        pages_free(p);
    }
    return q;
}

static int pages_roundup(int n)
{
    return n >= PAGE_MIN && n <= SLOT ? SLOT : fallback.xRoundup(n);
}

static int pages_init(void *arg)
{
    return fallback.xInit(arg);
}

static void pages_shutdown(void *arg)
{
    fallback.xShutdown(arg);
}

void cli_sqlite_pages(const char *command)
{
    if (strcmp(command, "run") != 0 && strcmp(command, "recover") != 0)
        return;
    if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &fallback) != SQLITE_OK)
        return;
    size_t bytes = (size_t)SLOT * SLOTS;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return;
    madvise(p, bytes, MADV_HUGEPAGE); /* a hint */
    region = bump = p;
    region_end = region + bytes;
    sqlite3_mem_methods m = {pages_malloc, pages_free,    pages_realloc, pages_size,
                             pages_roundup, pages_init,   pages_shutdown, NULL};
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &m) != SQLITE_OK) {
        munmap(p, bytes);
        region = region_end = bump = NULL;
    }
}
