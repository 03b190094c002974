/* alloctrace::pmr::traced_resource (<alloctrace/pmr.hpp>) over each kind of
 * upstream, for pmr_test.py, which reads the trace this writes.
 *
 *   pmr_test TRACE UPSTREAM      UPSTREAM: new_delete, monotonic, pool,
 *                                sync_pool (four threads) or none (a NULL
 *                                tracer: untraced forwarding)
 *
 * The resource under test is traced_resource over a counting resource of
 * this file, itself over the upstream kind named: the counting resource
 * remembers every block it handed out with its (bytes, alignment) and
 * counts each deallocate that names another layout or a pointer it does
 * not hold.  The program exercises std::pmr::vector, string and map, then
 * plants one bug of each kind (a wrong size, a wrong alignment, a double
 * deallocate, an unknown pointer) and one leak, closes the tracer,
 * asserts what the upstream saw (never a wrong layout, never a bad
 * pointer) and prints one line of JSON: its counts and the lines of the
 * planted calls.  Exit status 0 when its own checks pass, 1 otherwise.
 */
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory_resource>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <alloctrace/alloctrace.h>
#include <alloctrace/pmr.hpp>

namespace {

int failures = 0;

void expect(bool cond, const char *what)
{
    if (!cond) {
        std::fprintf(stderr, "pmr_test: FAIL: %s\n", what);
        failures++;
    }
}

/* Thrown by the counting resource for a request of this many bytes: must
 * reach the caller of traced_resource::allocate unchanged. */
constexpr std::size_t THROWING_SIZE = 77777;
struct upstream_error : std::runtime_error {
    upstream_error() : std::runtime_error("upstream refuses") {}
};

class counting_resource : public std::pmr::memory_resource {
  public:
    explicit counting_resource(std::pmr::memory_resource *up) : up_(up) {}

    std::size_t allocs = 0, deallocs = 0, wrong_layout = 0, unknown = 0, zero_size = 0;
    std::size_t bytes = 0;

    std::size_t live() const
    {
        std::lock_guard<std::mutex> g(mu_);
        return blocks_.size();
    }
    /* Releases every block still held, each with its own layout. */
    void release_all()
    {
        std::lock_guard<std::mutex> g(mu_);
        for (auto &b : blocks_)
            up_->deallocate(b.first, b.second.first, b.second.second);
        blocks_.clear();
    }

  protected:
    void *do_allocate(std::size_t n, std::size_t align) override
    {
        if (n == THROWING_SIZE)
            throw upstream_error();
        void *p = up_->allocate(n, align);
        std::lock_guard<std::mutex> g(mu_);
        allocs++;
        bytes += n;
        zero_size += n == 0;
        blocks_[p] = {n, align};
        return p;
    }
    void do_deallocate(void *p, std::size_t n, std::size_t align) override
    {
        std::lock_guard<std::mutex> g(mu_);
        deallocs++;
        auto it = blocks_.find(p);
        if (it == blocks_.end()) {
            unknown++; /* not forwarded: it would corrupt the upstream */
            return;
        }
        if (it->second != std::make_pair(n, align))
            wrong_layout++;
        up_->deallocate(p, it->second.first, it->second.second);
        blocks_.erase(it);
    }
    bool do_is_equal(const std::pmr::memory_resource &o) const noexcept override
    {
        return this == &o;
    }

