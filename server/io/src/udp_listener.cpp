#include "tern/server/io/udp_listener.hpp"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "tern/server/io/datagram_batch.hpp"
#include "tern/server/request/socket_address.hpp"

namespace tern::server {

namespace {

// The destination address of a received datagram and the interface it came in on, from its
// IP_PKTINFO / IPV6_PKTINFO control message; false when there is none.
bool read_packet_info(msghdr& h, protocol::TransportAddress& local, int& ifindex) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            in_pktinfo info{};
            std::memcpy(&info, CMSG_DATA(c), sizeof info);
            std::array<std::uint8_t, 4> b{};
            std::memcpy(b.data(), &info.ipi_addr, 4);
            local = protocol::TransportAddress::v4(b, local.port);
            ifindex = info.ipi_ifindex;
            return true;
        }
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            in6_pktinfo info{};
            std::memcpy(&info, CMSG_DATA(c), sizeof info);
            std::array<std::uint8_t, 16> b{};
            std::memcpy(b.data(), &info.ipi6_addr, 16);
            local = protocol::TransportAddress::v6(b, local.port);
            ifindex = static_cast<int>(info.ipi6_ifindex);
            return true;
        }
    }
    return false;
}

// Asks the kernel to send from `local` (same interface as the request), so the client sees its
// answer come from the address it asked.
socklen_t write_packet_info(std::uint8_t* buffer, std::size_t size,
                            const protocol::TransportAddress& local, int ifindex) {
    msghdr h{};
    h.msg_control = buffer;
    h.msg_controllen = size;
    cmsghdr* c = CMSG_FIRSTHDR(&h);
    if (local.family == protocol::AddressFamily::ipv4) {
        in_pktinfo info{};
        std::memcpy(&info.ipi_spec_dst, local.bytes.data(), 4);
        info.ipi_ifindex = ifindex;
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof info);
        std::memcpy(CMSG_DATA(c), &info, sizeof info);
        return CMSG_SPACE(sizeof info);
    }
    in6_pktinfo info{};
    std::memcpy(&info.ipi6_addr, local.bytes.data(), 16);
    info.ipi6_ifindex = static_cast<unsigned>(ifindex);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof info);
    std::memcpy(CMSG_DATA(c), &info, sizeof info);
    return CMSG_SPACE(sizeof info);
}

// Appends a UDP_SEGMENT control message (RFC-less Linux UDP GSO: the kernel cuts the payload
// into datagrams of `segment` bytes) after the packet-info message, if `used` says there is one.
socklen_t write_segment_size(std::uint8_t* buffer, std::size_t size, socklen_t used,
                             std::uint16_t segment) {
    msghdr h{};
    h.msg_control = buffer;
    h.msg_controllen = size;
    cmsghdr* c = CMSG_FIRSTHDR(&h);
    if (used != 0) c = CMSG_NXTHDR(&h, c);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof segment);
    std::memcpy(CMSG_DATA(c), &segment, sizeof segment);
    return used + static_cast<socklen_t>(CMSG_SPACE(sizeof segment));
}

}  // namespace

UdpListener::UdpListener(std::uint32_t index)
    : index_(index),
      receive_buffer_(batch_size * receive_slot_size),
      answer_buffer_(batch_size * reply_slot_size) {
    // TERN_UDP_GSO=0 turns segmented sends off, for measuring what they gain (bench/run.py).
    if (const char* gso = std::getenv("TERN_UDP_GSO"); gso != nullptr && gso[0] == '0') {
        gso_ = false;
    }
    for (std::size_t i = 0; i < batch_size; ++i) {
        receive_iov_[i] = {receive_buffer_.data() + i * receive_slot_size, receive_slot_size};
    }
}

UdpListener::~UdpListener() {
    close();
}

