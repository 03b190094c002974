/* The process's memory as the reachability scan sees it (reach.h): the
 * mapping snapshot, the C library's heap within it, the tracer's own
 * object, and the one way roots are read.
 */
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <alloctrace/error.h>

#include "reach.h"

/* ---- memory of the scan's own --------------------------------------------------- */

/* Every mapping the scan holds, so that none is taken for a root: a
 * mapping made after the snapshot can land in a hole the snapshot still
 * shows as mapped (a buffer the scan itself unmapped meanwhile).  One scan
 * runs at a time (the tracer's locks are held). */
enum { MAX_OWN = 128 };
static at_range own[MAX_OWN];

void *at__reach_map(size_t size)
{
    int saved = errno;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    errno = saved;
    if (p == MAP_FAILED)
        return NULL;
    for (int i = 0; i < MAX_OWN; i++) {
        if (own[i].hi == 0) {
            own[i] = (at_range){(uintptr_t)p, (uintptr_t)p + size};
            return p;
        }
    }
    munmap(p, size); /* more than the scan ever holds at once */
    return NULL;
}

void at__reach_unmap(void *p, size_t size)
{
    if (p) {
        int saved = errno;
        munmap(p, size);
        errno = saved;
        for (int i = 0; i < MAX_OWN; i++)
            if (own[i].lo == (uintptr_t)p)
                own[i] = (at_range){0, 0};
    }
}

void at__reach_own_ranges(at_ranges *out)
{
    at_range copy[MAX_OWN];
    memcpy(copy, own, sizeof copy); /* out grows through at__reach_map */
    for (int i = 0; i < MAX_OWN; i++)
        if (copy[i].hi)
            at__ranges_add(out, copy[i].lo, copy[i].hi);
}

/* Grows an array mapped with at__reach_map to hold `need` elements. */
static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 256;
    while (ncap < need)
        ncap *= 2;
    void *p = at__reach_map(ncap * elem);
    if (!p)
        return AT_E_NOMEM;
    if (*arr) {
        memcpy(p, *arr, *cap * elem);
        at__reach_unmap(*arr, *cap * elem);
    }
    *arr = p;
    *cap = ncap;
    return 0;
}

int at__ranges_add(at_ranges *rs, uintptr_t lo, uintptr_t hi)
{
    if (hi <= lo)
        return 0;
    int rc = grow((void **)&rs->r, &rs->cap, rs->n + 1, sizeof *rs->r);
    if (rc)
        return rc;
    rs->r[rs->n++] = (at_range){lo, hi};
    return 0;
}

void at__ranges_free(at_ranges *rs)
{
    at__reach_unmap(rs->r, rs->cap * sizeof *rs->r);
    memset(rs, 0, sizeof *rs);
}

/* Insertion sort after a shell pass: the lists are hundreds long at most. */
static void sort_ranges(at_range *r, size_t n)
{
    for (size_t gap = n / 2; gap > 0; gap /= 2) {
        for (size_t i = gap; i < n; i++) {
            at_range x = r[i];
            size_t j = i;
            while (j >= gap && r[j - gap].lo > x.lo) {
                r[j] = r[j - gap];
                j -= gap;
            }
            r[j] = x;
        }
    }
}

void at__ranges_normalize(at_ranges *rs)
{
    sort_ranges(rs->r, rs->n);
    size_t out = 0;
    for (size_t i = 0; i < rs->n; i++) {
        if (out && rs->r[i].lo <= rs->r[out - 1].hi) {
            if (rs->r[i].hi > rs->r[out - 1].hi)
                rs->r[out - 1].hi = rs->r[i].hi;
        } else {
            rs->r[out++] = rs->r[i];
        }
    }
    rs->n = out;
}

/* ---- the mapping snapshot ------------------------------------------------------- */

static const char *hex(const char *p, const char *end, uintptr_t *out)
{
    uintptr_t v = 0;
    const char *start = p;
    for (; p < end; p++) {
        int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
        if (d < 0)
            break;
        v = v * 16 + (uintptr_t)d;
    }
    *out = v;
    return p == start ? NULL : p;
}

