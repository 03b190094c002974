/* Frame symbolization (see symbolize.h).
 *
 * Relies on elfutils' libdwfl, fed only with what the trace holds (module
 * paths and load biases from the `modules` table), so the same code serves
 * the traced process at close and an offline reader.  When libdwfl finds
 * no symbol (the file is gone, or is the vdso) and the module is mapped in
 * this very process, dladdr() answers from memory instead.
 *
 * The functions inlined at an address come from the DWARF's inlined
 * instances (DW_TAG_inlined_subroutine), found by walking down the one
 * function that holds the address, as `addr2line -i` reports them.
 *
 * Every address looked up is ip - 1: frames are return addresses, and ip
 * itself may already be the first byte of the next line, or of the next
 * function after a call that does not return.
 */
#include <dlfcn.h>
#include <dwarf.h>
#include <limits.h>
#include <pthread.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#include <elfutils/libdwfl.h>
#include <libiberty/demangle.h>
#include <uthash.h>

#include <alloctrace/error.h>

#include "modules.h"
#include "schema.h"
#include "symbolize.h"

/* libiberty's own demanglers, not cplus_demangle(): that one lives in
 * cplus-dem.o, whose xmalloc() exits the process when memory runs out.
 * Rust first, as cplus_demangle() does: a legacy Rust name is also a valid
 * C++ name (`_ZN...17h<hash>E`), which rust_demangle() recognizes by its
 * hash segment and prints without it (the hash is shown only with
 * DMGL_VERBOSE); v0 names start with `_R`.  Both return malloc'd strings
 * or NULL, never exit. */
char *at__demangle(const char *name)
{
    if (!name || name[0] != '_' || (name[1] != 'Z' && name[1] != 'R'))
        return NULL;
    char *out = rust_demangle(name, DMGL_PARAMS | DMGL_ANSI);
    if (!out && name[1] == 'Z')
        out = cplus_demangle_v3(name, DMGL_PARAMS | DMGL_ANSI);
    return out;
}

/* In `n` entries of `size` bytes, each starting with its address range
 * (lo, hi) and sorted by lo: the index of the first that starts after
 * `pc`.  The candidate that holds pc, if any, is the one before it. */
static size_t first_after(const void *v, size_t n, size_t size, Dwarf_Addr pc)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        Dwarf_Addr start;
        memcpy(&start, (const char *)v + mid * size, sizeof start);
        if (start <= pc)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The address range of one compilation unit (absolute addresses). */
typedef struct cu_range {
    Dwarf_Addr lo, hi;
    Dwarf_Die *cu;
} cu_range;

/* A function symbol of a module, at its run-time address. */
typedef struct sym_entry {
    GElf_Addr lo, hi;
    const char *name; /* owned by libdwfl */
    int rank;         /* binding: 0 global, 1 weak, 2 local (aliases: lowest wins) */
} sym_entry;

/* A function's code range in a unit, and its concrete DIE. */
typedef struct fn_range {
    Dwarf_Addr lo, hi; /* as the DWARF has them (no bias) */
    Dwarf_Die die;
} fn_range;

_Static_assert(offsetof(cu_range, lo) == 0 && offsetof(sym_entry, lo) == 0 &&
                   offsetof(fn_range, lo) == 0 && sizeof(GElf_Addr) == sizeof(Dwarf_Addr),
               "first_after reads each entry's lo first");

/* The functions of one unit, sorted by address: found once per unit, as
 * dwarf_getscopes walks the whole unit for every address, which takes
 * milliseconds in a C++ unit that includes the standard library. */
typedef struct cu_funcs {
    Dwarf_Off off; /* the unit DIE's */
    fn_range *fns;
    size_t n, cap;
    UT_hash_handle hh;
} cu_funcs;

/* A file's symbols, kept for the process (see the cache below): the file
 * alone in a Dwfl at load bias 0, so that its addresses are the file's
 * own and the same for every process that mapped it. */
typedef struct mod {
    char *path;
    dev_t dev; /* the file as it was opened: a file changed since is another */
    ino_t ino;
    off_t size;
    struct timespec mtime;
    uint64_t used; /* when last used, for eviction */
    Dwfl *dwfl;
    Dwfl_Module *dm; /* NULL when libdwfl could not take the file */
    int cus_built;   /* cus/ncus/bias are valid (possibly empty) */
    cu_range *cus;
    size_t ncus;
    Dwarf_Addr bias;
    /* Function symbols sorted by address: libdwfl's own lookup walks the
     * whole table for every address, which takes seconds for the frames
     * of a library like libLLVM with its 100,000 symbols. */
    int syms_built;
    sym_entry *syms;
    size_t nsyms;
    cu_funcs *funcs; /* the units looked into for inlined functions, by offset */
} mod;

