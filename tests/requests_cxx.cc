// Every invalid request of C++'s operator new in all its forms, each
// printed with what it gave: a block, NULL, or the exception it threw, and
// whether the new-handler ran.  requests_test.py runs it with and without
// alloctrace and compares the output.
//
//   requests_cxx requests    the requests
//   requests_cxx releases    an aligned delete with an alignment that is not
//                            a power of two (63 for a 64-aligned block), and
//                            one the block's address is not a multiple of
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>

static int handler_calls;

static void handler()
{
    handler_calls++;
    std::set_new_handler(nullptr); // the next failure throws
}

// `release` gives a block back as it was allocated.
template <class F, class R> static void attempt(const char *what, F f, R release)
{
    errno = 0;
    handler_calls = 0;
    std::set_new_handler(handler);
    const char *got;
    void *p = nullptr;
    try {
        p = f();
        got = p ? "block" : "NULL";
    } catch (std::bad_array_new_length &) {
        got = "bad_array_new_length";
    } catch (std::bad_alloc &) {
        got = "bad_alloc";
    }
    int err = errno;
    std::set_new_handler(nullptr);
    std::printf("%s: %s errno=%d new_handler=%d\n", what, got, err, handler_calls);
    if (p)
        release(p);
}

static void requests()
{
    static const std::size_t aligns[] = {0, 1, 3, 8, 24, 63, 64, 4097, SIZE_MAX};
    volatile std::size_t max = SIZE_MAX;
    auto del = [](void *p) { operator delete(p); };
    auto del_array = [](void *p) { operator delete[](p); };
    for (std::size_t a : aligns) {
        char what[96];
        std::align_val_t al{a};
        auto del_al = [al](void *p) { operator delete(p, al); };
        auto del_array_al = [al](void *p) { operator delete[](p, al); };
        std::snprintf(what, sizeof what, "new(32, align %zu)", a);
        attempt(what, [&] { return operator new(32, al); }, del_al);
        std::snprintf(what, sizeof what, "new[](32, align %zu)", a);
        attempt(what, [&] { return operator new[](32, al); }, del_array_al);
        std::snprintf(what, sizeof what, "new(32, align %zu, nothrow)", a);
        attempt(what, [&] { return operator new(32, al, std::nothrow); }, del_al);
        std::snprintf(what, sizeof what, "new[](32, align %zu, nothrow)", a);
        attempt(what, [&] { return operator new[](32, al, std::nothrow); }, del_array_al);
    }
    std::align_val_t a64{64};
    auto del64 = [a64](void *p) { operator delete(p, a64); };
    auto del_array64 = [a64](void *p) { operator delete[](p, a64); };
    attempt("new(0)", [] { return operator new(0); }, del);
    attempt("new[](0)", [] { return operator new[](0); }, del_array);
    attempt("new(0, align 64)", [&] { return operator new(0, a64); }, del64);
    attempt("new(max)", [&] { return operator new(max); }, del);
    attempt("new[](max)", [&] { return operator new[](max); }, del_array);
    attempt("new(max, nothrow)", [&] { return operator new(max, std::nothrow); }, del);
    attempt("new[](max, nothrow)", [&] { return operator new[](max, std::nothrow); }, del_array);
    // libstdc++ rounds the size up to the alignment, which wraps around to 0
    attempt("new(max, align 64)", [&] { return operator new(max, a64); }, del64);
    attempt("new[](max, align 64)", [&] { return operator new[](max, a64); }, del_array64);
    attempt("new(max, align 64, nothrow)", [&] { return operator new(max, a64, std::nothrow); },
            del64);
    attempt("new[](max, align 64, nothrow)",
            [&] { return operator new[](max, a64, std::nothrow); }, del_array64);
    std::align_val_t a4096{4096};
    attempt("new(max / 2, align 4096)", [&] { return operator new(max / 2, a4096); },
            [a4096](void *p) { operator delete(p, a4096); });
}

static void releases()
{
    void *p = operator new(32, std::align_val_t(64));
    operator delete(p, std::align_val_t(63));
    // a 32-aligned block whose address is not a multiple of 4096
    void *keep[64];
    int n = 0;
    void *q;
    do {
        q = operator new(32, std::align_val_t(32));
        keep[n++] = q;
    } while ((std::uintptr_t)q % 4096 == 0 && n < 64);
    operator delete(q, std::align_val_t(4096));
    for (int i = 0; i < n - 1; i++)
        operator delete(keep[i], std::align_val_t(32));
    std::printf("released\n");
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (std::strcmp(mode, "requests") == 0)
        requests();
    else if (std::strcmp(mode, "releases") == 0)
        releases();
    else {
        std::fprintf(stderr, "usage: requests_cxx requests|releases\n");
        return 2;
    }
    return 0;
}
