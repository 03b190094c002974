/* Tests of the module map and of frame symbolization: frames whose
 * addresses are known (functions of this very program, libstdc++, the
 * vdso, nowhere) go into a fresh trace database, at__modules_write and
 * at__symbolize_frames run over it, and the rows are checked. */
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <alloctrace/error.h>

#include "module_rows.h"
#include "schema.h"
#include "symbolize.h"
#include "trace_util.h"

/* ---- code whose symbols and lines the tests know -------------------------------- */

/* Global and noinline, so that the compiler neither inlines nor clones
 * (renames) them. */
void symtest_target(void);
uintptr_t symtest_return_address(void);
uintptr_t symtest_caller(void);

static volatile int sink;
static int caller_line;

enum { TARGET_LINE = __LINE__ + 1 };
__attribute__((noinline)) void symtest_target(void)
{
    for (int i = 0; i < 8; i++)
        sink += i;
}

__attribute__((noinline)) uintptr_t symtest_return_address(void)
{
    return (uintptr_t)__builtin_return_address(0);
}

__attribute__((noinline)) uintptr_t symtest_caller(void)
{
    caller_line = __LINE__ + 1;
    uintptr_t ip = symtest_return_address();
    /* Keeps the call from becoming a tail call, which would return into
     * the test instead of here. */
    __asm__ volatile("" ::: "memory");
    return ip;
}

/* ---- helpers ------------------------------------------------------------------ */

static sqlite3 *open_db(const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s", trace_path(name));
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        TEST_FAIL("cannot create %s", path);
    ASSERT_EQ(at__schema_create(db), 0);
    return db;
}

static void close_db(sqlite3 *db, const char *path)
{
    ASSERT_EQ(sqlite3_close(db), SQLITE_OK);
    unlink(path);
}

