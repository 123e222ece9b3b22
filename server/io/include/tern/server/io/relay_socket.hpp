// The UDP socket behind one relayed transport address: a bare descriptor, because the worker's
// readiness loop (UdpReadiness) waits on it and the relay directions (ClientToPeer,
// PeerToClient) read and write it in batches. An idle allocation pays for four bytes here.
#pragma once

#include <cstdint>
#include <span>
#include <system_error>

#include "tern/protocol/transport_address.hpp"

namespace tern::server {

class RelaySocket {
public:
    RelaySocket() noexcept = default;
    ~RelaySocket() { close(); }
    RelaySocket(RelaySocket&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
    RelaySocket& operator=(RelaySocket&& other) noexcept {
        if (this != &other) {
            close();
            fd_ = other.fd_;
            other.fd_ = -1;
        }
        return *this;
    }
    RelaySocket(const RelaySocket&) = delete;
    RelaySocket& operator=(const RelaySocket&) = delete;

    // Binds `address` exactly (the port comes from the relay port pool), non-blocking.
    // dont_fragment sets DF on outgoing IPv4 datagrams (RFC 8656 §14.8, DONT-FRAGMENT).
    std::error_code open(const protocol::TransportAddress& address, bool dont_fragment);
    protocol::TransportAddress local_address() const;  // asks the kernel (tests, logs)
    bool is_open() const noexcept { return fd_ >= 0; }
    int native_handle() const noexcept { return fd_; }
    void close() noexcept;

    // One datagram to a peer at once; false when the kernel refused it (no retry: UDP).
    bool send_to(const protocol::TransportAddress& peer,
                 std::span<const std::uint8_t> payload) const noexcept;

private:
    int fd_ = -1;
};

}  // namespace tern::server
