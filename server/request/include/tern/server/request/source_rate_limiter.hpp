// A token bucket per source for every answer to a sender that has not authenticated (Binding,
// 420/400, and TURN challenges and failures): one table for the whole process, so the limit holds
// however SO_REUSEPORT spreads a source's ports over workers. A source is an IPv4 address or an
// IPv6 prefix (limits.ipv6_source_prefix, IpKey::source_of).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "tern/allocation/ip_key.hpp"
#include "tern/allocation/time_point.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::server {

class SourceRateLimiter {
public:
    // `rate` tokens per second up to `burst`; rate 0 turns the limiter off. `slots` sources are
    // tracked at once (rounded up to a power of two, at least 16 per shard); when full, the
    // source seen least recently in a short probe window is forgotten, which can only make the
    // limiter more lenient. Thread-safe: a source's shard is locked only while its bucket is
    // updated, and only for answers to unauthenticated senders, never for relayed data.
    SourceRateLimiter(std::uint32_t rate, std::uint32_t burst, std::size_t slots,
                      std::uint64_t hash_seed, unsigned ipv6_prefix = 64);

    // Takes one token for `source`; false = over its rate, drop the request.
    bool allow(const protocol::TransportAddress& source, allocation::TimePoint now) noexcept;

    // A reload: later requests see the new rate and prefix (a changed prefix starts sources
    // afresh with full buckets, which can only be more lenient for a moment).
    void set_rate(std::uint32_t rate, std::uint32_t burst, unsigned ipv6_prefix) noexcept;
    std::uint64_t refused() const noexcept { return refused_.load(std::memory_order_relaxed); }

private:
    struct Slot {
        allocation::IpKey ip;
        double tokens = 0;
        allocation::TimePoint last{};
        bool used = false;
    };
    // Workers rarely meet on one shard, so a plain mutex costs about an uncontended lock.
    struct Shard {
        std::mutex mutex;
        std::vector<Slot> slots;
    };
    static constexpr std::size_t probe = 8;
    static constexpr std::size_t shard_count = 64;

    std::uint64_t hash(const allocation::IpKey& ip) const noexcept;

    std::atomic<double> rate_;
    std::atomic<double> burst_;
    std::atomic<unsigned> ipv6_prefix_;
    std::uint64_t seed_;
    std::array<Shard, shard_count> shards_;
    std::atomic<std::uint64_t> refused_{0};
};

}  // namespace tern::server
