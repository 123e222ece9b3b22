#include "forwarder.hpp"

#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstring>
#include <iostream>
#include <unordered_map>
#include <vector>

#include "link.hpp"

namespace ternbench {

namespace {

constexpr std::size_t batch = 64;
constexpr std::size_t slot = 9216;
constexpr std::uint64_t listener_tag = ~std::uint64_t{0};
volatile std::sig_atomic_t stopping = 0;

std::uint64_t key_of(const sockaddr_in& s) {
    return (std::uint64_t{s.sin_addr.s_addr} << 16) | s.sin_port;
}

struct Client {
    int fd;
    sockaddr_in address;
};

}  // namespace

int run_forwarder(const TransportAddress& listen, const TransportAddress& peer) {
    std::signal(SIGTERM, [](int) { stopping = 1; });
    std::signal(SIGINT, [](int) { stopping = 1; });
    const sockaddr_in listen_at = to_sockaddr_v4(listen);
    const sockaddr_in peer_at = to_sockaddr_v4(peer);
    const int listener = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    const int receive_buffer = 2 << 20;  // the same fan-in buffer ternd's listener asks for
    ::setsockopt(listener, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    if (::bind(listener, reinterpret_cast<const sockaddr*>(&listen_at), sizeof listen_at) != 0) {
        std::cerr << "forwarder: cannot bind " << listen.to_string() << ": " << std::strerror(errno)
                  << "\n";
        return 1;
    }
    const int epoll = ::epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = listener_tag;
    ::epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &ev);

    std::unordered_map<std::uint64_t, std::size_t> by_source;
    std::vector<Client> clients;
    // Each slot keeps 4 bytes of headroom so a peer datagram becomes ChannelData in place.
    std::vector<std::uint8_t> storage(batch * (slot + 4));
    std::array<mmsghdr, batch> headers{};
    std::array<iovec, batch> iov{};
    std::array<sockaddr_in, batch> sources{};
    std::array<epoll_event, 256> events{};
    std::cerr << "forwarder listening on " << listen.to_string() << "\n";

    while (stopping == 0) {
        const int n = ::epoll_wait(epoll, events.data(), static_cast<int>(events.size()), 200);
        for (int e = 0; e < n; ++e) {
            const std::uint64_t tag = events[static_cast<std::size_t>(e)].data.u64;
            const bool from_clients = tag == listener_tag;
            const int fd = from_clients ? listener : clients[tag].fd;
            for (std::size_t i = 0; i < batch; ++i) {
                iov[i] = {storage.data() + i * (slot + 4) + 4, slot};
                headers[i] = {};
                headers[i].msg_hdr.msg_iov = &iov[i];
                headers[i].msg_hdr.msg_iovlen = 1;
                if (from_clients) {
                    headers[i].msg_hdr.msg_name = &sources[i];
                    headers[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
                }
            }
            const int got = ::recvmmsg(fd, headers.data(), batch, MSG_DONTWAIT, nullptr);
            if (got <= 0) continue;
            if (from_clients) {
                // Client to peer: strip the 4-byte header, send from that client's own socket.
                for (int k = 0; k < got; ++k) {
                    const auto i = static_cast<std::size_t>(k);
                    if (headers[i].msg_len < 4) continue;
                    auto [it, fresh] = by_source.try_emplace(key_of(sources[i]), clients.size());
                    if (fresh) {
                        const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
                        sockaddr_in any{};
                        any.sin_family = AF_INET;
                        any.sin_addr = listen_at.sin_addr;
                        ::bind(s, reinterpret_cast<const sockaddr*>(&any), sizeof any);
                        ::connect(s, reinterpret_cast<const sockaddr*>(&peer_at), sizeof peer_at);
                        epoll_event cev{};
                        cev.events = EPOLLIN;
                        cev.data.u64 = clients.size();
                        ::epoll_ctl(epoll, EPOLL_CTL_ADD, s, &cev);
                        clients.push_back({s, sources[i]});
                    }
                    ::send(clients[it->second].fd, static_cast<std::uint8_t*>(iov[i].iov_base) + 4,
                           headers[i].msg_len - 4, MSG_DONTWAIT);
                }
                continue;
            }
            // Peer to client: prepend the header and send the whole batch with one sendmmsg.
            const Client& c = clients[tag];
            for (int k = 0; k < got; ++k) {
                const auto i = static_cast<std::size_t>(k);
                auto* frame = static_cast<std::uint8_t*>(iov[i].iov_base) - 4;
                const auto len = headers[i].msg_len;
                frame[0] = 0x40;
                frame[1] = 0x00;
                frame[2] = static_cast<std::uint8_t>(len >> 8);
                frame[3] = static_cast<std::uint8_t>(len);
                iov[i] = {frame, len + 4};
                headers[i] = {};
                headers[i].msg_hdr.msg_iov = &iov[i];
                headers[i].msg_hdr.msg_iovlen = 1;
                headers[i].msg_hdr.msg_name = const_cast<sockaddr_in*>(&c.address);
                headers[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
            }
            for (int sent = 0; sent < got;) {
                const int m = ::sendmmsg(listener, headers.data() + sent,
                                         static_cast<unsigned>(got - sent), MSG_DONTWAIT);
                if (m <= 0) break;
                sent += m;
            }
        }
    }
    for (const Client& c : clients) ::close(c.fd);
    ::close(epoll);
    ::close(listener);
    return 0;
}

}  // namespace ternbench
