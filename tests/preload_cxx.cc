// C++ allocation with known mistakes, run under `alloctrace run` by
// preload_test.py: every operator new/delete form, then releases by the
// wrong family or with the wrong size or alignment.
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

struct alignas(64) Wide {
    char bytes[64];
};

__attribute__((noinline)) static void keep(void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

__attribute__((noinline)) void wrong_delete_site(int how)
{
    switch (how) {
    case 0: { // new[] released by delete
        int *a = new int[10];
        keep(a);
        ::operator delete(a);
        break;
    }
    case 1: { // malloc released by delete
        void *m = std::malloc(32);
        keep(m);
        ::operator delete(m);
        break;
    }
    case 2: { // new released by free
        int *n = new int(7);
        keep(n);
        std::free(n);
        break;
    }
    case 3: { // sized delete with the wrong size
        void *p = ::operator new(100);
        keep(p);
        ::operator delete(p, 80);
        break;
    }
    case 4: { // aligned new released by an unaligned delete
        void *p = ::operator new(64, std::align_val_t(64));
        keep(p);
        ::operator delete(p);
        break;
    }
    }
}

int main(int argc, char **argv)
{
    bool mistakes = argc > 1 && std::string(argv[1]) == "mistakes";
    // Every form, matched correctly.
    std::vector<std::string> v;
    for (int i = 0; i < 100; i++)
        v.push_back(std::string(50, 'x'));
    Wide *w = new Wide;
    keep(w);
    delete w;
    Wide *ws = new Wide[3];
    keep(ws);
    delete[] ws;
    void *p = ::operator new(10, std::nothrow);
    ::operator delete(p, std::nothrow);
    p = ::operator new[](10, std::nothrow);
    ::operator delete[](p, std::nothrow);
    p = ::operator new(48, std::align_val_t(32));
    ::operator delete(p, 48, std::align_val_t(32));
    p = ::operator new[](48, std::align_val_t(128), std::nothrow);
    ::operator delete[](p, std::align_val_t(128), std::nothrow);
    p = ::operator new(24);
    ::operator delete(p, 24);
    p = ::operator new[](24);
    ::operator delete[](p, 24);
    try {
        void *huge = ::operator new(static_cast<size_t>(1) << 62);
        keep(huge);
        std::puts("huge allocation succeeded?");
    } catch (const std::bad_alloc &) {
        std::puts("bad_alloc caught");
    }
    if (::operator new(static_cast<size_t>(1) << 62, std::nothrow) == nullptr)
        std::puts("nothrow gave null");
    if (mistakes)
        for (int how = 0; how < 5; how++)
            wrong_delete_site(how);
    std::printf("%zu strings\n", v.size());
    return 0;
}