static void add_frame(sqlite3 *db, uintptr_t ip)
{
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO frames(ip) VALUES(?)", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ip);
    ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

static void run_both(sqlite3 *db)
{
    ASSERT_EQ(at__modules_write(db), 0);
    ASSERT_EQ(at__symbolize_frames(db), 0);
}

static const char *exe_path(void)
{
    static char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    ASSERT_GT(n, 0);
    buf[n] = '\0';
    return buf;
}

/* The load bias of the object holding `addr`, as the loader knows it. */
static uintptr_t bias_of(const void *addr)
{
    Dl_info di;
    struct link_map *lm = NULL;
    ASSERT_TRUE(dladdr1(addr, &di, (void **)&lm, RTLD_DL_LINKMAP));
    ASSERT_NOT_NULL(lm);
    return lm->l_addr;
}

/* A function of libc itself (a sanitizer may interpose the name). */
static uintptr_t libc_fn(const char *name)
{
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    ASSERT_NOT_NULL(libc);
    void *fn = dlsym(libc, name);
    ASSERT_NOT_NULL(fn);
    dlclose(libc); /* still loaded: the program links it */
    return (uintptr_t)fn;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* ---- the module map --------------------------------------------------------------- */

TEST(modules_executable_and_libc)
{
    char path[PATH_MAX];
    sqlite3 *db = open_db("modules", path, sizeof path);
    ASSERT_EQ(at__modules_write(db), 0);

    const char *exe = exe_path();
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM modules WHERE path = '%s'", exe), 1);
    ASSERT_UEQ(q_int(db, "SELECT base FROM modules WHERE path = '%s'", exe),
               bias_of((const void *)(uintptr_t)symtest_target));
    uintptr_t target = (uintptr_t)symtest_target;
    ASSERT_EQ(q_int(db, "SELECT start <= %lld AND %lld < end FROM modules WHERE path = '%s'",
                    (long long)target, (long long)target, exe),
              1);
    ASSERT_EQ(q_int(db,
                    "SELECT length(build_id) = 40 AND build_id NOT GLOB '*[^0-9a-f]*'"
                    " FROM modules WHERE path = '%s'",
                    exe),
              1);

    ASSERT_EQ(q_int(db, "SELECT count(*) FROM modules WHERE path LIKE '%%/libc.so.6'"), 1);
    ASSERT_UEQ(q_int(db, "SELECT base FROM modules WHERE path LIKE '%%/libc.so.6'"),
               bias_of((const void *)libc_fn("getpid")));
    ASSERT_EQ(q_int(db, "SELECT build_id IS NOT NULL FROM modules WHERE path LIKE '%%/libc.so.6'"),
              1);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM modules WHERE start >= end OR path = ''"), 0);

    /* The vdso has no file but is recorded by name (valgrind hides it). */
    if (getauxval(AT_SYSINFO_EHDR))
        ASSERT_EQ(q_int(db, "SELECT count(*) FROM modules WHERE path LIKE 'linux-vdso%%'"), 1);

    /* A second call adds nothing. */
    long long n = q_int(db, "SELECT count(*) FROM modules");
    ASSERT_EQ(at__modules_write(db), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM modules"), n);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM (SELECT 1 FROM modules GROUP BY path, base"
                        " HAVING count(*) > 1)"),
              0);
    close_db(db, path);
}

TEST(modules_attribute_frames)
{
    char path[PATH_MAX];
    sqlite3 *db = open_db("attribute", path, sizeof path);
    uintptr_t target = (uintptr_t)symtest_target + 4;
    uintptr_t in_libc = libc_fn("getpid") + 1;
    int local;
    uintptr_t nowhere = (uintptr_t)&local; /* the stack is no module */
    add_frame(db, target);
    add_frame(db, in_libc);
    add_frame(db, nowhere);
    add_frame(db, 16);
    ASSERT_EQ(at__modules_write(db), 0);

    const char *exe = exe_path();
    ASSERT_EQ(q_int(db, "SELECT module = (SELECT id FROM modules WHERE path = '%s')"
                        " FROM frames WHERE ip = %lld",
                    exe, (long long)target),
              1);
    ASSERT_UEQ(q_int(db, "SELECT module_offset FROM frames WHERE ip = %lld", (long long)target),
               target - bias_of((const void *)(uintptr_t)symtest_target));
    char libc_path[PATH_MAX];
    snprintf(libc_path, sizeof libc_path, "%s",
             q_text(db, "SELECT path FROM modules WHERE path LIKE '%%/libc.so.6'"));
    ASSERT_STREQ(q_text(db, "SELECT m.path FROM frames f JOIN modules m ON m.id = f.module"
                            " WHERE f.ip = %lld",
                        (long long)in_libc),
                 libc_path);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM frames WHERE module IS NULL"), 2);
    close_db(db, path);
}

/* ---- symbolization ------------------------------------------------------------------ */

TEST(symbolize_own_functions)
{
    char path[PATH_MAX];
    sqlite3 *db = open_db("own", path, sizeof path);
    uintptr_t target = (uintptr_t)symtest_target + 4;
    uintptr_t ret = symtest_caller();
    add_frame(db, target);
    add_frame(db, ret);
    run_both(db);

    ASSERT_STREQ(q_text(db, "SELECT function FROM frames WHERE ip = %lld", (long long)target),
                 "symtest_target");
    ASSERT_EQ(q_int(db, "SELECT function_offset FROM frames WHERE ip = %lld", (long long)target),
              4);
    const char *file = q_text(db, "SELECT file FROM frames WHERE ip = %lld", (long long)target);
    ASSERT_TRUE(ends_with(file, "test_symbolize.c"));
    ASSERT_EQ(file[0], '/'); /* made absolute with the compilation directory */
    ASSERT_NULL(strstr(file, "/../"));
    ASSERT_NULL(strstr(file, "/./"));
    ASSERT_EQ(access(file, R_OK), 0);
    long long line = q_int(db, "SELECT line FROM frames WHERE ip = %lld", (long long)target);
    ASSERT_GE(line, TARGET_LINE);
    ASSERT_LE(line, TARGET_LINE + 4);

    ASSERT_STREQ(q_text(db, "SELECT function FROM frames WHERE ip = %lld", (long long)ret),
                 "symtest_caller");
    ASSERT_UEQ(q_int(db, "SELECT function_offset FROM frames WHERE ip = %lld", (long long)ret),
               ret - (uintptr_t)symtest_caller);
    ASSERT_TRUE(ends_with(q_text(db, "SELECT file FROM frames WHERE ip = %lld", (long long)ret),
                          "test_symbolize.c"));
    line = q_int(db, "SELECT line FROM frames WHERE ip = %lld", (long long)ret);
    ASSERT_GE(line, caller_line - 1);
    ASSERT_LE(line, caller_line + 1);

    /* Nothing left to do: a second pass changes nothing. */
    ASSERT_EQ(at__symbolize_frames(db), 0);
    ASSERT_STREQ(q_text(db, "SELECT function FROM frames WHERE ip = %lld", (long long)ret),
                 "symtest_caller");
    close_db(db, path);
}

/* The program's entry point comes from crt1.o, without debug info, and is
 * often placed right after main: it must get no line of main's unit. */
extern void _start(void);

TEST(symbolize_code_without_debug_info)
{
    char path[PATH_MAX];
    sqlite3 *db = open_db("nodebug", path, sizeof path);
    uintptr_t ip = (uintptr_t)_start + 8;
    add_frame(db, ip);
    run_both(db);
    ASSERT_STREQ(q_text(db, "SELECT function FROM frames WHERE ip = %lld", (long long)ip),
                 "_start");
    ASSERT_EQ(q_int(db, "SELECT function_offset FROM frames WHERE ip = %lld", (long long)ip), 8);
    ASSERT_EQ(q_int(db, "SELECT file IS NULL AND line IS NULL FROM frames WHERE ip = %lld",
                    (long long)ip),
              1);
    close_db(db, path);
}

TEST(symbolize_libc)
{
    char path[PATH_MAX];
    sqlite3 *db = open_db("libc", path, sizeof path);
    uintptr_t ip = libc_fn("getpid") + 1;
    add_frame(db, ip);
    run_both(db);
    /* libc may name it by an alias (__getpid); without debug info there
     * is no line, which must not matter. */
    ASSERT_TRUE(strstr(q_text(db, "SELECT function FROM frames WHERE ip = %lld", (long long)ip),
                       "getpid") != NULL);
    ASSERT_EQ(q_int(db, "SELECT function_offset FROM frames WHERE ip = %lld", (long long)ip), 1);
    close_db(db, path);
}

TEST(symbolize_unknown_and_missing)
{
    char path[PATH_MAX];
    sqlite3 *db = open_db("missing", path, sizeof path);
    int local;
    uintptr_t nowhere = (uintptr_t)&local;
    add_frame(db, nowhere);
    add_frame(db, 16);
    /* Modules whose file is gone, or is not ELF, in ranges nothing maps. */
    char sql[PATH_MAX + 256];
    snprintf(sql, sizeof sql,
             "INSERT INTO modules(path, base, start, end) VALUES"
             " ('/nonexistent/libgone.so', 4096, 4096, 8192), ('%s', 8192, 8192, 12288)",
             path);
    ASSERT_EQ(at__sql_exec(db, sql), 0);
    add_frame(db, 4096 + 100);
    add_frame(db, 8192 + 100);
    /* A frame already symbolized is left alone. */
    uintptr_t target = (uintptr_t)symtest_target + 4;
    snprintf(sql, sizeof sql, "INSERT INTO frames(ip, function) VALUES(%lld, 'kept')",
             (long long)target);
    ASSERT_EQ(at__sql_exec(db, sql), 0);
    run_both(db);

    ASSERT_EQ(q_int(db, "SELECT module IS NULL AND function IS NULL FROM frames WHERE ip = %lld",
                    (long long)nowhere),
              1);
    ASSERT_EQ(q_int(db, "SELECT module IS NULL AND function IS NULL FROM frames WHERE ip = 16"), 1);
    ASSERT_EQ(q_int(db, "SELECT module IS NOT NULL AND function IS NULL AND file IS NULL"
                        " FROM frames WHERE ip = %d",
                    4096 + 100),
              1);
    ASSERT_EQ(q_int(db, "SELECT module IS NOT NULL AND function IS NULL AND file IS NULL"
                        " FROM frames WHERE ip = %d",
                    8192 + 100),
              1);
    ASSERT_STREQ(q_text(db, "SELECT function FROM frames WHERE ip = %lld", (long long)target),
                 "kept");
    close_db(db, path);
}

/* The vdso has no file for libdwfl; its symbols come from dladdr(). */
TEST(symbolize_vdso)
{
    void *vdso = dlopen("linux-vdso.so.1", RTLD_LAZY | RTLD_NOLOAD);
    void *fn = vdso ? dlsym(vdso, "__vdso_clock_gettime") : NULL;
    if (!fn) {
        if (vdso)
            dlclose(vdso);
        printf("# no vdso (under valgrind?): skipped\n");
        return;
    }
    char path[PATH_MAX];
    sqlite3 *db = open_db("vdso", path, sizeof path);
    uintptr_t ip = (uintptr_t)fn + 1;
    add_frame(db, ip);
    run_both(db);
    ASSERT_STREQ(q_text(db, "SELECT m.path FROM frames f JOIN modules m ON m.id = f.module"
                            " WHERE f.ip = %lld",
                        (long long)ip),
                 "linux-vdso.so.1");
    ASSERT_TRUE(strstr(q_text(db, "SELECT function FROM frames WHERE ip = %lld", (long long)ip),
                       "clock_gettime") != NULL);
    ASSERT_EQ(q_int(db, "SELECT function_offset FROM frames WHERE ip = %lld", (long long)ip), 1);
    dlclose(vdso);
    close_db(db, path);
}

/* ---- C++ and Rust names --------------------------------------------------------- */

/* at__demangle(name) is `want` (NULL: not demangled). */
static void check_demangle(const char *name, const char *want)
{
    char *got = at__demangle(name);
    if (want ? !got || strcmp(got, want) != 0 : got != NULL)
        TEST_FAIL("at__demangle(\"%s\") is \"%s\", not \"%s\"", name ? name : "(null)",
                  got ? got : "(null)", want ? want : "(null)");
    free(got);
}

TEST(demangle)
{
    check_demangle(NULL, NULL);
    check_demangle("main", NULL);
    check_demangle("_", NULL);
    /* C++: libiberty's demangler, linked in (libstdc++ need not be loaded). */
    check_demangle("_ZN3foo3barEi", "foo::bar(int)");
    check_demangle("_ZNSt6thread20hardware_concurrencyEv", "std::thread::hardware_concurrency()");
    check_demangle("_ZN3foo3barE", "foo::bar");
    check_demangle("_ZNK3foo3Bar3getERKSt6vectorIiSaIiEE",
                   "foo::Bar::get(std::vector<int, std::allocator<int> > const&) const");
    check_demangle("_Z", NULL); /* not a valid mangled name */
    check_demangle("_Zgarbage!", NULL);
    /* Rust legacy: a C++-style name whose last segment is the hash, dropped. */
    check_demangle("_ZN4core3fmt5write17h0123456789abcdefE", "core::fmt::write");
    check_demangle("_ZN70_$LT$alloc..vec..Vec$LT$T$C$A$GT$$u20$as$u20$core..ops..drop..Drop$GT$"
                   "4drop17h3c5a9f1e2b7d4068E",
                   "<alloc::vec::Vec<T,A> as core::ops::drop::Drop>::drop");
    /* A hash segment of too few distinct digits is no hash (libiberty's
     * rule): the name is then a C++ one and keeps it. */
    check_demangle("_ZN4core3fmt5write17h1111111111111111E", "core::fmt::write::h1111111111111111");
    /* Rust v0: no hash; the crate disambiguator is not printed. */
    check_demangle("_RNvCs1234_7mycrate3foo", "mycrate::foo");
    check_demangle("_RNvMNtCs1234_7mycrate5innerNtB2_6Widget3new", "<mycrate::inner::Widget>::new");
    check_demangle("_RNvCs1234_7mycrate3foo.llvm.123", "mycrate::foo");
    check_demangle("_Rgarbage", NULL);

    /* End to end: a frame inside libstdc++ gets the demangled name. */
    void *h = dlopen("libstdc++.so.6", RTLD_NOW | RTLD_LOCAL);
    ASSERT_NOT_NULL(h);
    void *fn = dlsym(h, "_ZNSt6thread20hardware_concurrencyEv");
    ASSERT_NOT_NULL(fn);
    char path[PATH_MAX];
    sqlite3 *db = open_db("cxx", path, sizeof path);
    uintptr_t ip = (uintptr_t)fn + 1;
    add_frame(db, ip);
    run_both(db);
    ASSERT_STREQ(q_text(db, "SELECT function FROM frames WHERE ip = %lld", (long long)ip),
                 "std::thread::hardware_concurrency()");
    close_db(db, path);
    dlclose(h);
}

/* ---- more files than the symbolizer keeps ------------------------------------------ */

/* An address in the middle of the first executable segment of the shared
 * object at `path` (0: not one), from its ELF header. */
static uint64_t code_offset(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    Elf64_Ehdr eh;
    uint64_t at = 0;
    if (pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
        eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_type == ET_DYN && eh.e_phentsize == sizeof(Elf64_Phdr)) {
        for (int i = 0; i < eh.e_phnum && !at; i++) {
            Elf64_Phdr ph;
            if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * sizeof ph)) != (ssize_t)sizeof ph)
                break;
            if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) && ph.p_memsz > 64)
                at = ph.p_vaddr + ph.p_memsz / 2;
        }
    }
    close(fd);
    return at;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

