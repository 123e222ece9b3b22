#include "tern/allocation/token_bucket.hpp"

#include <algorithm>
#include <chrono>

namespace tern::allocation {

namespace {

constexpr std::uint64_t ns_per_second = 1'000'000'000;

std::int64_t to_ns(TimePoint t) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// Tokens that `elapsed_ns` earn towards filling `room`, and the time they account for. Time that
// earns less than a whole byte is left on the clock rather than lost, so slow rates still refill.
struct Refill {
    std::uint64_t tokens;
    std::uint64_t ns;  // to move the refill mark by; the whole elapsed time when the bucket fills
};

Refill earned(std::uint64_t elapsed_ns, std::uint64_t room, std::uint64_t rate) noexcept {
    // room <= burst < 2^33 and elapsed_ns is below room's fill time here, so no product
    // overflows 64 bits.
    if (elapsed_ns >= room * ns_per_second / rate) return {room, elapsed_ns};
    const std::uint64_t tokens = elapsed_ns * rate / ns_per_second;
    return {tokens, tokens * ns_per_second / rate};
}

}  // namespace

BucketRate bucket_rate(std::uint32_t bytes_per_second) noexcept {
    return {bytes_per_second, std::max<std::uint64_t>(bytes_per_second, min_bucket_burst)};
}

void TokenBucket::refill(TimePoint now, const BucketRate& rate) noexcept {
    if (last_ == TimePoint::min()) {
        tokens_ = rate.burst;
        last_ = now;
        return;
    }
    if (now <= last_) return;
    if (tokens_ >= rate.burst) {  // full (or over a lowered depth): nothing to earn
        tokens_ = rate.burst;
        last_ = now;
        return;
    }
    const auto elapsed = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_).count());
    const Refill r = earned(elapsed, rate.burst - tokens_, rate.bytes_per_second);
    tokens_ += r.tokens;
    last_ += std::chrono::nanoseconds(r.ns);
}

bool TokenBucket::consume(std::size_t bytes, TimePoint now, const BucketRate& rate) noexcept {
    if (rate.unlimited()) return true;
    refill(now, rate);
    if (tokens_ < bytes) return false;
    tokens_ -= bytes;
    return true;
}

void TokenBucket::drain(std::size_t bytes, TimePoint now, const BucketRate& rate) noexcept {
    if (rate.unlimited() || bytes == 0) return;
    refill(now, rate);
    tokens_ -= std::min<std::uint64_t>(tokens_, bytes);
}

void TokenBucket::refund(std::size_t bytes, const BucketRate& rate) noexcept {
    if (rate.unlimited()) return;
    tokens_ = std::min<std::uint64_t>(tokens_ + bytes, rate.burst);
}

SharedTokenBucket::SharedTokenBucket(TimePoint now, const BucketRate& rate) noexcept
    : tokens_(static_cast<std::int64_t>(rate.burst)), last_ns_(to_ns(now)) {}

bool SharedTokenBucket::consume(std::size_t bytes, TimePoint now, const BucketRate& rate) noexcept {
    if (rate.unlimited()) return true;
    const std::int64_t now_ns = to_ns(now);
    const auto burst = static_cast<std::int64_t>(rate.burst);
    std::int64_t last = last_ns_.load(std::memory_order_relaxed);
    if (now_ns > last) {
        const std::int64_t room = burst - tokens_.load(std::memory_order_relaxed);
        if (room <= 0) {
            last_ns_.compare_exchange_strong(last, now_ns, std::memory_order_relaxed);
        } else {
            const Refill r = earned(static_cast<std::uint64_t>(now_ns - last),
                                    static_cast<std::uint64_t>(room), rate.bytes_per_second);
            // Only the thread that moves the mark adds the tokens that time earned.
            if (r.tokens > 0 &&
                last_ns_.compare_exchange_strong(last, last + static_cast<std::int64_t>(r.ns),
                                                 std::memory_order_relaxed)) {
                tokens_.fetch_add(static_cast<std::int64_t>(r.tokens), std::memory_order_relaxed);
            }
        }
    }
    const auto want = static_cast<std::int64_t>(bytes);
    std::int64_t have = tokens_.load(std::memory_order_relaxed);
    while (have >= want) {
        if (tokens_.compare_exchange_weak(have, have - want, std::memory_order_relaxed)) {
            return true;
        }
    }
    return false;
}

void SharedTokenBucket::drain(std::size_t bytes, TimePoint now, const BucketRate& rate) noexcept {
    if (rate.unlimited() || bytes == 0) return;
    consume(0, now, rate);  // the refill
    std::int64_t have = tokens_.load(std::memory_order_relaxed);
    while (have > 0) {
        const std::int64_t take = std::min<std::int64_t>(have, static_cast<std::int64_t>(bytes));
        if (tokens_.compare_exchange_weak(have, have - take, std::memory_order_relaxed)) return;
    }
}

}  // namespace tern::allocation
