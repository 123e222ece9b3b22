#include "relay_load.hpp"

#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "tern/protocol/channel_data.hpp"
#include "udp_batch.hpp"

namespace ternbench {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t batch = 64;
constexpr std::size_t slot = 2048;
constexpr std::uint64_t peer_tag = std::uint64_t{1} << 32;  // + the echo socket's index
constexpr std::size_t max_rtt_samples = 8'000'000;
// A payload starts with its sender's index (4 bytes), whether it is an echo (4 bytes, pairs
// only: 0 = the sender's own packet, 1 = the partner's echo of it) and a send timestamp (8).
constexpr std::size_t flag_offset = 4;
constexpr std::size_t stamp_offset = 8;

std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
            .count());
}

double percentile(std::vector<std::uint32_t>& v, double q) {
    if (v.empty()) return 0;
    const auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

// An echoing peer: one UDP socket that returns every datagram to its source. The loop drains
// them with shared buffers (see LoadLoop::echo).
class EchoPeer {
public:
    EchoPeer(const TransportAddress& at, int receive_buffer) {
        fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        // Root may exceed rmem_max; otherwise the plain option caps at it.
        if (::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &receive_buffer, sizeof receive_buffer) !=
            0) {
            ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
        }
        const sockaddr_in a = to_sockaddr_v4(at);
        if (::bind(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
            const int e = errno;
            ::close(fd_);
            throw std::runtime_error("cannot bind the peer socket to " + at.to_string() + ": " +
                                     std::strerror(e));
        }
    }
    ~EchoPeer() {
        if (fd_ >= 0) ::close(fd_);
    }
    EchoPeer(EchoPeer&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    EchoPeer(const EchoPeer&) = delete;
    EchoPeer& operator=(const EchoPeer&) = delete;
    EchoPeer& operator=(EchoPeer&&) = delete;
    int fd() const { return fd_; }

private:
    int fd_ = -1;
};

// One client's outgoing packet, stamped in place before each send.
struct Outgoing {
    std::vector<std::uint8_t> bytes;
    std::size_t payload_offset = 0;

    void stamp(std::uint32_t client, std::uint64_t ns) {
        const std::uint32_t own = 0;
        std::memcpy(bytes.data() + payload_offset, &client, 4);
        std::memcpy(bytes.data() + payload_offset + flag_offset, &own, 4);
        std::memcpy(bytes.data() + payload_offset + stamp_offset, &ns, 8);
    }
    // The bytes around the payload, to send someone else's payload in this frame.
    iovec head() { return {bytes.data(), payload_offset}; }
    iovec tail(std::size_t payload) {
        return {bytes.data() + payload_offset + payload, bytes.size() - payload_offset - payload};
    }
};

Outgoing make_outgoing(const RelayPlan& plan, Transport transport, const TransportAddress& peer) {
    Outgoing o;
    if (plan.indications) {
        o.bytes.resize(plan.size + 64);
        const auto built = send_indication(o.bytes, peer, plan.size, o.payload_offset);
        o.bytes.resize(built.size());
        return o;
    }
    const std::size_t wire = transport == Transport::udp
                                 ? tern::protocol::channel_data_header_size + plan.size
                                 : tern::protocol::channel_data_stream_size(plan.size);
    o.bytes.assign(wire, 0);
    tern::protocol::write_channel_data_header(std::span<std::uint8_t, 4>(o.bytes.data(), 4),
                                              bench_channel, static_cast<std::uint16_t>(plan.size));
    o.payload_offset = tern::protocol::channel_data_header_size;
    return o;
}

// The peer's echo as the client sees it: the payload of ChannelData or of a Data indication.
std::span<const std::uint8_t> relayed_payload(std::span<const std::uint8_t> frame) {
    if (frame.size() >= 4 && (frame[0] & 0xC0) == 0x40) {
        tern::protocol::ChannelDataView cd;
        if (tern::protocol::parse_channel_data(frame, cd) != tern::protocol::ParseError::ok) {
            return {};
        }
        return cd.payload;
    }
    return data_indication_payload(frame).value_or(std::span<const std::uint8_t>{});
}

class LoadLoop {
public:
    LoadLoop(std::vector<std::unique_ptr<Link>>& links,
             const std::vector<TransportAddress>& targets,
             const std::vector<TransportAddress>& echo_peers, const RelayPlan& plan)
        : links_(links),
          plan_(plan),
          storage_(batch * slot),
          to_server_(batch),
          echoes_(batch, 3),
          to_sources_(batch) {
        if (plan.size < 16) throw std::invalid_argument("--size must be at least 16");
        if (targets.size() != links.size()) throw std::invalid_argument("one target per client");
        epoll_ = ::epoll_create1(0);
        // Many echo sockets share the load; each needs less buffer than a single one did.
        const int peer_buffer = echo_peers.size() > 1 ? 1 << 20 : 8 << 20;
        peers_.reserve(echo_peers.size());
        for (std::size_t k = 0; k < echo_peers.size(); ++k) {
            peers_.emplace_back(echo_peers[k], peer_buffer);
            add(peers_.back().fd(), peer_tag + k);
        }
        for (std::size_t i = 0; i < links_.size(); ++i) {
            add(links_[i]->fd(), i);
            outgoing_.push_back(make_outgoing(plan, links_[i]->transport(), targets[i]));
        }
        inflight_.assign(links_.size(), 0);
        last_rx_.assign(links_.size(), Clock::now());
        rtts_.reserve(plan.rate > 0
                          ? std::min<std::size_t>(
                                max_rtt_samples,
                                static_cast<std::size_t>(plan.rate * plan.duration_s * 1.1) + 1024)
                          : max_rtt_samples / 4);
        for (std::size_t i = 0; i < batch; ++i) {
            iov_[i] = {storage_.data() + i * slot, slot};
        }
    }
    ~LoadLoop() { ::close(epoll_); }
    LoadLoop(const LoadLoop&) = delete;
    LoadLoop& operator=(const LoadLoop&) = delete;

    RelayResult run(const ServerProbe& probe) {
        const auto t0 = Clock::now();
        const auto warm_end = t0 + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(plan_.warmup_s));
        const auto end = warm_end + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(plan_.duration_s));
        const bool open_loop = plan_.rate > 0;
        if (!open_loop) {
            for (std::size_t i = 0; i < links_.size(); ++i) send(i, plan_.window);
        }
        ServerSample before{};
        bool sampled = false;
        auto last_refill_check = t0;
        std::array<epoll_event, 512> events{};
        for (auto now = t0; now < end; now = Clock::now()) {
            if (!sampled && now >= warm_end) {
                before = probe.sample();
                sampled = true;
                counting_ = true;
            }
            const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()),
                                       open_loop ? 0 : 5);
            for (int e = 0; e < n; ++e)
                dispatch(events[static_cast<std::size_t>(e)].data.u64, !open_loop);
            if (open_loop) {
                pace(now - t0);
            } else if (now - last_refill_check >= std::chrono::milliseconds(100)) {
                refill(now);
                last_refill_check = now;
            }
        }
        const ServerSample after = probe.sample();
        counting_ = false;
        // Late packets still count as delivered (not lost) but not toward the rate.
        const auto drain_end = Clock::now() + std::chrono::milliseconds(300);
        while (Clock::now() < drain_end) {
            const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 10);
            for (int e = 0; e < n; ++e)
                dispatch(events[static_cast<std::size_t>(e)].data.u64, false);
        }
        RelayResult r;
        r.sent = sent_;
        r.received = received_;
        r.received_in_window = received_in_window_;
        r.window_s = plan_.duration_s;
        r.server_cpu_s = after.cpu_seconds - before.cpu_seconds;
        r.udp_drops = after.udp_drops - before.udp_drops;
        r.rss_kib = after.rss_kib;
        r.rtt_p50_us = percentile(rtts_, 0.50);
        r.rtt_p99_us = percentile(rtts_, 0.99);
        r.refills = refills_;
        return r;
    }

