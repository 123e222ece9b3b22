#include "tern/server/udp_listener.hpp"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/socket_base.hpp>

#include "tern/server/socket_address.hpp"

namespace tern::server {

namespace asio = boost::asio;
using asio::ip::udp;

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

UdpListener::UdpListener(asio::io_context& io, RequestDispatcher& dispatcher,
                         allocation::ClientId client)
    : socket_(io),
      dispatcher_(dispatcher),
      receive_buffer_(batch_size * receive_slot_size),
      reply_buffer_(batch_size * reply_slot_size),
      queue_buffer_(batch_size * queue_slot_size) {
    // TERN_UDP_GSO=0 turns segmented sends off, for measuring what they gain (bench/run.py).
    if (const char* gso = std::getenv("TERN_UDP_GSO"); gso != nullptr && gso[0] == '0') {
        gso_ = false;
    }
    context_.transport = config::Transport::udp;
    context_.client = client;
}

std::error_code UdpListener::open(const protocol::TransportAddress& address) {
    boost::system::error_code ec;
    const udp::endpoint endpoint = to_udp_endpoint(address);
    socket_.open(endpoint.protocol(), ec);
    if (ec) return ec;
    if (endpoint.address().is_v6()) socket_.set_option(asio::ip::v6_only(true), ec);
    const int one = 1;
    if (::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        return {errno, std::system_category()};
    }
    // Every client of this worker lands in this one socket, so a burst from many of them must
    // fit: ask for 2 MiB (the kernel caps it at net.core.rmem_max; failure is not fatal).
    const int receive_buffer = 2 << 20;
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVBUF, &receive_buffer,
                 sizeof receive_buffer);
    wildcard_ = endpoint.address().is_unspecified();
    if (wildcard_) {
        const bool v6 = endpoint.address().is_v6();
        if (::setsockopt(socket_.native_handle(), v6 ? IPPROTO_IPV6 : IPPROTO_IP,
                         v6 ? IPV6_RECVPKTINFO : IP_PKTINFO, &one, sizeof one) != 0) {
            return {errno, std::system_category()};
        }
    }
    socket_.bind(endpoint, ec);
    if (ec) return ec;
    socket_.non_blocking(true, ec);
    if (ec) return ec;
    context_.local = local_address();
    return {};
}

protocol::TransportAddress UdpListener::local_address() const {
    boost::system::error_code ec;
    return from_endpoint(socket_.local_endpoint(ec));
}

void UdpListener::start() {
    for (std::size_t i = 0; i < batch_size; ++i) {
        receive_iov_[i] = {receive_buffer_.data() + i * receive_slot_size, receive_slot_size};
    }
    wait_readable();
}

void UdpListener::close() {
    boost::system::error_code ec;
    socket_.close(ec);
}

void UdpListener::wait_readable() {
    socket_.async_wait(udp::socket::wait_read, [this](const boost::system::error_code& ec) {
        if (ec) return;  // closed
        drain();
        wait_readable();
    });
}

