// What the TURN state machine asks of a kernel fast path (relay.kernel_fast_path): relay one
// bound channel both ways without user space, and say what it relayed. The server implements
// it over the XDP program's maps (server/io/kernel_fast_path.hpp); tests record calls.
#pragma once

#include <cstdint>
#include <string_view>

#include "tern/allocation/token_bucket.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::allocation {

// A pair of token buckets in the kernel (to the peer, to the client) for limits.*_bandwidth,
// which the routes that name it draw from; the program refills them from its own clock.
using KernelBudget = std::uint32_t;
inline constexpr KernelBudget no_kernel_budget = 0xFFFFFFFF;

// One bound channel of a UDP client (RFC 8656 §12): ChannelData from `client` to `server` on
// `channel` goes out of `relay` to `peer`, and datagrams from `peer` to `relay` come back as
// ChannelData. Addresses are plain (no IPv4-mapped IPv6), all of one family.
struct KernelRoute {
    protocol::TransportAddress client;
    protocol::TransportAddress server;  // the listener address the client reached
    std::uint16_t channel = 0;
    protocol::TransportAddress relay;  // the relayed address as bound (a concrete IP)
    protocol::TransportAddress peer;
    KernelBudget allocation_budget = no_kernel_budget;  // limits.allocation_bandwidth
    KernelBudget user_budget = no_kernel_budget;        // limits.user_bandwidth

    friend bool operator==(const KernelRoute&, const KernelRoute&) noexcept = default;
};

// What the kernel relayed for one route since it was installed; bytes are payload bytes.
struct KernelRouteCounts {
    std::uint64_t packets_to_peer = 0;
    std::uint64_t bytes_to_peer = 0;
    std::uint64_t packets_to_client = 0;
    std::uint64_t bytes_to_client = 0;

    friend bool operator==(const KernelRouteCounts&, const KernelRouteCounts&) noexcept = default;
};

class KernelRoutes {
public:
    // False when the kernel cannot take it now (its map is full): user space relays it.
    virtual bool install(const KernelRoute& route) noexcept = 0;
    // Removes the route; returns its last counts. Relaying stops when this returns.
    virtual KernelRouteCounts withdraw(const KernelRoute& route) noexcept = 0;
    // Counts so far of an installed route.
    virtual KernelRouteCounts counts(const KernelRoute& route) noexcept = 0;
    // The budget called `name` ("a:<allocation id>", "u:<user>": the same name, the same
    // buckets, whichever worker asks), full when new, at `rate` from now on; every open needs a
    // close. no_kernel_budget when there is no room: the caller leaves the route to user space.
    virtual KernelBudget open_budget(std::string_view name, const BucketRate& rate) noexcept = 0;
    virtual void close_budget(KernelBudget budget) noexcept = 0;

protected:
    ~KernelRoutes() = default;
};

}  // namespace tern::allocation