static const char *skip_field(const char *p, const char *end)
{
    while (p < end && *p == ' ')
        p++;
    while (p < end && *p != ' ')
        p++;
    return p;
}

/* One line: "lo-hi perms offset dev inode   path". */
static int parse_line(const char *p, const char *end, at_vma *v)
{
    uintptr_t lo, hi;
    p = hex(p, end, &lo);
    if (!p || p >= end || *p != '-')
        return 0;
    p = hex(p + 1, end, &hi);
    if (!p || end - p < 5)
        return 0;
    memset(v, 0, sizeof *v);
    v->lo = lo;
    v->hi = hi;
    v->read = p[1] == 'r';
    v->write = p[2] == 'w';
    v->exec = p[3] == 'x';
    p = skip_field(p, end); /* perms */
    p = skip_field(p, end); /* offset */
    p = skip_field(p, end); /* device */
    const char *inode = p;
    p = skip_field(p, end);
    while (inode < p && *inode == ' ')
        inode++;
    v->anon = p - inode == 1 && *inode == '0';
    while (p < end && *p == ' ')
        p++;
    size_t plen = (size_t)(end - p);
    v->heap = plen == 6 && memcmp(p, "[heap]", 6) == 0;
    /* The kernel's pages ([vvar], [vdso], [vsyscall]) and devices, which
     * reading may disturb (/dev/zero is plain memory). */
    v->skip = (plen >= 2 && p[0] == '[' && p[1] == 'v') ||
              (plen >= 5 && memcmp(p, "/dev/", 5) == 0 &&
               !(plen == 9 && memcmp(p, "/dev/zero", 9) == 0));
    if (plen > 0 && p[0] == '[')
        v->anon = 1; /* [heap], [stack], [anon:...] */
    return 1;
}

static int read_all(int fd, char **buf, size_t *cap, size_t *len)
{
    *len = 0;
    for (;;) {
        if (*len == *cap && grow((void **)buf, cap, *cap * 2 + 65536, 1))
            return AT_E_NOMEM;
        ssize_t r = read(fd, *buf + *len, *cap - *len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return AT_E_IO;
        if (r == 0)
            return 0;
        *len += (size_t)r;
    }
}

int at__vmas_read(at_vmas *out)
{
    memset(out, 0, sizeof *out);
    int saved = errno;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        errno = saved;
        return AT_E_IO;
    }
    char *buf = NULL;
    size_t cap = 0, len = 0;
    int rc = read_all(fd, &buf, &cap, &len);
    close(fd);
    errno = saved;
    for (size_t pos = 0; rc == 0 && pos < len;) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        const char *end = nl ? nl : buf + len;
        at_vma v;
        if (parse_line(line, end, &v)) {
            rc = grow((void **)&out->v, &out->cap, out->n + 1, sizeof *out->v);
            if (rc == 0)
                out->v[out->n++] = v;
        }
        pos = (size_t)(end - buf) + 1;
    }
    out->text = buf;
    out->text_cap = cap;
    if (rc)
        at__vmas_free(out);
    return rc;
}

void at__vmas_free(at_vmas *v)
{
    at__reach_unmap(v->text, v->text_cap);
    at__reach_unmap(v->v, v->cap * sizeof *v->v);
    memset(v, 0, sizeof *v);
}

const at_vma *at__vmas_find(const at_vmas *v, uintptr_t addr)
{
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->v[mid].hi <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < v->n && v->v[lo].lo <= addr ? &v->v[lo] : NULL;
}

int at__vmas_readable_anon(const at_vmas *v, uintptr_t lo, uintptr_t hi)
{
    while (lo < hi) {
        const at_vma *m = at__vmas_find(v, lo);
        if (!m || !m->read || !m->anon)
            return 0;
        lo = m->hi;
    }
    return 1;
}

/* ---- glibc's heap ---------------------------------------------------------------- */

/* glibc (malloc/arena.c): a secondary arena's memory is heaps of
 * HEAP_MAX_SIZE, aligned to it, each starting with a heap_info whose
 * mprotect_size bytes are read-write and the rest reserved.  A chunk's
 * size word, before the block, has bit 1 when the chunk was mapped on its
 * own and bit 2 when it belongs to a secondary arena. */
