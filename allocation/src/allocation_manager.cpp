// The TURN methods of RFC 8656 over the allocation table: request rules in the order of §7.2,
// §7.3, §9.2 and §12.2, and the relay in both directions (§11, §12).
#include "tern/allocation/allocation_manager.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>

#include "tern/allocation/client_frame.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/channel_data.hpp"
#include "tern/protocol/message_type.hpp"

namespace tern::allocation {

using protocol::AddressFamily;
using protocol::MessageBuilder;
using protocol::MessageClass;
using protocol::MessageType;
using protocol::MessageView;
using protocol::Method;
using protocol::TransportAddress;

namespace {

Tally& kind_tally(RelayCounters::ByKind& by_kind, const Allocation& a) noexcept {
    const auto transport = static_cast<std::size_t>(a.tuple.transport);
    const auto family =
        a.relays.size() > 0 && a.relays[0].family == protocol::AddressFamily::ipv6 ? 1 : 0;
    return by_kind[transport][family];
}

constexpr std::uint8_t udp_protocol = 17;  // REQUESTED-TRANSPORT value for UDP (IANA)
// A remembered response is at most this large (an Allocate success with two relayed addresses,
// ADDRESS-ERROR-CODE, MESSAGE-INTEGRITY-SHA256 and a long SOFTWARE fits).
constexpr std::size_t transaction_slot_size = 512;
// How often a busy port is skipped before the Allocate fails with 508.
constexpr int max_bind_attempts = 16;
// UNKNOWN-ATTRIBUTES in a 420 lists at most this many types.
constexpr std::size_t unknown_listed_max = 8;

std::optional<AddressFamily> family_of(std::uint8_t raw) noexcept {
    if (raw == 0x01) return AddressFamily::ipv4;
    if (raw == 0x02) return AddressFamily::ipv6;
    return std::nullopt;
}

bool same_ip(const TransportAddress& a, const TransportAddress& b) noexcept {
    if (a.family != b.family) return false;
    return std::memcmp(a.bytes.data(), b.bytes.data(), a.address_size()) == 0;
}

bool is_unspecified(const TransportAddress& a) noexcept {
    for (std::size_t i = 0; i < a.address_size(); ++i) {
        if (a.bytes[i] != 0) return false;
    }
    return true;
}

TransportAddress with_port(TransportAddress a, std::uint16_t port) noexcept {
    a.port = port;
    return a;
}

std::uint32_t seconds_of(Duration d) noexcept {
    const auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
    return s <= 0 ? 0 : static_cast<std::uint32_t>(s);
}

}  // namespace

// Builds the one response to a request: success or error, always signed with the requester's key
// (RFC 8489 §9.2.4: responses to authenticated requests carry MESSAGE-INTEGRITY, errors too).
struct AllocationManager::Reply {
    const MessageView& request;
    const Requester& requester;
    const std::string& software;
    std::span<std::uint8_t> out;

