/* The spool's chunk pool (see spool.h).  Only atomics on the shared
 * mapping: no lock is shared between the two processes, so neither can
 * leave the other blocked by dying. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <alloctrace/error.h>

#include "mem.h"
#include "spool.h"

/* The chunks a windowed spool may grow to in this process (spool.h). */
static uint32_t chunks_mappable(uint32_t chunk_size)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 0;
    rlim_t n = rl.rlim_cur / 16 / chunk_size;
    return n < 4 ? 4 : n > AT_SPOOL_MAX_CHUNKS ? AT_SPOOL_MAX_CHUNKS : (uint32_t)n;
}

static int map(at_spool *s, int fd, size_t size)
{
    unsigned char **chunks = NULL;
    if (s->windowed) { /* the header now, each chunk when it is first needed */
        size = AT_SPOOL_HEADER;
        void *t = mmap(NULL, AT_SPOOL_MAX_CHUNKS * sizeof *chunks, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (t == MAP_FAILED)
            return AT_E_NOMEM;
        chunks = t;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        if (chunks)
            munmap(chunks, AT_SPOOL_MAX_CHUNKS * sizeof *chunks);
        return AT_E_NOMEM;
    }
    at__mem_note_region(p, size); /* records of pointers: never a root */
    s->base = p;
    s->h = p;
    s->map_size = size;
    s->fd = fd;
    s->no_growth = 0;
    s->chunks = chunks;
    s->grow_limit = chunks ? chunks_mappable(AT_SPOOL_CHUNK) : 0;
    s->filling = 0;
    s->starved = 0;
    s->hint = 0;
    return 0;
}

/* In `chunks`: a chunk filled while no consumer was there, unmapped. */
#define RETIRED ((unsigned char *)1)

/* Chunk `i`, mapped now if the spool is windowed and this process has not
 * mapped it yet; NULL when it is retired, or cannot be mapped (no address
 * space left: *unmapped is set). */
static at_spool_chunk *chunk_at(at_spool *s, uint32_t i, int *unmapped)
{
    if (!s->windowed)
        return at__spool_chunk(s, i);
    unsigned char *c = __atomic_load_n(&s->chunks[i], __ATOMIC_SEQ_CST);
    if (c)
        return c == RETIRED ? NULL : (at_spool_chunk *)c;
    size_t size = s->h->chunk_size;
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd,
                   (off_t)(AT_SPOOL_HEADER + (size_t)i * size));
    if (m == MAP_FAILED) {
        *unmapped = 1;
        return NULL;
    }
    at__mem_note_region(m, size);
    if (!__atomic_compare_exchange_n(&s->chunks[i], &c, (unsigned char *)m, 0, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST)) {
        at__mem_forget_region(m); /* another thread mapped it first */
        munmap(m, size);
        return c == RETIRED ? NULL : (at_spool_chunk *)c;
    }
    return m;
}

/* A FULL chunk of a windowed spool that no consumer reads: nothing will
 * ever give it back, so its address space goes back to the program.  Not
 * while a thread may be looking at it (at__spool_get counts itself in
 * `scanners` before it loads a chunk's address: one of the two sees the
 * other, the order of sequentially consistent operations). */
static void retire(at_spool *s, at_spool_chunk *c)
{
    uint32_t n = __atomic_load_n(&s->h->nchunks, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < n && i < AT_SPOOL_MAX_CHUNKS; i++) {
        unsigned char *expected = (unsigned char *)c;
        if (!__atomic_compare_exchange_n(&s->chunks[i], &expected, RETIRED, 0, __ATOMIC_SEQ_CST,
                                         __ATOMIC_SEQ_CST))
            continue;
        if (__atomic_load_n(&s->scanners, __ATOMIC_SEQ_CST) != 0) {
            __atomic_store_n(&s->chunks[i], (unsigned char *)c, __ATOMIC_SEQ_CST); /* later */
            return;
        }
        at__mem_forget_region(c);
        munmap(c, s->h->chunk_size);
        return;
    }
}

/* Disk blocks for [off, off + len) of the file, within its size: 0, or
 * -1 when the file system has none left (or refuses). */
