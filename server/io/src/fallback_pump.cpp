#include "fallback_pump.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <utility>

#include "tern/edge/proxy_header.hpp"
#include "tern/server/request/socket_address.hpp"

namespace tern::server {

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

// Bytes one direction moves before letting the worker's other connections run.
constexpr std::size_t turn_budget = std::size_t{1} << 20;
// The idle timeout is checked this many times per period: a quiet connection ends between one
// and 1.25 periods after its last byte, and busy ones cost no clock read per splice.
constexpr int idle_checks = 4;

class FallbackPump final : public std::enable_shared_from_this<FallbackPump> {
public:
    FallbackPump(tcp::socket client, const FallbackRoute& route, ConnectionQuota* quota,
                 const allocation::IpKey& slot, StreamCounters* counters)
        : client_(std::move(client)),
          upstream_(client_.get_executor()),
          timer_(client_.get_executor()),
          route_(route),
          quota_(quota),
          slot_(slot),
          counters_(counters),
          up_{&client_, &upstream_, 0},
          down_{&upstream_, &client_, 1} {
        if (counters_ != nullptr) ++counters_->fallback_opened;
    }

    // The sockets and the timer close themselves; only the pipes are bare descriptors.
    ~FallbackPump() {
        close_pipes();
        if (quota_ != nullptr) quota_->release(slot_);
        if (counters_ != nullptr) ++counters_->fallback_closed;
    }

    FallbackPump(const FallbackPump&) = delete;
    FallbackPump& operator=(const FallbackPump&) = delete;

    void start(std::vector<std::uint8_t> first_bytes, const PacketContext& context) {
        if (!open_pipe(up_) || !open_pipe(down_)) {
            spdlog::warn("edge.fallback: cannot open a pipe: {}", std::strerror(errno));
            fail(FallbackFailure::connect);
            return;
        }
        if (route_.proxy_v2) {
            std::array<std::uint8_t, edge::proxy_v2_max_bytes> header{};
            const auto n = edge::write_proxy_v2(header, context.source, context.local);
            head_.assign(header.begin(), header.begin() + static_cast<std::ptrdiff_t>(n));
        }
        head_.insert(head_.end(), first_bytes.begin(), first_bytes.end());
        timer_.expires_after(route_.connect_timeout);
        timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
            if (!ec && !self->connected_) self->fail(FallbackFailure::connect);
        });
        upstream_.async_connect(to_tcp_endpoint(route_.upstream),
                                [self = shared_from_this()](const boost::system::error_code& ec) {
                                    if (self->closed_) return;
                                    if (ec) {
                                        self->fail(FallbackFailure::connect);
                                        return;
                                    }
                                    self->on_connected();
                                });
    }

