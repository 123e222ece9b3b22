#include "tern/server/io/fleet_gate.hpp"

#include <boost/asio/post.hpp>
#include <ctime>

namespace tern::server {

namespace asio = boost::asio;
using allocation::FleetVerdict;

namespace {

// A request's identity as text: its 5-tuple and transaction ID.
std::string key_text(const allocation::TransactionKey& key) {
    std::string out = key.tuple.client.to_string();
    out += '>';
    out += key.tuple.server.to_string();
    out += static_cast<char>('0' + static_cast<int>(key.tuple.transport));
    out.append(reinterpret_cast<const char*>(key.transaction_id.data()), key.transaction_id.size());
    return out;
}

std::string hex(std::span<const std::uint8_t> bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (const auto b : bytes) {
        out += digits[b >> 4];
        out += digits[b & 0x0f];
    }
    return out;
}

}  // namespace

FleetGate::FleetGate(asio::io_context& io, std::function<void()> wake, FleetStore& store,
                     const config::Config& config, Rerun rerun)
    : io_(io), wake_(std::move(wake)), store_(store), rerun_(std::move(rerun)) {
    configure(config);
}

FleetGate::~FleetGate() {
    *alive_ = false;
    // The leases of allocations still open go with this worker (shutdown).
    for (auto& [id, lease] : leases_) store_.drop_lease(lease.username, lease.member);
}

void FleetGate::configure(const config::Config& config) {
    limit_ = config.limits.max_allocations_per_user;
    wait_ = std::chrono::milliseconds(config.fleet.allocate_wait_ms);
    on_failure_ = config.fleet.on_store_failure;
    redirect_above_ = config.fleet.redirect_above;
}

FleetVerdict FleetGate::without_store(const std::string& key, Lease lease) {
    ++store_.counters().store_down;
    if (on_failure_ == config::StoreFailure::refuse) return FleetVerdict::refuse;
    admitting_[key] = std::move(lease);  // registered with the store when it returns
    return FleetVerdict::admit;
}

FleetVerdict FleetGate::admit(const allocation::TransactionKey& key, std::string_view username,
                              allocation::TimePoint) {
    const std::string k = key_text(key);
    if (auto it = pending_.find(k); it != pending_.end()) {
        if (!it->second.verdict) return FleetVerdict::wait;  // a retransmission meanwhile
        const FleetVerdict verdict = *it->second.verdict;
        if (verdict == FleetVerdict::admit) admitting_[k] = std::move(it->second.lease);
        pending_.erase(it);
        return verdict;
    }
    Lease lease{std::string(username), store_.node_id() + "/" + hex(key.transaction_id)};
    if (!store_.up() || pending_.size() >= max_pending) return without_store(k, std::move(lease));

    Pending& p = pending_[k];
    p.lease = lease;
    p.timer = std::make_unique<asio::steady_timer>(io_, wait_);
    p.timer->async_wait([this, alive = alive_, k, lease](const boost::system::error_code& ec) {
        if (ec || !*alive) return;
        answered(k, lease, FleetStore::LeaseAnswer::failed, /*timed_out=*/true);
    });
    store_.request_lease(lease.username, lease.member, limit_,
                         [this, alive = alive_, k, lease](FleetStore::LeaseAnswer answer) {
                             asio::post(io_, [this, alive, k, lease, answer] {
                                 if (*alive) answered(k, lease, answer, false);
                             });
                             wake_();
                         });
    last_new_ = k;
    return FleetVerdict::wait;
}

void FleetGate::hold(std::span<const std::uint8_t> packet, const PacketContext& context) {
    // Only the request admit() just started asking for: retransmissions are already held.
    if (last_new_.empty()) return;
    const auto it = pending_.find(last_new_);
    last_new_.clear();
    if (it == pending_.end() || !it->second.packet.empty()) return;
    it->second.packet.assign(packet.begin(), packet.end());
    it->second.context = context;
}

void FleetGate::answered(const std::string& key, const Lease& lease, FleetStore::LeaseAnswer answer,
                         bool timed_out) {
    const auto it = pending_.find(key);
    if (it == pending_.end() || it->second.verdict) {
        // Too late: the request was decided without this answer. A lease granted meanwhile
        // is given back unless that decision kept the same one.
        const bool kept = admitting_.contains(key) || [&] {
            for (const auto& [id, held] : leases_) {
                if (held.member == lease.member) return true;
            }
            return false;
        }();
        if (answer == FleetStore::LeaseAnswer::granted && !kept) {
            store_.drop_lease(lease.username, lease.member);
        }
        return;
    }
    Pending& p = it->second;
    if (timed_out) {
        ++store_.counters().timeout;
        store_.note_slow();
        p.verdict = on_failure_ == config::StoreFailure::refuse ? FleetVerdict::refuse
                                                                : FleetVerdict::admit;
    } else if (answer == FleetStore::LeaseAnswer::granted) {
        ++store_.counters().granted;
        p.verdict = FleetVerdict::admit;
        p.lease.registered = true;
    } else if (answer == FleetStore::LeaseAnswer::quota_full) {
        ++store_.counters().quota_full;
        p.verdict = FleetVerdict::quota_full;
    } else {
        ++store_.counters().store_down;
        p.verdict = on_failure_ == config::StoreFailure::refuse ? FleetVerdict::refuse
                                                                : FleetVerdict::admit;
    }
    if (p.timer) p.timer->cancel();
    if (!p.packet.empty()) {
        // The dispatcher's admit() takes the verdict (and erases the entry); its reply is sent
        // by `rerun_`.
        const std::vector<std::uint8_t> packet = std::move(p.packet);
        PacketContext context = p.context;
        context.now = std::chrono::steady_clock::now();
        context.unix_now = std::time(nullptr);
        rerun_(packet, context);
    }
    // Not taken (no held bytes, or the request failed earlier this time): nothing to keep.
    if (const auto left = pending_.find(key); left != pending_.end()) {
        if (answer == FleetStore::LeaseAnswer::granted && !timed_out) {
            store_.drop_lease(lease.username, lease.member);
        }
        pending_.erase(left);
    }
}

void FleetGate::admitted(const allocation::TransactionKey& key, std::uint64_t id) {
    const auto it = admitting_.find(key_text(key));
    if (it == admitting_.end()) return;
    store_.keep_lease(it->second.username, it->second.member, it->second.registered);
    leases_[id] = std::move(it->second);
    admitting_.erase(it);
}

void FleetGate::withdrawn(const allocation::TransactionKey& key) {
    const auto it = admitting_.find(key_text(key));
    if (it == admitting_.end()) return;
    store_.drop_lease(it->second.username, it->second.member);
    admitting_.erase(it);
}

void FleetGate::ended(std::uint64_t id) {
    const auto it = leases_.find(id);
    if (it == leases_.end()) return;
    store_.drop_lease(it->second.username, it->second.member);
    leases_.erase(it);
}

std::optional<allocation::Alternate> FleetGate::redirect(protocol::AddressFamily family,
                                                         protocol::Transport transport,
                                                         bool draining) {
    const bool loaded = redirect_above_ != 0 && store_.own_allocations() >= redirect_above_;
    if (!draining && !loaded) return std::nullopt;
    const auto directory = store_.directory();
    if (!directory) return std::nullopt;
    auto alternate = directory->pick(family, transport);
    if (alternate) ++store_.counters().redirects;
    return alternate;
}

}  // namespace tern::server
