// The relay sockets of one worker as the state machine asks for them (allocation::RelayEgress):
// opened on a relayed address and registered once with the worker's readiness loop, closed
// when the allocation ends. Sends through this interface are the slow paths (TCP/TLS clients,
// Send indications); UDP ChannelData leaves through ClientToPeer's batches.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "tern/allocation/relay_egress.hpp"
#include "tern/server/io/relay_socket.hpp"

namespace tern::server {

class ClientToPeer;
class PeerToClient;
class UdpReadiness;

class RelaySockets final : public allocation::RelayEgress {
public:
    // References only; none is used before the worker has built them all.
    RelaySockets(UdpReadiness& readiness, ClientToPeer& to_peers, PeerToClient& to_clients);
    ~RelaySockets();
    RelaySockets(const RelaySockets&) = delete;
    RelaySockets& operator=(const RelaySockets&) = delete;

    allocation::OpenRelayResult open_relay(const protocol::TransportAddress& address,
                                           bool dont_fragment) override;
    void close_relay(allocation::RelayId id) noexcept override;
    bool send_to_peer(allocation::RelayId id, const protocol::TransportAddress& peer,
                      std::span<const std::uint8_t> payload) noexcept override;
    bool send_to_client(const allocation::FiveTuple& tuple, allocation::ClientRoute client,
                        std::span<const std::uint8_t> message) noexcept override;

    // The socket behind `id`, or -1 when it is closed.
    int descriptor(allocation::RelayId id) const noexcept {
        return id < sockets_.size() ? sockets_[id].native_handle() : -1;
    }
    std::size_t open_count() const noexcept { return sockets_.size() - free_.size(); }

private:
    UdpReadiness& readiness_;
    ClientToPeer& to_peers_;
    PeerToClient& to_clients_;
    std::vector<RelaySocket> sockets_;  // indexed by RelayId
    std::vector<allocation::RelayId> free_;
    // Relay sockets that failed to open (EMFILE, say): logged at most once per interval.
    std::chrono::steady_clock::time_point failures_logged_at_{};
    std::uint64_t failures_unlogged_ = 0;
};

}  // namespace tern::server
