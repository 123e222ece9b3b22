#include "tern/server/io/peer_send_queue.hpp"

#include <netinet/udp.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "tern/server/io/datagram_batch.hpp"
#include "tern/server/request/socket_address.hpp"

namespace tern::server {

namespace {
// The kernel segments at most this many datagrams from one send (UDP_MAX_SEGMENTS), and the
// whole send must fit one IP packet's length before it is cut.
constexpr std::size_t max_segments = 64;
constexpr std::size_t max_segmented_bytes = 65000;

bool same_destination(const sockaddr_storage& a, socklen_t a_len, const sockaddr_storage& b,
                      socklen_t b_len) noexcept {
    return a_len == b_len && std::memcmp(&a, &b, a_len) == 0;
}
}  // namespace

PeerSendQueue::PeerSendQueue() {
    // TERN_UDP_GSO=0 turns segmented sends off, as for the listeners (bench/run.py).
    if (const char* gso = std::getenv("TERN_UDP_GSO"); gso != nullptr && gso[0] == '0') {
        gso_ = false;
    }
}

void PeerSendQueue::push(int fd, const protocol::TransportAddress& peer,
                         std::span<const std::uint8_t> payload, Sent& sent, bool counted) noexcept {
    if (queued_ == capacity) {
        const Sent s = flush();
        sent.packets += s.packets;
        sent.bytes += s.bytes;
        sent.refused += s.refused;
    }
    Entry& e = entries_[queued_++];
    e.fd = fd;
    e.to_len = to_sockaddr(peer, e.to);
    e.payload = {const_cast<std::uint8_t*>(payload.data()), payload.size()};
    e.counted = counted;
}

PeerSendQueue::Sent PeerSendQueue::flush() noexcept {
    Sent result;
    taken_.fill(false);
    for (std::size_t first = 0; first < queued_; ++first) {
        if (taken_[first]) continue;
        const int fd = entries_[first].fd;
        // This socket's datagrams, in the order they were relayed.
        std::size_t count = 0;
        for (std::size_t i = first; i < queued_; ++i) {
            if (taken_[i] || entries_[i].fd != fd) continue;
            taken_[i] = true;
            entry_of_[count] = i;
            counted_[count] = entries_[i].counted;
            iov_[count++] = entries_[i].payload;
        }
        // Runs to one peer become one message each: with GSO a run of equal sizes (the last may
        // be shorter) is one send the kernel cuts; without, one datagram each.
        std::size_t messages = 0;
        for (std::size_t k = 0; k < count;) {
            const Entry& head = entries_[entry_of_[k]];
            std::size_t run = 1;
            if (gso_ && iov_[k].iov_len > 0) {
                const std::size_t size = iov_[k].iov_len;
                while (k + run < count && run < max_segments &&
                       (run + 1) * size <= max_segmented_bytes &&
                       iov_[k + run - 1].iov_len == size && iov_[k + run].iov_len <= size) {
                    const Entry& next = entries_[entry_of_[k + run]];
                    if (!same_destination(next.to, next.to_len, head.to, head.to_len)) break;
                    ++run;
                }
            }
            auto& h = headers_[messages].msg_hdr;
            h = {};
            h.msg_name = const_cast<sockaddr_storage*>(&head.to);
            h.msg_namelen = head.to_len;
            h.msg_iov = &iov_[k];
            h.msg_iovlen = run;
            headers_[messages].msg_len = 0;
            if (run > 1) {
                const auto segment = static_cast<std::uint16_t>(iov_[k].iov_len);
                h.msg_control = control_[messages].bytes.data();
                h.msg_controllen = CMSG_SPACE(sizeof segment);
                cmsghdr* c = CMSG_FIRSTHDR(&h);
                c->cmsg_level = SOL_UDP;
                c->cmsg_type = UDP_SEGMENT;
                c->cmsg_len = CMSG_LEN(sizeof segment);
                std::memcpy(CMSG_DATA(c), &segment, sizeof segment);
            }
            ++messages;
            k += run;
        }
        send_messages(
            fd, headers_.data(), messages,
            [&](std::size_t i) {
                const auto& h = headers_[i].msg_hdr;
                const auto run_start = static_cast<std::size_t>(h.msg_iov - iov_.data());
                for (std::size_t v = 0; v < h.msg_iovlen; ++v) {
                    if (counted_[run_start + v]) continue;
                    ++result.packets;
                    result.bytes += h.msg_iov[v].iov_len;
                }
            },
            [&](std::size_t i, int error) {
                // EIO is a device without UDP GSO: stop segmenting from now on.
                if (error == EIO && headers_[i].msg_hdr.msg_iovlen > 1) gso_ = false;
                result.refused += headers_[i].msg_hdr.msg_iovlen;
            });
    }
    queued_ = 0;
    return result;
}

}  // namespace tern::server
