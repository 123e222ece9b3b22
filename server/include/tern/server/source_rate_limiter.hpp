// A token bucket per source IP for every answer to a sender that has not authenticated
// (Binding, 420/400, and TURN challenges and failures): bounded memory, no allocation per call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "tern/allocation/clock.hpp"
#include "tern/allocation/ip_key.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::server {

class SourceRateLimiter {
public:
    // `rate` tokens per second up to `burst`; rate 0 turns the limiter off. `slots` sources are
    // tracked at once (rounded up to a power of two); when full, the source seen least recently
    // in a short probe window is forgotten, which can only make the limiter more lenient.
    SourceRateLimiter(std::uint32_t rate, std::uint32_t burst, std::size_t slots,
                      std::uint64_t hash_seed);

    // Takes one token for `source`; false = over its rate, drop the request.
    bool allow(const protocol::TransportAddress& source, allocation::TimePoint now) noexcept;

    void set_rate(std::uint32_t rate, std::uint32_t burst) noexcept;
    std::uint64_t refused() const noexcept { return refused_; }

private:
    struct Slot {
        allocation::IpKey ip;
        double tokens = 0;
        allocation::TimePoint last{};
        bool used = false;
    };
    static constexpr std::size_t probe = 8;

    std::size_t index_of(const allocation::IpKey& ip) const noexcept;

    double rate_;
    double burst_;
    std::uint64_t seed_;
    std::vector<Slot> slots_;
    std::uint64_t refused_ = 0;
};

}  // namespace tern::server