enum { MANY = 24 };

/* A frame in each of files[0..n), at fake bases nothing maps, symbolized
 * in one trace; the functions named, into names[i] (malloc'd, "" none). */
static void symbolize_files(char **files, const uint64_t *offsets, size_t n, char **names)
{
    char path[PATH_MAX];
    sqlite3 *db = open_db("many", path, sizeof path);
    for (size_t i = 0; i < n; i++) {
        uint64_t base = ((uint64_t)0x100 + i) << 36;
        char *sql = sqlite3_mprintf("INSERT INTO modules(path, base, start, end) VALUES(%Q, %lld,"
                                    " %lld, %lld)",
                                    files[i], (long long)base, (long long)base,
                                    (long long)(base + ((uint64_t)1 << 34)));
        ASSERT_EQ(at__sql_exec(db, sql), 0);
        sqlite3_free(sql);
        add_frame(db, base + offsets[i] + 1);
    }
    run_both(db);
    for (size_t i = 0; i < n; i++) {
        uint64_t base = ((uint64_t)0x100 + i) << 36;
        names[i] = strdup(q_text(db, "SELECT coalesce(function, '') FROM frames WHERE ip = %lld",
                                 (long long)(base + offsets[i] + 1)));
        ASSERT_NOT_NULL(names[i]);
    }
    close_db(db, path);
}

