#include "forwarder.hpp"

#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "forwarder_core.hpp"
#include "link.hpp"
#include "udp_batch.hpp"

namespace ternbench {

namespace forwarder_detail {

volatile std::sig_atomic_t stopping = 0;

Core::Core(const ForwarderOptions& options) : options_(options) {
    listen_at_ = to_sockaddr_v4(options.listen);
    // Every client fans in to this one socket: the same 2 MiB receive buffer ternd's listener
    // asks for.
    listener_ = open_socket(listen_at_, 2 << 20);
    clients_.reserve(4096);
}

Core::~Core() {
    for (const Client& c : clients_) ::close(c.relay_fd);
    if (listener_ >= 0) ::close(listener_);
}

int Core::open_socket(const sockaddr_in& at, int receive_buffer) const {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    if (receive_buffer > 0) {
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    }
    if (options_.busy_poll_us > 0 && !set_busy_poll(fd, options_.busy_poll_us)) {
        std::cerr << "forwarder: SO_BUSY_POLL refused: " << std::strerror(errno) << "\n";
    }
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&at), sizeof at) != 0) {
        const int e = errno;
        ::close(fd);
        throw std::runtime_error("cannot bind " + options_.listen.to_string() + ": " +
                                 std::strerror(e));
    }
    return fd;
}

void Core::handle_setup(const std::uint8_t* bytes, std::size_t size, const sockaddr_in& source,
                        const std::function<void(std::size_t, int)>& on_new_relay) {
    if (size != fwd_message_size || (bytes[0] != fwd_allocate && bytes[0] != fwd_bind)) return;
    std::array<std::uint8_t, fwd_message_size> reply{};
    std::memcpy(reply.data(), bytes, fwd_message_size);
    auto [it, fresh] = by_source_.try_emplace(key_of(source), clients_.size());
    if (fresh) {
        // A relay socket of its own, on the listener's address and a port the kernel picks,
        // unconnected: a TURN relay socket takes datagrams from every permitted peer.
        sockaddr_in any = listen_at_;
        any.sin_port = 0;
        Client c;
        c.relay_fd = open_socket(any, 0);
        c.address = source;
        clients_.push_back(c);
        on_new_relay(it->second, c.relay_fd);
    }
    Client& c = clients_[it->second];
    if (bytes[0] == fwd_allocate) {
        sockaddr_in bound{};
        socklen_t length = sizeof bound;
        ::getsockname(c.relay_fd, reinterpret_cast<sockaddr*>(&bound), &length);
        std::memcpy(reply.data() + 4, &bound.sin_addr, 4);
        std::memcpy(reply.data() + 8, &bound.sin_port, 2);
    } else {
        c.peer.sin_family = AF_INET;
        std::memcpy(&c.peer.sin_addr, bytes + 4, 4);
        std::memcpy(&c.peer.sin_port, bytes + 8, 2);
    }
    ::sendto(listener_, reply.data(), reply.size(), MSG_DONTWAIT,
             reinterpret_cast<const sockaddr*>(&source), sizeof source);
}

