// A counter one thread writes and any thread may read: the metrics endpoint sums per-worker
// tallies at scrape time without locks, and the owner's increment stays a plain add.
#pragma once

#include <atomic>
#include <cstdint>

namespace tern::allocation {

class Tally {
public:
    Tally() = default;
    Tally(const Tally&) = delete;
    Tally& operator=(const Tally&) = delete;

    // Owner thread only: a relaxed load and store, not a read-modify-write, so no lock prefix.
    void add(std::uint64_t n) noexcept {
        value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    void set(std::uint64_t n) noexcept { value_.store(n, std::memory_order_relaxed); }
    Tally& operator++() noexcept {
        add(1);
        return *this;
    }
    Tally& operator+=(std::uint64_t n) noexcept {
        add(n);
        return *this;
    }

    // Any thread.
    std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }
    // Implicit, so a tally reads like the plain integer it replaced.
    operator std::uint64_t() const noexcept { return value(); }

private:
    std::atomic<std::uint64_t> value_{0};
};

}  // namespace tern::allocation
