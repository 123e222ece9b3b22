// The one replacement of the global operator new/delete in tern_microbench: counts every heap
// allocation so relay-path benchmarks can prove (and report) that they make none.
#include "alloc_counter.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

// GCC inlines the replaced delete into std::allocator and then flags its free() as a mismatch
// for operator new; both sides are malloc/free here, so the pairing is right.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
// Relaxed: only the total matters, and the benchmarks read it from the thread that allocated.
std::atomic<std::uint64_t> g_allocations{0};

void* counted_malloc(std::size_t size) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
    throw std::bad_alloc();
}

void* counted_aligned(std::size_t size, std::align_val_t align) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    const auto a = static_cast<std::size_t>(align);
    // aligned_alloc wants a size that is a multiple of the alignment.
    const std::size_t rounded = ((size == 0 ? 1 : size) + a - 1) / a * a;
    if (void* p = std::aligned_alloc(a, rounded)) return p;
    throw std::bad_alloc();
}
}  // namespace

namespace tern::bench {
std::uint64_t heap_allocations() noexcept {
    return g_allocations.load(std::memory_order_relaxed);
}
}  // namespace tern::bench

// The array and nothrow forms of the library forward to these two, so they are counted too.
void* operator new(std::size_t size) {
    return counted_malloc(size);
}
void* operator new(std::size_t size, std::align_val_t align) {
    return counted_aligned(size, align);
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
    std::free(p);
}