namespace {

// Linux 6.9's per-epoll busy-poll parameters (linux/eventpoll.h; Debian 12's headers predate
// them). Only consulted with --busy-poll.
struct EpollParams {
    std::uint32_t busy_poll_usecs;
    std::uint16_t busy_poll_budget;
    std::uint8_t prefer_busy_poll;
    std::uint8_t pad;
};
constexpr unsigned long epoll_set_params = _IOW(0x8A, 0x01, EpollParams);

constexpr std::size_t batch = 64;          // recvmmsg slots per call, as ternd's listener
constexpr std::size_t slot = 2048;         // per datagram: 4 bytes of headroom, then up to 2044
constexpr std::size_t headroom = 4;        // where a peer datagram's ChannelData header goes
constexpr std::size_t arena_slots = 1024;  // datagrams held until the turn's flush
constexpr std::size_t peer_queue = 256;    // queued datagrams per relay socket before a flush
constexpr std::uint64_t listener_tag = ~std::uint64_t{0};

// The epoll loop. A turn: epoll_wait, then every ready socket drained with recvmmsg until it
// reports empty (edge-triggered, so each socket was registered once and never re-armed), each
// datagram rewritten in place and queued on the socket it leaves from, then every queue flushed.
class EpollLoop {
public:
    explicit EpollLoop(Core& core)
        : core_(core), arena_(arena_slots * slot), to_clients_(arena_slots) {
        to_clients_.set_gso(core.options().gso);
        epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (core.options().busy_poll_us > 0) {
            EpollParams p{static_cast<std::uint32_t>(core.options().busy_poll_us), 64, 1, 0};
            if (::ioctl(epoll_, epoll_set_params, &p) != 0) {
                std::cerr << "forwarder: epoll busy-poll parameters refused: "
                          << std::strerror(errno) << "\n";
            }
        }
        add(core.listener(), listener_tag);
        for (std::size_t i = 0; i < batch; ++i) {
            headers_[i].msg_hdr.msg_iov = &iov_[i];
            headers_[i].msg_hdr.msg_iovlen = 1;
        }
    }
    ~EpollLoop() { ::close(epoll_); }
    EpollLoop(const EpollLoop&) = delete;
    EpollLoop& operator=(const EpollLoop&) = delete;

    int run() {
        std::array<epoll_event, 512> events{};
        while (stopping == 0) {
            const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()),
                                       core_.options().spin ? 0 : 200);
            for (int e = 0; e < n; ++e) {
                const std::uint64_t tag = events[static_cast<std::size_t>(e)].data.u64;
                if (tag == listener_tag) {
                    from_clients();
                } else {
                    from_peers(tag);
                }
            }
            flush();
        }
        return 0;
    }