private:
    // One direction: `from`'s bytes through the pipe into `to`.
    struct Direction {
        tcp::socket* from;
        tcp::socket* to;
        std::size_t counter;  // index into fallback_bytes
        std::array<int, 2> pipe{-1, -1};
        std::size_t in_pipe = 0;  // bytes spliced in and not yet out
        std::size_t capacity = 0;
        bool source_ended = false;  // `from` sent its FIN
        bool done = false;          // ... and it was passed on
    };

    static bool open_pipe(Direction& d) {
        if (::pipe2(d.pipe.data(), O_NONBLOCK | O_CLOEXEC) != 0) return false;
        const int size = ::fcntl(d.pipe[0], F_GETPIPE_SZ);
        d.capacity = size > 0 ? static_cast<std::size_t>(size) : 65536;
        return true;
    }

    void on_connected() {
        connected_ = true;
        boost::system::error_code ec;
        upstream_.set_option(tcp::no_delay(true), ec);
        client_.native_non_blocking(true, ec);
        upstream_.native_non_blocking(true, ec);
        watch_idle();
        if (head_.empty()) {
            start_pumps();
            return;
        }
        asio::async_write(
            upstream_, asio::buffer(head_),
            [self = shared_from_this()](const boost::system::error_code& write_ec, std::size_t n) {
                if (self->closed_) return;
                if (write_ec) {
                    self->close();
                    return;
                }
                if (self->counters_ != nullptr) self->counters_->fallback_bytes[0] += n;
                self->head_ = {};
                self->start_pumps();
            });
    }

    void start_pumps() {
        pump(up_);
        pump(down_);
    }

    // Moves what it can; returns after arming the wait that lets it go on.
    void pump(Direction& d) {
        if (closed_ || d.done) return;
        std::size_t moved = 0;
        for (;;) {
            bool read_blocked = false;
            if (!d.source_ended && d.in_pipe < d.capacity) {
                const ssize_t n =
                    ::splice(d.from->native_handle(), nullptr, d.pipe[1], nullptr,
                             d.capacity - d.in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (n > 0) {
                    d.in_pipe += static_cast<std::size_t>(n);
                } else if (n == 0) {
                    d.source_ended = true;
                } else if (errno == EAGAIN) {
                    read_blocked = true;  // nothing to read, or the pipe is full
                } else if (errno != EINTR) {
                    close();
                    return;
                }
            }
            if (d.in_pipe > 0) {
                const ssize_t n = ::splice(d.pipe[0], nullptr, d.to->native_handle(), nullptr,
                                           d.in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (n > 0) {
                    d.in_pipe -= static_cast<std::size_t>(n);
                    moved += static_cast<std::size_t>(n);
                    active_ = true;
                    if (counters_ != nullptr) {
                        counters_->fallback_bytes[d.counter] += static_cast<std::uint64_t>(n);
                    }
                } else if (n < 0 && errno == EAGAIN) {
                    wait(d, *d.to, tcp::socket::wait_write);  // the reader is slow
                    return;
                } else if (n < 0 && errno != EINTR) {
                    close();
                    return;
                }
                if (moved >= turn_budget) {
                    asio::post(client_.get_executor(),
                               [self = shared_from_this(), &d] { self->pump(d); });
                    return;
                }
                continue;
            }
            if (d.source_ended) {  // everything before the FIN is out: pass the FIN on
                boost::system::error_code ec;
                d.to->shutdown(tcp::socket::shutdown_send, ec);
                d.done = true;
                if (up_.done && down_.done) close();
                return;
            }
            if (read_blocked) {
                wait(d, *d.from, tcp::socket::wait_read);
                return;
            }
        }
    }

    void wait(Direction& d, tcp::socket& socket, tcp::socket::wait_type what) {
        socket.async_wait(what,
                          [self = shared_from_this(), &d](const boost::system::error_code& ec) {
                              if (ec) {
                                  self->close();
                                  return;
                              }
                              self->pump(d);
                          });
    }

    void watch_idle() {
        timer_.expires_after(
            std::chrono::duration_cast<std::chrono::milliseconds>(route_.idle_timeout) /
            idle_checks);
        timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
            if (ec || self->closed_) return;
            if (self->active_) {
                self->active_ = false;
                self->quiet_checks_ = 0;
            } else if (++self->quiet_checks_ >= idle_checks) {
                self->close();
                return;
            }
            self->watch_idle();
        });
    }

    void fail(FallbackFailure why) {
        if (closed_) return;
        if (counters_ != nullptr) ++at(counters_->fallback_failed, why);
        spdlog::debug("edge.fallback {}: cannot pass a connection on; closing it",
                      route_.upstream.to_string());
        close();
    }

    void close() {
        if (closed_) return;
        closed_ = true;
        timer_.cancel();
        boost::system::error_code ec;
        client_.close(ec);
        upstream_.close(ec);
        close_pipes();
    }

    void close_pipes() noexcept {
        for (auto* d : {&up_, &down_}) {
            for (int& fd : d->pipe) {
                if (fd >= 0) ::close(fd);
                fd = -1;
            }
        }
    }

    tcp::socket client_;
    tcp::socket upstream_;
    asio::steady_timer timer_;  // the connect timeout, then the idle checks
    FallbackRoute route_;
    ConnectionQuota* quota_;
    allocation::IpKey slot_;
    StreamCounters* counters_;
    std::vector<std::uint8_t> head_;  // the PROXY header and the sorted bytes, sent first
    Direction up_;                    // client to fallback
    Direction down_;                  // fallback to client
    bool connected_ = false;
    bool closed_ = false;
    bool active_ = false;  // a byte moved since the last idle check
    int quiet_checks_ = 0;
};

}  // namespace

void start_fallback_pump(tcp::socket client, std::vector<std::uint8_t> first_bytes,
                         const PacketContext& context, const FallbackRoute& route,
                         ConnectionQuota* quota, allocation::IpKey slot, StreamCounters* counters) {
    auto pump = std::make_shared<FallbackPump>(std::move(client), route, quota, slot, counters);
    pump->start(std::move(first_bytes), context);
}

}  // namespace tern::server