std::error_code UdpListener::open(const protocol::TransportAddress& address) {
    close();
    const bool v6 = address.family == protocol::AddressFamily::ipv6;
    fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return {errno, std::system_category()};
    const auto fail = [this] {
        const std::error_code ec(errno, std::system_category());
        close();
        return ec;
    };
    const int one = 1;
    if (v6 && ::setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) return fail();
    if (::setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) return fail();
    // Every client of this worker lands in this one socket, so a burst from many of them must
    // fit: ask for 2 MiB (the kernel caps it at net.core.rmem_max; failure is not fatal).
    const int receive_buffer = 2 << 20;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    wildcard_ = true;
    for (std::size_t i = 0; i < address.address_size(); ++i) {
        if (address.bytes[i] != 0) wildcard_ = false;
    }
    if (wildcard_ && ::setsockopt(fd_, v6 ? IPPROTO_IPV6 : IPPROTO_IP,
                                  v6 ? IPV6_RECVPKTINFO : IP_PKTINFO, &one, sizeof one) != 0) {
        return fail();
    }
    sockaddr_storage at{};
    const socklen_t len = to_sockaddr(address, at);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&at), len) != 0) return fail();
    bound_ = local_address();
    return {};
}

protocol::TransportAddress UdpListener::local_address() const {
    sockaddr_storage at{};
    socklen_t len = sizeof at;
    if (fd_ < 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&at), &len) != 0) return {};
    return from_sockaddr(reinterpret_cast<const sockaddr*>(&at));
}

void UdpListener::close() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

std::size_t UdpListener::receive() noexcept {
    answers_ = 0;
    for (std::size_t i = 0; i < batch_size; ++i) {
        prepare_receive(receive_headers_[i], sources_[i], receive_iov_[i],
                        wildcard_ ? receive_control_[i].bytes.data() : nullptr, control_size);
    }
    const int n = ::recvmmsg(fd_, receive_headers_.data(), batch_size, MSG_DONTWAIT, nullptr);
    return n > 0 ? static_cast<std::size_t>(n) : 0;  // EAGAIN or a transient error
}

UdpListener::Datagram UdpListener::datagram(std::size_t i) const noexcept {
    const auto& h = receive_headers_[i].msg_hdr;
    Datagram d;
    d.bytes = {receive_buffer_.data() + i * receive_slot_size, receive_headers_[i].msg_len};
    d.source = from_sockaddr(reinterpret_cast<const sockaddr*>(&sources_[i]));
    d.local = bound_;
    d.truncated = (h.msg_flags & MSG_TRUNC) != 0;
    if (wildcard_) {
        int ifindex = 0;
        read_packet_info(const_cast<msghdr&>(h), d.local, ifindex);
    }
    return d;
}

std::span<std::uint8_t> UdpListener::answer_slot() noexcept {
    return {answer_buffer_.data() + answers_ * reply_slot_size, reply_slot_size};
}

void UdpListener::answer(std::size_t i, std::span<const std::uint8_t> bytes) noexcept {
    if (answers_ == batch_size) return;
    answer_iov_[answers_] = {const_cast<std::uint8_t*>(bytes.data()), bytes.size()};
    auto& rh = answer_headers_[answers_].msg_hdr;
    rh = {};
    rh.msg_name = &sources_[i];
    rh.msg_namelen = receive_headers_[i].msg_hdr.msg_namelen;
    rh.msg_iov = &answer_iov_[answers_];
    rh.msg_iovlen = 1;
    if (wildcard_) {
        auto& h = receive_headers_[i].msg_hdr;
        protocol::TransportAddress local = bound_;
        int ifindex = 0;
        if (read_packet_info(h, local, ifindex)) {
            rh.msg_control = answer_control_[answers_].bytes.data();
            rh.msg_controllen = write_packet_info(answer_control_[answers_].bytes.data(),
                                                  control_size, local, ifindex);
        }
    }
    ++answers_;
}

void UdpListener::send_answers() noexcept {
    // Answers that the kernel refuses are lost like any UDP datagram; the client retransmits.
    send_messages(
        fd_, answer_headers_.data(), answers_, [](std::size_t) {}, [](std::size_t, int) {});
    answers_ = 0;
}