private:
    void add(int fd, std::uint64_t tag) {
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLET;
        ev.data.u64 = tag;
        ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
    }

    // Points the receive headers at the next free arena slots; flushes first if too few are left.
    void prepare(bool want_sources) {
        if (arena_slots - used_ < batch) flush();
        for (std::size_t i = 0; i < batch; ++i) {
            iov_[i] = {arena_.data() + (used_ + i) * slot + headroom, slot - headroom};
            msghdr& h = headers_[i].msg_hdr;
            h.msg_name = want_sources ? &sources_[i] : nullptr;
            h.msg_namelen = want_sources ? sizeof(sockaddr_in) : 0;
            h.msg_control = nullptr;
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
    }

    // Client to peer: drop the header, leave from the client's relay socket toward its peer.
    void from_clients() {
        for (;;) {
            prepare(true);
            const int got =
                ::recvmmsg(core_.listener(), headers_.data(), batch, MSG_DONTWAIT, nullptr);
            if (got <= 0) return;
            std::size_t setups = 0;
            for (std::size_t i = 0; i < static_cast<std::size_t>(got); ++i) {
                const auto* bytes = static_cast<const std::uint8_t*>(iov_[i].iov_base);
                const std::size_t size = headers_[i].msg_len;
                const std::size_t length = channel_data_length(bytes, size);
                if (length == 0) {
                    ++setups;
                    continue;
                }
                const std::int64_t c = core_.find(sources_[i]);
                if (c < 0 || core_.clients()[std::size_t(c)].peer.sin_port == 0) continue;
                const auto ci = static_cast<std::size_t>(c);
                SendQueue& q = to_peers_[ci];
                if (q.empty()) dirty_.push_back(ci);
                if (q.full()) q.flush(core_.clients()[ci].relay_fd);
                q.add(bytes + 4, length, &core_.clients()[ci].peer);
            }
            used_ += static_cast<std::size_t>(got);
            if (setups != 0) handle_setups(static_cast<std::size_t>(got));
            if (static_cast<std::size_t>(got) < batch) return;
        }
    }

    // Set-up messages are rare (one pair per client per run). Queued sends point into the client
    // table, which a new client may move, so the queues leave first.
    void handle_setups(std::size_t got) {
        // The datagrams of this batch stay in the arena through flush(): it only empties queues.
        flush();
        for (std::size_t i = 0; i < got; ++i) {
            const auto* bytes = static_cast<const std::uint8_t*>(iov_[i].iov_base);
            const std::size_t size = headers_[i].msg_len;
            if (channel_data_length(bytes, size) != 0) continue;
            core_.handle_setup(bytes, size, sources_[i], [this](std::size_t index, int fd) {
                if (to_peers_.size() <= index) to_peers_.resize(index + 1, SendQueue(peer_queue));
                to_peers_[index].set_gso(core_.options().gso);
                add(fd, index);
            });
        }
    }

    // Peer to client: write the header into the headroom in front of the payload, queue it on
    // the listener toward the client.
    void from_peers(std::size_t client) {
        const Client& c = core_.clients()[client];
        for (;;) {
            prepare(true);
            const int got = ::recvmmsg(c.relay_fd, headers_.data(), batch, MSG_DONTWAIT, nullptr);
            if (got <= 0) return;
            for (std::size_t i = 0; i < static_cast<std::size_t>(got); ++i) {
                // What a permission check needs at least: the datagram is from the bound peer.
                if (!same_address(sources_[i], c.peer)) continue;
                auto* payload = static_cast<std::uint8_t*>(iov_[i].iov_base);
                const std::size_t length = headers_[i].msg_len;
                write_header(payload - headroom, static_cast<std::uint32_t>(length));
                if (to_clients_.full()) to_clients_.flush(core_.listener());
                to_clients_.add(payload - headroom, length + headroom, &c.address);
            }
            used_ += static_cast<std::size_t>(got);
            if (static_cast<std::size_t>(got) < batch) return;
        }
    }

    void flush() {
        for (const std::size_t c : dirty_) to_peers_[c].flush(core_.clients()[c].relay_fd);
        dirty_.clear();
        to_clients_.flush(core_.listener());
        used_ = 0;
    }

    Core& core_;
    int epoll_ = -1;
    std::vector<std::uint8_t> arena_;
    std::size_t used_ = 0;
    SendQueue to_clients_;
    std::vector<SendQueue> to_peers_;
    std::vector<std::size_t> dirty_;
    std::array<mmsghdr, batch> headers_{};
    std::array<iovec, batch> iov_{};
    std::array<sockaddr_in, batch> sources_{};
};

}  // namespace

int run_epoll(Core& core) {
    EpollLoop loop(core);
    return loop.run();
}

}  // namespace forwarder_detail

bool forwarder_has_uring() noexcept {
#ifdef TERNBENCH_HAVE_URING
    return true;
#else
    return false;
#endif
}

int run_forwarder(const ForwarderOptions& options) {
    using namespace forwarder_detail;
    std::signal(SIGTERM, [](int) { stopping = 1; });
    std::signal(SIGINT, [](int) { stopping = 1; });
    try {
        Core core(options);
        const char* loop = options.loop == ForwarderLoop::uring ? "uring" : "epoll";
        std::cerr << "forwarder listening on " << options.listen.to_string() << " (loop " << loop
                  << ", gso " << (options.gso ? "on" : "off") << ", busy-poll "
                  << options.busy_poll_us << " us" << (options.spin ? ", spinning" : "") << ")\n";
        if (options.loop == ForwarderLoop::uring) {
#ifdef TERNBENCH_HAVE_URING
            return run_uring(core);
#else
            std::cerr << "forwarder: built without liburing (apt install liburing-dev)\n";
            return 2;
#endif
        }
        return run_epoll(core);
    } catch (const std::exception& e) {
        std::cerr << "forwarder: " << e.what() << "\n";
        return 1;
    }
}

}  // namespace ternbench
