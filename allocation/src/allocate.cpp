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

constexpr std::uint8_t udp_protocol = 17;  // REQUESTED-TRANSPORT value for UDP (IANA)

}  // namespace

std::span<const std::uint8_t> AllocationManager::allocate(const MessageView& request,
                                                          const FiveTuple& tuple,
                                                          ClientRoute client,
                                                          const Requester& requester, TimePoint now,
                                                          Reply& r) {
    // Lapsed allocations go first, so this 5-tuple and the quotas are judged on live ones and
    // the table never sweeps an allocation whose relay sockets are still registered.
    for (auto& lapsed : table_.expire(now)) release(lapsed);

    if (table_.find(tuple, now) != nullptr) return r.mismatch();  // RFC 8656 §7.2 step 2

    const auto transport = request.requested_transport();
    if (!transport) return r.bad_request();
    if (*transport != udp_protocol) {
        return r.error(442, "Unsupported Transport Protocol");
    }

    const auto requested_family = request.requested_address_family();
    const auto additional_family = request.additional_address_family();
    const auto token = request.reservation_token();
    const auto even_port = request.even_port();
    // §7.2: REQUESTED- and ADDITIONAL-ADDRESS-FAMILY exclude each other; a token names one
    // reserved address, so it goes with neither EVEN-PORT nor a family choice; only IPv6 may be
    // the additional family. A reserved pair for two families is not defined: refused too.
    if (requested_family && additional_family) return r.bad_request();
    if (token && (even_port || requested_family || additional_family)) return r.bad_request();
    if (additional_family && *additional_family != 0x02) return r.bad_request();
    if (additional_family && even_port && *even_port) return r.bad_request();

    AddressFamily family = AddressFamily::ipv4;
    if (requested_family) {
        const auto f = family_of(*requested_family);
        if (!f) return r.family_unsupported();
        family = *f;
    } else if (!additional_family && settings_.default_family == DefaultFamily::client) {
        family = tuple.server.family;
    }

    std::optional<ClaimedPort> claimed;
    if (token) {
        claimed = ports_.claim(*token, now);
        if (!claimed) return r.insufficient_capacity();  // unknown or lapsed token (§7.2)
        family = claimed->family;
    }
    const auto ip = relay_ip(family, tuple.server);
    if (!ip) {
        if (claimed) ports_.release(claimed->family, claimed->port);
        return r.family_unsupported();
    }

    CreateResult admitted = table_.admit(tuple, requester.username, now);
    if (admitted == CreateResult::created && quota_ != nullptr) {
        admitted = quota_->acquire(requester.username);
    }
    // From here on, every refusal gives back what was taken.
    auto give_back = [&] {
        if (quota_ != nullptr && admitted == CreateResult::created) {
            quota_->release(requester.username);
        }
    };
    switch (admitted) {
        case CreateResult::created:
            break;
        case CreateResult::user_quota:
            if (claimed) ports_.release(claimed->family, claimed->port);
            ++counters_.rejected_user_quota;
            return r.error(486, "Allocation Quota Reached");
        case CreateResult::mismatch:
            if (claimed) ports_.release(claimed->family, claimed->port);
            return r.mismatch();
        case CreateResult::capacity:
            if (claimed) ports_.release(claimed->family, claimed->port);
            ++counters_.rejected_allocation_quota;
            return r.insufficient_capacity();
    }

    const bool dont_fragment = request.has(protocol::attr::dont_fragment);
    std::optional<std::uint64_t> granted_token;
    std::optional<OpenedRelay> primary;
    if (claimed) {
        primary = open_relay(*ip, dont_fragment, claimed->port, now);
    } else if (even_port) {
        // A busy even port is skipped like any other; its partner's reservation goes back.
        for (int attempt = 0; attempt < max_bind_attempts && !primary; ++attempt) {
            const auto grant = ports_.acquire_even(family, *even_port, now);
            if (!grant) break;
            primary = open_relay(*ip, dont_fragment, grant->port, now);
            if (primary) {
                granted_token = grant->reservation_token;
            } else if (grant->reservation_token) {
                if (const auto partner = ports_.claim(*grant->reservation_token, now)) {
                    ports_.release(partner->family, partner->port);
                }
            }
        }
    } else {
        primary = open_relay(*ip, dont_fragment, std::nullopt, now);
    }
    if (!primary) {
        give_back();
        return r.insufficient_capacity();
    }

    // §7.1: the second (IPv6) address of a dual allocation is best effort; its failure is
    // reported in ADDRESS-ERROR-CODE next to a successful IPv4 allocation.
    std::optional<OpenedRelay> secondary;
    std::uint16_t additional_error = 0;
    if (additional_family) {
        if (const auto ip6 = relay_ip(AddressFamily::ipv6, tuple.server)) {
            secondary = open_relay(*ip6, dont_fragment, std::nullopt, now);
            if (!secondary) additional_error = 508;
        } else {
            additional_error = 440;
        }
    }

    std::vector<TransportAddress> relays{primary->address};
    if (secondary) relays.push_back(secondary->address);
    const CreateOutcome created =
        table_.create(tuple, requester.username, relays, requested_lifetime(request), now);
    if (created.result != CreateResult::created) {  // admit() said yes a moment ago
        egress_.close_relay(primary->id);
        ports_.release(primary->address.family, primary->address.port);
        if (secondary) {
            egress_.close_relay(secondary->id);
            ports_.release(secondary->address.family, secondary->address.port);
        }
        give_back();
        return r.insufficient_capacity();
    }
    Allocation& a = *created.allocation;
    a.client = client;
    a.relay_ids[0] = primary->id;
    index_relay(primary->id, a);
    if (secondary) {
        a.relay_ids[1] = secondary->id;
        index_relay(secondary->id, a);
    }
    if (requester.teardown_at) table_.cap_expiry(a, *requester.teardown_at);
    // Only under a cap: a user's buckets cost memory for each user; reconfigure() attaches them
    // to live allocations when a reload turns the cap on.
    if (!user_rate_.unlimited())
        a.user_budget = users_->attach(requester.username, now, user_rate_);
    ++counters_.allocations_created;
    ++kind_tally(counters_.created_by_kind, a);

    MessageBuilder b = r.success();
    b.add_xor_address(protocol::attr::xor_relayed_address, advertised(primary->address));
    if (secondary) {
        b.add_xor_address(protocol::attr::xor_relayed_address, advertised(secondary->address));
    }
    if (additional_error != 0) {
        const std::string_view reason =
            additional_error == 440 ? "Address Family not Supported" : "Insufficient Capacity";
        b.add_address_error_code(AddressFamily::ipv6, additional_error, reason);
    }
    b.add_lifetime(seconds_of(a.expires - now));
    if (granted_token) b.add_reservation_token(*granted_token);
    b.add_xor_address(protocol::attr::xor_mapped_address, tuple.client);
    return r.finish(b);
}

}  // namespace tern::allocation
