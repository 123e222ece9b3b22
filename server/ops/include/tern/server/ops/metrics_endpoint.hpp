// The operator's HTTP endpoint (metrics.listen, Boost.Beast): GET /metrics in the Prometheus
// text format, GET /healthz (200 serving, 503 draining) and POST /drain (loopback clients only).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include "tern/protocol/transport_address.hpp"

namespace tern::server {

struct HttpAnswer {
    unsigned status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
};

// A request under /v1/, for the admin API.
struct AdminRequest {
    std::string method;
    std::string target;
    std::string authorization;  // the Authorization header, as sent
    std::string body;
    std::string source;  // the client's IP
};

// What the endpoint asks of the server; each runs on the endpoint's thread.
struct EndpointHandlers {
    std::function<std::string()> metrics;  // the /metrics page
    std::function<bool()> draining;
    std::function<void()> drain;  // starts a drain, as SIGTERM does
    // /v1/: answers through `reply`, later, on the endpoint's thread. Null: the admin API is
    // off (no admin.token_file) and /v1/ is 404.
    std::function<void(AdminRequest request, std::function<void(HttpAnswer)> reply)> admin;
};

// The routing, without sockets: `method` and `target` as received, `from_loopback` whether the
// client's address is a loopback one.
HttpAnswer route_request(std::string_view method, std::string_view target, bool from_loopback,
                         const EndpointHandlers& handlers);

class MetricsEndpoint {
public:
    MetricsEndpoint(boost::asio::io_context& io, EndpointHandlers handlers);
    ~MetricsEndpoint();
    MetricsEndpoint(const MetricsEndpoint&) = delete;
    MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

    std::error_code open(const protocol::TransportAddress& address);
    protocol::TransportAddress local_address() const;
    void start();
    void close();

    // Scrapers and ternctl need a handful of connections; more wait in the backlog.
    static constexpr std::size_t max_sessions = 16;

private:
    void accept();

    boost::asio::io_context& io_;
    boost::asio::ip::tcp::acceptor acceptor_;
    // Shared with the sessions, which may outlive the endpoint in the io_context's queue.
    std::shared_ptr<const EndpointHandlers> handlers_;
    std::shared_ptr<std::size_t> sessions_ = std::make_shared<std::size_t>(0);
};

}  // namespace tern::server