/* A module of the trace referenced by frames still to symbolize: its
 * load bias there, and its file's symbols. */
typedef struct trace_mod {
    int64_t id;
    uintptr_t base;
    char *path;
    mod *m; /* NULL: no file to read */
} trace_mod;

/* A frame to symbolize. */
typedef struct job {
    int64_t id, module;
    uintptr_t ip;
} job;

typedef struct work {
    sqlite3 *db;
    trace_mod *mods; /* sorted by id */
    size_t nmods;
    job *jobs;
    size_t njobs;
    sqlite3_stmt *up, *ins, *del; /* frames, inlined_frames */
} work;

static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
};

/* ---- reading the work from the trace ----------------------------------------------- */

/* Modules referenced by frames still to symbolize, and those frames. */
static const char mods_sql[] = "SELECT id, base, path FROM modules WHERE path IS NOT NULL AND id IN"
                               " (SELECT module FROM frames WHERE function IS NULL) ORDER BY id";
static const char jobs_sql[] =
    "SELECT id, module, ip FROM frames WHERE function IS NULL AND module IS NOT NULL";

/* Runs `sql` wrapped in count(*) to size the array, then for the rows
 * (same transaction, so the same ones); `row` stores row i. */
static int load(sqlite3 *db, const char *sql, void **out, size_t *n, size_t size,
                int (*row)(sqlite3_stmt *st, void *out, size_t i))
{
    char count_sql[512];
    snprintf(count_sql, sizeof count_sql, "SELECT count(*) FROM (%s)", sql);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, count_sql, -1, &st, NULL) != SQLITE_OK)
        return AT_E_DB;
    int s = sqlite3_step(st);
    size_t total = s == SQLITE_ROW ? (size_t)sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (s != SQLITE_ROW)
        return AT_E_DB;
    if (total == 0)
        return 0;
    if (!(*out = calloc(total, size)))
        return AT_E_NOMEM;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return AT_E_DB;
    int rc = 0;
    while (!rc && *n < total && (s = sqlite3_step(st)) == SQLITE_ROW)
        if (!(rc = row(st, *out, *n)))
            ++*n;
    sqlite3_finalize(st);
    return rc ? rc : s == SQLITE_ROW || s == SQLITE_DONE ? 0 : AT_E_DB;
}

static int mod_row(sqlite3_stmt *st, void *out, size_t i)
{
    trace_mod *m = (trace_mod *)out + i;
    m->id = sqlite3_column_int64(st, 0);
    m->base = (uintptr_t)sqlite3_column_int64(st, 1);
    const char *path = (const char *)sqlite3_column_text(st, 2);
    m->path = path ? strdup(path) : NULL;
    return m->path ? 0 : AT_E_NOMEM;
}

static int job_row(sqlite3_stmt *st, void *out, size_t i)
{
    job *j = (job *)out + i;
    j->id = sqlite3_column_int64(st, 0);
    j->module = sqlite3_column_int64(st, 1);
    j->ip = (uintptr_t)sqlite3_column_int64(st, 2);
    return 0;
}

