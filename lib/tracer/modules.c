/* The module map (see modules.h).
 *
 * Relies on dl_iterate_phdr for the list of loaded objects.  The list is
 * copied first and handed to the caller afterwards, so the loader's lock
 * is not held while the caller works (writes SQLite, fills a spool).  Build ids come from the PT_NOTE segments in memory,
 * not from the files: those may have been replaced since they were loaded,
 * and the vdso has no file at all.
 */
#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <alloctrace/error.h>

#include "backtrace.h"
#include "modules.h"

enum { MAX_BUILD_ID = 64 }; /* bytes; GNU ld writes 20 (sha1) */

typedef struct module {
    char *path;
    uintptr_t base, start, end;
    char build_id[2 * MAX_BUILD_ID + 1]; /* lowercase hex, "" when none */
} module;

typedef struct module_list {
    module *v;
    size_t n, cap;
    int nomem; /* some module could not be recorded */
} module_list;

const char *at__module_path(const char *name, char *buf, size_t size)
{
    if (!name || name[0] == '\0') {
        ssize_t n = size ? readlink("/proc/self/exe", buf, size - 1) : -1;
        if (n > 0) {
            buf[n] = '\0';
            return buf;
        }
        return program_invocation_name; /* no /proc: argv[0] is all there is */
    }
    /* dlopen("./libx.so") leaves the name relative to a directory the
     * program may have left since; an offline reader needs it absolute. */
    if (name[0] != '/' && strchr(name, '/') && size >= PATH_MAX && realpath(name, buf))
        return buf;
    return name;
}

static size_t align_up(size_t v, size_t a)
{
    return (v + a - 1) & ~(a - 1);
}

/* Whether [vaddr, vaddr + size) lies inside a PT_LOAD segment, that is in
 * readable memory. */
static int loaded(const struct dl_phdr_info *info, ElfW(Addr) vaddr, size_t size)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && vaddr >= ph->p_vaddr &&
            vaddr + size <= ph->p_vaddr + ph->p_memsz)
            return 1;
    }
    return 0;
}

static void hex(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The NT_GNU_BUILD_ID note of a loaded object, as hex into `out` ("" if
 * none).  Offsets follow the gABI: name and descriptor each start at the
 * segment's alignment (4, or 8 for .note.gnu.property-style segments). */
static void read_build_id(const struct dl_phdr_info *info, char *out)
{
    out[0] = '\0';
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE || !loaded(info, ph->p_vaddr, ph->p_memsz))
            continue;
        const unsigned char *seg = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr);
        size_t a = ph->p_align == 8 ? 8 : 4;
        size_t off = 0;
        while (off + sizeof(ElfW(Nhdr)) <= ph->p_memsz) {
            ElfW(Nhdr) nh;
            memcpy(&nh, seg + off, sizeof nh);
            size_t name = off + sizeof nh;
            size_t desc = align_up(name + nh.n_namesz, a);
            size_t next = align_up(desc + nh.n_descsz, a);
            if (desc + nh.n_descsz > ph->p_memsz)
                break; /* truncated: not a note segment we understand */
            if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
                memcmp(seg + name, "GNU", 4) == 0 && nh.n_descsz > 0 &&
                nh.n_descsz <= MAX_BUILD_ID) {
                hex(seg + desc, nh.n_descsz, out);
                return;
            }
            off = next;
        }
    }
}

static int collect(struct dl_phdr_info *info, size_t size, void *arg)
{
    module_list *l = arg;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        if (ph->p_vaddr < lo)
            lo = ph->p_vaddr;
        if (ph->p_vaddr + ph->p_memsz > hi)
            hi = ph->p_vaddr + ph->p_memsz;
    }
    if (hi == 0)
        return 0; /* maps nothing: no frame can be in it */
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 32;
        module *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->nomem = 1;
            return 0;
        }
        l->v = v;
        l->cap = cap;
    }
    char buf[PATH_MAX];
    module *m = &l->v[l->n];
    m->path = strdup(at__module_path(info->dlpi_name, buf, sizeof buf));
    if (!m->path) {
        l->nomem = 1;
        return 0;
    }
    m->base = info->dlpi_addr;
    m->start = info->dlpi_addr + lo;
    m->end = info->dlpi_addr + hi;
    read_build_id(info, m->build_id);
    l->n++;
    return 0;
}

int at__modules_foreach(void (*fn)(const at_module_info *m, void *arg), void *arg)
{
    module_list l = {0};
    int *gate = at__unwinder_enter(); /* glibc's loader lock, and fork: backtrace.h */
    dl_iterate_phdr(collect, &l);
    at__unwinder_leave(gate);
    for (size_t i = 0; i < l.n; i++) {
        at_module_info m = {l.v[i].path, l.v[i].base, l.v[i].start, l.v[i].end,
                            l.v[i].build_id[0] ? l.v[i].build_id : NULL};
        fn(&m, arg);
        free(l.v[i].path);
    }
    free(l.v);
    return l.nomem ? AT_E_NOMEM : 0;
}

static int read_generation(struct dl_phdr_info *info, size_t size, void *arg)
{
    unsigned long long *gen = arg;
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs)
        *gen = info->dlpi_adds + info->dlpi_subs;
    return 1; /* the counters are the same in every entry */
}

unsigned long long at__modules_generation(void)
{
    unsigned long long gen = 0;
    int *gate = at__unwinder_enter();
    dl_iterate_phdr(read_generation, &gen);
    at__unwinder_leave(gate);
    return gen;
}