private:
    void add(int fd, std::uint64_t tag) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = tag;
        ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
    }

    void dispatch(std::uint64_t tag, bool resend) {
        if (tag >= peer_tag) {
            echo(peers_[tag - peer_tag].fd());
            return;
        }
        const std::size_t i = tag;
        const std::size_t returned =
            links_[i]->transport() == Transport::udp ? receive_udp(i) : receive_stream(i);
        if (returned == 0) return;
        inflight_[i] = inflight_[i] > returned ? inflight_[i] - returned : 0;
        if (resend) send(i, returned);
    }

    // An echo socket: drained in batches, each batch returned to its sources at once (runs to
    // one source as one GSO send).
    void echo(int fd) {
        for (int round = 0; round < 8; ++round) {
            for (std::size_t i = 0; i < batch; ++i) {
                headers_[i] = {};
                headers_[i].msg_hdr.msg_name = &sources_[i];
                headers_[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
                headers_[i].msg_hdr.msg_iov = &iov_[i];
                headers_[i].msg_hdr.msg_iovlen = 1;
            }
            const int n = ::recvmmsg(fd, headers_.data(), batch, MSG_DONTWAIT, nullptr);
            if (n <= 0) return;
            for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
                to_sources_.add(iov_[i].iov_base, headers_[i].msg_len, &sources_[i]);
            }
            to_sources_.flush(fd);  // a full relay socket: those echoes are lost
            if (static_cast<std::size_t>(n) < batch) return;
        }
    }

    // A payload a client received. True if it was the client's own packet coming back (which
    // frees a window slot); in pairs, the partner's packet is echoed instead.
    bool on_payload(std::size_t i, std::span<const std::uint8_t> payload, std::uint64_t now) {
        ++received_;
        if (counting_) ++received_in_window_;
        if (plan_.pairs) {
            std::uint32_t flag = 0;
            std::memcpy(&flag, payload.data() + flag_offset, 4);
            if (flag == 0) {
                echo_back(i, payload);
                return false;
            }
        }
        if (counting_ && rtts_.size() < rtts_.capacity()) {
            std::uint64_t sent_ns = 0;
            std::memcpy(&sent_ns, payload.data() + stamp_offset, 8);
            rtts_.push_back(static_cast<std::uint32_t>((now - sent_ns) / 1000));
        }
        return true;
    }

    // Pairs: client i returns its partner's payload, marked as an echo, in its own frame toward
    // the partner. UDP echoes are queued and leave together after the receive batch; stream
    // echoes are copied, as stream frames are written whole.
    void echo_back(std::size_t i, std::span<const std::uint8_t> payload) {
        auto* bytes = const_cast<std::uint8_t*>(payload.data());
        const std::uint32_t echoed = 1;
        std::memcpy(bytes + flag_offset, &echoed, 4);
        Outgoing& o = outgoing_[i];
        if (links_[i]->transport() == Transport::udp) {
            const std::array<iovec, 3> parts{o.head(), iovec{bytes, payload.size()},
                                             o.tail(payload.size())};
            echoes_.add(parts, nullptr);
            return;
        }
        const iovec head = o.head();
        const iovec tail = o.tail(payload.size());
        const auto* h = static_cast<const std::uint8_t*>(head.iov_base);
        const auto* t = static_cast<const std::uint8_t*>(tail.iov_base);
        echo_scratch_.insert(echo_scratch_.end(), h, h + head.iov_len);
        echo_scratch_.insert(echo_scratch_.end(), payload.begin(), payload.end());
        echo_scratch_.insert(echo_scratch_.end(), t, t + tail.iov_len);
    }

    std::size_t receive_udp(std::size_t i) {
        std::size_t returned = 0;
        for (int round = 0; round < 4; ++round) {
            for (std::size_t k = 0; k < batch; ++k) {
                headers_[k] = {};
                headers_[k].msg_hdr.msg_iov = &iov_[k];
                headers_[k].msg_hdr.msg_iovlen = 1;
            }
            const int n =
                ::recvmmsg(links_[i]->fd(), headers_.data(), batch, MSG_DONTWAIT, nullptr);
            if (n <= 0) break;
            const std::uint64_t now = now_ns();
            for (int k = 0; k < n; ++k) {
                const auto kk = static_cast<std::size_t>(k);
                const auto payload =
                    relayed_payload({storage_.data() + kk * slot, headers_[kk].msg_len});
                if (payload.size() < 16) continue;
                if (on_payload(i, payload, now)) ++returned;
            }
            // The echoes point into storage_: they leave before the next receive reuses it.
            if (!echoes_.empty()) sent_ += echoes_.flush(links_[i]->fd());
            if (static_cast<std::size_t>(n) < batch) break;
        }
        if (returned != 0) last_rx_[i] = Clock::now();
        return returned;
    }

    std::size_t receive_stream(std::size_t i) {
        std::size_t returned = 0;
        std::size_t echoed = 0;
        const std::uint64_t now = now_ns();
        echo_scratch_.clear();
        const bool open = links_[i]->receive([&](std::span<const std::uint8_t> frame) {
            const auto payload = relayed_payload(frame);
            if (payload.size() < 16) return;
            if (on_payload(i, payload, now)) {
                ++returned;
            } else {
                ++echoed;
            }
        });
        if (!open) throw std::runtime_error("client " + std::to_string(i) + ": server closed");
        if (!echo_scratch_.empty()) {
            if (!links_[i]->send(echo_scratch_))
                throw std::runtime_error("client " + std::to_string(i) + ": send failed");
            sent_ += echoed;
        }
        if (returned != 0) last_rx_[i] = Clock::now();
        return returned;
    }

    // `count` own packets from client i, all stamped now (over UDP one GSO send per 64).
    void send(std::size_t i, std::size_t count) {
        Outgoing& o = outgoing_[i];
        o.stamp(static_cast<std::uint32_t>(i), now_ns());
        Link& link = *links_[i];
        if (link.transport() == Transport::udp) {
            for (std::size_t done = 0; done < count;) {
                const std::size_t k = std::min(batch, count - done);
                for (std::size_t j = 0; j < k; ++j)
                    to_server_.add(o.bytes.data(), o.bytes.size(), nullptr);
                const std::size_t m = to_server_.flush(link.fd());
                done += k;
                sent_ += m;
                inflight_[i] += m;
                if (m < k) break;  // refused by a full buffer: lost like any datagram
            }
            return;
        }
        scratch_.clear();
        for (std::size_t j = 0; j < count; ++j)
            scratch_.insert(scratch_.end(), o.bytes.begin(), o.bytes.end());
        if (!link.send(scratch_))
            throw std::runtime_error("client " + std::to_string(i) + ": send failed");
        sent_ += count;
        inflight_[i] += count;
    }

    void pace(Clock::duration elapsed) {
        const auto due =
            static_cast<std::uint64_t>(std::chrono::duration<double>(elapsed).count() * plan_.rate);
        for (int k = 0; k < 256 && own_sent_ < due; ++k) {
            const std::uint64_t before = sent_;
            send(next_client_, 1);
            own_sent_ += std::max<std::uint64_t>(1, sent_ - before);
            next_client_ = (next_client_ + 1) % links_.size();
        }
    }

    void refill(Clock::time_point now) {
        for (std::size_t i = 0; i < links_.size(); ++i) {
            if (now - last_rx_[i] < std::chrono::milliseconds(250)) continue;
            ++refills_;
            inflight_[i] = 0;
            last_rx_[i] = now;
            send(i, plan_.window);
        }
    }

    std::vector<std::unique_ptr<Link>>& links_;
    RelayPlan plan_;
    std::vector<EchoPeer> peers_;
    int epoll_ = -1;
    std::vector<Outgoing> outgoing_;
    std::vector<std::size_t> inflight_;
    std::vector<Clock::time_point> last_rx_;
    std::vector<std::uint32_t> rtts_;
    std::vector<std::uint8_t> storage_;
    std::vector<std::uint8_t> scratch_;
    std::vector<std::uint8_t> echo_scratch_;
    std::array<mmsghdr, batch> headers_{};
    std::array<iovec, batch> iov_{};
    std::array<sockaddr_in, batch> sources_{};
    SendQueue to_server_;
    SendQueue echoes_;
    SendQueue to_sources_;
    std::uint64_t sent_ = 0;
    std::uint64_t own_sent_ = 0;  // open loop: own packets paced so far (echoes not counted)
    std::uint64_t received_ = 0;
    std::uint64_t received_in_window_ = 0;
    std::uint64_t refills_ = 0;
    std::size_t next_client_ = 0;
    bool counting_ = false;
};

}  // namespace

RelayResult run_relay_load(std::vector<std::unique_ptr<Link>>& links,
                           const std::vector<TransportAddress>& targets,
                           const std::vector<TransportAddress>& echo_peers, const RelayPlan& plan,
                           const ServerProbe& probe) {
    LoadLoop loop(links, targets, echo_peers, plan);
    return loop.run(probe);
}

}  // namespace ternbench