  private:
    std::pmr::memory_resource *up_;
    mutable std::mutex mu_;
    std::map<void *, std::pair<std::size_t, std::size_t>> blocks_;
};

/* Lines of the planted calls, printed for pmr_test.py. */
struct lines {
    int wrong_size_alloc, wrong_size_free, wrong_align_alloc, wrong_align_free;
    int double_alloc, double_first, double_second, unknown_free, leak;
} at;

__attribute__((noinline)) void containers(std::pmr::memory_resource *r)
{
    std::pmr::vector<int> v(r);
    for (int i = 0; i < 1000; i++)
        v.push_back(i);
    long sum = 0;
    for (int x : v)
        sum += x;
    expect(sum == 999L * 1000 / 2, "vector contents");

    std::pmr::string s(r);
    for (int i = 0; i < 50; i++)
        s += "a string too long for the small-string buffer ";
    expect(s.size() == 50 * std::strlen("a string too long for the small-string buffer "),
           "string contents");

    std::pmr::map<int, std::pmr::string> m(r);
    for (int i = 0; i < 200; i++)
        m.emplace(i, std::pmr::string(std::to_string(i) + " is a key with a long value", r));
    expect(m.size() == 200 && m.at(150) == "150 is a key with a long value", "map contents");
    expect(m.get_allocator().resource() == r, "the map's strings use the resource");
}

/* Each bug in a function of its own, so that its stacks name it. */
__attribute__((noinline)) void plant_wrong_size(std::pmr::memory_resource *r)
{
    at.wrong_size_alloc = __LINE__ + 1;
    void *p = r->allocate(48, 16);
    at.wrong_size_free = __LINE__ + 1;
    r->deallocate(p, 40, 16);
}

__attribute__((noinline)) void plant_wrong_align(std::pmr::memory_resource *r)
{
    at.wrong_align_alloc = __LINE__ + 1;
    void *p = r->allocate(256, 64);
    at.wrong_align_free = __LINE__ + 1;
    r->deallocate(p, 256, 16);
}

__attribute__((noinline)) void plant_double(std::pmr::memory_resource *r)
{
    at.double_alloc = __LINE__ + 1;
    void *p = r->allocate(24, 8);
    at.double_first = __LINE__ + 1;
    r->deallocate(p, 24, 8);
    at.double_second = __LINE__ + 1;
    r->deallocate(p, 24, 8);
}

__attribute__((noinline)) void plant_unknown(std::pmr::memory_resource *r)
{
    alignas(16) static char not_from_the_resource[64];
    at.unknown_free = __LINE__ + 1;
    r->deallocate(not_from_the_resource, 64, 16);
}

__attribute__((noinline)) void *plant_leak(std::pmr::memory_resource *r)
{
    at.leak = __LINE__ + 1;
    return r->allocate(4321, 32);
}

/* Requests std::pmr says fail: a bad alignment throws std::bad_alloc before
 * the upstream is asked; the upstream's own exception comes through. */
void failures_throw(std::pmr::memory_resource *r, counting_resource &counting)
{
    std::size_t before = counting.allocs;
    bool bad_alloc = false;
    try {
        (void)r->allocate(16, 3);
    } catch (const std::bad_alloc &) {
        bad_alloc = true;
    }
    expect(bad_alloc, "alignment 3 throws std::bad_alloc");
    bool thrown = false;
    try {
        (void)r->allocate(THROWING_SIZE, 8);
    } catch (const upstream_error &) {
        thrown = true;
    }
    expect(thrown, "the upstream's exception reaches the caller");
    expect(counting.allocs == before, "failed requests allocate nothing upstream");

    void *a = r->allocate(0, 8), *b = r->allocate(0, 8);
    expect(a && b && a != b, "allocate(0) gives distinct pointers");
    r->deallocate(b, 0, 8);
    r->deallocate(a, 0, 8);
}

void threads(std::pmr::memory_resource *r)
{
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; t++)
        ts.emplace_back([r, t] {
            for (int round = 0; round < 200; round++) {
                std::pmr::vector<long> v(r);
                for (int i = 0; i < 100 + t; i++)
                    v.push_back(i);
                std::pmr::string s(std::string(100 + round, 'x'), r);
                expect(v.size() == std::size_t(100 + t) && s.size() == std::size_t(100 + round),
                       "threads' containers");
            }
        });
    for (auto &t : ts)
        t.join();
}

} // namespace

