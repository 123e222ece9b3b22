// The two kernel calls of a datagram batch, shared by the listeners, the relay directions and
// the queue to peers: preparing a recvmmsg slot, and sending prepared messages with as few
// sendmmsg calls as the kernel allows, reporting each message as taken or refused.
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <cstddef>

namespace tern::server {

// Slot `h` receives one datagram into `iov`, its source into `from`, and (when `control` is not
// null) its control messages.
inline void prepare_receive(mmsghdr& h, sockaddr_storage& from, iovec& iov, void* control = nullptr,
                            std::size_t control_size = 0) noexcept {
    h.msg_hdr = {};
    h.msg_hdr.msg_name = &from;
    h.msg_hdr.msg_namelen = sizeof from;
    h.msg_hdr.msg_iov = &iov;
    h.msg_hdr.msg_iovlen = 1;
    if (control != nullptr) {
        h.msg_hdr.msg_control = control;
        h.msg_hdr.msg_controllen = control_size;
    }
    h.msg_len = 0;
}

// Sends headers[0, count) on `fd`. taken(i) for each message the kernel took; refused(i, error)
// for each it did not: a full send buffer (EAGAIN) loses the rest, as UDP may, and any other
// error loses that one message while the rest still go (one unreachable destination, say).
template <typename Taken, typename Refused>
void send_messages(int fd, mmsghdr* headers, std::size_t count, Taken&& taken,
                   Refused&& refused) noexcept {
    for (std::size_t sent = 0; sent < count;) {
        const int m =
            ::sendmmsg(fd, headers + sent, static_cast<unsigned>(count - sent), MSG_DONTWAIT);
        if (m > 0) {
            for (int j = 0; j < m; ++j) taken(sent++);
        } else if (m < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            while (sent < count) refused(sent++, EAGAIN);
        } else {
            refused(sent++, m < 0 ? errno : 0);
        }
    }
}

}  // namespace tern::server
