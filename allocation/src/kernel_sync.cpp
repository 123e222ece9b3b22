// The kernel fast path's entries (relay.kernel_fast_path) as a cache of this manager's rules: a
// bound channel of a UDP client is relayed by the kernel while its binding and its peer's
// permission live (RFC 8656 §9, §12) and the peer policy permits the peer; the allocation's and
// its user's bandwidth caps go along as kernel budgets, which the program enforces itself.
// expire() reconciles every allocation once a second, ChannelBind installs at once, and an
// ending allocation withdraws before its relay port can go to another.
#include <algorithm>
#include <string>

#include "tern/allocation/allocation_manager.hpp"

namespace tern::allocation {

using protocol::TransportAddress;

namespace {

std::uint64_t since(std::uint64_t now, std::uint64_t then) noexcept {
    return now >= then ? now - then : 0;
}

KernelRouteCounts since(const KernelRouteCounts& now, const KernelRouteCounts& then) noexcept {
    return {since(now.packets_to_peer, then.packets_to_peer),
            since(now.bytes_to_peer, then.bytes_to_peer),
            since(now.packets_to_client, then.packets_to_client),
            since(now.bytes_to_client, then.bytes_to_client)};
}

bool unspecified(const TransportAddress& a) noexcept {
    return std::all_of(a.bytes.begin(), a.bytes.end(), [](std::uint8_t b) { return b == 0; });
}

}  // namespace

std::optional<KernelRoute> AllocationManager::kernel_route(const Allocation& a,
                                                           std::uint16_t channel,
                                                           const TransportAddress& peer,
                                                           TimePoint now) const noexcept {
    if (a.tuple.transport != protocol::Transport::udp) return std::nullopt;
    // A reload may have narrowed the policy since ChannelBind checked it. A listener of ours is
    // never a peer (route_peer_datagram): its answers must not reach the client as data.
    if (!a.permissions.allowed(peer, now) || !peers_->permits(peer) ||
        peers_->is_own_listener(peer)) {
        return std::nullopt;
    }
    const TransportAddress client = a.tuple.client.unmapped();
    const TransportAddress server = a.tuple.server.unmapped();
    if (client.family != peer.family || server.family != peer.family) return std::nullopt;
    const TransportAddress* relay = relay_of(a, peer.family);
    // A relay socket on a wildcard address has no source address the program could write.
    if (relay == nullptr || unspecified(*relay)) return std::nullopt;
    return KernelRoute{
        client, server, channel, *relay, peer, a.kernel_budgets[0], a.kernel_budgets[1]};
}

void AllocationManager::count_kernel(Allocation& a, const KernelRouteCounts& relayed) noexcept {
    a.usage.packets_to_peer += relayed.packets_to_peer;
    a.usage.bytes_to_peer += relayed.bytes_to_peer;
    a.usage.packets_to_client += relayed.packets_to_client;
    a.usage.bytes_to_client += relayed.bytes_to_client;
    // The kernel's bytes come out of the user-space buckets too, so that what the program sends
    // and what ternd sends (Send indications, padded ChannelData) share one cap.
    const TimePoint now = last_sweep_;
    a.to_peer_budget.drain(relayed.bytes_to_peer, now, allocation_rate_);
    a.to_client_budget.drain(relayed.bytes_to_client, now, allocation_rate_);
    if (a.user_budget) {
        a.user_budget->to_peer.drain(relayed.bytes_to_peer, now, user_rate_);
        a.user_budget->to_client.drain(relayed.bytes_to_client, now, user_rate_);
    }
}

void AllocationManager::prune_kernel(Allocation& a) noexcept {
    if (kernel_ == nullptr) return;
    std::erase_if(a.kernel, [&](const KernelChannel& k) {
        if (peers_->permits(k.route.peer) && !peers_->is_own_listener(k.route.peer)) return false;
        count_kernel(a, since(kernel_->withdraw(k.route), k.seen));
        return true;
    });
    if (a.kernel.empty()) close_kernel_budgets(a);
}

void AllocationManager::read_kernel_counts(Allocation& a) noexcept {
    if (kernel_ == nullptr) return;
    for (auto& k : a.kernel) {
        const KernelRouteCounts total = kernel_->counts(k.route);
        count_kernel(a, since(total, k.seen));
        k.seen = total;
    }
}

bool AllocationManager::open_kernel_budgets(Allocation& a) noexcept {
    if (!allocation_rate_.unlimited()) {
        a.kernel_budgets[0] = kernel_->open_budget("a:" + std::to_string(a.id), allocation_rate_);
        if (a.kernel_budgets[0] == no_kernel_budget) return false;
    }
    if (!user_rate_.unlimited() && a.user_budget) {
        a.kernel_budgets[1] = kernel_->open_budget("u:" + a.username, user_rate_);
        if (a.kernel_budgets[1] == no_kernel_budget) {
            close_kernel_budgets(a);
            return false;
        }
    }
    return true;
}

void AllocationManager::close_kernel_budgets(Allocation& a) noexcept {
    for (auto& b : a.kernel_budgets) {
        if (b != no_kernel_budget) kernel_->close_budget(b);
        b = no_kernel_budget;
    }
}

void AllocationManager::sync_kernel(Allocation& a, TimePoint now) noexcept {
    if (kernel_ == nullptr) return;
    last_sweep_ = std::max(last_sweep_, now);
    read_kernel_counts(a);
    std::erase_if(a.kernel, [&](const KernelChannel& k) {
        const auto want = kernel_route(a, k.route.channel, k.route.peer, now);
        const auto bound = a.channels.peer_for(k.route.channel, now);
        if (want && *want == k.route && bound && *bound == k.route.peer) return false;
        count_kernel(a, since(kernel_->withdraw(k.route), k.seen));
        return true;
    });
    if (a.kernel.empty()) close_kernel_budgets(a);
    a.channels.for_each_live(now, [&](std::uint16_t channel, const TransportAddress& peer) {
        const bool held =
            std::any_of(a.kernel.begin(), a.kernel.end(),
                        [&](const KernelChannel& k) { return k.route.channel == channel; });
        auto route = held ? std::nullopt : kernel_route(a, channel, peer, now);
        if (!route || (a.kernel.empty() && !open_kernel_budgets(a))) return;
        route->allocation_budget = a.kernel_budgets[0];  // opened just now for the first route
        route->user_budget = a.kernel_budgets[1];
        if (kernel_->install(*route)) {
            a.kernel.push_back(KernelChannel{*route, {}});
        } else if (a.kernel.empty()) {
            close_kernel_budgets(a);
        }
    });
}

void AllocationManager::withdraw_kernel(Allocation& a) noexcept {
    if (kernel_ == nullptr) return;
    for (const auto& k : a.kernel) count_kernel(a, since(kernel_->withdraw(k.route), k.seen));
    a.kernel.clear();
    close_kernel_budgets(a);
}

}  // namespace tern::allocation
