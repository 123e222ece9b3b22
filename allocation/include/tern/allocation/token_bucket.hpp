// Token buckets over relayed bytes (limits.allocation_bandwidth / user_bandwidth): a plain one
// for a single worker's allocation, and a lock-free one shared by every worker for a user.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "tern/allocation/time_point.hpp"

namespace tern::allocation {

// Rate and depth are handed to every call rather than stored, so a reload changes them for every
// live bucket at once without touching any.
struct BucketRate {
    std::uint64_t bytes_per_second = 0;  // 0 = unlimited
    std::uint64_t burst = 0;             // bucket depth in bytes

    bool unlimited() const noexcept { return bytes_per_second == 0; }
};

// One second's worth, but never less than the largest datagram plus headroom: a bucket too
// shallow for one packet would drop it forever.
inline constexpr std::uint64_t min_bucket_burst = 65536 + 1024;
BucketRate bucket_rate(std::uint32_t bytes_per_second) noexcept;

class TokenBucket {
public:
    // Takes `bytes` if the bucket holds them; otherwise takes nothing. A new bucket is full.
    bool consume(std::size_t bytes, TimePoint now, const BucketRate& rate) noexcept;
    // Gives back what consume() took for a packet that was dropped later after all.
    void refund(std::size_t bytes, const BucketRate& rate) noexcept;
    // Takes `bytes` someone else already sent (the kernel fast path), or all there is.
    void drain(std::size_t bytes, TimePoint now, const BucketRate& rate) noexcept;

private:
    void refill(TimePoint now, const BucketRate& rate) noexcept;

    std::uint64_t tokens_ = 0;
    TimePoint last_ = TimePoint::min();  // min = never used: starts full
};

// The same rules for a bucket that several worker threads draw from: atomics, no lock. Refill
// races are settled by whoever moves `last_ns_` first, so no time is counted twice.
class SharedTokenBucket {
public:
    SharedTokenBucket(TimePoint now, const BucketRate& rate) noexcept;
    bool consume(std::size_t bytes, TimePoint now, const BucketRate& rate) noexcept;
    // Takes `bytes` already sent elsewhere, or all there is.
    void drain(std::size_t bytes, TimePoint now, const BucketRate& rate) noexcept;

private:
    std::atomic<std::int64_t> tokens_;
    std::atomic<std::int64_t> last_ns_;
};

}  // namespace tern::allocation
