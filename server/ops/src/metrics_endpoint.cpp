#include "tern/server/ops/metrics_endpoint.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <optional>
#include <utility>

#include "tern/server/io/tcp_acceptor.hpp"
#include "tern/server/request/socket_address.hpp"

namespace tern::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

namespace {

// A scraper that connects and stalls cannot hold a session for long.
constexpr std::chrono::seconds session_timeout{10};
constexpr std::uint32_t header_limit = 8192;
constexpr std::uint64_t body_limit = 1024;  // only a revoke's {"until": ...}

bool is_loopback(const protocol::TransportAddress& a) {
    if (a.family == protocol::AddressFamily::ipv4) return a.bytes[0] == 127;
    // ::1, or ::ffff:127.x.y.z
    bool zero_prefix = true;
    for (std::size_t i = 0; i < 10; ++i) zero_prefix = zero_prefix && a.bytes[i] == 0;
    if (!zero_prefix) return false;
    if (a.bytes[10] == 0xFF && a.bytes[11] == 0xFF) return a.bytes[12] == 127;
    for (std::size_t i = 10; i < 15; ++i) {
        if (a.bytes[i] != 0) return false;
    }
    return a.bytes[15] == 1;
}

class HttpSession final : public std::enable_shared_from_this<HttpSession> {
public:
    HttpSession(tcp::socket socket, std::shared_ptr<const EndpointHandlers> handlers,
                std::shared_ptr<std::size_t> sessions, bool from_loopback, std::string source)
        : stream_(std::move(socket)),
          handlers_(std::move(handlers)),
          sessions_(std::move(sessions)),
          from_loopback_(from_loopback),
          source_(std::move(source)) {
        ++*sessions_;
    }
    ~HttpSession() { --*sessions_; }
    HttpSession(const HttpSession&) = delete;
    HttpSession& operator=(const HttpSession&) = delete;

    void read() {
        parser_.emplace();
        parser_->header_limit(header_limit);
        parser_->body_limit(body_limit);
        stream_.expires_after(session_timeout);
        http::async_read(stream_, buffer_, *parser_,
                         [self = shared_from_this()](const beast::error_code& ec, std::size_t) {
                             self->on_read(ec);
                         });
    }

private:
    void on_read(const beast::error_code& ec) {
        if (ec) {
            // end_of_stream is a client closing a kept-alive connection; anything else (a
            // timeout, an oversized or malformed request) just ends the session.
            beast::error_code ignored;
            stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
            return;
        }
        const auto& request = parser_->get();
        const auto method = request.method_string();
        const auto target = request.target();
        const std::string_view target_text(target.data(), target.size());
        if (target_text == "/v1" || target_text.starts_with("/v1/")) {
            if (!handlers_->admin) {
                respond({404, "application/json",
                         "{\"error\": \"the admin API is off: set admin.token_file\"}\n"});
                return;
            }
            const auto authorization = request[http::field::authorization];
            AdminRequest admin{std::string(method.data(), method.size()), std::string(target_text),
                               std::string(authorization.data(), authorization.size()),
                               request.body(), source_};
            // The session waits (no read) until the answer comes back to this thread.
            handlers_->admin(std::move(admin), [self = shared_from_this()](HttpAnswer answer) {
                self->respond(std::move(answer));
            });
            return;
        }
        respond(route_request(std::string_view(method.data(), method.size()), target_text,
                              from_loopback_, *handlers_));
    }

