// The request path in one place: classifies a packet (ChannelData, STUN, junk), validates it and
// hands it to the responder for its method. Pure: no sockets, clock or logging per packet.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <utility>

#include "tern/allocation/allocation_manager.hpp"
#include "tern/auth/revocation_list.hpp"
#include "tern/config/config.hpp"
#include "tern/protocol/message_type.hpp"
#include "tern/server/request/deferred_requests.hpp"
#include "tern/server/request/packet_context.hpp"
#include "tern/server/request/source_rate_limiter.hpp"

namespace tern::server {

// Request methods and response codes as the metrics count them; others count as "other".
inline constexpr std::array<std::string_view, 6> counted_methods = {
    "binding", "allocate", "refresh", "create_permission", "channel_bind", "other"};
inline constexpr std::array<std::uint16_t, 17> counted_codes = {
    200, 300, 400, 401, 403, 420, 437, 438, 440, 441, 442, 443, 446, 447, 486, 500, 508};
std::size_t method_slot(protocol::Method method) noexcept;
std::size_t code_slot(std::uint16_t code) noexcept;  // counted_codes.size() = other

// Per-worker tallies: the worker's thread writes them, the metrics endpoint sums them.
struct DispatchCounters {
    using Tally = allocation::Tally;
    Tally requests;
    Tally success_responses;
    Tally error_responses;
    Tally indications;
    Tally dropped_malformed;
    Tally dropped_other;    // responses, ChannelData without a relay, junk
    Tally auth_challenges;  // 401 without credentials
    Tally auth_failures;    // 400/401/438 for requests that tried to authenticate
    Tally rate_limited;     // unauthenticated requests dropped by the source limiter
    // Responses sent, by method_slot and code_slot.
    std::array<std::array<Tally, counted_codes.size() + 1>, counted_methods.size()> responses;
    // Failed authentications by auth::AuthOutcome (the challenge included).
    std::array<Tally, 8> auth_outcomes;
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
    // The users the operator revoked (null: none); verified credentials of theirs get 401.
    void set_revocations(std::shared_ptr<const auth::RevocationList> revocations) noexcept {
        revocations_ = std::move(revocations);
    }

    // Allocates the fleet makes wait go to `deferrals` (null: dropped, the client retransmits);
    // it must outlive the dispatcher.
    void set_deferrals(DeferredRequests* deferrals) noexcept { deferrals_ = deferrals; }

    // Returns the reply written into `out`, or an empty span when nothing is to be sent
    // (malformed input, indications, responses, ChannelData, unknown junk).
    std::span<const std::uint8_t> handle(std::span<const std::uint8_t> packet,
                                         const PacketContext& context,
                                         std::span<std::uint8_t> out) noexcept;
    // The same; `authenticated` is set when the packet was a TURN request whose credential
    // verified (stream connections lift their unauthenticated deadline on it).
    std::span<const std::uint8_t> handle(std::span<const std::uint8_t> packet,
                                         const PacketContext& context, std::span<std::uint8_t> out,
                                         bool& authenticated) noexcept;

    const DispatchCounters& counters() const noexcept { return counters_; }

private:
    struct Credentials;  // the auth objects built from one config
    // A well-formed request past the checks every message gets; empty = no answer.
    std::span<const std::uint8_t> answer(const protocol::MessageView& msg,
                                         const PacketContext& context, std::span<std::uint8_t> out,
                                         bool& authenticated);
    void count_response(protocol::Method method, std::span<const std::uint8_t> reply) noexcept;
    std::span<const std::uint8_t> turn_request(const protocol::MessageView& msg,
                                               const PacketContext& context,
                                               std::span<std::uint8_t> out, bool& authenticated);

    std::shared_ptr<const config::Config> config_;
    std::unique_ptr<Credentials> credentials_;
    allocation::AllocationManager* relay_;
    std::unique_ptr<SourceRateLimiter> own_limiter_;
    SourceRateLimiter* unauthenticated_;
    DispatchCounters counters_;
    std::shared_ptr<const auth::RevocationList> revocations_;
    DeferredRequests* deferrals_ = nullptr;
};

}  // namespace tern::server