int main(int argc, char **argv)
{
    if (argc != 3) {
        std::fprintf(stderr, "usage: pmr_test TRACE new_delete|monotonic|pool|sync_pool|none\n");
        return 2;
    }
    const std::string kind = argv[2];
    std::pmr::monotonic_buffer_resource monotonic(std::pmr::new_delete_resource());
    std::pmr::unsynchronized_pool_resource pool(std::pmr::new_delete_resource());
    std::pmr::synchronized_pool_resource sync_pool(std::pmr::new_delete_resource());
    std::pmr::memory_resource *up = kind == "monotonic" ? &monotonic
                                    : kind == "pool"    ? static_cast<std::pmr::memory_resource *>(&pool)
                                    : kind == "sync_pool" ? &sync_pool
                                                          : std::pmr::new_delete_resource();
    counting_resource counting(up);

    at_tracer *tracer = nullptr;
    if (kind != "none") {
        at_trace_options o;
        at_trace_options_init(&o);
        o.path = argv[1];
        o.overwrite = 1;
        int rc = at_tracer_open(&o, &tracer);
        if (rc) {
            std::fprintf(stderr, "pmr_test: at_tracer_open: %s\n", at_strerror(rc));
            return 1;
        }
    }

    void *leaked;
    {
        alloctrace::pmr::traced_resource traced(tracer, &counting);
        alloctrace::pmr::traced_resource other(tracer, &counting);
        expect(traced.is_equal(traced) && !traced.is_equal(other) && !traced.is_equal(counting),
               "is_equal is identity");
        expect(traced.upstream_resource() == &counting && traced.tracer() == tracer,
               "accessors");
        std::pmr::memory_resource *r = &traced;
        containers(r);
        if (kind == "sync_pool")
            threads(r);
        failures_throw(r, counting);
        if (kind == "none") {
            /* Untraced, the wrong size reaches the upstream: what shows
             * that the counting resource's check can fail. */
            plant_wrong_size(r);
        } else {
            plant_wrong_size(r);
            plant_wrong_align(r);
            plant_double(r);
            plant_unknown(r);
        }
        leaked = plant_leak(r);
    }
    at_tracer_stats st{};
    if (tracer)
        at_tracer_get_stats(tracer, &st);
    int rc = at_tracer_close(tracer);
    expect(rc == 0, "at_tracer_close");

    std::size_t live = counting.live();
    expect(live == 1, "the upstream holds the leaked block only");
    if (tracer)
        expect(counting.wrong_layout == 0, "the upstream never saw a wrong layout");
    else
        expect(counting.wrong_layout == 1, "untraced, the upstream saw the wrong size");
    expect(counting.unknown == 0, "the upstream never saw a pointer it did not hand out");
    expect(counting.deallocs + 1 == counting.allocs, "every block but the leak went back");
    expect(counting.zero_size == 0, "the upstream is never asked for 0 bytes");
    if (tracer) {
        expect(st.alloc_calls == counting.allocs, "the tracer counted every upstream allocation");
        expect(st.findings == 4, "four findings");
    }
    counting.release_all(); /* the leak, back with its own layout */
    (void)leaked;

    std::printf("{\"allocs\": %zu, \"deallocs\": %zu, \"bytes\": %zu, \"wrong_layout\": %zu, "
                "\"unknown\": %zu, \"live_at_close\": %zu, \"tracer_alloc_calls\": %llu, "
                "\"lines\": {\"wrong_size_alloc\": %d, \"wrong_size_free\": %d, "
                "\"wrong_align_alloc\": %d, \"wrong_align_free\": %d, \"double_alloc\": %d, "
                "\"double_first\": %d, \"double_second\": %d, \"unknown_free\": %d, "
                "\"leak\": %d}}\n",
                counting.allocs, counting.deallocs, counting.bytes, counting.wrong_layout,
                counting.unknown, live, (unsigned long long)st.alloc_calls, at.wrong_size_alloc,
                at.wrong_size_free, at.wrong_align_alloc, at.wrong_align_free, at.double_alloc,
                at.double_first, at.double_second, at.unknown_free, at.leak);
    return failures ? 1 : 0;
}