    MessageBuilder success() const noexcept {
        return MessageBuilder(out, MessageType{request.method(), MessageClass::success_response},
                              request.transaction_id());
    }
    std::span<const std::uint8_t> finish(MessageBuilder& b) const noexcept {
        if (!software.empty()) b.add_text(protocol::attr::software, software);
        if (requester.sha256) {
            b.add_message_integrity_sha256(requester.key);
        } else {
            b.add_message_integrity(requester.key);
        }
        b.add_fingerprint();
        return b.finish();
    }
    std::span<const std::uint8_t> error(std::uint16_t code,
                                        std::string_view reason) const noexcept {
        MessageBuilder b(out, MessageType{request.method(), MessageClass::error_response},
                         request.transaction_id());
        b.add_error_code(code, reason);
        return finish(b);
    }
    std::span<const std::uint8_t> bad_request() const noexcept { return error(400, "Bad Request"); }
    // RFC 8489 §6.3.1.1: 420 listing the unknown comprehension-required attributes (at most
    // unknown_listed_max of them, to keep the answer small).
    std::span<const std::uint8_t> unknown_attributes() const noexcept {
        std::array<std::uint16_t, unknown_listed_max> unknown{};
        const std::size_t n = request.unknown_comprehension_required(unknown);
        MessageBuilder b(out, MessageType{request.method(), MessageClass::error_response},
                         request.transaction_id());
        b.add_error_code(420, "Unknown Attribute");
        b.add_unknown_attributes(
            std::span<const std::uint16_t>(unknown.data(), std::min(n, unknown.size())));
        return finish(b);
    }
    std::span<const std::uint8_t> forbidden() const noexcept { return error(403, "Forbidden"); }
    std::span<const std::uint8_t> mismatch() const noexcept {
        return error(437, "Allocation Mismatch");
    }
    std::span<const std::uint8_t> family_unsupported() const noexcept {
        return error(440, "Address Family not Supported");
    }
    std::span<const std::uint8_t> wrong_credentials() const noexcept {
        return error(441, "Wrong Credentials");
    }
    std::span<const std::uint8_t> peer_family_mismatch() const noexcept {
        return error(443, "Peer Address Family Mismatch");
    }
    std::span<const std::uint8_t> insufficient_capacity() const noexcept {
        return error(508, "Insufficient Capacity");
    }
};

AllocationManager::AllocationManager(ManagerSettings settings,
                                     std::shared_ptr<const PeerPolicy> peers, RelayPorts& ports,
                                     RelayEgress& egress, std::uint64_t hash_seed,
                                     AllocationQuota* quota, UserBandwidth* users)
    : settings_(std::move(settings)),
      peers_(std::move(peers)),
      ports_(ports),
      egress_(egress),
      quota_(quota),
      own_users_(users == nullptr ? std::make_unique<UserBandwidth>() : nullptr),
      users_(users == nullptr ? own_users_.get() : users),
      table_(table_limits(), hash_seed),
      transactions_(settings_.transaction_slots, transaction_slot_size, hash_seed ^ 0x5bd1e995u),
      client_buffer_(client_frame_headroom + 0xFFFF + client_frame_tailroom) {
    apply_rates();
}

AllocationManager::~AllocationManager() {
    clear();
}

void AllocationManager::reconfigure(ManagerSettings settings,
                                    std::shared_ptr<const PeerPolicy> peers) {
    settings_ = std::move(settings);
    peers_ = std::move(peers);
    table_.set_limits(table_limits());
    apply_rates();
    const bool user_cap = !user_rate_.unlimited();
    table_.for_each([this, user_cap](Allocation& a) {
        a.permissions.set_max(settings_.limits.max_permissions_per_allocation);
        a.channels.set_max(settings_.limits.max_channels_per_allocation);
        if (!user_cap) {
            a.user_budget.reset();
        } else if (!a.user_budget) {
            // A full bucket whatever the time point: the first consume() refills from here.
            a.user_budget = users_->attach(a.username, TimePoint{}, user_rate_);
        }
    });
}

void AllocationManager::apply_rates() noexcept {
    allocation_rate_ = bucket_rate(settings_.limits.allocation_bandwidth);
    user_rate_ = bucket_rate(settings_.limits.user_bandwidth);
}

bool AllocationManager::within_budget(TokenBucket& own, SharedTokenBucket* user, std::size_t bytes,
                                      TimePoint now) noexcept {
    if (!own.consume(bytes, now, allocation_rate_)) return false;
    if (user == nullptr || user->consume(bytes, now, user_rate_)) return true;
    own.refund(bytes, allocation_rate_);
    return false;
}

AllocationLimits AllocationManager::table_limits() const noexcept {
    AllocationLimits limits = settings_.limits;
    if (quota_ != nullptr) {  // the shared quota counts instead
        limits.max_allocations = SIZE_MAX;
        limits.max_allocations_per_user = SIZE_MAX;
    }
    return limits;
}

std::span<const std::uint8_t> AllocationManager::handle_request(
    const MessageView& request, const FiveTuple& tuple, ClientRoute client,
    const Requester& requester, TimePoint now, std::span<std::uint8_t> out) {
    const Method method = request.method();
    if (method != Method::allocate && method != Method::refresh &&
        method != Method::create_permission && method != Method::channel_bind) {
        return {};
    }
    const TransactionKey key{tuple, request.transaction_id().bytes};
    if (auto cached = transactions_.find(key, now)) {
        if (cached->size() > out.size()) return {};
        std::copy(cached->begin(), cached->end(), out.begin());
        return out.first(cached->size());
    }
    Reply r{request, requester, settings_.software, out};
    // RFC 8489 §6.3: unknown comprehension-required attributes are looked at once the request
    // has authenticated (the caller's job), and answered with a signed 420.
    std::span<const std::uint8_t> response;
    if (request.unknown_comprehension_required({}) > 0) {
        response = r.unknown_attributes();
    } else if (method == Method::allocate && draining_) {
        response = r.insufficient_capacity();  // RFC 8656 §7.2: the client may try elsewhere
    } else if (method == Method::allocate) {
        response = allocate(request, tuple, client, requester, now, r);
    } else if (Allocation* a = table_.find(tuple, now); a == nullptr) {
        response = r.mismatch();
    } else if (a->username != requester.username) {
        response = r.wrong_credentials();  // RFC 8656 §5: only its owner may use an allocation
    } else if (method == Method::refresh) {
        response = refresh(request, tuple, *a, requester, now, r);
    } else if (method == Method::create_permission) {
        response = create_permission(request, *a, now, r);
    } else {
        response = channel_bind(request, *a, now, r);
    }
    if (!response.empty()) transactions_.store(key, response, now);
    return response;
}

std::optional<TransportAddress> AllocationManager::relay_ip(
    AddressFamily family, const TransportAddress& server) const noexcept {
    for (const auto& a : settings_.relay_addresses) {
        if (a.family == family) return with_port(a, 0);
    }
    if (server.family == family && !is_unspecified(server)) return with_port(server, 0);
    return std::nullopt;
}

TransportAddress AllocationManager::advertised(const TransportAddress& bound) const noexcept {
    for (const auto& m : settings_.external_addresses) {
        if (same_ip(m.internal, bound)) return with_port(m.external, bound.port);
    }
    return bound;
}

std::optional<AllocationManager::OpenedRelay> AllocationManager::open_relay(
    const TransportAddress& ip, bool dont_fragment, std::optional<std::uint16_t> fixed_port,
    TimePoint now) {
    for (int attempt = 0; attempt < max_bind_attempts; ++attempt) {
        std::optional<std::uint16_t> port = fixed_port;
        if (!port) port = ports_.acquire(ip.family);
        if (!port) return std::nullopt;  // the range is exhausted
        const TransportAddress address = with_port(ip, *port);
        const OpenRelayResult opened = egress_.open_relay(address, dont_fragment);
        if (opened.status == OpenRelayStatus::opened) {
            if (opened.id < max_relay_index) return OpenedRelay{address, opened.id};
            egress_.close_relay(opened.id);  // breaks the egress contract: ids are indexes
            ports_.release(ip.family, *port);
            return std::nullopt;
        }
        if (opened.status == OpenRelayStatus::address_in_use) {
            ports_.mark_unusable(ip.family, *port, now);  // another process holds it
        } else {
            ports_.release(ip.family, *port);
        }
        if (fixed_port || opened.status == OpenRelayStatus::failed) return std::nullopt;
    }
    return std::nullopt;
}

void AllocationManager::index_relay(RelayId id, Allocation& a) {
    if (id >= by_relay_.size()) by_relay_.resize(std::size_t{id} + 1, nullptr);
    by_relay_[id] = &a;
}

void AllocationManager::release(Allocation& allocation) noexcept {
    for (std::size_t i = 0; i < allocation.relays.size() && i < allocation.relay_ids.size(); ++i) {
        if (allocation.relay_ids[i] < by_relay_.size())
            by_relay_[allocation.relay_ids[i]] = nullptr;
        egress_.close_relay(allocation.relay_ids[i]);
        ports_.release(allocation.relays[i].family, allocation.relays[i].port);
    }
    if (quota_ != nullptr) quota_->release(allocation.username);
    ++counters_.allocations_removed;
    ++kind_tally(counters_.removed_by_kind, allocation);
}

const TransportAddress* AllocationManager::relay_of(const Allocation& a,
                                                    AddressFamily family) noexcept {
    for (const auto& r : a.relays) {
        if (r.family == family) return &r;
    }
    return nullptr;
}

std::span<const std::uint8_t> AllocationManager::allocate(const MessageView& request,
                                                          const FiveTuple& tuple,
                                                          ClientRoute client,
                                                          const Requester& requester, TimePoint now,
                                                          Reply& r) {
    // Lapsed allocations go first, so this 5-tuple and the quotas are judged on live ones and
    // the table never sweeps an allocation whose relay sockets are still registered.
    for (auto& lapsed : table_.expire(now)) release(lapsed);

    if (table_.find(tuple, now) != nullptr) return r.mismatch();  // §7.2 step 2

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
    std::optional<Duration> requested_lifetime;
    if (const auto l = request.lifetime()) requested_lifetime = std::chrono::seconds(*l);
    const CreateOutcome created =
        table_.create(tuple, requester.username, relays, requested_lifetime, now);
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

std::span<const std::uint8_t> AllocationManager::refresh(const MessageView& request,
                                                         const FiveTuple& tuple, Allocation& a,
                                                         const Requester& requester, TimePoint now,
                                                         Reply& r) {
    if (const auto raw = request.requested_address_family()) {
        const auto f = family_of(*raw);
        if (!f || relay_of(a, *f) == nullptr) return r.peer_family_mismatch();  // §7.3
    }
    std::optional<Duration> requested_lifetime;
    if (const auto l = request.lifetime()) requested_lifetime = std::chrono::seconds(*l);
    RefreshOutcome outcome = table_.refresh(tuple, requested_lifetime, now);
    if (outcome.result == RefreshResult::no_allocation) return r.mismatch();
    std::uint32_t lifetime = 0;
    if (outcome.result == RefreshResult::deleted) {
        if (outcome.removed) release(*outcome.removed);
    } else {
        if (requester.teardown_at) table_.cap_expiry(a, *requester.teardown_at);
        lifetime = seconds_of(a.expires - now);
    }
    MessageBuilder b = r.success();
    b.add_lifetime(lifetime);
    return r.finish(b);
}

std::span<const std::uint8_t> AllocationManager::create_permission(const MessageView& request,
                                                                   Allocation& a, TimePoint now,
                                                                   Reply& r) {
    std::array<TransportAddress, protocol::max_attributes> peers{};
    const std::size_t n = request.xor_addresses(protocol::attr::xor_peer_address, peers);
    if (n == 0) return r.bad_request();
    const std::size_t count = std::min(n, peers.size());
    for (std::size_t i = 0; i < count; ++i) {
        peers[i] = peers[i].unmapped();
        if (relay_of(a, peers[i].family) == nullptr) return r.peer_family_mismatch();
        if (!peers_->permits(peers[i])) return r.forbidden();
    }
    // §9.2: all or nothing; no room for every peer means none is installed.
    const auto result =
        a.permissions.install_all(std::span<const TransportAddress>(peers.data(), count), now);
    if (result == PermissionResult::quota_exceeded) return r.insufficient_capacity();
    MessageBuilder b = r.success();
    return r.finish(b);
}

std::span<const std::uint8_t> AllocationManager::channel_bind(const MessageView& request,
                                                              Allocation& a, TimePoint now,
                                                              Reply& r) {
    const auto channel = request.channel_number();
    auto peer = request.xor_peer_address();  // the first one wins (§12.2)
    const bool channel_ok =
        channel && (protocol::is_valid_channel_number(*channel) ||
                    (settings_.rfc5766_channels && protocol::is_channel_data_number(*channel)));
    if (!channel_ok || !peer) return r.bad_request();
    *peer = peer->unmapped();
    if (relay_of(a, peer->family) == nullptr) return r.peer_family_mismatch();
    if (!peers_->permits(*peer)) return r.forbidden();
    switch (bind_channel_with_permission(a.channels, a.permissions, *channel, *peer, now)) {
        case ChannelBindResult::bound:
        case ChannelBindResult::refreshed:
            break;
        case ChannelBindResult::quota_exceeded:
        case ChannelBindResult::permission_quota_exceeded:
            return r.insufficient_capacity();
        default:
            return r.bad_request();  // invalid channel, or channel/peer bound elsewhere
    }
    MessageBuilder b = r.success();
    return r.finish(b);
}

// §11.2: a Send indication's data goes to the peer it names, if a permission covers it.
std::optional<AllocationManager::ToPeer> AllocationManager::route_send_indication(
    const MessageView& indication, const FiveTuple& tuple, TimePoint now) noexcept {
    Allocation* a = table_.find(tuple, now);
    if (a == nullptr) {
        ++counters_.dropped_no_allocation;
        return std::nullopt;
    }
    auto peer = indication.xor_peer_address();
    const auto data = indication.data();
    if (!peer || !data) return std::nullopt;  // §11.2: silently discarded
    *peer = peer->unmapped();
    // A permission is per IP (§9), so one for an own address (another client's relayed address)
    // would also let Send indications reach tern's listener ports: the policy checks the port of
    // own addresses. ChannelData needs no such check: ChannelBind checked the whole address.
    if (!a->permissions.allowed(*peer, now) || !peers_->permits_send(*peer)) {
        ++counters_.dropped_no_permission;
        return std::nullopt;
    }
    return route_to_peer(*a, *peer, *data, now);
}

// §12.5: ChannelData goes to the peer its channel is bound to, while that peer's permission
// lasts.
std::optional<AllocationManager::ToPeer> AllocationManager::route_channel_data(
    std::span<const std::uint8_t> message, const FiveTuple& tuple, TimePoint now) noexcept {
    protocol::ChannelDataView view;
    if (protocol::parse_channel_data(message, view) != protocol::ParseError::ok) {
        return std::nullopt;
    }
    Allocation* a = table_.find(tuple, now);
    if (a == nullptr) {
        ++counters_.dropped_no_allocation;
        return std::nullopt;
    }
    const auto peer = a->channels.peer_for(view.channel, now);
    if (!peer) {
        ++counters_.dropped_no_channel;
        return std::nullopt;
    }
    if (!a->permissions.allowed(*peer, now)) {
        ++counters_.dropped_no_permission;
        return std::nullopt;
    }
    return route_to_peer(*a, *peer, view.payload, now);
}

std::optional<AllocationManager::ToPeer> AllocationManager::route_to_peer(
    Allocation& a, const TransportAddress& peer, std::span<const std::uint8_t> payload,
    TimePoint now) noexcept {
    // From the relay of the peer's family; permission installation already refused others.
    for (std::size_t i = 0; i < a.relays.size(); ++i) {
        if (a.relays[i].family != peer.family) continue;
        if (!within_budget(a.to_peer_budget, a.user_budget ? &a.user_budget->to_peer : nullptr,
                           payload.size(), now)) {
            ++counters_.dropped_bandwidth;
            return std::nullopt;
        }
        return ToPeer{a.relay_ids[i], peer, payload};
    }
    return std::nullopt;
}

std::optional<AllocationManager::ToClient> AllocationManager::route_peer_datagram(
    RelayId relay, const TransportAddress& peer, std::size_t payload_size, TimePoint now) noexcept {
    if (relay >= by_relay_.size() || by_relay_[relay] == nullptr || !by_relay_[relay]->live(now)) {
        return std::nullopt;
    }
    Allocation& a = *by_relay_[relay];
    // Permissions are per IP (§9), so one for tern's own address (another client's relayed
    // address) would also let in datagrams from tern's listeners there: answers to requests
    // spoofed from this relay's address. A listener is never a permitted peer.
    if (!a.permissions.allowed(peer, now) || peers_->is_own_listener(peer)) {
        ++counters_.dropped_no_permission;  // §11.3 / §12.6: no permission, no delivery
        return std::nullopt;
    }
    if (!within_budget(a.to_client_budget, a.user_budget ? &a.user_budget->to_client : nullptr,
                       payload_size, now)) {
        ++counters_.dropped_bandwidth;
        return std::nullopt;
    }
    ToClient to{&a.tuple, a.client, 0, 0};
    // §12.6: ChannelData on a bound channel; a payload too long for its length field goes as a
    // Data indication, which fails to frame alike and is dropped.
    if (const auto channel = a.channels.channel_for(peer, now); channel && payload_size <= 0xFFFF) {
        to.channel = *channel;
    } else {
        to.indication_serial = ++data_indications_;
    }
    return to;
}

void AllocationManager::send_to_peer(const std::optional<ToPeer>& route) noexcept {
    if (!route) return;
    if (egress_.send_to_peer(route->relay, route->peer, route->payload)) {
        count_to_peer(1, route->payload.size(), 0);
    } else {
        count_to_peer(0, 0, 1);
    }
}

void AllocationManager::on_send_indication(const MessageView& indication, const FiveTuple& tuple,
                                           TimePoint now) noexcept {
    send_to_peer(route_send_indication(indication, tuple, now));
}

void AllocationManager::on_channel_data(std::span<const std::uint8_t> message,
                                        const FiveTuple& tuple, TimePoint now) noexcept {
    send_to_peer(route_channel_data(message, tuple, now));
}

void AllocationManager::on_peer_datagram(RelayId relay, const TransportAddress& peer,
                                         std::span<const std::uint8_t> payload,
                                         TimePoint now) noexcept {
    const auto to = route_peer_datagram(relay, peer, payload.size(), now);
    if (!to) return;
    const std::size_t slot = client_frame_headroom + payload.size() + client_frame_tailroom;
    if (slot > client_buffer_.size()) return;
    if (!payload.empty()) {  // an empty span's data() may be null, which memcpy forbids
        std::memcpy(client_buffer_.data() + client_frame_headroom, payload.data(), payload.size());
    }
    const auto message =
        frame_for_client({client_buffer_.data(), slot}, payload.size(), to->tuple->transport,
                         to->channel, to->indication_serial, peer);
    if (message.empty()) return;  // too large to carry in one STUN message
    if (egress_.send_to_client(*to->tuple, to->route, message)) {
        count_to_client(1, payload.size(), 0);
    } else {
        count_to_client(0, 0, 1);
    }
}

bool AllocationManager::is_own_relayed_address(const TransportAddress& source) const {
    if (!peers_->is_own(source)) return false;
    const TransportAddress plain = source.unmapped();
    return ports_.in_use(plain.family, plain.port);
}

void AllocationManager::on_client_closed(const FiveTuple& tuple) {
    if (auto removed = table_.remove(tuple)) release(*removed);
}

void AllocationManager::expire(TimePoint now) {
    for (auto& lapsed : table_.expire(now)) release(lapsed);
    std::uint64_t permissions = 0;
    std::uint64_t channels = 0;
    table_.for_each([&](Allocation& a) {
        a.permissions.expire(now);
        a.channels.expire(now);
        permissions += a.permissions.count();
        channels += a.channels.live_count(now);
    });
    counters_.permissions_active.set(permissions);
    counters_.channels_active.set(channels);
    ports_.expire(now);
}

void AllocationManager::clear() {
    for (auto& lapsed : table_.expire(TimePoint::max())) release(lapsed);
}

}  // namespace tern::allocation
