// Blocks that only an interior pointer reaches, of the shapes C++ makes, for
// reach_test.py (see reach_prog.c for the "block SIZE CLASS" lines it
// prints).  valgrind's default --leak-check-heuristics (all) recognise each
// shape and call the block still reachable ("reachable via heuristic"):
//
//   newarray   new T[n] of a T with a destructor: the pointer is 8 bytes in,
//              past the element count
//   multi      a derived object held by a pointer to its second base
//   stdstring  a std::string of the old (copy-on-write) ABI, pointing 24
//              bytes into its representation: built with
//              -D_GLIBCXX_USE_CXX11_ABI=0
//   length64   (C-style) a block whose first 8 bytes hold the length of the
//              rest, pointed to 8 bytes in, as sqlite3's allocator does
//
//   reach_cxx MODE
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#if _GLIBCXX_USE_CXX11_ABI
#error "reach_cxx.cc is built with -D_GLIBCXX_USE_CXX11_ABI=0 (the stdstring case)"
#endif

#define NOINLINE __attribute__((noinline))

static void plan(std::size_t size, const char *what)
{
    std::printf("block %zu %s\n", size, what);
}

struct Element {
    char bytes[100];
    NOINLINE ~Element() { __asm__ volatile("" : : "r"(this) : "memory"); }
};

static Element *volatile g_array;

// 8 + 44 * 100 = 4408 bytes: the count, then the elements.
static NOINLINE void mode_newarray()
{
    g_array = new Element[44]();
    plan(8 + 44 * sizeof(Element), "still_reachable");
}

struct First {
    virtual ~First() {}
    long first[10] = {};
};
struct Second {
    virtual ~Second() {}
    long second[20] = {};
};
struct Both : First, Second {
    long both[30] = {};
};

static Second *volatile g_second;

static NOINLINE void mode_multi()
{
    g_second = new Both;
    plan(sizeof(Both), "still_reachable");
}

// The string lives in static storage that is never destroyed (a static
// std::string's destructor would free the buffer at exit); not static, so
// that the store of its pointer is not dropped as never read.
extern unsigned char g_string[sizeof(std::string)];
alignas(std::string) unsigned char g_string[sizeof(std::string)];

// The string's buffer: a 24-byte header, the 4000 characters and the NUL.
static NOINLINE void mode_stdstring()
{
    new (g_string) std::string(4000, 's');
    plan(24 + 4000 + 1, "still_reachable");
}

static std::uintptr_t volatile g_length64;

static NOINLINE void mode_length64()
{
    const std::size_t size = 4601;
    auto *p = static_cast<unsigned char *>(std::malloc(size));
    std::memset(p, 0, size);
    std::uint64_t rest = size - 8;
    std::memcpy(p, &rest, sizeof rest);
    g_length64 = reinterpret_cast<std::uintptr_t>(p) + 8;
    plan(size, "still_reachable");
}

static NOINLINE void scrub_stack()
{
    char buf[64 * 1024];
    std::memset(buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
}

int main(int argc, char **argv)
{
    const char *mode = argc == 2 ? argv[1] : "";
    if (std::strcmp(mode, "newarray") == 0)
        mode_newarray();
    else if (std::strcmp(mode, "multi") == 0)
        mode_multi();
    else if (std::strcmp(mode, "stdstring") == 0)
        mode_stdstring();
    else if (std::strcmp(mode, "length64") == 0)
        mode_length64();
    else {
        std::fputs("usage: reach_cxx newarray|multi|stdstring|length64\n", stderr);
        return 2;
    }
    scrub_stack();
    return 0;
}