static int reserve(int fd, off_t off, off_t len)
{
    int saved = errno;
    int r = fallocate(fd, 0, off, len);
    if (r != 0 && (errno == EOPNOTSUPP || errno == ENOSYS))
        r = posix_fallocate(fd, off, len) == 0 ? 0 : -1; /* writes zeros instead */
    errno = saved;
    return r;
}

/* Chunks the file may hold: AT_SPOOL_MAX_CHUNKS, or fewer under
 * RLIMIT_FSIZE; 0 when the limit leaves room for fewer than two (one a
 * thread fills while the reader reads the other). */
static uint32_t chunks_allowed(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur >= AT_SPOOL_HEADER + (rlim_t)AT_SPOOL_MAX_CHUNKS * AT_SPOOL_CHUNK)
        return AT_SPOOL_MAX_CHUNKS;
    rlim_t n = rl.rlim_cur > AT_SPOOL_HEADER ? (rl.rlim_cur - AT_SPOOL_HEADER) / AT_SPOOL_CHUNK : 0;
    return n < 2 ? 0 : (uint32_t)n;
}

int at__spool_create(at_spool *s, const char *path)
{
    uint32_t chunks = chunks_allowed();
    if (!chunks)
        return AT_E_IO;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno == EEXIST ? AT_E_EXISTS : errno == ELOOP ? AT_E_SYMLINK : AT_E_ACCESS;
    size_t size = AT_SPOOL_HEADER + (size_t)chunks * AT_SPOOL_CHUNK;
    int rc = ftruncate(fd, (off_t)size) == 0 && reserve(fd, 0, AT_SPOOL_HEADER) == 0
                 ? map(s, fd, size)
                 : AT_E_IO;
    if (rc) {
        close(fd);
        unlink(path);
        return rc;
    }
    memcpy(s->h->magic, AT_SPOOL_MAGIC, 8);
    s->h->chunk_size = AT_SPOOL_CHUNK;
    s->h->max_chunks = chunks;
    return 0;
}

int at__spool_open(at_spool *s, const char *path)
{
    int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return AT_E_ACCESS;
    struct stat st;
    at_spool_header h;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < AT_SPOOL_HEADER ||
        pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h || memcmp(h.magic, AT_SPOOL_MAGIC, 8) != 0 ||
        h.chunk_size < 4096 || h.chunk_size % 4096 != 0 || h.chunk_size > AT_SPOOL_CHUNK_LIMIT ||
        h.max_chunks == 0 || h.max_chunks > AT_SPOOL_MAX_CHUNKS || h.nchunks > h.max_chunks ||
        (size_t)st.st_size < AT_SPOOL_HEADER + (size_t)h.max_chunks * h.chunk_size) {
        close(fd);
        return AT_E_INVALID;
    }
    int rc = map(s, fd, AT_SPOOL_HEADER + (size_t)h.max_chunks * h.chunk_size);
    if (rc) {
        close(fd);
        return rc;
    }
    /* The reader looks at each chunk's header, a page: no readahead, which
     * would fill the page cache (and the reader's resident set) with the
     * holes of a sparse gigabyte around them. */
    if (!s->windowed)
        madvise(s->base, s->map_size, MADV_RANDOM);
    return 0;
}

void at__spool_close(at_spool *s)
{
    for (uint32_t i = 0; s->chunks && i < AT_SPOOL_MAX_CHUNKS; i++) {
        if (s->chunks[i] && s->chunks[i] != RETIRED) {
            at__mem_forget_region(s->chunks[i]);
            munmap(s->chunks[i], s->h->chunk_size);
        }
    }
    if (s->chunks)
        munmap(s->chunks, AT_SPOOL_MAX_CHUNKS * sizeof *s->chunks);
    s->chunks = NULL;
    if (s->base) {
        at__mem_forget_region(s->base);
        munmap(s->base, s->map_size);
    }
    if (s->fd >= 0)
        close(s->fd);
    s->base = NULL;
    s->h = NULL;
    s->fd = -1;
}

