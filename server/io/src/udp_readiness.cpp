#include "tern/server/io/udp_readiness.hpp"

#include <dirent.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <fstream>
#include <string>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstdlib>
#include <memory>

namespace tern::server {

namespace asio = boost::asio;

namespace {

// The epoll set (other than `own`) in which descriptor `member` is registered: Asio's reactor,
// once `member` was handed to Asio. Read from /proc/self/fdinfo, whose epoll entries list their
// members as "tfd: N"; -1 when there is no such set or /proc cannot say.
int epoll_set_holding(int member, int own) {
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) return -1;
    int found = -1;
    while (const dirent* entry = ::readdir(dir)) {
        char* end = nullptr;
        const long fd = std::strtol(entry->d_name, &end, 10);
        if (end == entry->d_name || *end != '\0' || fd == own) continue;
        std::array<char, 64> target{};
        const std::string link = std::string("/proc/self/fd/") + entry->d_name;
        const ssize_t n = ::readlink(link.c_str(), target.data(), target.size() - 1);
        if (n <= 0 ||
            std::string(target.data(), static_cast<std::size_t>(n)) != "anon_inode:[eventpoll]") {
            continue;
        }
        std::ifstream info(std::string("/proc/self/fdinfo/") + entry->d_name);
        for (std::string line; std::getline(info, line);) {
            if (line.rfind("tfd:", 0) == 0 &&
                std::strtol(line.c_str() + 4, nullptr, 10) == member) {
                found = static_cast<int>(fd);
            }
        }
        if (found >= 0) break;
    }
    ::closedir(dir);
    return found;
}

}  // namespace

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
    if (epoll_fd_ < 0) return;
    boost::system::error_code ec;
    set_.assign(epoll_fd_, ec);  // Asio registers it in its own set, where we find that set
    if (ec) return;
    const int asio = std::getenv("TERN_NESTED_LOOP") ? -1 : epoll_set_holding(epoll_fd_, epoll_fd_);
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (asio < 0 || wake_fd_ < 0) return;  // the fallback: this set is one of Asio's
    // Ours holds Asio's (level-triggered: it stays readable while Asio has events), never the
    // other way round.
    set_.release();
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = asio_token;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, asio, &ev) != 0) {
        set_.assign(epoll_fd_, ec);
        return;
    }
    ev.data.u64 = wake_token;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, asio, nullptr);
        set_.assign(epoll_fd_, ec);
        return;
    }
    asio_fd_ = asio;
}

UdpReadiness::~UdpReadiness() {
    boost::system::error_code ec;
    if (set_.is_open()) {
        set_.close(ec);  // closes epoll_fd_
    } else if (epoll_fd_ >= 0) {
        ::close(epoll_fd_);
    }
    if (wake_fd_ >= 0) ::close(wake_fd_);
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
    if (!owns_the_wait()) arm();
}

void UdpReadiness::stop() {
    stopped_ = true;
    boost::system::error_code ec;
    if (set_.is_open()) set_.cancel(ec);
}

void UdpReadiness::wake() noexcept {
    if (wake_fd_ < 0) return;
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
}

void UdpReadiness::run() {
    auto guard = asio::make_work_guard(io_);
    if (!owns_the_wait()) {
        io_.run();
        return;
    }
    io_.poll();  // what was queued before this thread took over (posted from elsewhere)
    while (!io_.stopped()) run_one(stopped_ || !unfinished_.empty() ? 0 : -1);
}

void UdpReadiness::run_one(int timeout_ms) {
    if (!owns_the_wait()) {
        io_.run_for(std::chrono::milliseconds(timeout_ms < 0 ? 1000 : timeout_ms));
        return;
    }
    const int n = ::epoll_wait(epoll_fd_, events_.data(), events_per_pass, timeout_ms);
    if (visit(n < 0 ? 0 : n) || stopped_) io_.poll();
}

bool UdpReadiness::visit(int n) noexcept {
    // One clock read for the whole pass: every datagram in it is stamped with this time.
    const auto now = std::chrono::steady_clock::now();
    bool asio_ready = false;
    visiting_.clear();
    visiting_.swap(unfinished_);
    for (int i = 0; i < n; ++i) {
        const std::uint64_t token = events_[static_cast<std::size_t>(i)].data.u64;
        if (token == asio_token) {
            asio_ready = true;
        } else if (token == wake_token) {
            std::uint64_t count = 0;
            [[maybe_unused]] const auto r = ::read(wake_fd_, &count, sizeof count);
            asio_ready = true;
        } else {
            visiting_.push_back(token);
        }
    }
    if (!stopped_) {
        for (const std::uint64_t token : visiting_) {
            if (handler_.on_readable(unpack(token), now)) continue;
            if (std::find(unfinished_.begin(), unfinished_.end(), token) == unfinished_.end()) {
                unfinished_.push_back(token);
            }
        }
    }
    return handler_.end_of_pass() || asio_ready;
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
    visit(n < 0 ? 0 : n);  // Asio's handlers run anyway: this pass is one of them
    // More waits (a full event list, or sockets left with data): go on after the handlers
    // already queued (TCP/TLS, timers) had their turn. Else sleep until the set is readable.
    if (!unfinished_.empty() || n == static_cast<int>(events_per_pass)) {
        asio::post(io_, Continuation{this});
    } else {
        arm();
    }
}

}  // namespace tern::server
