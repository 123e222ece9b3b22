// The manager itself: construction and reloads, the request dispatch and its retransmission
// cache, relay sockets and ports, and the sweeps. The methods live by RFC 8656 section:
// allocate.cpp (§7), refresh.cpp (§8), create_permission.cpp (§9, §10), channel_bind.cpp (§12.2)
// and data_path.cpp (§11, §12: the relay path).
#include "tern/allocation/allocation_manager.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

#include "request_reply.hpp"
#include "tern/allocation/client_frame.hpp"
#include "tern/protocol/message_type.hpp"

namespace tern::allocation {

using protocol::AddressFamily;
using protocol::MessageView;
using protocol::Method;
using protocol::TransportAddress;

namespace {

// A remembered response is at most this large (an Allocate success with two relayed addresses,
// ADDRESS-ERROR-CODE, MESSAGE-INTEGRITY-SHA256 and a long SOFTWARE fits).
constexpr std::size_t transaction_slot_size = 512;

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

}  // namespace

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
    const BucketRate old_allocation_rate = allocation_rate_;
    const BucketRate old_user_rate = user_rate_;
    apply_rates();
    const bool rates_changed =
        old_allocation_rate.bytes_per_second != allocation_rate_.bytes_per_second ||
        old_user_rate.bytes_per_second != user_rate_.bytes_per_second;
    const bool user_cap = !user_rate_.unlimited();
    std::uint64_t kernel_channels = 0;
    table_.for_each([&](Allocation& a) {
        // The kernel's budgets are remade at the next sweep at new rates; a narrowed policy
        // takes its peers out at once.
        if (rates_changed) {
            withdraw_kernel(a);
        } else {
            prune_kernel(a);
        }
        kernel_channels += a.kernel.size();
        a.permissions.set_max(settings_.limits.max_permissions_per_allocation);
        a.channels.set_max(settings_.limits.max_channels_per_allocation);
        if (!user_cap) {
            a.user_budget.reset();
        } else if (!a.user_budget) {
            // A full bucket whatever the time point: the first consume() refills from here.
            a.user_budget = users_->attach(a.username, TimePoint{}, user_rate_);
        }
    });
    counters_.kernel_channels.set(kernel_channels);
}

void AllocationManager::apply_rates() noexcept {
    allocation_rate_ = bucket_rate(settings_.limits.allocation_bandwidth);
    user_rate_ = bucket_rate(settings_.limits.user_bandwidth);
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
    std::optional<Alternate> alternate;
    if (request.unknown_comprehension_required({}) > 0) {
        response = r.unknown_attributes();
    } else if (method == Method::allocate && fleet_ != nullptr &&
               (alternate =
                    fleet_->redirect(tuple.client.unmapped().family, tuple.transport, draining_))) {
        response = r.try_alternate(*alternate);  // RFC 8489 §10, RFC 8656 §7.2
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
        // An unspecified internal address (relay.external_address) maps its whole family.
        const bool any = m.internal.family == bound.family && is_unspecified(m.internal);
        if (any || same_ip(m.internal, bound)) return with_port(m.external, bound.port);
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

void AllocationManager::release(Allocation& allocation, EndReason reason) {
    withdraw_kernel(allocation);  // before its relay port can go to another allocation
    if (usage_ != nullptr) usage_->allocation_ended(record_of(allocation, nullptr), reason);
    for (std::size_t i = 0; i < allocation.relays.size() && i < allocation.relay_ids.size(); ++i) {
        if (allocation.relay_ids[i] < by_relay_.size())
            by_relay_[allocation.relay_ids[i]] = nullptr;
        egress_.close_relay(allocation.relay_ids[i]);
        ports_.release(allocation.relays[i].family, allocation.relays[i].port);
    }
    if (quota_ != nullptr) quota_->release(allocation.username);
    if (fleet_ != nullptr) fleet_->ended(allocation.id);
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

bool AllocationManager::is_own_relayed_address(const TransportAddress& source) const {
    if (!peers_->is_own(source)) return false;
    const TransportAddress plain = source.unmapped();
    return ports_.in_use(plain.family, plain.port);
}

void AllocationManager::on_client_closed(const FiveTuple& tuple) {
    if (auto removed = table_.remove(tuple)) release(*removed, EndReason::closed);
}

EndReason AllocationManager::lapsed_reason(const Allocation& a) noexcept {
    return a.credential_capped ? EndReason::credential_expired : EndReason::expired;
}

AllocationRecord AllocationManager::record_of(const Allocation& a, const TimePoint* now) const {
    AllocationRecord r;
    r.id = a.id;
    r.username = a.username;
    r.tuple = a.tuple;
    std::vector<TransportAddress> advertised_relays;
    for (const auto& relay : a.relays) advertised_relays.push_back(advertised(relay));
    r.relays = advertised_relays;
    r.started = a.started;
    r.expires = a.expires;
    r.usage = a.usage;
    // A live list counts what holds now; a record what the allocation held at most.
    r.permissions = now != nullptr ? a.permissions.count() : a.usage.most_permissions;
    r.channels = now != nullptr ? a.channels.live_count(*now) : a.usage.most_channels;
    return r;
}

std::vector<AllocationRecord> AllocationManager::records(TimePoint now) {
    std::vector<AllocationRecord> out;
    out.reserve(table_.size());
    table_.for_each([&](Allocation& a) {
        if (!a.live(now)) return;
        read_kernel_counts(a);
        out.push_back(record_of(a, &now));
    });
    return out;
}

bool AllocationManager::end_allocation(std::uint64_t id, EndReason reason) {
    const Allocation* found = nullptr;
    table_.for_each([&](const Allocation& a) {
        if (a.id == id) found = &a;
    });
    if (found == nullptr) return false;
    auto removed = table_.remove(found->tuple);
    if (!removed) return false;
    release(*removed, reason);
    return true;
}

std::size_t AllocationManager::end_allocations_of(
    const std::function<bool(std::string_view username)>& belongs, EndReason reason) {
    std::vector<FiveTuple> tuples;
    table_.for_each([&](const Allocation& a) {
        if (belongs(a.username)) tuples.push_back(a.tuple);
    });
    for (const auto& t : tuples) {
        if (auto removed = table_.remove(t)) release(*removed, reason);
    }
    return tuples.size();
}

void AllocationManager::expire(TimePoint now) {
    for (auto& lapsed : table_.expire(now)) release(lapsed, lapsed_reason(lapsed));
    std::uint64_t permissions = 0;
    std::uint64_t channels = 0;
    std::uint64_t kernel_channels = 0;
    table_.for_each([&](Allocation& a) {
        a.permissions.expire(now);
        a.channels.expire(now);
        permissions += a.permissions.count();
        channels += a.channels.live_count(now);
        sync_kernel(a, now);
        kernel_channels += a.kernel.size();
    });
    counters_.permissions_active.set(permissions);
    counters_.channels_active.set(channels);
    counters_.kernel_channels.set(kernel_channels);
    ports_.expire(now);
}

void AllocationManager::clear() {
    // A drain's grace period ran out, or ternd stopped at once.
    const EndReason reason = draining_ ? EndReason::drained : EndReason::shutdown;
    for (auto& ended : table_.expire(TimePoint::max())) release(ended, reason);
}

}  // namespace tern::allocation
