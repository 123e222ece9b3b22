// Heap allocation counting for the micro-benchmarks: alloc_counter.cpp replaces the global
// operator new, and benchmarks read the running total around their timed loop.
#pragma once

#include <cstdint>

#include <benchmark/benchmark.h>

namespace tern::bench {

// Every call of a replaced operator new since the process started, on any thread.
std::uint64_t heap_allocations() noexcept;

// Reports allocations per timed iteration as state.counters["allocs_per_packet"]. Start it
// right before the `for (auto _ : state)` loop and call finish() right after: the benchmark
// runner does not allocate inside the loop, so whatever is counted came from the code measured.
class AllocationMeter {
public:
    AllocationMeter() noexcept : start_(heap_allocations()) {}
    void finish(benchmark::State& state) const {
        const auto n = heap_allocations() - start_;
        const auto iterations = state.iterations() == 0 ? 1 : state.iterations();
        state.counters["allocs_per_packet"] =
            static_cast<double>(n) / static_cast<double>(iterations);
    }

private:
    std::uint64_t start_;
};

}  // namespace tern::bench
