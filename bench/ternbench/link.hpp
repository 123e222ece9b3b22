// A benchmark client's connection to a TURN server over UDP, TCP or TLS, from its own 127.x.y.z
// source address. Stream links cut frames with tern's StreamFramer; nothing here blocks.
#pragma once

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "tern/protocol/stream_framer.hpp"
#include "tern/protocol/transport.hpp"
#include "tern/protocol/transport_address.hpp"

namespace ternbench {

using tern::protocol::Transport;

// An IPv4 TransportAddress as the socket API wants it (ternbench speaks IPv4 only).
sockaddr_in to_sockaddr_v4(const tern::protocol::TransportAddress& address);

// The i-th client source address: 127.10.0.1, 127.10.0.2, ... (never a server's address).
sockaddr_in client_source(std::size_t i);

class Link {
public:
    // Connects (stream: a blocking connect, then a TLS handshake without verification, as the
    // certificate is a throwaway, sending `sni` as the server name unless it is empty). Throws
    // std::runtime_error naming the failure.
    Link(Transport transport, const sockaddr_in& server, const sockaddr_in& source, SSL_CTX* tls,
         const std::string& sni = {});
    ~Link();
    Link(const Link&) = delete;
    Link& operator=(const Link&) = delete;

    int fd() const noexcept { return fd_; }
    Transport transport() const noexcept { return transport_; }

    // Sends whole messages (a stream write retries until every byte is queued). False on a
    // broken connection; a refused UDP datagram counts as lost, not broken.
    bool send(std::span<const std::uint8_t> bytes) noexcept;

    // Reads what is there and calls on_frame(span) per datagram or per complete stream frame.
    // Returns false when the connection is closed or broken.
    template <typename F>
    bool receive(F&& on_frame);

private:
    enum class ReadResult { drained, buffer_full, closed };
    ReadResult read_stream();

    Transport transport_;
    int fd_ = -1;
    SSL* ssl_ = nullptr;
    std::unique_ptr<tern::protocol::StreamFramer> framer_;
    std::unique_ptr<std::uint8_t[]> datagram_;
};

inline constexpr std::size_t max_datagram = 65536;

template <typename F>
bool Link::receive(F&& on_frame) {
    if (transport_ == Transport::udp) {
        for (int i = 0; i < 64; ++i) {
            const ssize_t n = ::recv(fd_, datagram_.get(), max_datagram, MSG_DONTWAIT);
            if (n < 0) return true;  // EAGAIN, or an ICMP error reported on a connected socket
            on_frame(std::span<const std::uint8_t>(datagram_.get(), static_cast<std::size_t>(n)));
        }
        return true;
    }
    // TLS may hold decrypted bytes the socket no longer signals, so read until it says so.
    for (;;) {
        const ReadResult r = read_stream();
        std::span<const std::uint8_t> frame;
        tern::protocol::FrameKind kind{};
        for (;;) {
            const auto status = framer_->next(frame, kind);
            if (status == tern::protocol::FrameStatus::complete) {
                on_frame(frame);
                continue;
            }
            if (status != tern::protocol::FrameStatus::need_more) return false;
            break;
        }
        if (r != ReadResult::buffer_full) return r == ReadResult::drained;
    }
}

// A client TLS context that does not verify (benchmark servers use throwaway certificates).
SSL_CTX* make_client_tls();

// One set-up exchange with the bare forwarder (forwarder.hpp's fwd_allocate or fwd_bind) over a
// client's own connected UDP Link: sends `type` with `address`, waits for the answer, retries a
// few times. Returns the address in the answer; throws std::runtime_error when none comes.
tern::protocol::TransportAddress forwarder_exchange(
    Link& link, std::uint8_t type, const tern::protocol::TransportAddress& address);

}  // namespace ternbench
