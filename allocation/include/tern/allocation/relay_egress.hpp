// What the TURN state machine asks of the I/O layer: relay sockets opened and closed, datagrams
// sent to peers and messages sent to clients. The server implements it; tests record calls.
#pragma once

#include <cstdint>
#include <span>

#include "tern/allocation/client_route.hpp"
#include "tern/allocation/five_tuple.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::allocation {

// Names one relay socket of the I/O layer; chosen by open_relay() as a small index (reused
// after close_relay), because the allocation layer keeps a vector indexed by it.
using RelayId = std::uint32_t;

enum class OpenRelayStatus : std::uint8_t {
    opened,
    address_in_use,  // the port is taken by someone else: try another
    failed,          // anything else (fd limit, no such address): 508
};

struct OpenRelayResult {
    OpenRelayStatus status = OpenRelayStatus::failed;
    RelayId id = 0;
};

class RelayEgress {
public:
    // Binds a UDP socket to exactly `address`; the I/O layer hands its datagrams to
    // AllocationManager::route_peer_datagram under the returned id. dont_fragment: set DF.
    virtual OpenRelayResult open_relay(const protocol::TransportAddress& address,
                                       bool dont_fragment) = 0;
    virtual void close_relay(RelayId id) noexcept = 0;
    // Both are on the packet path of the on_* helpers (Send indications, TCP/TLS clients): no
    // allocation, no logging; false = dropped.
    virtual bool send_to_peer(RelayId id, const protocol::TransportAddress& peer,
                              std::span<const std::uint8_t> payload) noexcept = 0;
    virtual bool send_to_client(const FiveTuple& tuple, ClientRoute client,
                                std::span<const std::uint8_t> message) noexcept = 0;

protected:
    ~RelayEgress() = default;
};

}  // namespace tern::allocation
