// A plain UDP socket on 127.0.0.1 for server tests: the client or peer side of what a listener
// or relay socket sends and receives.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <span>
#include <vector>

#include "tern/server/request/socket_address.hpp"

namespace tern::server {

class LoopbackUdp {
public:
    using Bytes = std::vector<std::uint8_t>;

    LoopbackUdp() {
        fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    }
    ~LoopbackUdp() { ::close(fd_); }
    LoopbackUdp(const LoopbackUdp&) = delete;
    LoopbackUdp& operator=(const LoopbackUdp&) = delete;

    protocol::TransportAddress address() const {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
        return from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
    }

    void send(const protocol::TransportAddress& to, std::span<const std::uint8_t> bytes) const {
        sockaddr_storage ss{};
        const socklen_t len = to_sockaddr(to, ss);
        ::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&ss), len);
    }

    // One datagram within `timeout_ms`, with its sender; empty when none came.
    Bytes receive(protocol::TransportAddress* from = nullptr, int timeout_ms = 1000) const {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, timeout_ms) != 1) return {};
        Bytes b(65536);
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        const ssize_t n =
            ::recvfrom(fd_, b.data(), b.size(), 0, reinterpret_cast<sockaddr*>(&ss), &len);
        b.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
        if (from != nullptr) *from = from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
        return b;
    }

    // Every datagram that arrives within 200 ms of the previous one.
    std::vector<Bytes> drain() const {
        std::vector<Bytes> got;
        for (Bytes b = receive(nullptr, 200); !b.empty(); b = receive(nullptr, 200)) {
            got.push_back(std::move(b));
        }
        return got;
    }

private:
    int fd_ = -1;
};

}  // namespace tern::server
