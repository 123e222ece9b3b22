// The request path in one place: classifies a packet (ChannelData, STUN, junk), validates it and
// hands it to the responder for its method. Pure: no sockets, clock or logging per packet.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "tern/allocation/allocation_manager.hpp"
#include "tern/config/config.hpp"
#include "tern/server/packet_context.hpp"
#include "tern/server/source_rate_limiter.hpp"

namespace tern::server {

// Per-worker tallies, summed when scraped; plain integers because one thread owns them.
struct DispatchCounters {
    std::uint64_t requests = 0;
    std::uint64_t success_responses = 0;
    std::uint64_t error_responses = 0;
    std::uint64_t indications = 0;
    std::uint64_t dropped_malformed = 0;
    std::uint64_t dropped_other = 0;    // responses, ChannelData without a relay, junk
    std::uint64_t auth_challenges = 0;  // 401 without credentials
    std::uint64_t auth_failures = 0;    // 400/401/438 for requests that tried to authenticate
    std::uint64_t rate_limited = 0;     // unauthenticated requests dropped by the source limiter
};

class RequestDispatcher {
public:
    // `relay` (may be null: STUN only) must outlive the dispatcher; it gets the TURN methods,
    // Send indications and ChannelData after authentication.
    // `unauthenticated` (may be null) is the per-source rate limiter shared by every worker and
    // must outlive the dispatcher; without one the dispatcher keeps its own, keyed by
    // `hash_seed` (random per process in the server).
    explicit RequestDispatcher(std::shared_ptr<const config::Config> config,
                               allocation::AllocationManager* relay = nullptr,
                               std::uint64_t hash_seed = 0,
                               SourceRateLimiter* unauthenticated = nullptr);
    ~RequestDispatcher();
    RequestDispatcher(const RequestDispatcher&) = delete;
    RequestDispatcher& operator=(const RequestDispatcher&) = delete;

    // Swaps in a reloaded configuration (credentials, nonce key, expiry policy); allocations
    // are kept.
    void set_config(std::shared_ptr<const config::Config> config);
    const config::Config& config() const noexcept { return *config_; }

    // Returns the reply written into `out`, or an empty span when nothing is to be sent
    // (malformed input, indications, responses, ChannelData, unknown junk).
    std::span<const std::uint8_t> handle(std::span<const std::uint8_t> packet,
                                         const PacketContext& context,
                                         std::span<std::uint8_t> out) noexcept;

    const DispatchCounters& counters() const noexcept { return counters_; }

private:
    struct Credentials;  // the auth objects built from one config
    std::span<const std::uint8_t> turn_request(const protocol::MessageView& msg,
                                               const PacketContext& context,
                                               std::span<std::uint8_t> out);

    std::shared_ptr<const config::Config> config_;
    std::unique_ptr<Credentials> credentials_;
    allocation::AllocationManager* relay_;
    std::unique_ptr<SourceRateLimiter> own_limiter_;
    SourceRateLimiter* unauthenticated_;
    DispatchCounters counters_;
};

}  // namespace tern::server
