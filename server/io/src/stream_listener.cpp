#include "tern/server/io/stream_listener.hpp"

#include <cerrno>
#include <chrono>
#include <ctime>
#include <exception>

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <type_traits>
#include <vector>

#include "connection_sorter.hpp"
#include "stream_connection.hpp"
#include "tern/server/io/tcp_acceptor.hpp"
#include "tern/server/request/socket_address.hpp"

namespace tern::server {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr std::chrono::milliseconds accept_retry_interval{250};

// Connections whose first bytes must be read before TURN sees them: all of them when PROXY
// headers are expected from somewhere, and those of a shared tls:// port.
bool needs_sorting(const ConnectionSorting* sorting, protocol::Transport transport) {
    return sorting != nullptr && (!sorting->trusted_proxies.empty() ||
                                  (transport == protocol::Transport::tls && sorting->fallback));
}

}  // namespace

std::optional<allocation::IpKey> StreamListener::take_connection_slot(
    const protocol::TransportAddress& client) {
    const auto source =
        quota_ != nullptr ? quota_->source_of(client) : allocation::IpKey::of(client);
    const auto verdict =
        quota_ != nullptr ? quota_->acquire(source) : allocation::QuotaVerdict::granted;
    if (verdict == allocation::QuotaVerdict::granted) return source;
    // Over limits.max_connections(_per_ip): no log line, a flood must not fill logs.
    if (counters_ != nullptr) {
        ++(verdict == allocation::QuotaVerdict::key_full ? counters_->rejected_per_ip
                                                         : counters_->rejected_total);
    }
    return std::nullopt;
}

StreamListener::StreamListener(asio::io_context& io, RequestDispatcher& dispatcher,
                               protocol::Transport transport, StreamLimits limits,
                               ConnectionRegistry* registry, ConnectionQuota* quota,
                               StreamCounters* counters)
    : io_(io),
      acceptor_(io),
      retry_timer_(io),
      dispatcher_(dispatcher),
      transport_(transport),
      limits_(limits),
      registry_(registry),
      quota_(quota),
      counters_(counters) {}

std::error_code StreamListener::open(const protocol::TransportAddress& address) {
    return open_acceptor(acceptor_, address, true);  // the workers share the port
}

protocol::TransportAddress StreamListener::local_address() const {
    boost::system::error_code ec;
    return from_endpoint(acceptor_.local_endpoint(ec));
}

void StreamListener::start() {
    accept();
}

void StreamListener::close() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    retry_timer_.cancel();
}

void StreamListener::accept() {
    acceptor_.async_accept(io_, [this](const boost::system::error_code& ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted) return;  // listener closed
        if (!ec && accept_failing_) {
            accept_failing_ = false;
            spdlog::info("accepting on {} again", local_address().to_string());
        }
        if (!ec) {
            boost::system::error_code opt_ec;
            socket.set_option(tcp::no_delay(true), opt_ec);
            PacketContext context;
            context.transport = transport_;
            context.source = from_endpoint(socket.remote_endpoint(opt_ec));
            context.local = from_endpoint(socket.local_endpoint(opt_ec));
            StreamServices services{dispatcher_, limits_, registry_, quota_,
                                    counters_,   tls_,    sorting_,  fallback_quota_};
            const bool trusted_proxy = sorting_ && is_trusted_proxy(*sorting_, context.source);
            std::optional<allocation::IpKey> source;
            // A trusted proxy's connection counts under the client its PROXY header names, so
            // its slot is taken once the header is read; every other under its own address.
            if (!trusted_proxy) {
                source = take_connection_slot(context.source);
                if (!source) {
                    socket.close(opt_ec);
                    accept();
                    return;
                }
            }
            if (needs_sorting(sorting_.get(), transport_)) {
                std::make_shared<ConnectionSorter>(std::move(services), std::move(socket), context,
                                                   source)
                    ->start();
            } else if (!start_turn_stream(services, socket, context, *source) &&
                       quota_ != nullptr) {
                quota_->release(*source);  // no connection object to give it back
            }
            accept();
            return;
        }
        on_accept_error(ec);
    });
}

void StreamListener::on_accept_error(const boost::system::error_code& ec) {
    // EMFILE, ENFILE, ENOBUFS and ENOMEM last until something else closes: the pending
    // connection stays in the backlog, so accepting again at once would fail again at once and
    // spin. Wait instead, and say so once per episode rather than once per retry.
    if (!accept_failing_) {
        accept_failing_ = true;
        const bool out_of_fds = ec.value() == EMFILE || ec.value() == ENFILE;
        spdlog::warn("accept on {} failed: {}{}; retrying every {} ms until it succeeds",
                     local_address().to_string(), ec.message(),
                     out_of_fds ? " (open-files limit reached: raise LimitNOFILE or lower "
                                  "limits.max_connections)"
                                : "",
                     accept_retry_interval.count());
    }
    retry_timer_.expires_after(accept_retry_interval);
    retry_timer_.async_wait([this](const boost::system::error_code& wait_ec) {
        if (!wait_ec) accept();
    });
}

}  // namespace tern::server
