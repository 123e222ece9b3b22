#include "tern/server/udp_readiness.hpp"

#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <memory>

namespace tern::server {

namespace asio = boost::asio;

// Room reserved for sockets a pass leaves unfinished; each socket is listed once, so more than
// this only grows the list when that many sockets are flooded at once.
constexpr std::size_t reserved_unfinished = 1024;

template <typename T>
struct UdpReadiness::BlockAllocator {
    using value_type = T;
    ContinuationBlock* block;

    explicit BlockAllocator(ContinuationBlock* b) noexcept : block(b) {}
    template <typename U>
    BlockAllocator(const BlockAllocator<U>& other) noexcept : block(other.block) {}
    T* allocate(std::size_t n) {
        // cppcheck-suppress sizeofVoid
        if (!block->in_use && n * sizeof(T) <= sizeof block->bytes) {
            block->in_use = true;
            return reinterpret_cast<T*>(block->bytes.data());
        }
        return std::allocator<T>().allocate(n);
    }
    void deallocate(T* p, std::size_t n) noexcept {
        if (reinterpret_cast<unsigned char*>(p) == block->bytes.data()) {
            block->in_use = false;
        } else {
            std::allocator<T>().deallocate(p, n);
        }
    }
    template <typename U>
    bool operator==(const BlockAllocator<U>& other) const noexcept {
        return block == other.block;
    }
    template <typename U>
    bool operator!=(const BlockAllocator<U>& other) const noexcept {
        return block != other.block;
    }
};

struct UdpReadiness::Continuation {
    UdpReadiness* loop;
    using allocator_type = BlockAllocator<void>;
    allocator_type get_allocator() const noexcept { return allocator_type(&loop->block_); }
    void operator()() const { loop->pass(); }
};

UdpReadiness::UdpReadiness(asio::io_context& io, UdpReadinessHandler& handler)
    : io_(io), handler_(handler), epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)), set_(io) {
    unfinished_.reserve(reserved_unfinished);
    visiting_.reserve(reserved_unfinished + events_per_pass);
    if (epoll_fd_ >= 0) {
        boost::system::error_code ec;
        set_.assign(epoll_fd_, ec);
    }
}

UdpReadiness::~UdpReadiness() {
    boost::system::error_code ec;
    set_.close(ec);  // closes epoll_fd_
}

std::error_code UdpReadiness::add(int fd, UdpToken token) noexcept {
    if (epoll_fd_ < 0) return {EBADF, std::system_category()};
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = pack(token);
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) return {errno, std::system_category()};
    // A socket that received before it was registered has had its edge already.
    unfinished_.push_back(ev.data.u64);
    return {};
}

void UdpReadiness::start() {
    stopped_ = false;
    arm();
}

void UdpReadiness::stop() {
    stopped_ = true;
    boost::system::error_code ec;
    set_.cancel(ec);
}

void UdpReadiness::arm() {
    set_.async_wait(asio::posix::descriptor_base::wait_read,
                    [this](const boost::system::error_code& ec) {
                        if (!ec && !stopped_) pass();
                    });
}

void UdpReadiness::pass() {
    if (stopped_) return;
    const int n = ::epoll_wait(epoll_fd_, events_.data(), events_per_pass, 0);
    // One clock read for the whole pass: every datagram in it is stamped with this time.
    const auto now = std::chrono::steady_clock::now();
    visiting_.clear();
    visiting_.swap(unfinished_);
    for (int i = 0; i < n; ++i) visiting_.push_back(events_[static_cast<std::size_t>(i)].data.u64);
    for (const std::uint64_t token : visiting_) {
        if (handler_.on_readable(unpack(token), now)) continue;
        if (std::find(unfinished_.begin(), unfinished_.end(), token) == unfinished_.end()) {
            unfinished_.push_back(token);
        }
    }
    handler_.end_of_pass();
    // More waits (a full event list, or sockets left with data): go on after the handlers
    // already queued (TCP/TLS, timers) had their turn. Else sleep until the set is readable.
    if (!unfinished_.empty() || n == static_cast<int>(events_per_pass)) {
        asio::post(io_, Continuation{this});
    } else {
        arm();
    }
}

}  // namespace tern::server