enum { HEAP_MAX = 64 << 20, IS_MMAPPED = 2, NON_MAIN_ARENA = 4 };

typedef struct heap_info_head {
    uintptr_t ar_ptr, prev, size, mprotect_size;
} heap_info_head;

/* A secondary arena's heap at `a` (HEAP_MAX-aligned, inside a read-write
 * anonymous mapping): what heap_info says must agree with the mappings. */
static int looks_like_arena_heap(const at_vmas *v, uintptr_t a)
{
    heap_info_head h;
    if (at__reach_copy(a, &h, sizeof h) != 0)
        return 0;
    if (!h.ar_ptr || h.mprotect_size == 0 || h.mprotect_size > HEAP_MAX ||
        h.size > h.mprotect_size || (h.mprotect_size & 4095) != 0)
        return 0;
    if (!at__vmas_readable_anon(v, a, a + h.mprotect_size))
        return 0;
    const at_vma *after = at__vmas_find(v, a + h.mprotect_size);
    return a + h.mprotect_size == (uintptr_t)a + HEAP_MAX || !after || !after->read;
}

static int add_mapped_chunk(const at_reach_block *b, at_ranges *out)
{
    uintptr_t hdr[2]; /* prev_size, size */
    if (b->start < 16 || at__reach_copy(b->start - 16, hdr, sizeof hdr) != 0)
        return 0;
    if (!(hdr[1] & IS_MMAPPED))
        return 0;
    uintptr_t chunk = b->start - 16;
    uintptr_t base = chunk - hdr[0]; /* prev_size: the offset of an aligned block */
    if ((base & 4095) != 0)
        return 0;
    return at__ranges_add(out, base, chunk + (hdr[1] & ~(uintptr_t)7));
}

/* Chunks glibc mapped on their own for blocks the tracer never saw (the
 * tracer's own libraries' allocations, SQLite's page cache in-process):
 * each starts a mapping, or follows one that the kernel merged with it,
 * with prev_size 0 and its size, page-aligned, flagged IS_MMAPPED. */
static int add_untraced_chunks(const at_vma *m, at_ranges *out)
{
    int rc = 0;
    for (uintptr_t pos = m->lo; rc == 0 && pos + 16 <= m->hi;) {
        uintptr_t hdr[2];
        if (at__reach_copy(pos, hdr, sizeof hdr) != 0 || hdr[0] != 0 ||
            (hdr[1] & 7) != IS_MMAPPED)
            break;
        uintptr_t size = hdr[1] & ~(uintptr_t)7;
        if (size < 4096 || (size & 4095) || size > m->hi - pos)
            break;
        rc = at__ranges_add(out, pos, pos + size);
        pos += size;
    }
    return rc;
}

int at__reach_heap_ranges(const at_vmas *v, const at_reach_block *b, size_t n, at_ranges *out)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < v->n; i++) {
        const at_vma *m = &v->v[i];
        if (m->heap) {
            rc = at__ranges_add(out, m->lo, m->hi);
            continue;
        }
        if (!m->read || !m->write || !m->anon)
            continue;
        rc = add_untraced_chunks(m, out);
        for (uintptr_t a = (m->lo + HEAP_MAX - 1) & ~(uintptr_t)(HEAP_MAX - 1);
             rc == 0 && a >= m->lo && a < m->hi; a += HEAP_MAX)
            if (looks_like_arena_heap(v, a))
                rc = at__ranges_add(out, a, a + HEAP_MAX);
    }
    /* Blocks of 64 KiB and more may be chunks glibc mapped alone (its
     * threshold starts at 128 KiB and only grows). */
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (b[i].size >= 64 * 1024)
            rc = add_mapped_chunk(&b[i], out);
    return rc;
}

/* ---- stacks of threads that are gone ------------------------------------------- */

/* glibc keeps the stacks of threads that have exited, their thread-local
 * storage and thread descriptor at the top, for the next thread: their
 * memory is no root (valgrind no longer counts it either).  The
 * descriptor starts with two words that are its own address (tcbhead_t's
 * tcb and self) and holds the thread's id, which the kernel clears when
 * the thread ends (glibc makes it -1 once the thread is joined); the
 * id's offset is found in the calling thread's own descriptor. */