bool UdpListener::send_to(const protocol::TransportAddress& client,
                          const protocol::TransportAddress& local,
                          std::span<const std::uint8_t> bytes) noexcept {
    sockaddr_storage to{};
    const socklen_t to_len = to_sockaddr(client, to);
    iovec iov{const_cast<std::uint8_t*>(bytes.data()), bytes.size()};
    msghdr h{};
    h.msg_name = &to;
    h.msg_namelen = to_len;
    h.msg_iov = &iov;
    h.msg_iovlen = 1;
    Control control{};
    if (wildcard_) {
        // The interface is left to routing (0); the source address is what matters to the client.
        h.msg_control = control.bytes.data();
        h.msg_controllen = write_packet_info(control.bytes.data(), control_size, local, 0);
    }
    return ::sendmsg(fd_, &h, MSG_DONTWAIT) >= 0;
}

bool UdpListener::queue_to(const protocol::TransportAddress& client,
                           const protocol::TransportAddress& local,
                           std::span<const std::uint8_t> bytes, std::size_t payload_size,
                           Flushed& flushed) noexcept {
    if (queued_ == batch_size) flushed += flush();
    const std::size_t i = queued_++;
    queue_payload_[i] = payload_size;
    queue_iov_[i] = {const_cast<std::uint8_t*>(bytes.data()), bytes.size()};
    queue_to_len_[i] = to_sockaddr(client, queue_to_[i]);
    queue_local_[i] = local;
    return true;
}

UdpListener::Flushed UdpListener::flush() noexcept {
    // Runs of datagrams to one client become one message each: with GSO a run of equal sizes
    // (the last may be shorter) is one send the kernel segments; without, one datagram each.
    std::size_t messages = 0;
    for (std::size_t i = 0; i < queued_;) {
        std::size_t run = 1;
        if (gso_) {
            const std::size_t size = queue_iov_[i].iov_len;
            // At most 64 segments (UDP_MAX_SEGMENTS), and the whole must fit one IP packet's
            // length before the kernel cuts it.
            while (i + run < queued_ && run < 64 && (run + 1) * size <= 65000 && size > 0 &&
                   queue_iov_[i + run - 1].iov_len == size && queue_iov_[i + run].iov_len <= size &&
                   queue_to_len_[i + run] == queue_to_len_[i] &&
                   std::memcmp(&queue_to_[i + run], &queue_to_[i], queue_to_len_[i]) == 0 &&
                   queue_local_[i + run] == queue_local_[i]) {
                ++run;
            }
        }
        auto& h = queue_headers_[messages].msg_hdr;
        h = {};
        h.msg_name = &queue_to_[i];
        h.msg_namelen = queue_to_len_[i];
        h.msg_iov = &queue_iov_[i];
        h.msg_iovlen = run;
        socklen_t control = 0;
        std::uint8_t* control_bytes = queue_control_[messages].bytes.data();
        if (wildcard_) {
            control = write_packet_info(control_bytes, control_size, queue_local_[i], 0);
        }
        if (run > 1) {
            control = write_segment_size(control_bytes, control_size, control,
                                         static_cast<std::uint16_t>(queue_iov_[i].iov_len));
        }
        if (control != 0) {
            h.msg_control = control_bytes;
            h.msg_controllen = control;
        }
        ++messages;
        i += run;
    }
    Flushed result;
    send_messages(
        fd_, queue_headers_.data(), messages,
        [&](std::size_t i) {
            const auto& h = queue_headers_[i].msg_hdr;
            const auto first = static_cast<std::size_t>(h.msg_iov - queue_iov_.data());
            result.packets += h.msg_iovlen;
            for (std::size_t k = 0; k < h.msg_iovlen; ++k) {
                result.payload_bytes += queue_payload_[first + k];
            }
        },
        [&](std::size_t i, int error) {
            // EIO here is a device without UDP GSO support: stop segmenting from now on.
            if (error == EIO && queue_headers_[i].msg_hdr.msg_iovlen > 1) gso_ = false;
            result.refused += queue_headers_[i].msg_hdr.msg_iovlen;
        });
    queued_ = 0;
    return result;
}

}  // namespace tern::server
