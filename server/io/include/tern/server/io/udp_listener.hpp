// A UDP listening socket owned by one worker: SO_REUSEPORT lets every worker bind the same
// address. It holds the buffers and the kernel calls (recvmmsg in, sendmmsg out); ClientToPeer
// decides what each datagram is, and PeerToClient queues relayed data on it.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <span>
#include <system_error>
#include <vector>

#include "tern/protocol/transport_address.hpp"

namespace tern::server {

class UdpListener {
public:
    static constexpr std::size_t batch_size = 32;
    static constexpr std::size_t receive_slot_size = 9216;  // jumbo frames; larger are dropped
    static constexpr std::size_t reply_slot_size = 1024;    // replies are small by design

    explicit UdpListener(std::uint32_t index = 0);
    ~UdpListener();
    UdpListener(const UdpListener&) = delete;
    UdpListener& operator=(const UdpListener&) = delete;

    // Opens and binds with SO_REUSEPORT (and IPV6_V6ONLY for IPv6), non-blocking; a wildcard
    // address also turns on packet info so replies leave from the address each request was
    // sent to.
    std::error_code open(const protocol::TransportAddress& address);
    protocol::TransportAddress local_address() const;
    int native_handle() const noexcept { return fd_; }
    std::uint32_t index() const noexcept { return index_; }  // the worker's name for it
    void close() noexcept;

    // One recvmmsg into the listener's slots: how many datagrams arrived (0 when none).
    std::size_t receive() noexcept;
    struct Datagram {
        std::span<const std::uint8_t> bytes;  // valid until the next receive()
        protocol::TransportAddress source;
        protocol::TransportAddress local;  // the address the client reached
        bool truncated = false;            // larger than a slot: not a valid request
    };
    Datagram datagram(std::size_t i) const noexcept;
    // Where the answer to datagram i is written; answer(i, bytes) queues it, and
    // send_answers() sends every queued answer in one sendmmsg, each from the address its
    // request reached.
    std::span<std::uint8_t> answer_slot() noexcept;
    void answer(std::size_t i, std::span<const std::uint8_t> bytes) noexcept;
    void send_answers() noexcept;

    // One datagram to a client at once, leaving from `local` (the address the client reached).
    // On the relay path: no allocation, no logging; false when the kernel refused it.
    bool send_to(const protocol::TransportAddress& client, const protocol::TransportAddress& local,
                 std::span<const std::uint8_t> bytes) noexcept;

    // Relayed data: the datagram waits until flush(), so what leaves one pass goes out in one
    // sendmmsg (runs of equal-size datagrams to one client as one UDP GSO send). `bytes` is
    // not copied and must stay valid until flush(); `payload_size` is what the counters count
    // for it. A full queue flushes first, adding what it sent to `flushed`.
    struct Flushed {
        std::uint64_t packets = 0;
        std::uint64_t payload_bytes = 0;
        std::uint64_t refused = 0;  // datagrams the kernel did not take (lost, as UDP may)
        Flushed& operator+=(const Flushed& o) noexcept {
            packets += o.packets;
            payload_bytes += o.payload_bytes;
            refused += o.refused;
            return *this;
        }
    };
    bool queue_to(const protocol::TransportAddress& client, const protocol::TransportAddress& local,
                  std::span<const std::uint8_t> bytes, std::size_t payload_size,
                  Flushed& flushed) noexcept;
    Flushed flush() noexcept;
    bool has_queued() const noexcept { return queued_ > 0; }

private:
    int fd_ = -1;
    std::uint32_t index_;
    protocol::TransportAddress bound_;
    bool wildcard_ = false;
    // Buffers are allocated once per listener; nothing is allocated per datagram.
    std::vector<std::uint8_t> receive_buffer_;
    std::vector<std::uint8_t> answer_buffer_;
    std::array<mmsghdr, batch_size> receive_headers_{};
    std::array<iovec, batch_size> receive_iov_{};
    std::array<sockaddr_storage, batch_size> sources_{};
    std::array<mmsghdr, batch_size> answer_headers_{};
    std::array<iovec, batch_size> answer_iov_{};
    std::size_t answers_ = 0;
    // Packet-info control messages: the destination each datagram was sent to comes in, and the
    // reply leaves from that same address, which a wildcard-bound socket would not guarantee.
    static constexpr std::size_t control_size = 64;
    struct alignas(cmsghdr) Control {
        std::array<std::uint8_t, control_size> bytes;
    };
    std::array<Control, batch_size> receive_control_{};
    std::array<Control, batch_size> answer_control_{};

    // The outgoing queue of relayed datagrams (queue_to / flush).
    std::size_t queued_ = 0;
    std::array<sockaddr_storage, batch_size> queue_to_{};
    std::array<socklen_t, batch_size> queue_to_len_{};
    std::array<protocol::TransportAddress, batch_size> queue_local_{};
    std::array<iovec, batch_size> queue_iov_{};
    std::array<std::size_t, batch_size> queue_payload_{};
    std::array<mmsghdr, batch_size> queue_headers_{};
    std::array<Control, batch_size> queue_control_{};
    bool gso_ = true;  // off after the kernel refuses a segmented send once (no UDP GSO here)
};

}  // namespace tern::server
