// The fleet's say on an Allocate: the per-user quota counted across every node (leases in a
// shared store), and where to send a client this node will not serve. The manager asks it after
// its own quotas admitted a request and tells it what became of each admission; implementations
// own the store's latency, so the manager never waits. Absent (null) = a node on its own.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tern/allocation/time_point.hpp"
#include "tern/allocation/transaction_cache.hpp"
#include "tern/protocol/transport.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::allocation {

enum class FleetVerdict : std::uint8_t {
    admit,       // go on: a lease is held for this request (or the store is down and `local`)
    quota_full,  // the user holds limits.max_allocations_per_user leases fleet-wide: 486
    refuse,      // the store is down and fleet.on_store_failure is refuse: 508
    wait,        // asked the store: no answer now; the request is handled again on its answer
};

// RFC 8489 §14.15 and §14.16: the server a 300 (Try Alternate) names.
struct Alternate {
    protocol::TransportAddress address;
    std::string domain;  // ALTERNATE-DOMAIN, for a TLS client; empty = none
};

class FleetAdmission {
public:
    virtual ~FleetAdmission() = default;

    // An Allocate of `username` that this node's quotas admitted. `key` names the request: a
    // retransmission has the same one, and while a `wait` is outstanding it gets `wait` again.
    virtual FleetVerdict admit(const TransactionKey& key, std::string_view username,
                               TimePoint now) = 0;
    // What became of an admission: allocation `id`, or refused after all (no relay port).
    virtual void admitted(const TransactionKey& key, std::uint64_t id) = 0;
    virtual void withdrawn(const TransactionKey& key) = 0;
    // Allocation `id` ended, for whatever reason: its lease goes.
    virtual void ended(std::uint64_t id) = 0;

    // Whether a new Allocate should go elsewhere (this node drains, or holds more than its
    // configured load), and where: nullopt = serve it here (or 508 while draining).
    virtual std::optional<Alternate> redirect(protocol::AddressFamily family,
                                              protocol::Transport transport, bool draining) = 0;
};

}  // namespace tern::allocation