void UdpListener::drain() {
    const int fd = socket_.native_handle();
    // Bounded: at most a few batches per wake-up so one busy socket cannot starve the worker.
    for (int round = 0; round < 8; ++round) {
        for (std::size_t i = 0; i < batch_size; ++i) {
            auto& h = receive_headers_[i].msg_hdr;
            h = {};
            h.msg_name = &sources_[i];
            h.msg_namelen = sizeof(sockaddr_storage);
            h.msg_iov = &receive_iov_[i];
            h.msg_iovlen = 1;
            if (wildcard_) {
                h.msg_control = receive_control_[i].bytes.data();
                h.msg_controllen = control_size;
            }
            receive_headers_[i].msg_len = 0;
        }
        const int n = ::recvmmsg(fd, receive_headers_.data(), batch_size, MSG_DONTWAIT, nullptr);
        if (n <= 0) return;  // EAGAIN or a transient error: wait for the next readiness

        unsigned replies = 0;
        const protocol::TransportAddress bound = context_.local;
        context_.now = std::chrono::steady_clock::now();  // once per batch
        context_.unix_now = std::time(nullptr);
        for (int i = 0; i < n; ++i) {
            auto& h = receive_headers_[i].msg_hdr;
            if ((h.msg_flags & MSG_TRUNC) != 0) continue;  // too big for us: not a valid request
            context_.source = from_sockaddr(reinterpret_cast<const sockaddr*>(&sources_[i]));
            context_.local = bound;
            int ifindex = 0;
            const bool have_info = wildcard_ && read_packet_info(h, context_.local, ifindex);
            const std::span<const std::uint8_t> packet(
                receive_buffer_.data() + static_cast<std::size_t>(i) * receive_slot_size,
                receive_headers_[i].msg_len);
            const std::span<std::uint8_t> slot(reply_buffer_.data() + replies * reply_slot_size,
                                               reply_slot_size);
            const auto reply = dispatcher_.handle(packet, context_, slot);
            if (reply.empty()) continue;
            reply_iov_[replies] = {const_cast<std::uint8_t*>(reply.data()), reply.size()};
            auto& rh = reply_headers_[replies].msg_hdr;
            rh = {};
            rh.msg_name = &sources_[i];
            rh.msg_namelen = h.msg_namelen;
            rh.msg_iov = &reply_iov_[replies];
            rh.msg_iovlen = 1;
            if (have_info) {
                rh.msg_control = reply_control_[replies].bytes.data();
                rh.msg_controllen = write_packet_info(reply_control_[replies].bytes.data(),
                                                      control_size, context_.local, ifindex);
            }
            ++replies;
        }
        // Replies that the kernel refuses (full buffer) are lost like any UDP datagram; the
        // client retransmits.
        for (unsigned sent = 0; sent < replies;) {
            const int m =
                ::sendmmsg(fd, reply_headers_.data() + sent, replies - sent, MSG_DONTWAIT);
            if (m > 0) {
                sent += static_cast<unsigned>(m);
            } else if (m < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                break;
            } else {
                ++sent;  // this destination failed (e.g. unreachable); the rest may still go
            }
        }
        context_.local = bound;
        if (static_cast<std::size_t>(n) < batch_size) return;
    }
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
    return ::sendmsg(socket_.native_handle(), &h, MSG_DONTWAIT) >= 0;
}

bool UdpListener::queue_to(const protocol::TransportAddress& client,
                           const protocol::TransportAddress& local,
                           std::span<const std::uint8_t> bytes) noexcept {
    if (bytes.size() > queue_slot_size) {
        flush();  // keep the order datagrams were relayed in
        return send_to(client, local, bytes);
    }
    if (queued_ == batch_size) flush();
    const std::size_t i = queued_++;
    std::uint8_t* slot = queue_buffer_.data() + i * queue_slot_size;
    std::memcpy(slot, bytes.data(), bytes.size());
    queue_iov_[i] = {slot, bytes.size()};
    queue_to_len_[i] = to_sockaddr(client, queue_to_[i]);
    queue_local_[i] = local;
    return true;
}

void UdpListener::flush() noexcept {
    // Runs of datagrams to one client become one message each: with GSO a run of equal sizes
    // (the last may be shorter) is one send the kernel segments; without, one datagram each.
    std::size_t messages = 0;
    for (std::size_t i = 0; i < queued_;) {
        std::size_t run = 1;
        if (gso_) {
            const std::size_t size = queue_iov_[i].iov_len;
            while (i + run < queued_ && run < 64 && queue_iov_[i + run - 1].iov_len == size &&
                   queue_iov_[i + run].iov_len <= size &&
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
    for (std::size_t sent = 0; sent < messages;) {
        const int m = ::sendmmsg(socket_.native_handle(), queue_headers_.data() + sent,
                                 static_cast<unsigned>(messages - sent), MSG_DONTWAIT);
        if (m > 0) {
            sent += static_cast<std::size_t>(m);
        } else if (m < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;  // a full send buffer: the rest is lost like any UDP datagram
        } else {
            // EIO here is a device without UDP GSO support: stop segmenting from now on.
            if (errno == EIO && queue_headers_[sent].msg_hdr.msg_iovlen > 1) gso_ = false;
            ++sent;
        }
    }
    queued_ = 0;
}

}  // namespace tern::server
