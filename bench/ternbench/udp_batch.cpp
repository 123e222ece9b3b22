#include "udp_batch.hpp"

#include <netinet/udp.h>

#include <cerrno>
#include <cstring>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103  // linux/udp.h; older libc headers lack it
#endif
#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69  // asm-generic/socket.h, Linux 5.11
#endif

namespace ternbench {

namespace {
// CMSG_SPACE(sizeof(std::uint16_t)) is 24 bytes on 64-bit Linux: three words per message.
constexpr std::size_t control_words = CMSG_SPACE(sizeof(std::uint16_t)) / sizeof(std::uint64_t);
}  // namespace

bool set_busy_poll(int fd, int microseconds) noexcept {
    const int one = 1;
    return ::setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL, &microseconds, sizeof microseconds) == 0 &&
           ::setsockopt(fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, &one, sizeof one) == 0;
}

SendQueue::SendQueue(std::size_t datagrams, std::size_t parts)
    : entries_(datagrams),
      iov_(datagrams * parts),
      headers_(datagrams),
      message_datagrams_(datagrams),
      control_(datagrams * control_words) {}

void SendQueue::add(std::span<const iovec> parts, const sockaddr_in* to) noexcept {
    Entry& e = entries_[queued_++];
    e.first_iov = iov_used_;
    e.iov_count = parts.size();
    e.bytes = 0;
    e.to = to;
    for (const iovec& p : parts) {
        iov_[iov_used_++] = p;
        e.bytes += p.iov_len;
    }
}

bool SendQueue::same_destination(const sockaddr_in* a, const sockaddr_in* b) noexcept {
    if (a == b) return true;
    if (a == nullptr || b == nullptr) return false;
    return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
}

std::span<mmsghdr> SendQueue::build() noexcept {
    std::size_t messages = 0;
    for (std::size_t i = 0; i < queued_;) {
        const Entry& first = entries_[i];
        std::size_t run = 1;
        std::size_t iovs = first.iov_count;
        if (gso_) {
            // Entries are appended in order, so a run's iovecs are contiguous in iov_.
            while (i + run < queued_ && run < gso_max_segments &&
                   (run + 1) * first.bytes <= gso_max_bytes &&
                   entries_[i + run].bytes == first.bytes &&
                   same_destination(entries_[i + run].to, first.to)) {
                iovs += entries_[i + run].iov_count;
                ++run;
            }
        }
        msghdr& h = headers_[messages].msg_hdr;
        h = {};
        h.msg_name = const_cast<sockaddr_in*>(first.to);
        h.msg_namelen = first.to != nullptr ? sizeof(sockaddr_in) : 0;
        h.msg_iov = &iov_[first.first_iov];
        h.msg_iovlen = iovs;
        if (run > 1) {
            auto* control = &control_[messages * control_words];
            h.msg_control = control;
            h.msg_controllen = CMSG_SPACE(sizeof(std::uint16_t));
            cmsghdr* c = CMSG_FIRSTHDR(&h);
            c->cmsg_level = SOL_UDP;
            c->cmsg_type = UDP_SEGMENT;
            c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
            const auto segment = static_cast<std::uint16_t>(first.bytes);
            std::memcpy(CMSG_DATA(c), &segment, sizeof segment);
        }
        message_datagrams_[messages] = run;
        ++messages;
        i += run;
    }
    return {headers_.data(), messages};
}

std::size_t SendQueue::flush(int fd) noexcept {
    if (queued_ == 0) return 0;
    const std::span<mmsghdr> messages = build();
    std::size_t datagrams = 0;
    for (std::size_t done = 0; done < messages.size();) {
        const int m = ::sendmmsg(fd, messages.data() + done,
                                 static_cast<unsigned>(messages.size() - done), MSG_DONTWAIT);
        if (m > 0) {
            for (int k = 0; k < m; ++k) datagrams += message_datagrams_[done + std::size_t(k)];
            done += static_cast<std::size_t>(m);
        } else if (m < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;  // a full socket: the rest is lost like any UDP datagram
        } else {
            // EIO is a device without UDP GSO: stop segmenting. Anything else: skip the message.
            if (m < 0 && errno == EIO && messages[done].msg_hdr.msg_control != nullptr) {
                gso_ = false;
            }
            ++done;
        }
    }
    queued_ = 0;
    iov_used_ = 0;
    return datagrams;
}

}  // namespace ternbench