static trace_mod *find_mod(const work *w, int64_t id)
{
    size_t lo = 0, hi = w->nmods;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w->mods[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < w->nmods && w->mods[lo].id == id ? &w->mods[lo] : NULL;
}

/* ---- libdwfl -------------------------------------------------------------------- */

/* The files' symbols, kept from one trace to the next in this process:
 * a run that finishes the traces of many processes (a shell script's, a
 * test suite's) reads each library's DWARF once, not once a trace (the
 * pyenv python3 workload: 17 traces, each decompressing libc's 10 MB of
 * separate debug info, 0.85 s).  Between traces at most CACHED files
 * stay, the ones used most recently (trim_cache); while a trace is
 * symbolized the cache holds every file of it, since its modules point
 * into the cache (a trace of 20 files once freed the first ones while the
 * last were read, and symbolized with freed memory).  Serialized by
 * cache_lock. */
enum { CACHED = 16 };
static mod **cache;
static size_t ncached, cache_cap;
static uint64_t cache_clock;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static void mod_free(mod *m)
{
    if (m->dwfl)
        dwfl_end(m->dwfl);
    free(m->path);
    free(m->cus);
    free(m->syms);
    cu_funcs *f, *tmp;
    HASH_ITER(hh, m->funcs, f, tmp)
    {
        HASH_DEL(m->funcs, f);
        free(f->fns);
        free(f);
    }
    free(m);
}

/* The symbols of the file at `path`, read if no file of the cache is that
 * one; NULL when it is not a regular file (the vdso, a file removed
 * since) or memory ran out. */
static mod *mod_of(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return NULL;
    for (size_t i = 0; i < ncached; i++) {
        mod *m = cache[i];
        if (m->dev == sb.st_dev && m->ino == sb.st_ino && m->size == sb.st_size &&
            m->mtime.tv_sec == sb.st_mtim.tv_sec && m->mtime.tv_nsec == sb.st_mtim.tv_nsec &&
            strcmp(m->path, path) == 0) {
            m->used = ++cache_clock;
            return m;
        }
    }
    mod *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return NULL;
    }
    m->dev = sb.st_dev;
    m->ino = sb.st_ino;
    m->size = sb.st_size;
    m->mtime = sb.st_mtim;
    m->used = ++cache_clock;
    if ((m->dwfl = dwfl_begin(&callbacks)) != NULL) {
        dwfl_report_begin(m->dwfl);
        /* With add_p_vaddr, bias 0 puts the file at its own addresses:
         * a frame's are ip minus its module's load bias (dlpi_addr), for
         * objects whose first segment is not at address 0 too.  A file
         * that fails (not ELF) has no Dwfl_Module. */
        m->dm = dwfl_report_elf(m->dwfl, path, path, -1, 0, true);
        dwfl_report_end(m->dwfl, NULL, NULL);
    }
    if (ncached == cache_cap) {
        size_t cap = cache_cap ? 2 * cache_cap : CACHED;
        mod **grown = realloc(cache, cap * sizeof *grown);
        if (!grown) {
            mod_free(m);
            return NULL;
        }
        cache = grown;
        cache_cap = cap;
    }
    cache[ncached++] = m;
    return m;
}

/* Down to the CACHED files used most recently, once no trace's modules
 * point into the cache. */
static void trim_cache(void)
{
    while (ncached > CACHED) {
        size_t old = 0;
        for (size_t i = 1; i < ncached; i++)
            if (cache[i]->used < cache[old]->used)
                old = i;
        mod_free(cache[old]);
        cache[old] = cache[--ncached];
    }
}