static long tid_offset = -1;

static void find_tid_offset(void)
{
    uintptr_t self = (uintptr_t)pthread_self();
    int32_t tid = (int32_t)syscall(SYS_gettid);
    uintptr_t head[3];
    if (at__reach_copy(self, head, sizeof head) != 0 || head[0] != self || head[2] != self)
        return;
    int32_t words[1024];
    if (at__reach_copy(self, words, sizeof words) != 0)
        return;
    for (long i = 6; i < 1024; i++) {
        if (words[i] == tid) {
            tid_offset = i * 4;
            return;
        }
    }
}

static int dead_thread_stack(const at_vma *m, uintptr_t *top)
{
    enum { LOOK = 16384 };
    if (m->hi - m->lo < LOOK + 4096)
        return 0;
    uintptr_t base = m->hi - LOOK;
    if (at__reach_copy(base, top, LOOK) != 0)
        return 0;
    for (size_t i = 0; i + 2 < LOOK / sizeof(uintptr_t); i += 2) {
        uintptr_t a = base + i * sizeof(uintptr_t);
        if (top[i] != a || top[i + 2] != a)
            continue;
        if (a + (uintptr_t)tid_offset + 4 > m->hi)
            return 0;
        int32_t tid;
        memcpy(&tid, (const char *)top + i * sizeof(uintptr_t) + tid_offset, sizeof tid);
        return tid <= 0; /* the kernel clears it; glibc sets -1 once joined */
    }
    return 0;
}

int at__reach_dead_stacks(const at_vmas *v, at_ranges *out, void *buf, size_t len)
{
    if (len < 16384)
        return AT_E_INVALID;
    if (tid_offset < 0)
        find_tid_offset();
    if (tid_offset < 0)
        return 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < v->n; i++) {
        const at_vma *m = &v->v[i];
        if (m->read && m->write && m->anon && !m->heap && !m->skip && dead_thread_stack(m, buf))
            rc = at__ranges_add(out, m->lo, m->hi);
    }
    return rc;
}

/* ---- the tracer's own object ----------------------------------------------------- */

static at_range self_rw[8];
static size_t self_nrw;

static int note_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uintptr_t here = (uintptr_t)arg;
    int mine = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && here >= lo && here < lo + ph->p_memsz)
            mine = 1;
    }
    if (!mine)
        return 0;
    self_nrw = 0;
    for (int i = 0; i < info->dlpi_phnum && self_nrw < 8; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W)) {
            uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
            self_rw[self_nrw++] = (at_range){lo, lo + ph->p_memsz};
        }
    }
    return 1;
}

void at__reach_note_self(void)
{
    if (self_nrw == 0)
        dl_iterate_phdr(note_object, (void *)(uintptr_t)&at__reach_note_self);
}

void at__reach_self_ranges(at_ranges *out)
{
    /* Empty unless at__reach_note_self was called, which only the preload
     * library does: linked into a program, the object would be the
     * program, whose data are roots. */
    for (size_t i = 0; i < self_nrw; i++)
        at__ranges_add(out, self_rw[i].lo, self_rw[i].hi);
}

/* ---- reading -------------------------------------------------------------------- */

static int vm_read(uintptr_t addr, void *buf, size_t len)
{
    struct iovec local = {buf, len}, remote = {(void *)addr, len};
    ssize_t r = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    return r == (ssize_t)len;
}

size_t at__reach_copy(uintptr_t addr, void *buf, size_t len)
{
    int saved = errno;
    size_t lost = 0;
    if (!vm_read(addr, buf, len)) {
        /* Page by page: what cannot be read reads as zero, which points
         * nowhere. */
        for (size_t off = 0; off < len;) {
            size_t n = 4096 - ((addr + off) & 4095);
            if (n > len - off)
                n = len - off;
            if (!vm_read(addr + off, (char *)buf + off, n)) {
                memset((char *)buf + off, 0, n);
                lost += n;
            }
            off += n;
        }
    }
    errno = saved;
    return lost;
}
