// The worker's readiness loop for its UDP sockets (listeners and relay sockets): one
// edge-triggered epoll set, each socket registered once when it opens, and its ready list
// drained in one pass. The set itself is one descriptor in the worker's Asio loop, so TCP/TLS
// stay on Asio while a wake-up with datagrams on fifty sockets costs one wait, not fifty.
//
// Why not Asio per socket: each async_wait re-arms its socket (epoll_ctl) and each ready socket
// is its own handler; docs/performance.md has the measurements behind this design.
#pragma once

#include <sys/epoll.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <cstdint>
#include <system_error>
#include <vector>

namespace tern::server {

// What a token names; the loop hands it back to the owner of that kind of socket.
struct UdpToken {
    enum class Kind : std::uint8_t { listener, relay };
    Kind kind;
    std::uint32_t index;  // listener index or RelayId
};

class UdpReadinessHandler {
public:
    using TimePoint = std::chrono::steady_clock::time_point;
    // Reads what the socket has, up to its fair share; true when it was drained (the kernel
    // said EAGAIN), false when more may wait (it is visited again next pass).
    virtual bool on_readable(UdpToken token, TimePoint now) noexcept = 0;
    // Once per pass, after every ready socket was visited: batched sends go out.
    virtual void end_of_pass() noexcept = 0;

protected:
    ~UdpReadinessHandler() = default;
};

class UdpReadiness {
public:
    UdpReadiness(boost::asio::io_context& io, UdpReadinessHandler& handler);
    ~UdpReadiness();
    UdpReadiness(const UdpReadiness&) = delete;
    UdpReadiness& operator=(const UdpReadiness&) = delete;

    // Registers a non-blocking socket, once; closing the descriptor removes it.
    std::error_code add(int fd, UdpToken token) noexcept;
    void start();
    void stop();

private:
    void arm();
    void pass();

    static std::uint64_t pack(UdpToken t) noexcept {
        return (std::uint64_t{static_cast<std::uint8_t>(t.kind)} << 32) | t.index;
    }
    static UdpToken unpack(std::uint64_t v) noexcept {
        return {static_cast<UdpToken::Kind>(v >> 32), static_cast<std::uint32_t>(v)};
    }

    // Memory of the one pending continuation (posted when a pass left work behind): owned
    // here, so posting it never allocates.
    struct ContinuationBlock {
        alignas(std::max_align_t) std::array<unsigned char, 256> bytes{};
        bool in_use = false;
    };
    template <typename T>
    struct BlockAllocator;
    struct Continuation;

    ContinuationBlock block_;
    boost::asio::io_context& io_;
    UdpReadinessHandler& handler_;
    int epoll_fd_ = -1;
    boost::asio::posix::stream_descriptor set_;  // the epoll set, as Asio sees it
    static constexpr std::size_t events_per_pass = 64;
    std::array<epoll_event, events_per_pass> events_{};
    // Sockets a pass left with data (edge-triggered: no new edge will say so).
    std::vector<std::uint64_t> unfinished_;
    std::vector<std::uint64_t> visiting_;
    bool stopped_ = false;
};

}  // namespace tern::server
