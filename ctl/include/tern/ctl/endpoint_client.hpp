// A minimal HTTP/1.0 client for ternd's metrics endpoint (ternctl status, ternctl drain):
// one request, one connection, bounded in time and size.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace tern::ctl {

struct Endpoint {
    std::string host;  // an IP address; IPv6 without brackets
    std::string port;
    std::string to_string() const;  // host:port, [v6]:port
};

// "127.0.0.1:9641", "[::1]:9641"; nullopt when malformed.
std::optional<Endpoint> parse_endpoint(std::string_view text);

struct HttpResult {
    unsigned status = 0;  // 0 = no HTTP answer (see error)
    std::string body;
    std::string error;
};

HttpResult http_request(const Endpoint& endpoint, std::string_view method, std::string_view target,
                        std::chrono::milliseconds timeout = std::chrono::seconds(5));

// For the admin API: `bearer_token` (when not empty) as Authorization: Bearer, and a body.
struct HttpExtras {
    std::string bearer_token;
    std::string body;
};
HttpResult http_request(const Endpoint& endpoint, std::string_view method, std::string_view target,
                        const HttpExtras& extras,
                        std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace tern::ctl
