// The worker's readiness loop for its UDP sockets (listeners and relay sockets): one
// edge-triggered epoll set, each socket registered once when it opens, and its ready list
// drained in one pass. The worker's thread blocks in this set's epoll_wait, and Asio's own epoll
// set (TCP/TLS, timers) is one member of it: a wake-up with datagrams on fifty sockets costs one
// system call, and Asio's handlers run (io_context::poll) only when Asio has something ready.
//
// Why not Asio per socket: each async_wait re-arms its socket (epoll_ctl) and each ready socket
// is its own handler; docs/performance.md has the measurements behind this design. Should Asio's
// set not be found (it is looked up through /proc/self/fdinfo), the loop falls back to being
// one descriptor in Asio's loop instead, at two more system calls per wake-up.
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
    // Once per pass, after every ready socket was visited: batched sends go out. True when
    // the pass handed work to Asio (a TCP/TLS write), whose handlers should then run.
    virtual bool end_of_pass() noexcept = 0;

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
    // The worker thread's loop: returns when the io_context is stopped.
    void run();
    // One wait of at most `timeout_ms` (-1: until something is ready), its pass, and Asio's
    // ready handlers (tests drive the loop with it).
    void run_one(int timeout_ms);
    // Any thread: wakes the loop so handlers posted to the io_context from elsewhere run now.
    void wake() noexcept;
    void stop();
    bool owns_the_wait() const noexcept { return asio_fd_ >= 0; }

private:
    void arm();
    void pass();
    // Visits the ready sockets in events_[0, n) and those left from before; true when Asio's
    // set or the wake-up descriptor was among them, or the pass handed work to Asio.
    bool visit(int n) noexcept;

    static std::uint64_t pack(UdpToken t) noexcept {
        return (std::uint64_t{static_cast<std::uint8_t>(t.kind)} << 32) | t.index;
    }
    static UdpToken unpack(std::uint64_t v) noexcept {
        return {static_cast<UdpToken::Kind>(v >> 32), static_cast<std::uint32_t>(v)};
    }
    // Tokens of the two members that are not UDP sockets.
    static constexpr std::uint64_t asio_token = ~std::uint64_t{0};
    static constexpr std::uint64_t wake_token = ~std::uint64_t{0} - 1;

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
    boost::asio::posix::stream_descriptor set_;  // the epoll set, as Asio sees it (fallback)
    int asio_fd_ = -1;                           // Asio's epoll set, a member of ours
    int wake_fd_ = -1;                           // an eventfd, for posts from other threads
    static constexpr std::size_t events_per_pass = 64;
    std::array<epoll_event, events_per_pass> events_{};
    // Sockets a pass left with data (edge-triggered: no new edge will say so).
    std::vector<std::uint64_t> unfinished_;
    std::vector<std::uint64_t> visiting_;
    bool stopped_ = false;
};

}  // namespace tern::server