    void respond(HttpAnswer answer) {
        const auto& request = parser_->get();
        response_ = {};
        response_.version(request.version());
        response_.result(static_cast<http::status>(answer.status));
        response_.set(http::field::server, "ternd");
        response_.set(http::field::content_type, answer.content_type);
        response_.set(http::field::cache_control, "no-store");
        if (answer.status == 405 && !request.target().starts_with("/v1")) {
            response_.set(http::field::allow, request.target() == "/drain" ? "POST" : "GET, HEAD");
        }
        if (answer.status == 401) response_.set(http::field::www_authenticate, "Bearer");
        const bool head = request.method() == http::verb::head;
        response_.body() = head ? std::string() : std::move(answer.body);
        response_.keep_alive(request.keep_alive());
        response_.prepare_payload();
        if (head) response_.content_length(answer.body.size());
        http::async_write(stream_, response_,
                          [self = shared_from_this()](const beast::error_code& wec, std::size_t) {
                              if (wec) return;
                              if (self->response_.keep_alive()) {
                                  self->read();
                              } else {
                                  beast::error_code ignored;
                                  self->stream_.socket().shutdown(tcp::socket::shutdown_send,
                                                                  ignored);
                              }
                          });
    }

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_{header_limit};
    std::optional<http::request_parser<http::string_body>> parser_;
    http::response<http::string_body> response_;
    std::shared_ptr<const EndpointHandlers> handlers_;
    std::shared_ptr<std::size_t> sessions_;
    bool from_loopback_;
    std::string source_;
};

}  // namespace

HttpAnswer route_request(std::string_view method, std::string_view target, bool from_loopback,
                         const EndpointHandlers& handlers) {
    // Query strings are ignored: Prometheus may add ?name[]=... to scrape URLs.
    if (const auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
    const bool get = method == "GET" || method == "HEAD";
    if (target == "/metrics") {
        if (!get) return {405, "text/plain; charset=utf-8", "use GET\n"};
        return {200, "text/plain; version=0.0.4; charset=utf-8", handlers.metrics()};
    }
    if (target == "/healthz") {
        if (!get) return {405, "text/plain; charset=utf-8", "use GET\n"};
        // Load balancers move new clients away on 503 while live allocations finish.
        if (handlers.draining()) return {503, "text/plain; charset=utf-8", "draining\n"};
        return {200, "text/plain; charset=utf-8", "ok\n"};
    }
    if (target == "/drain") {
        if (method != "POST") return {405, "text/plain; charset=utf-8", "use POST\n"};
        // Stopping the server is for the host's own operator, even on a management network.
        if (!from_loopback) return {403, "text/plain; charset=utf-8", "drain only from loopback\n"};
        const bool already = handlers.draining();
        if (!already) handlers.drain();
        return {202, "text/plain; charset=utf-8", already ? "already draining\n" : "draining\n"};
    }
    return {404, "text/plain; charset=utf-8", "not found: try /metrics or /healthz\n"};
}

MetricsEndpoint::MetricsEndpoint(asio::io_context& io, EndpointHandlers handlers)
    : io_(io),
      acceptor_(io),
      handlers_(std::make_shared<const EndpointHandlers>(std::move(handlers))) {}

MetricsEndpoint::~MetricsEndpoint() = default;

std::error_code MetricsEndpoint::open(const protocol::TransportAddress& address) {
    return open_acceptor(acceptor_, address, false);  // one endpoint, on the main thread
}

protocol::TransportAddress MetricsEndpoint::local_address() const {
    boost::system::error_code ec;
    return from_endpoint(acceptor_.local_endpoint(ec));
}

void MetricsEndpoint::start() {
    accept();
}

void MetricsEndpoint::close() {
    boost::system::error_code ec;
    acceptor_.close(ec);
}

void MetricsEndpoint::accept() {
    acceptor_.async_accept(io_, [this](const boost::system::error_code& ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted) return;
        if (ec) {
            // Out of descriptors, say: the relay matters more than the scrape; try again later.
            spdlog::warn("metrics endpoint: accept failed: {}", ec.message());
            auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::seconds(1));
            timer->async_wait([this, timer](const boost::system::error_code& wec) {
                if (!wec) accept();
            });
            return;
        }
        if (*sessions_ >= max_sessions) {
            boost::system::error_code ignored;
            socket.close(ignored);
        } else {
            boost::system::error_code peer_ec;
            const auto peer = from_endpoint(socket.remote_endpoint(peer_ec));
            std::make_shared<HttpSession>(std::move(socket), handlers_, sessions_,
                                          !peer_ec && is_loopback(peer),
                                          peer_ec ? std::string() : peer.unmapped().ip_string())
                ->read();
        }
        accept();
    });
}

}  // namespace tern::server