static int cu_range_cmp(const void *a, const void *b)
{
    const cu_range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* libdw before 0.191 finds the unit of an address only through
 * .debug_aranges, which clang does not emit: dwfl_module_getsrc then fails
 * although the line table is there.  So the first time it fails in a
 * module, the units' own ranges are listed, once, and searched instead. */
static void build_cu_ranges(mod *m)
{
    m->cus_built = 1;
    Dwarf_Addr bias;
    if (!dwfl_module_getdwarf(m->dm, &bias))
        return; /* no DWARF at all */
    m->bias = bias;
    size_t cap = 0;
    Dwarf_Die *cu = NULL;
    while ((cu = dwfl_module_nextcu(m->dm, cu, &bias)) != NULL) {
        Dwarf_Addr base, lo, hi;
        for (ptrdiff_t off = 0; (off = dwarf_ranges(cu, off, &base, &lo, &hi)) > 0;) {
            if (m->ncus == cap) {
                size_t c = cap ? 2 * cap : 64;
                cu_range *v = realloc(m->cus, c * sizeof *v);
                if (!v)
                    goto done; /* what is listed still helps */
                m->cus = v;
                cap = c;
            }
            m->cus[m->ncus++] = (cu_range){lo + m->bias, hi + m->bias, cu};
        }
    }
done:
    qsort(m->cus, m->ncus, sizeof *m->cus, cu_range_cmp);
}

/* The unit holding `pc` in the list built above, or NULL. */
static Dwarf_Die *find_cu(mod *m, Dwarf_Addr pc)
{
    if (!m->cus_built)
        build_cu_ranges(m);
    size_t lo = first_after(m->cus, m->ncus, sizeof *m->cus, pc);
    return lo > 0 && pc < m->cus[lo - 1].hi ? m->cus[lo - 1].cu : NULL;
}

/* Drops "." segments and "dir/.." pairs, in place and lexically (as a
 * reader of the path would, not following symbolic links): meson's
 * "/src/build/../lib/x.c" becomes "/src/lib/x.c".  Paths deeper than
 * MAX_DEPTH are left as they are. */
static void normalize(char *path)
{
    enum { MAX_DEPTH = 256 };
    size_t starts[MAX_DEPTH]; /* where each kept segment (with its '/') begins */
    int up[MAX_DEPTH];        /* whether that segment is ".." */
    int depth = 0, abs = path[0] == '/';
    size_t segments = 0;
    for (const char *p = path; *p; p++)
        segments += *p == '/';
    if (segments >= MAX_DEPTH)
        return;
    size_t out = (size_t)abs, i = 0;
    while (path[i]) {
        while (path[i] == '/')
            i++;
        size_t s = i;
        while (path[i] && path[i] != '/')
            i++;
        size_t len = i - s;
        int dotdot = len == 2 && path[s] == '.' && path[s + 1] == '.';
        if (len == 0 || (len == 1 && path[s] == '.'))
            continue;
        if (dotdot && depth > 0 && !up[depth - 1]) {
            out = starts[--depth];
            continue;
        }
        if (dotdot && abs)
            continue; /* "/.." is "/" */
        starts[depth] = out;
        up[depth++] = dotdot;
        if (out > (size_t)abs)
            path[out++] = '/';
        memmove(path + out, path + s, len); /* out <= s: never overtakes */
        out += len;
    }
    if (out == 0)
        path[out++] = '.';
    path[out] = '\0';
}

/* `file` made absolute with the compilation directory `dir` when it is
 * relative (meson and make compile elsewhere than in the source's
 * directory), then normalized; into buf, or `file` itself if too long. */
static const char *source_path(const char *dir, const char *file, char *buf, size_t size)
{
    int relative = file[0] != '/' && dir && dir[0];
    int n = snprintf(buf, size, "%s%s%s", relative ? dir : "", relative ? "/" : "", file);
    if (n < 0 || (size_t)n >= size)
        return file;
    normalize(buf);
    return buf;
}

/* Source file (into buf) and line of `pc` in file `m`; NULL if unknown. */
static const char *source_line(mod *m, Dwarf_Addr pc, int *line, char *buf, size_t size)
{
    /* libdw (0.188 at least) also answers for an address in a gap after
     * a unit (crt code placed after main) with the unit's last line: a
     * line counts only if its unit covers pc. */
    Dwfl_Line *dl = dwfl_module_getsrc(m->dm, pc);
    Dwarf_Addr bias;
    if (dl && dwfl_dwarf_line(dl, &bias) && dwarf_haspc(dwfl_linecu(dl), pc - bias) == 1) {
        const char *f = dwfl_lineinfo(dl, NULL, line, NULL, NULL, NULL);
        return f && f[0] ? source_path(dwfl_line_comp_dir(dl), f, buf, size) : NULL;
    }
    Dwarf_Die *cu = find_cu(m, pc);
    Dwarf_Line *ln = cu ? dwarf_getsrc_die(cu, pc - m->bias) : NULL;
    const char *f = ln ? dwarf_linesrc(ln, NULL, NULL) : NULL;
    if (!f || !f[0] || dwarf_lineno(ln, line) != 0)
        return NULL;
    Dwarf_Attribute attr;
    return source_path(dwarf_formstring(dwarf_attr(cu, DW_AT_comp_dir, &attr)), f, buf, size);
}

/* ---- one frame ------------------------------------------------------------------ */

/* dladdr()'s symbol for `pc`, but only if the object mapped there in this
 * process is the frame's module (same path and bias): an offline reader
 * must not name frames after its own code. */
static const char *dladdr_symbol(const trace_mod *m, uintptr_t pc, uintptr_t *start)
{
    Dl_info di;
    struct link_map *lm = NULL;
    if (!m || !dladdr1((void *)pc, &di, (void **)&lm, RTLD_DL_LINKMAP) || !di.dli_sname || !lm ||
        lm->l_addr != m->base)
        return NULL;
    char buf[PATH_MAX];
    if (strcmp(at__module_path(lm->l_name, buf, sizeof buf), m->path) != 0)
        return NULL;
    *start = (uintptr_t)di.dli_saddr;
    return di.dli_sname;
}

static int sym_cmp(const void *a, const void *b)
{
    const sym_entry *x = a, *y = b;
    if (x->lo != y->lo)
        return x->lo < y->lo ? -1 : 1;
    return x->rank - y->rank;
}

static void build_syms(mod *m)
{
    m->syms_built = 1;
    Dwfl_Module *dm = m->dm;
    int n = dwfl_module_getsymtab(dm);
    if (n <= 0)
        return;
    m->syms = malloc((size_t)n * sizeof *m->syms);
    if (!m->syms)
        return;
    for (int i = 1; i < n; i++) {
        GElf_Sym sym;
        GElf_Addr addr;
        const char *name = dwfl_module_getsym_info(dm, i, &sym, &addr, NULL, NULL, NULL);
        int type = GELF_ST_TYPE(sym.st_info);
        /* Functions, and untyped labels in code (the loader's
         * _dl_start_user is one). */
        if (!name || !*name || sym.st_shndx == SHN_UNDEF || sym.st_shndx == SHN_ABS ||
            (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_NOTYPE))
            continue;
        int bind = GELF_ST_BIND(sym.st_info);
        /* hi = lo marks a symbol without a size, fixed below. */
        m->syms[m->nsyms++] = (sym_entry){addr, addr + sym.st_size, name,
                                          bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1 : 2};
    }
    qsort(m->syms, m->nsyms, sizeof *m->syms, sym_cmp);
    /* A symbol without a size (an assembly label) runs to the next one, as
     * libdwfl assumes too. */
    for (size_t i = 0, next = 0; i < m->nsyms; i++) {
        if (m->syms[i].hi != m->syms[i].lo)
            continue;
        if (next <= i)
            next = i + 1;
        while (next < m->nsyms && m->syms[next].lo == m->syms[i].lo)
            next++;
        m->syms[i].hi = next < m->nsyms ? m->syms[next].lo : m->syms[i].lo + 1;
    }
}

/* The function containing `pc`, or NULL; *start receives its address. */
static const char *find_sym(const mod *m, GElf_Addr pc, GElf_Addr *start)
{
    size_t lo = first_after(m->syms, m->nsyms, sizeof *m->syms, pc);
    /* Back over the entries at or below pc: the nearest one that covers it,
     * among aliases at the same address the best-bound (sorted first). */
    const sym_entry *best = NULL;
    for (size_t i = lo; i-- > 0;) {
        const sym_entry *e = &m->syms[i];
        if (best && e->lo != best->lo)
            break;
        if (pc < e->hi)
            best = e;
        else if (!best && lo - i > 64)
            break; /* nested symbols are rare; do not scan far */
    }
    if (best)
        *start = best->lo;
    return best ? best->name : NULL;
}

/* ---- inlined functions --------------------------------------------------------- */

/* Inlined levels kept per frame (deeper chains are cut), and levels of
 * blocks and instances walked down a function at most (a bound against
 * corrupt DWARF). */
enum { MAX_INLINE = 64, MAX_SCOPE_DEPTH = 1024 };

/* One function the compiler inlined at a frame's address, and where the
 * function around it called it. */
typedef struct inl {
    char *function;  /* demangled when mangled; NULL when unnamed */
    char *call_file; /* NULL when unknown */
    int call_line;
} inl;

/* The name of the function an inlined instance is of: its linkage name
 * (qualified, demangled as the symbol table's are), else its plain name;
 * both through the abstract origin.  From malloc, or NULL. */
static char *inlined_name(Dwarf_Die *die)
{
    Dwarf_Attribute attr;
    const char *linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
    if (!linkage)
        linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
    char *d = at__demangle(linkage);
    if (d)
        return d;
    const char *name = linkage ? linkage : dwarf_diename(die);
    return name ? strdup(name) : NULL;
}

/* Where the inlined instance `die` was called: its DW_AT_call_file (an
 * index into the unit's file table) and DW_AT_call_line. */
static void call_site(Dwarf_Die *die, Dwarf_Files *files, size_t nfiles, const char *comp_dir,
                      inl *out)
{
    Dwarf_Attribute attr;
    Dwarf_Word idx, line;
    const char *f = NULL;
    if (files && dwarf_formudata(dwarf_attr(die, DW_AT_call_file, &attr), &idx) == 0 &&
        idx < nfiles)
        f = dwarf_filesrc(files, idx, NULL, NULL);
    if (f && f[0] && dwarf_formudata(dwarf_attr(die, DW_AT_call_line, &attr), &line) == 0 &&
        line > 0 && line <= INT_MAX) {
        char buf[PATH_MAX];
        out->call_file = strdup(source_path(comp_dir, f, buf, sizeof buf));
        out->call_line = out->call_file ? (int)line : 0;
    }
}

static int fn_range_cmp(const void *a, const void *b)
{
    const fn_range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* The functions with code under `parent`, into f: definitions at the top
 * of the unit or in namespaces (clang) and types; not into functions. */
static void collect_funcs(Dwarf_Die *parent, cu_funcs *f, int depth)
{
    Dwarf_Die child;
    if (depth > 32 || dwarf_child(parent, &child) != 0)
        return;
    do {
        int tag = dwarf_tag(&child);
        if (tag == DW_TAG_namespace || tag == DW_TAG_class_type || tag == DW_TAG_structure_type ||
            tag == DW_TAG_union_type || tag == DW_TAG_module) {
            collect_funcs(&child, f, depth + 1);
            continue;
        }
        if (tag != DW_TAG_subprogram)
            continue;
        Dwarf_Addr base, lo, hi;
        for (ptrdiff_t off = 0; (off = dwarf_ranges(&child, off, &base, &lo, &hi)) > 0;) {
            if (f->n == f->cap) {
                size_t c = f->cap ? 2 * f->cap : 64;
                fn_range *v = realloc(f->fns, c * sizeof *v);
                if (!v)
                    return; /* what is listed still helps */
                f->fns = v;
                f->cap = c;
            }
            f->fns[f->n++] = (fn_range){lo, hi, child};
        }
    } while (dwarf_siblingof(&child, &child) == 0);
}

/* The concrete function DIE of unit `cu` whose code holds `pc` (DWARF
 * address), or NULL (not found: the caller asks dwarf_getscopes). */
static Dwarf_Die *function_die(mod *m, Dwarf_Die *cu, Dwarf_Addr pc)
{
    if (!m)
        return NULL;
    Dwarf_Off off = dwarf_dieoffset(cu);
    cu_funcs *f;
    HASH_FIND(hh, m->funcs, &off, sizeof off, f);
    if (!f) {
        if (!(f = calloc(1, sizeof *f)))
            return NULL;
        f->off = off;
        collect_funcs(cu, f, 0);
        qsort(f->fns, f->n, sizeof *f->fns, fn_range_cmp);
        HASH_ADD(hh, m->funcs, off, sizeof f->off, f);
    }
    size_t lo = first_after(f->fns, f->n, sizeof *f->fns, pc);
    return lo > 0 && pc < f->fns[lo - 1].hi ? &f->fns[lo - 1].die : NULL;
}

/* The inlined instances holding `pc` inside function `fn`, innermost
 * first, down the blocks and instances that hold it; their number. */
static int instances_in(Dwarf_Die *fn, Dwarf_Addr pc, Dwarf_Die **scopes)
{
    Dwarf_Die path[MAX_INLINE], cur = *fn, child;
    int n = 0, found = 1;
    for (int depth = 0; found && n < MAX_INLINE && depth < MAX_SCOPE_DEPTH &&
                        dwarf_child(&cur, &child) == 0;
         depth++) {
        found = 0;
        do {
            int tag = dwarf_tag(&child);
            if ((tag == DW_TAG_lexical_block || tag == DW_TAG_inlined_subroutine ||
                 tag == DW_TAG_try_block || tag == DW_TAG_catch_block) &&
                dwarf_haspc(&child, pc) == 1) {
                if (tag == DW_TAG_inlined_subroutine)
                    path[n++] = child;
                cur = child;
                found = 1;
                break;
            }
        } while (dwarf_siblingof(&child, &child) == 0);
    }
    *scopes = n ? malloc((size_t)n * sizeof **scopes) : NULL;
    if (!*scopes)
        return 0;
    for (int i = 0; i < n; i++)
        (*scopes)[i] = path[n - 1 - i];
    return n;
}

/* The scopes around `pc` from the innermost, through every inlined
 * instance, to the real function and the unit; their number (0 if none,
 * *scopes to free then too).  dwarf_getscopes lists the scopes down to
 * the innermost instance only, then those of its abstract definition;
 * the scopes of the DIE it found first, in the DIE tree, are the concrete
 * ones.  A pc in no inlined instance needs only the first walk. */
static int concrete_scopes(Dwarf_Die *cu, Dwarf_Addr pc, Dwarf_Die **scopes)
{
    *scopes = NULL;
    int ns = dwarf_getscopes(cu, pc, scopes);
    int inlined = 0;
    for (int i = 0; i < ns && !inlined; i++)
        inlined = dwarf_tag(&(*scopes)[i]) == DW_TAG_inlined_subroutine;
    if (!inlined)
        return ns > 0 ? ns : 0;
    Dwarf_Die innermost = (*scopes)[0], *concrete = NULL;
    free(*scopes);
    ns = dwarf_getscopes_die(&innermost, &concrete);
    *scopes = concrete;
    return ns > 0 ? ns : 0;
}

/* The functions inlined at `pc`, innermost first (out[0] is the one whose
 * code pc is in), up to the real function, which the symbol table names;
 * their number. */
static size_t inline_chain(mod *m, Dwarf_Addr pc, inl *out)
{
    Dwarf_Addr bias = 0;
    Dwarf_Die *cu = dwfl_module_addrdie(m->dm, pc, &bias);
    if (!cu) { /* no .debug_aranges (clang): see build_cu_ranges */
        cu = find_cu(m, pc);
        bias = m->bias;
    }
    Dwarf_Die *scopes = NULL, *fn = cu ? function_die(m, cu, pc - bias) : NULL;
    int ns = fn ? instances_in(fn, pc - bias, &scopes) : cu ? concrete_scopes(cu, pc - bias, &scopes) : 0;
    Dwarf_Files *files = NULL;
    size_t nfiles = 0, n = 0;
    if (ns > 0 && dwarf_getsrcfiles(cu, &files, &nfiles) != 0)
        files = NULL;
    Dwarf_Attribute attr;
    const char *comp_dir = ns > 0 ? dwarf_formstring(dwarf_attr(cu, DW_AT_comp_dir, &attr)) : NULL;
    for (int i = 0; i < ns && n < MAX_INLINE; i++) {
        int tag = dwarf_tag(&scopes[i]);
        if (tag == DW_TAG_subprogram)
            break;
        if (tag != DW_TAG_inlined_subroutine)
            continue;
        out[n] = (inl){inlined_name(&scopes[i]), NULL, 0};
        call_site(&scopes[i], files, nfiles, comp_dir, &out[n]);
        n++;
    }
    free(scopes);
    return n;
}

/* ---- one frame ------------------------------------------------------------------ */

/* What is known of one frame: its function and where in it. */
typedef struct found {
    const char *name;
    uintptr_t offset;
    const char *file; /* the innermost line: the line table's */
    int line;
    inl chain[MAX_INLINE];
    size_t nchain;
} found;

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static int bind_line(sqlite3_stmt *st, int i, const char *file, int line)
{
    bind_text_or_null(st, i, file);
    if (file)
        sqlite3_bind_int(st, i + 1, line);
    else
        sqlite3_bind_null(st, i + 1);
    return 0;
}

static int step_reset(sqlite3_stmt *st)
{
    int s = sqlite3_step(st);
    sqlite3_reset(st);
    return s == SQLITE_DONE ? 0 : AT_E_DB;
}

/* The rows of frame `id`: inlined_frames for each inlined level (depth 0
 * the innermost, with the line table's line; each outer one at the call
 * line of the one inside it), the frames row for the real function, at
 * the call line of the outermost inlined level. */
static int store_frame(work *w, int64_t id, const found *fd, const char *name)
{
    sqlite3_bind_int64(w->del, 1, id);
    int rc = step_reset(w->del); /* a frame tried again (no name the first time) */
    const char *file = fd->file;
    int line = fd->line;
    for (size_t d = 0; d < fd->nchain && !rc; d++) {
        sqlite3_bind_int64(w->ins, 1, id);
        sqlite3_bind_int64(w->ins, 2, (sqlite3_int64)d);
        bind_text_or_null(w->ins, 3, fd->chain[d].function);
        bind_line(w->ins, 4, file, line);
        rc = step_reset(w->ins);
        file = fd->chain[d].call_file;
        line = fd->chain[d].call_line;
    }
    if (name) {
        sqlite3_bind_text(w->up, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(w->up, 2, (sqlite3_int64)fd->offset);
    } else {
        sqlite3_bind_null(w->up, 1);
        sqlite3_bind_null(w->up, 2);
    }
    bind_line(w->up, 3, file, line);
    sqlite3_bind_int64(w->up, 5, id);
    return rc ? rc : step_reset(w->up);
}

/* Symbol tables of debug files keep version suffixes
 * ("__libc_start_main@@GLIBC_2.34"); the function is what matters.  The
 * name to store: demangled (*demangled, to free) or `name` cut at '@'
 * into buf. */
static const char *clean_name(const char *name, char *buf, size_t size, char **demangled)
{
    const char *at = name ? strchr(name, '@') : NULL;
    if (at && at > name && (size_t)(at - name) < size) {
        memcpy(buf, name, (size_t)(at - name));
        buf[at - name] = '\0';
        name = buf;
    }
    *demangled = at__demangle(name);
    return *demangled ? *demangled : name;
}

static int symbolize_one(work *w, const job *j)
{
    uintptr_t pc = j->ip - 1;
    trace_mod *tm = find_mod(w, j->module);
    mod *m = tm ? tm->m : NULL;
    found f = {0}, *fd = &f;
    char pathbuf[PATH_MAX];
    /* The address in the file: its module's load bias off. */
    Dwarf_Addr at = tm ? pc - tm->base : 0;
    /* the file is alone in its Dwfl: the address is in it or in nothing */
    if (m && m->dm && dwfl_addrmodule(m->dwfl, at) == m->dm) {
        if (!m->syms_built)
            build_syms(m);
        GElf_Addr start = 0;
        fd->name = find_sym(m, at, &start);
        fd->offset = at + 1 - start; /* from the symbol to ip, not to ip - 1 */
        fd->file = source_line(m, at, &fd->line, pathbuf, sizeof pathbuf);
        fd->nchain = fd->file ? inline_chain(m, at, fd->chain) : 0;
    }
    if (!fd->name) {
        uintptr_t start = 0;
        fd->name = dladdr_symbol(tm, pc, &start);
        fd->offset = j->ip - start;
    }
    if (!fd->name && !fd->file)
        return 0; /* nothing known: the row stays as it is */
    char unversioned[512], *demangled = NULL;
    const char *name = fd->name ? clean_name(fd->name, unversioned, sizeof unversioned, &demangled)
                                : NULL;
    int rc = store_frame(w, j->id, fd, name);
    free(demangled);
    for (size_t d = 0; d < fd->nchain; d++) {
        free(fd->chain[d].function);
        free(fd->chain[d].call_file);
    }
    return rc;
}

/* ---- all frames ----------------------------------------------------------------- */

static int symbolize_all(work *w)
{
    void *mods = NULL, *jobs = NULL;
    int rc = load(w->db, mods_sql, &mods, &w->nmods, sizeof *w->mods, mod_row);
    w->mods = mods;
    if (!rc)
        rc = load(w->db, jobs_sql, &jobs, &w->njobs, sizeof *w->jobs, job_row);
    w->jobs = jobs;
    if (rc || w->njobs == 0)
        return rc;
    if (sqlite3_prepare_v2(w->db,
                           "UPDATE frames SET function = ?1, function_offset = ?2, file = ?3,"
                           " line = ?4 WHERE id = ?5",
                           -1, &w->up, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(w->db, "INSERT INTO inlined_frames VALUES(?1, ?2, ?3, ?4, ?5)", -1,
                           &w->ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(w->db, "DELETE FROM inlined_frames WHERE frame = ?1", -1, &w->del,
                           NULL) != SQLITE_OK)
        return AT_E_DB;
    for (size_t i = 0; i < w->nmods; i++)
        w->mods[i].m = mod_of(w->mods[i].path);
    for (size_t i = 0; i < w->njobs && !rc; i++)
        rc = symbolize_one(w, &w->jobs[i]);
    return rc;
}

int at__symbolize_frames(sqlite3 *db)
{
    work w = {.db = db};
    int rc = at__sql_exec(db, "BEGIN");
    if (rc)
        return rc;
    pthread_mutex_lock(&cache_lock);
    rc = symbolize_all(&w);
    trim_cache(); /* w's modules are not used past here */
    pthread_mutex_unlock(&cache_lock);
    if (!rc)
        rc = at__sql_exec(db, "COMMIT");
    if (rc)
        at__sql_exec(db, "ROLLBACK");
    sqlite3_finalize(w.up);
    sqlite3_finalize(w.ins);
    sqlite3_finalize(w.del);
    for (size_t i = 0; i < w.nmods; i++)
        free(w.mods[i].path);
    free(w.mods);
    free(w.jobs);
    return rc;
}