/* A trace whose frames lie in more files than the symbolizer keeps from
 * one trace to the next: each frame is named as a trace of its file alone
 * names it (the cache once freed a trace's first files while its last
 * were read: freed memory read, names lost, a crash in a release build;
 * the sanitizer and valgrind builds run this). */
TEST(symbolize_more_files_than_kept)
{
    const char *dir = "/usr/lib/x86_64-linux-gnu";
    DIR *d = opendir(dir);
    ASSERT_NOT_NULL(d);
    char *all[4096];
    size_t nall = 0;
    for (struct dirent *e; (e = readdir(d)) && nall < 4096;)
        if (strstr(e->d_name, ".so") && e->d_type == DT_REG)
            all[nall++] = strdup(e->d_name);
    closedir(d);
    qsort(all, nall, sizeof *all, by_name);
    char *files[MANY];
    uint64_t offsets[MANY];
    size_t n = 0;
    for (size_t i = 0; i < nall; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", dir, all[i]);
        uint64_t at = n < MANY ? code_offset(p) : 0;
        if (at) {
            offsets[n] = at;
            files[n++] = strdup(p);
        }
        free(all[i]);
    }
    ASSERT_UEQ(n, MANY);
    char *together[MANY], *alone[MANY];
    symbolize_files(files, offsets, n, together);
    size_t named = 0;
    for (size_t i = 0; i < n; i++) {
        symbolize_files(&files[i], &offsets[i], 1, &alone[i]);
        if (strcmp(together[i], alone[i]) != 0)
            TEST_FAIL("%s: %s in a trace of %zu files, %s alone", files[i], together[i], n, alone[i]);
        named += together[i][0] != 0;
        free(together[i]);
        free(alone[i]);
        free(files[i]);
    }
    ASSERT_GE(named, MANY / 2);
}

TEST_MAIN()
