/* alloctrace::pmr::traced_resource: the tracing allocator as a C++17
 * std::pmr::memory_resource (docs/pmr.md).
 *
 *   at_tracer *tracer;                      // at_tracer_open(...)
 *   std::pmr::unsynchronized_pool_resource pool;
 *   alloctrace::pmr::traced_resource traced(tracer, &pool);
 *   std::pmr::vector<int> v(&traced);       // every allocate and deallocate
 *                                           // recorded, every release checked
 *
 * It decorates any upstream resource: the upstream is wrapped as an
 * at_allocator (allocator.h) and that allocator decorated with
 * at_tracing_allocator (tracer.h).  So each deallocate(p, bytes, alignment)
 * is checked against the allocation as the tracer checks every release: a
 * size or an alignment other than the allocation's is a layout_mismatch
 * (misaligned_free when p is not a multiple of the alignment passed), a
 * pointer released already a double_free, one never handed out an
 * invalid_free, a pointer inside a block an interior_free;
 * each a finding with the allocation's and the release's backtraces.  The
 * upstream only ever sees the allocation's own (bytes, alignment): a block
 * released with a wrong layout goes back with the right one, and a double,
 * unknown or interior pointer never reaches it.
 *
 * Header only, over the C library (link with -lalloctrace, or pkg-config
 * alloctrace).
 *
 * - allocate(bytes, alignment): the upstream's allocate with the same
 *   arguments, except that 0 bytes are asked of it as 1 (and released as
 *   1), so that every block has an address of its own whatever the
 *   upstream does with empty requests; the trace records 0.  An alignment
 *   that is not a power of two, or a size that overflows rounded up to the
 *   alignment, throws std::bad_alloc without calling the upstream; an
 *   exception from the upstream's allocate reaches the caller unchanged.
 * - is_equal: identity, as for the standard's pool resources (a block must
 *   go back to the resource that handed it out).
 * - Thread safety: the upstream's.  The tracer takes any number of threads.
 * - Lifetime: the tracer must outlive the resource's use: release every
 *   block (destroy the containers) before at_tracer_close().  A block
 *   still live then goes back with upstream_resource()->deallocate(), with
 *   its own layout.  When `tracer` is NULL, or the decorator cannot be
 *   allocated, the resource forwards to the upstream untraced.
 * - An alignment of 0 in deallocate (never valid) is recorded as "not
 *   passed": only a pointer never handed out, or released already, is a
 *   finding then.
 */
#ifndef ALLOCTRACE_PMR_HPP
#define ALLOCTRACE_PMR_HPP

#if __cplusplus < 201703L
#error "<alloctrace/pmr.hpp> needs C++17 (std::pmr)"
#endif

#include <cstddef>
#include <exception>
#include <memory_resource>
#include <new>
#include <utility>

#include <alloctrace/allocator.h>
#include <alloctrace/layout.h>
#include <alloctrace/tracer.h>

namespace alloctrace {
namespace pmr {

namespace detail {

/* The exception the upstream's allocate threw, carried across the C
 * library's frames (which exceptions must not unwind) to do_allocate. */
inline std::exception_ptr &pending_exception() noexcept
{
    thread_local std::exception_ptr pending;
    return pending;
}

inline std::size_t upstream_size(std::size_t bytes) noexcept
{
    return bytes ? bytes : 1;
}

inline void *upstream_alloc(void *ctx, at_layout layout) noexcept
{
    try {
        return static_cast<std::pmr::memory_resource *>(ctx)->allocate(
            upstream_size(layout.size), layout.align);
    } catch (...) {
        pending_exception() = std::current_exception();
        return nullptr;
    }
}

/* `layout` is always the allocation's own: the tracing allocator passes
 * the layout it recorded, not the one the caller gave.  A deallocate may
 * not throw (a resource that does anyway ends the program here). */
inline void upstream_dealloc(void *ctx, void *ptr, at_layout layout) noexcept
{
    static_cast<std::pmr::memory_resource *>(ctx)->deallocate(ptr, upstream_size(layout.size),
                                                                layout.align);
}

inline constexpr at_allocator_ops upstream_ops = {
    upstream_alloc, upstream_dealloc, nullptr, nullptr, "std::pmr::memory_resource",
};

} // namespace detail

class traced_resource : public std::pmr::memory_resource {
  public:
    /* Decorates `upstream` (std::pmr::get_default_resource() when NULL)
     * with `tracer` (untraced when NULL). */
    traced_resource(at_tracer *tracer, std::pmr::memory_resource *upstream) noexcept
        : tracer_(tracer),
          upstream_(upstream ? upstream : std::pmr::get_default_resource()),
          traced_(at_tracing_allocator(tracer, at_allocator{&detail::upstream_ops, upstream_}))
    {
    }

    explicit traced_resource(at_tracer *tracer) noexcept
        : traced_resource(tracer, std::pmr::get_default_resource())
    {
    }

    traced_resource(const traced_resource &) = delete;
    traced_resource &operator=(const traced_resource &) = delete;
    ~traced_resource() override = default;

    std::pmr::memory_resource *upstream_resource() const noexcept { return upstream_; }
    at_tracer *tracer() const noexcept { return tracer_; }
    /* The decorated allocator itself, for C code that takes an at_allocator. */
    at_allocator allocator() const noexcept { return traced_; }

  protected:
    void *do_allocate(std::size_t bytes, std::size_t alignment) override
    {
        std::exception_ptr &pending = detail::pending_exception();
        pending = nullptr;
        /* at_alloc checks the layout (a power-of-two alignment, no overflow)
         * before anything is called. */
        void *p = at_alloc(traced_, at_layout{bytes, alignment});
        if (!p) {
            if (pending)
                std::rethrow_exception(std::exchange(pending, nullptr));
            throw std::bad_alloc();
        }
        return p;
    }

    /* Straight to the op rather than through at_dealloc, which ignores a
     * NULL pointer: deallocate(nullptr, ...) is undefined (libstdc++
     * declares the pointer nonnull), but should one arrive it is an
     * invalid_free, not forwarded, like any pointer never handed out. */
    void do_deallocate(void *p, std::size_t bytes, std::size_t alignment) override
    {
        traced_.ops->dealloc(traced_.ctx, p, at_layout{bytes, alignment});
    }

    bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override
    {
        return this == &other;
    }

  private:
    at_tracer *tracer_;
    std::pmr::memory_resource *upstream_;
    at_allocator traced_;
};

} // namespace pmr
} // namespace alloctrace

#endif
