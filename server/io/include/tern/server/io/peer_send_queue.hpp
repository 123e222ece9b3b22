// Datagrams to peers that leave together: what one batch of client datagrams relays goes out
// as one sendmmsg per relay socket, and a run of equal-size datagrams from one relay socket to
// one peer as one UDP GSO send. Each allocation keeps its own socket and relayed address
// (RFC 8656); only the system calls are shared.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <span>

#include "tern/protocol/transport_address.hpp"

namespace tern::server {

class PeerSendQueue {
public:
    static constexpr std::size_t capacity = 64;

    struct Sent {
        std::uint64_t packets = 0;
        std::uint64_t bytes = 0;
        std::uint64_t refused = 0;  // datagrams the kernel did not take
    };

    PeerSendQueue();
    // `payload` is not copied and must stay valid until flush(). A full queue flushes first;
    // what that flush sent is added to `sent`. A datagram the caller `counted` already as sent
    // is left out of Sent's packets and bytes (a refusal is still reported).
    void push(int fd, const protocol::TransportAddress& peer, std::span<const std::uint8_t> payload,
              Sent& sent, bool counted = false) noexcept;
    Sent flush() noexcept;
    bool empty() const noexcept { return queued_ == 0; }

private:
    struct Entry {
        int fd;
        socklen_t to_len;
        sockaddr_storage to;
        iovec payload;
        bool counted;
    };
    std::array<Entry, capacity> entries_{};
    std::size_t queued_ = 0;
    // One relay socket's share, in queue order, as the kernel takes it.
    std::array<iovec, capacity> iov_{};
    std::array<std::size_t, capacity> entry_of_{};  // the entry behind each iov_
    std::array<bool, capacity> counted_{};          // parallel to iov_
    std::array<mmsghdr, capacity> headers_{};
    struct alignas(cmsghdr) Control {
        std::array<std::uint8_t, 32> bytes;
    };
    std::array<Control, capacity> control_{};
    std::array<bool, capacity> taken_{};
    bool gso_ = true;  // off after the kernel refuses a segmented send once
};

}  // namespace tern::server