static at_buf *take(at_spool *s, at_spool_chunk *c)
{
    uint32_t expected = AT_CHUNK_FREE;
    if (!__atomic_compare_exchange_n(&c->state, &expected, AT_CHUNK_FILLING, 0, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED))
        return NULL;
    /* gen first, so a consumer that sees FILLING and the new gen starts
     * this chunk over; used is 0 before either is visible. */
    at_buf *b = at__chunk_buf(c);
    __atomic_store_n(&b->used, 0, __ATOMIC_RELAXED);
    __atomic_add_fetch(&c->gen, 1, __ATOMIC_RELEASE);
    b->next = NULL;
    b->cap = s->h->chunk_size - sizeof(at_spool_chunk) - offsetof(at_buf, data);
    __atomic_add_fetch(&s->filling, 1, __ATOMIC_RELAXED);
    return b;
}

/* The lock's byte: the header's first, which no producer locks. */
static struct flock lock_byte(short type)
{
    return (struct flock){.l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
}

int at__spool_lock(at_spool *s)
{
    struct flock l = lock_byte(F_WRLCK);
    if (fcntl(s->fd, F_OFD_SETLK, &l) != 0)
        return errno == EAGAIN || errno == EACCES ? AT_E_EXISTS : AT_E_IO;
    __atomic_store_n(&s->h->consumer_locked, 1, __ATOMIC_RELEASE);
    return 0;
}

void at__spool_unlock(at_spool *s)
{
    int saved = errno;
    struct flock l = lock_byte(F_UNLCK);
    fcntl(s->fd, F_OFD_SETLK, &l);
    errno = saved;
}

int at__spool_locked(const at_spool *s)
{
    int saved = errno;
    struct flock l = lock_byte(F_WRLCK);
    /* A test that fails says nothing: taken as held, so a producer waits
     * (as it did for a consumer it could not see) rather than give up. */
    int held = fcntl(s->fd, F_OFD_GETLK, &l) != 0 || l.l_type != F_UNLCK;
    errno = saved;
    return held;
}

/* Whether a consumer gives chunks back: 1 alive, 0 none ever attached,
 * -1 it attached and is gone (its lock is free: it died or ended). */
static int consumer_state(const at_spool *s)
{
    if (!__atomic_load_n(&s->h->consumer_locked, __ATOMIC_ACQUIRE))
        return 0;
    return at__spool_locked(s) ? 1 : -1;
}

/* A chunk never taken, grown into the file within `limit` chunks; NULL
 * when there is none (or no disk for it). */
static at_buf *grow(at_spool *s, uint32_t n, uint32_t limit, int *unmapped)
{
    at_buf *b = NULL;
    while (!b && !*unmapped && n < limit && !__atomic_load_n(&s->no_growth, __ATOMIC_RELAXED)) {
        /* A new chunk: its disk blocks first (a write into a hole of a
         * full file system is a SIGBUS), then the index, then the chunk
         * (fresh from the sparse file: FREE and zero). */
        if (reserve(s->fd, (off_t)(AT_SPOOL_HEADER + (size_t)n * s->h->chunk_size),
                    (off_t)s->h->chunk_size) != 0) {
            __atomic_store_n(&s->no_growth, 1, __ATOMIC_RELAXED);
            break;
        }
        if (__atomic_compare_exchange_n(&s->h->nchunks, &n, n + 1, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            at_spool_chunk *c = chunk_at(s, n, unmapped);
            if (c)
                b = take(s, c);
        }
    }
    return b;
}

/* How many chunks the spool may hold now: all of them while a consumer
 * gives chunks back or none ever did; past a dead consumer, what it held
 * then and AT_SPOOL_ORPHAN_CHUNKS more (the first thread to see the death
 * decides it). */
static uint32_t chunk_limit(at_spool *s, int state)
{
    uint32_t max = s->h->max_chunks;
    if (state >= 0)
        return max;
    uint32_t limit = __atomic_load_n(&s->h->orphan_limit, __ATOMIC_ACQUIRE);
    if (!limit) {
        uint32_t n = __atomic_load_n(&s->h->nchunks, __ATOMIC_ACQUIRE);
        uint32_t want = n > max - AT_SPOOL_ORPHAN_CHUNKS ? max : n + AT_SPOOL_ORPHAN_CHUNKS;
        uint32_t zero = 0;
        if (!__atomic_compare_exchange_n(&s->h->orphan_limit, &zero, want, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            want = zero;
        limit = want;
    }
    return limit < max ? limit : max;
}

/* A chunk with nobody giving any back: from the first not known taken,
 * then a new one; NULL marks the spool starved. */
static at_buf *get_unattended(at_spool *s, int state, int *unmapped)
{
    uint32_t n = __atomic_load_n(&s->h->nchunks, __ATOMIC_ACQUIRE);
    at_buf *b = NULL;
    uint32_t i = __atomic_load_n(&s->hint, __ATOMIC_RELAXED);
    for (; i < n && !b; i++) {
        at_spool_chunk *c = chunk_at(s, i, unmapped);
        if (c)
            b = take(s, c);
    }
    __atomic_store_n(&s->hint, b ? i - 1 : i, __ATOMIC_RELAXED);
    if (!b)
        b = grow(s, n, chunk_limit(s, state), unmapped);
    /* starved: nothing will come back; a chunk this process could not map
     * is not that (another thread's may free address space) */
    if (!b && !*unmapped)
        __atomic_store_n(&s->starved, 1, __ATOMIC_RELEASE);
    return b;
}

at_buf *at__spool_get(at_spool *s)
{
    if (__atomic_load_n(&s->starved, __ATOMIC_ACQUIRE)) {
        __atomic_add_fetch(&s->h->dropped, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    int saved = errno;
    at_buf *b = NULL;
    for (unsigned spins = 0;; spins++) {
        if (__atomic_load_n(&s->filling, __ATOMIC_RELAXED) >= s->h->max_chunks) {
            /* every chunk is held by one of our threads: nothing to wait
             * for, nor to scan */
            __atomic_add_fetch(&s->h->dropped, 1, __ATOMIC_RELAXED);
            break;
        }
        int unmapped = 0; /* a chunk this process could not map: no waiting */
        int state = consumer_state(s);
        __atomic_add_fetch(&s->scanners, 1, __ATOMIC_SEQ_CST);
        if (state <= 0) {
            b = get_unattended(s, state, &unmapped);
            __atomic_sub_fetch(&s->scanners, 1, __ATOMIC_SEQ_CST);
            if (!b)
                __atomic_add_fetch(&s->h->dropped, 1, __ATOMIC_RELAXED);
            break;
        }
        uint32_t n = __atomic_load_n(&s->h->nchunks, __ATOMIC_ACQUIRE);
        for (uint32_t i = 0; i < n && !b; i++) {
            at_spool_chunk *c = chunk_at(s, i, &unmapped);
            if (c)
                b = take(s, c);
        }
        /* A consumer gives chunks back: under RLIMIT_AS a limit on growth
         * makes the program wait for it (spool.h, grow_limit). */
        uint32_t limit = s->grow_limit && s->grow_limit < s->h->max_chunks ? s->grow_limit
                                                                           : s->h->max_chunks;
        /* Past AT_SPOOL_BACKLOG chunks (and those our threads hold), a
         * while for one to come back before growing (spool.h). */
        uint32_t soft = __atomic_load_n(&s->filling, __ATOMIC_RELAXED) + AT_SPOOL_BACKLOG;
        if (spins < AT_SPOOL_BACKLOG_SPINS && soft < limit)
            limit = soft;
        if (!b && !unmapped)
            b = grow(s, n, limit, &unmapped);
        __atomic_sub_fetch(&s->scanners, 1, __ATOMIC_SEQ_CST);
        if (b)
            break;
        int held = __atomic_load_n(&s->filling, __ATOMIC_RELAXED) >= n &&
                   (n >= s->h->max_chunks || __atomic_load_n(&s->no_growth, __ATOMIC_RELAXED));
        if (unmapped || held) {
            __atomic_add_fetch(&s->h->dropped, 1, __ATOMIC_RELAXED);
            break;
        }
        if (spins == 0)
            __atomic_add_fetch(&s->h->waits, 1, __ATOMIC_RELAXED);
        struct timespec ts = {0, 200 * 1000};
        nanosleep(&ts, NULL);
    }
    errno = saved;
    return b;
}

void at__spool_submit(at_spool *s, at_buf *b)
{
    at_spool_chunk *c = (at_spool_chunk *)b - 1;
    __atomic_store_n(&c->state, AT_CHUNK_FULL, __ATOMIC_RELEASE);
    __atomic_sub_fetch(&s->filling, 1, __ATOMIC_RELAXED);
    /* no live consumer: nobody gives it back (the file keeps its records
     * for a later recover) */
    if (s->windowed && consumer_state(s) <= 0)
        retire(s, c);
}
