// A TURN client connection over TCP or TLS, once its first bytes have been sorted: framing in
// place, a bounded output queue, the handshake, first-frame, authentication and idle deadlines.
// Private to server/io: StreamListener and ConnectionSorter start these.
#pragma once

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <ctime>
#include <exception>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "tern/protocol/stream_framer.hpp"
#include "tern/server/io/stream_listener.hpp"

namespace tern::server {

namespace asio = boost::asio;
using asio::ip::tcp;
using TlsStream = asio::ssl::stream<tcp::socket>;

// One client connection. Reads are framed in place; replies and relayed data are appended to a
// bounded output queue and written one batch at a time. Relayed data stops at max_pending_output,
// reading the client's requests pauses above it, and their answers may take the queue to twice
// it, so a slow reader costs about 2 × max_pending_output.
template <class Stream>
class StreamConnection final : public std::enable_shared_from_this<StreamConnection<Stream>>,
                               public ClientConnection {
public:
    static constexpr bool is_tls = std::is_same_v<Stream, TlsStream>;

    template <class... Args>
    StreamConnection(RequestDispatcher& dispatcher, const StreamLimits& limits,
                     PacketContext context, std::shared_ptr<asio::ssl::context> tls,
                     ConnectionRegistry* registry, ConnectionQuota* quota,
                     allocation::IpKey quota_key, StreamCounters* counters, Args&&... stream_args)
        : tls_(std::move(tls)),
          registry_(registry),
          quota_(quota),
          quota_key_(quota_key),
          counters_(counters),
          stream_(std::forward<Args>(stream_args)...),
          timer_(stream_.get_executor()),
          dispatcher_(dispatcher),
          limits_(limits),
          context_(context),
          framer_(limits.max_frame_size) {}

    ~StreamConnection() {
        if (quota_ != nullptr) quota_->release(quota_key_);
        if (counters_ != nullptr) ++counters_->closed[is_tls ? 1 : 0];
    }

    // `prefix`: bytes already read from the socket while sorting the connection (a PROXY
    // header's remainder, the ClientHello, the first frames), handled before anything read later.
    void start(std::vector<std::uint8_t> prefix = {}) {
        authentication_deadline_ =
            std::chrono::steady_clock::now() + limits_.unauthenticated_timeout;
        if (counters_ != nullptr) ++counters_->opened[is_tls ? 1 : 0];
        if (registry_ != nullptr) context_.client = registry_->attach(*this);
        if constexpr (is_tls) {
            prefix_ = std::move(prefix);
            timer_.expires_after(limits_.handshake_timeout);
            timer_.async_wait(
                [self = this->shared_from_this()](const boost::system::error_code& ec) {
                    if (!ec) self->close();  // slow or stalled handshake
                });
            stream_.async_handshake(asio::ssl::stream_base::server, asio::buffer(prefix_),
                                    [self = this->shared_from_this()](
                                        const boost::system::error_code& ec, std::size_t) {
                                        self->prefix_ = {};
                                        self->timer_.cancel();
                                        if (ec) {
                                            if (self->counters_ != nullptr)
                                                ++self->counters_->tls_handshakes_failed;
                                            spdlog::debug("tls handshake from {} failed: {}",
                                                          self->context_.source.to_string(),
                                                          ec.message());
                                            self->close();
                                            return;
                                        }
                                        self->watch_from_now();
                                        self->read();
                                    });
        } else {
            watch_from_now();
            if (!prefix.empty() && !take(prefix)) return;
            read();
        }
    }

    // One timer per connection, re-armed lazily; reads never touch the timer. Until a TURN
    // request authenticates, the connection must send its first complete frame within
    // handshake_timeout and authenticate within unauthenticated_timeout of opening (a
    // Binding-only or trickling client cannot hold a slot for the idle timeout); from then on
    // only the idle timeout counts, from the last frame.
    void watch_from_now() {
        first_frame_deadline_ = std::chrono::steady_clock::now() + limits_.handshake_timeout;
        watch();
    }
    void watch() {
        if (closed_) return;
        const auto now = std::chrono::steady_clock::now();
        const auto idle_end = last_frame_ + limits_.idle_timeout;
        const auto end = authenticated_ ? idle_end
                                        : std::min(authentication_deadline_,
                                                   seen_frame_ ? idle_end : first_frame_deadline_);
        if (now >= end) {
            const char* why = authenticated_ ? "idle"
                              : end == authentication_deadline_
                                  ? "not authenticated in time"
                                  : (seen_frame_ ? "idle" : "no request in time");
            spdlog::debug("closing {} stream from {}: {}", protocol::to_string(context_.transport),
                          context_.source.to_string(), why);
            close();
            return;
        }
        timer_.expires_after(end - now);
        timer_.async_wait([self = this->shared_from_this()](const boost::system::error_code& ec) {
            if (!ec) self->watch();
        });
    }

    bool send(std::span<const std::uint8_t> bytes) noexcept override {
        // Relayed data is best effort (RFC 8656 §2.6: TURN carries it unreliably), so a slow
        // reader loses it rather than growing the queue; STUN responses are never dropped here.
        if (closed_ || queued() + bytes.size() > limits_.max_pending_output) return false;
        try {
            append(bytes);
            flush();
        } catch (const std::exception&) {  // out of memory: the packet is lost, like any other
            return false;
        }
        return true;
    }

private:
    tcp::socket& socket() {
        if constexpr (is_tls) {
            return stream_.next_layer();
        } else {
            return stream_;
        }
    }

    void close_when_flushed() {
        if (!writing_ && pending_.empty()) close();
    }

    // Everything accepted for the client and not yet handed to the kernel.
    std::size_t queued() const noexcept { return pending_.size() + in_flight_.size(); }

    // Frames `bytes` as if just read; false when the stream broke and the connection closed.
    bool take(std::span<const std::uint8_t> bytes) {
        context_.now = std::chrono::steady_clock::now();
        context_.unix_now = std::time(nullptr);
        while (!bytes.empty()) {
            const auto area = framer_.write_area();
            const std::size_t n = std::min(area.size(), bytes.size());
            std::copy_n(bytes.begin(), n, area.begin());
            framer_.commit(n);
            bytes = bytes.subspan(n);
            if (!process()) return false;
        }
        return true;
    }

    void read() {
        if (closed_) return;
        if (queued() > limits_.max_pending_output) {
            // Back-pressure: the client is not reading its answers, so stop reading its
            // requests until the queue drains (flush() resumes); TCP then slows the sender.
            read_paused_ = true;
            return;
        }
        const auto area = framer_.write_area();
        stream_.async_read_some(
            asio::buffer(area.data(), area.size()),
            [self = this->shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                if (ec == asio::error::eof) {
                    // The client half-closed after its requests: their answers still go out,
                    // then the connection closes (flush() finishes it).
                    self->input_closed_ = true;
                    self->close_when_flushed();
                    return;
                }
                if (ec) {
                    self->close();
                    return;
                }
                // A read that completed before another handler closed the connection (a write
                // failing on a reset, say) must not be processed: the allocation is already
                // gone, and a Refresh in it would be answered 437 to nobody.
                if (self->closed_) return;
                self->framer_.commit(n);
                self->context_.now = std::chrono::steady_clock::now();
                self->context_.unix_now = std::time(nullptr);
                if (self->process()) self->read();
            });
    }

    // Returns false when the stream is broken and the connection was closed.
    bool process() {
        std::span<const std::uint8_t> frame;
        protocol::FrameKind kind{};
        for (;;) {
            const auto status = framer_.next(frame, kind);
            if (status == protocol::FrameStatus::need_more) {
                flush();
                return true;
            }
            if (status != protocol::FrameStatus::complete) {
                spdlog::debug("closing {} stream from {}: unframeable input",
                              protocol::to_string(context_.transport), context_.source.to_string());
                close();
                return false;
            }
            seen_frame_ = true;
            last_frame_ = context_.now;
            const auto reply = dispatcher_.handle(frame, context_, scratch_, authenticated_);
            if (reply.empty()) continue;
            // Responses are queued past max_pending_output (the frames already read still get
            // their answers), but not without bound: reading has stopped by now, so only a
            // client that never reads reaches twice the limit.
            if (queued() + reply.size() > 2 * limits_.max_pending_output) {
                spdlog::debug("closing {} stream from {}: output queue full",
                              protocol::to_string(context_.transport), context_.source.to_string());
                close();
                return false;
            }
            append(reply);
        }
    }

    void append(std::span<const std::uint8_t> message) {
        pending_.insert(pending_.end(), message.begin(), message.end());
        pending_ends_.push_back(pending_.size());
    }

    // One buffer per message: over TLS each becomes its own record (some clients, coturn's
    // among them, take one SSL_read for one message); over TCP they leave in one writev.
    void flush() {
        if (writing_ || pending_.empty() || closed_) return;
        writing_ = true;
        in_flight_.swap(pending_);
        in_flight_ends_.swap(pending_ends_);
        buffers_.clear();
        std::size_t begin = 0;
        for (const std::size_t end : in_flight_ends_) {
            buffers_.emplace_back(in_flight_.data() + begin, end - begin);
            begin = end;
        }
        asio::async_write(
            stream_, buffers_,
            [self = this->shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                self->writing_ = false;
                self->in_flight_.clear();
                self->in_flight_ends_.clear();
                if (ec) {
                    self->close();
                    return;
                }
                self->flush();
                if (self->input_closed_) {
                    self->close_when_flushed();
                } else if (self->read_paused_ &&
                           self->queued() <= self->limits_.max_pending_output) {
                    self->read_paused_ = false;
                    self->read();
                }
            });
    }

    void close() {
        if (closed_) return;
        closed_ = true;
        timer_.cancel();
        if (registry_ != nullptr) {
            context_.now = std::chrono::steady_clock::now();
            registry_->detach(context_.client, context_);
        }
        boost::system::error_code ec;
        socket().shutdown(tcp::socket::shutdown_both, ec);
        socket().close(ec);
    }

    std::shared_ptr<asio::ssl::context> tls_;  // kept alive: a reload may swap the listener's
    std::vector<std::uint8_t> prefix_;         // TLS: input for the handshake, until it ends
    ConnectionRegistry* registry_;
    ConnectionQuota* quota_;
    allocation::IpKey quota_key_;  // the source key taken from quota_ at accept
    StreamCounters* counters_;
    Stream stream_;
    asio::steady_timer timer_;
    RequestDispatcher& dispatcher_;
    StreamLimits limits_;
    PacketContext context_;
    protocol::StreamFramer framer_;
    std::array<std::uint8_t, 1024> scratch_{};
    // Output waiting and output being written, with the end offset of each message; the
    // vectors keep their capacity, so a steady stream allocates nothing.
    std::vector<std::uint8_t> pending_;
    std::vector<std::size_t> pending_ends_;
    std::vector<std::uint8_t> in_flight_;
    std::vector<std::size_t> in_flight_ends_;
    std::vector<asio::const_buffer> buffers_;
    bool writing_ = false;
    bool read_paused_ = false;
    bool input_closed_ = false;  // the client sent FIN (or TLS close_notify)
    bool closed_ = false;
    bool seen_frame_ = false;
    bool authenticated_ = false;  // a TURN request's credential verified; never reset
    std::chrono::steady_clock::time_point authentication_deadline_;
    std::chrono::steady_clock::time_point first_frame_deadline_;
    std::chrono::steady_clock::time_point last_frame_;
};

// What a listener gives each connection it starts, copied per connection so a reload (new
// limits, TLS context or sorting) reaches only later ones.
struct StreamServices {
    RequestDispatcher& dispatcher;
    StreamLimits limits;
    ConnectionRegistry* registry = nullptr;
    ConnectionQuota* quota = nullptr;  // limits.max_connections(_per_ip)
    StreamCounters* counters = nullptr;
    std::shared_ptr<asio::ssl::context> tls;
    std::shared_ptr<const ConnectionSorting> sorting;
    ConnectionQuota* fallback_quota = nullptr;  // edge.fallback_max_connections(_per_ip)
};

// Starts TURN over `context.transport` (tcp or tls) on `socket`, which holds `quota_key` of
// services.quota (given back on close). False, with `socket` untouched, when TLS is asked for
// and no context is loaded.
inline bool start_turn_stream(const StreamServices& services, tcp::socket& accepted,
                              const PacketContext& context, const allocation::IpKey& quota_key,
                              std::vector<std::uint8_t> prefix = {}) {
    if (context.transport == protocol::Transport::tls) {
        if (!services.tls) return false;
        auto connection = std::make_shared<StreamConnection<TlsStream>>(
            services.dispatcher, services.limits, context, services.tls, services.registry,
            services.quota, quota_key, services.counters, std::move(accepted), *services.tls);
        connection->start(std::move(prefix));
        return true;
    }
    auto connection = std::make_shared<StreamConnection<tcp::socket>>(
        services.dispatcher, services.limits, context, nullptr, services.registry, services.quota,
        quota_key, services.counters, std::move(accepted));
    connection->start(std::move(prefix));
    return true;
}

}  // namespace tern::server
