// RFC 8656 §7: Allocate. The checks of §7.2 in its order, then the relayed transport addresses,
// the allocation and the success response that section describes.
#include <optional>
#include <vector>

#include "request_reply.hpp"
#include "tern/allocation/allocation_manager.hpp"
#include "tern/protocol/attribute_type.hpp"

namespace tern::allocation {

using protocol::AddressFamily;
using protocol::MessageBuilder;
using protocol::MessageView;
using protocol::TransportAddress;

namespace {

constexpr std::uint8_t udp_protocol = 17;   // REQUESTED-TRANSPORT value for UDP (IANA)
constexpr std::uint8_t ipv6_family = 0x02;  // the one valid ADDITIONAL-ADDRESS-FAMILY

}  // namespace

// What an Allocate asks for, its attributes checked.
struct AllocationManager::AllocateAsk {
    AddressFamily family = AddressFamily::ipv4;
    bool dual = false;                    // ADDITIONAL-ADDRESS-FAMILY: an IPv6 address too
    std::optional<bool> even_port;        // EVEN-PORT, valued by its R bit
    std::optional<ClaimedPort> reserved;  // the port a RESERVATION-TOKEN named
    bool dont_fragment = false;
};

// The relay sockets an Allocate opened.
struct AllocationManager::OpenedRelays {
    OpenedRelay primary;
    std::optional<OpenedRelay> secondary;        // a dual allocation's IPv6 address
    std::uint16_t secondary_error = 0;           // or why it has none: 440 or 508
    std::optional<std::uint64_t> granted_token;  // EVEN-PORT R: the next port's reservation
};

std::span<const std::uint8_t> AllocationManager::allocate(const MessageView& request,
                                                          const FiveTuple& tuple,
                                                          ClientRoute client,
                                                          const Requester& requester, TimePoint now,
                                                          Reply& r) {
    // Lapsed allocations go first, so this 5-tuple and the quotas are judged on live ones and
    // the table never sweeps an allocation whose relay sockets are still registered.
    for (auto& lapsed : table_.expire(now)) release(lapsed, lapsed_reason(lapsed));

    if (table_.find(tuple, now) != nullptr) return r.mismatch();  // RFC 8656 §7.2 step 2

    AllocateAsk ask;
    if (const auto refusal = read_allocate(request, tuple, ask, r)) return *refusal;

    // RFC 8656 §7.2 step 5: a token must name a live reservation; its port sets the family.
    if (const auto token = request.reservation_token()) {
        ask.reserved = ports_.claim(*token, now);
        if (!ask.reserved) return r.insufficient_capacity();
        ask.family = ask.reserved->family;
    }
    // RFC 8656 §7.2 step 7: a family without a relay address is not supported.
    const auto ip = relay_ip(ask.family, tuple.server);
    if (!ip) {
        give_back_reserved(ask);
        return r.family_unsupported();
    }
    // RFC 8656 §7.2 step 10: the quotas.
    const TransactionKey key{tuple, request.transaction_id().bytes};
    if (const auto refusal = admit_allocation(key, requester.username, ask, now, r)) {
        return *refusal;
    }
    // RFC 8656 §7.2 steps 8 and 9: the relayed addresses. Refusals from here on give back the
    // quota admission took.
    OpenedRelays relays;
    if (!open_relays(*ip, tuple.server, ask, relays, now)) {
        give_back_quota(requester.username, key);
        return r.insufficient_capacity();
    }
    const Allocation* a = create_allocation(request, tuple, client, requester, relays, now);
    if (a == nullptr) {  // admission said yes a moment ago
        close_relays(relays);
        give_back_quota(requester.username, key);
        return r.insufficient_capacity();
    }
    if (fleet_ != nullptr) fleet_->admitted(key, a->id);
    return allocated(*a, relays, now, r);
}

// RFC 8656 §7.2 steps 3 to 9, as far as the request alone decides them.
AllocationManager::Refusal AllocationManager::read_allocate(const MessageView& request,
                                                            const FiveTuple& tuple,
                                                            AllocateAsk& ask,
                                                            Reply& r) const noexcept {
    const auto transport = request.requested_transport();  // step 3
    if (!transport) return r.bad_request();
    if (*transport != udp_protocol) return r.error(442, "Unsupported Transport Protocol");

    const auto requested_family = request.requested_address_family();
    const auto additional_family = request.additional_address_family();
    const auto token = request.reservation_token();
    const auto even_port = request.even_port();
    // Step 5: a token names one reserved address, so it goes with neither EVEN-PORT nor a family.
    if (token && (even_port || requested_family || additional_family)) return r.bad_request();
    if (requested_family && additional_family) return r.bad_request();  // step 6
    // Step 8: a reserved pair for two families is not defined.
    if (additional_family && even_port && *even_port) return r.bad_request();
    if (additional_family && *additional_family != ipv6_family) return r.bad_request();  // step 9

    if (requested_family) {  // step 7
        const auto family = family_of(*requested_family);
        if (!family) return r.family_unsupported();
        ask.family = *family;
    } else if (!additional_family && settings_.default_family == DefaultFamily::client) {
        ask.family = tuple.server.family;
    }
    ask.dual = additional_family.has_value();
    ask.even_port = even_port;
    ask.dont_fragment = request.has(protocol::attr::dont_fragment);  // step 4: supported
    return std::nullopt;
}

// RFC 8656 §7.2 step 10: the table's and the shared quota's limits (486, or 508 when full).
AllocationManager::Refusal AllocationManager::admit_allocation(const TransactionKey& key,
                                                               std::string_view username,
                                                               const AllocateAsk& ask,
                                                               TimePoint now, Reply& r) {
    CreateResult admitted = table_.admit(key.tuple, username, now);
    if (admitted == CreateResult::created && quota_ != nullptr) {
        admitted = quota_->acquire(username);
    }
    // The node's own quotas first: a full node answers without asking the fleet's store.
    if (admitted == CreateResult::created && fleet_ != nullptr) {
        const FleetVerdict verdict = fleet_->admit(key, username, now);
        if (verdict == FleetVerdict::admit) return std::nullopt;
        if (quota_ != nullptr) quota_->release(username);
        give_back_reserved(ask);
        switch (verdict) {
            case FleetVerdict::wait:
                // No answer and nothing cached: the shell hands the request in again.
                deferred_ = true;
                return std::span<const std::uint8_t>{};
            case FleetVerdict::quota_full:
                ++counters_.rejected_user_quota;
                return r.error(486, "Allocation Quota Reached");
            case FleetVerdict::admit:
            case FleetVerdict::refuse:
                break;
        }
        ++counters_.rejected_allocation_quota;
        return r.insufficient_capacity();
    }
    if (admitted == CreateResult::created) return std::nullopt;
    give_back_reserved(ask);
    if (admitted == CreateResult::mismatch) return r.mismatch();
    if (admitted == CreateResult::user_quota) {
        ++counters_.rejected_user_quota;
        return r.error(486, "Allocation Quota Reached");
    }
    ++counters_.rejected_allocation_quota;
    return r.insufficient_capacity();
}

// RFC 8656 §7.2 steps 8 and 9: the reserved port, an even one or any; then the second address
// of a dual allocation, which is best effort: its failure goes into ADDRESS-ERROR-CODE next to
// a successful IPv4 allocation. False when there is no first address (508).
bool AllocationManager::open_relays(const TransportAddress& ip, const TransportAddress& server,
                                    const AllocateAsk& ask, OpenedRelays& out, TimePoint now) {
    std::optional<OpenedRelay> primary;
    if (ask.reserved) {
        primary = open_relay(ip, ask.dont_fragment, ask.reserved->port, now);
    } else if (ask.even_port) {
        // A busy even port is skipped like any other; its partner's reservation goes back.
        for (int attempt = 0; attempt < max_bind_attempts && !primary; ++attempt) {
            const auto grant = ports_.acquire_even(ask.family, *ask.even_port, now);
            if (!grant) break;
            primary = open_relay(ip, ask.dont_fragment, grant->port, now);
            if (primary) {
                out.granted_token = grant->reservation_token;
            } else if (grant->reservation_token) {
                if (const auto partner = ports_.claim(*grant->reservation_token, now)) {
                    ports_.release(partner->family, partner->port);
                }
            }
        }
    } else {
        primary = open_relay(ip, ask.dont_fragment, std::nullopt, now);
    }
    if (!primary) return false;
    out.primary = *primary;
    if (ask.dual) {
        if (const auto ip6 = relay_ip(AddressFamily::ipv6, server)) {
            out.secondary = open_relay(*ip6, ask.dont_fragment, std::nullopt, now);
            if (!out.secondary) out.secondary_error = 508;
        } else {
            out.secondary_error = 440;
        }
    }
    return true;
}

// RFC 8656 §7.2 once the checks pass: the allocation on this 5-tuple, no permissions or
// channels yet. nullptr when the table refuses after all.
const Allocation* AllocationManager::create_allocation(const MessageView& request,
                                                       const FiveTuple& tuple, ClientRoute client,
                                                       const Requester& requester,
                                                       const OpenedRelays& relays, TimePoint now) {
    std::vector<TransportAddress> addresses{relays.primary.address};
    if (relays.secondary) addresses.push_back(relays.secondary->address);
    const CreateOutcome created =
        table_.create(tuple, requester.username, addresses, requested_lifetime(request), now);
    if (created.result != CreateResult::created) return nullptr;
    Allocation& a = *created.allocation;
    a.client = client;
    a.id = next_id_++;
    a.relay_ids[0] = relays.primary.id;
    index_relay(relays.primary.id, a);
    if (relays.secondary) {
        a.relay_ids[1] = relays.secondary->id;
        index_relay(relays.secondary->id, a);
    }
    if (requester.teardown_at) table_.cap_expiry(a, *requester.teardown_at);
    // Only under a cap: a user's buckets cost memory for each user; reconfigure() attaches them
    // to live allocations when a reload turns the cap on.
    if (!user_rate_.unlimited())
        a.user_budget = users_->attach(requester.username, now, user_rate_);
    ++counters_.allocations_created;
    ++kind_tally(counters_.created_by_kind, a);
    return created.allocation;
}

// RFC 8656 §7.2's success response: the relayed addresses (or ADDRESS-ERROR-CODE for the one
// missing), LIFETIME, RESERVATION-TOKEN for a reserved next port, XOR-MAPPED-ADDRESS.
std::span<const std::uint8_t> AllocationManager::allocated(const Allocation& a,
                                                           const OpenedRelays& relays,
                                                           TimePoint now, Reply& r) const {
    MessageBuilder b = r.success();
    b.add_xor_address(protocol::attr::xor_relayed_address, advertised(relays.primary.address));
    if (relays.secondary) {
        b.add_xor_address(protocol::attr::xor_relayed_address,
                          advertised(relays.secondary->address));
    }
    if (relays.secondary_error != 0) {
        const std::string_view reason = relays.secondary_error == 440
                                            ? "Address Family not Supported"
                                            : "Insufficient Capacity";
        b.add_address_error_code(AddressFamily::ipv6, relays.secondary_error, reason);
    }
    b.add_lifetime(seconds_of(a.expires - now));
    if (relays.granted_token) b.add_reservation_token(*relays.granted_token);
    b.add_xor_address(protocol::attr::xor_mapped_address, a.tuple.client);
    return r.finish(b);
}

void AllocationManager::give_back_reserved(const AllocateAsk& ask) {
    if (ask.reserved) ports_.release(ask.reserved->family, ask.reserved->port);
}

void AllocationManager::give_back_quota(std::string_view username, const TransactionKey& key) {
    if (quota_ != nullptr) quota_->release(username);
    if (fleet_ != nullptr) fleet_->withdrawn(key);
}

void AllocationManager::close_relays(const OpenedRelays& relays) {
    egress_.close_relay(relays.primary.id);
    ports_.release(relays.primary.address.family, relays.primary.address.port);
    if (relays.secondary) {
        egress_.close_relay(relays.secondary->id);
        ports_.release(relays.secondary->address.family, relays.secondary->address.port);
    }
}

}  // namespace tern::allocation
