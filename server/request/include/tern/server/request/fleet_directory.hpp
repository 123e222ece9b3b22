// The fleet's nodes as the last registry read saw them, and the choice of where a redirected
// Allocate goes (RFC 8489 §10). Pure: the store reads the hashes, this judges them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tern/allocation/fleet_admission.hpp"
#include "tern/protocol/transport.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::server {

// One node's registry entry (the hash P"node:"ID).
struct FleetNode {
    std::string id;
    bool draining = false;
    std::uint64_t allocations = 0;
    std::uint64_t redirect_above = 0;                       // 0 = takes any load
    std::vector<protocol::TransportAddress> advertise;      // UDP and TCP
    std::vector<protocol::TransportAddress> advertise_tls;  // TLS
    std::string tls_domain;
    std::int64_t updated_ms = 0;  // the store's clock at the node's last heartbeat

    // Takes new allocations: not draining and under its own redirect threshold.
    bool accepting() const noexcept {
        return !draining && (redirect_above == 0 || allocations < redirect_above);
    }
};

using FieldList = std::vector<std::pair<std::string, std::string>>;
FieldList node_fields(const FleetNode& node);
// nullopt when the id is missing; unreadable addresses are skipped (a newer node's format).
std::optional<FleetNode> node_from_fields(const FieldList& fields);

class FleetDirectory {
public:
    FleetDirectory() = default;
    FleetDirectory(std::vector<FleetNode> nodes, std::string self)
        : nodes_(std::move(nodes)), self_(std::move(self)) {}

    // The least loaded other node that accepts allocations and has an address of `family` for
    // `transport` (TLS uses advertise_tls and names its tls_domain); ties go to the lower id.
    std::optional<allocation::Alternate> pick(protocol::AddressFamily family,
                                              protocol::Transport transport) const;
    std::size_t accepting() const noexcept;
    const std::vector<FleetNode>& nodes() const noexcept { return nodes_; }

private:
    std::vector<FleetNode> nodes_;
    std::string self_;
};

}  // namespace tern::server
