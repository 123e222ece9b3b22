#include "tern/ctl/endpoint_client.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace tern::ctl {

namespace {

constexpr std::size_t max_response = std::size_t{4} << 20;

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

}  // namespace

std::string Endpoint::to_string() const {
    return host.find(':') != std::string::npos ? "[" + host + "]:" + port : host + ":" + port;
}

std::optional<Endpoint> parse_endpoint(std::string_view text) {
    Endpoint e;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return std::nullopt;
        e.host = std::string(text.substr(1, close - 1));
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon) return std::nullopt;
        e.host = std::string(text.substr(0, colon));
        port = text.substr(colon + 1);
    }
    if (e.host.empty() || port.empty() || port.size() > 5) return std::nullopt;
    unsigned long n = 0;
    for (const char c : port) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + static_cast<unsigned long>(c - '0');
    }
    if (n == 0 || n > 65535) return std::nullopt;
    e.port = std::string(port);
    return e;
}

HttpResult http_request(const Endpoint& endpoint, std::string_view method, std::string_view target,
                        std::chrono::milliseconds timeout) {
    return http_request(endpoint, method, target, HttpExtras{}, timeout);
}

HttpResult http_request(const Endpoint& endpoint, std::string_view method, std::string_view target,
                        const HttpExtras& extras, std::chrono::milliseconds timeout) {
    HttpResult result;
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    addrinfo* list = nullptr;
    if (const int rc = getaddrinfo(endpoint.host.c_str(), endpoint.port.c_str(), &hints, &list);
        rc != 0) {
        result.error = std::string("bad address: ") + gai_strerror(rc);
        return result;
    }
    Fd fd(::socket(list->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const int connected = fd.get() < 0 ? -1 : ::connect(fd.get(), list->ai_addr, list->ai_addrlen);
    freeaddrinfo(list);
    if (connected != 0) {
        result.error = std::strerror(errno);
        return result;
    }
    std::string request = std::string(method) + " " + std::string(target) +
                          " HTTP/1.0\r\nHost: " + endpoint.to_string() + "\r\n";
    if (!extras.bearer_token.empty()) {
        request += "Authorization: Bearer " + extras.bearer_token + "\r\n";
    }
    request += "Content-Length: " + std::to_string(extras.body.size()) + "\r\n\r\n";
    request += extras.body;
    for (std::size_t sent = 0; sent < request.size();) {
        const ssize_t n =
            ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            result.error = std::strerror(errno);
            return result;
        }
        sent += static_cast<std::size_t>(n);
    }
    // HTTP/1.0: the server closes after its answer, so the answer is everything until EOF.
    std::string response;
    char buf[16384];
    for (;;) {
        const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n == 0) break;
        if (n < 0) {
            result.error = errno == EAGAIN ? "timed out" : std::strerror(errno);
            return result;
        }
        response.append(buf, static_cast<std::size_t>(n));
        if (response.size() > max_response) {
            result.error = "answer too large";
            return result;
        }
    }
    const auto header_end = response.find("\r\n\r\n");
    if (response.compare(0, 5, "HTTP/") != 0 || header_end == std::string::npos ||
        response.find(' ') == std::string::npos) {
        result.error = "not an HTTP answer";
        return result;
    }
    result.status =
        static_cast<unsigned>(std::strtoul(response.c_str() + response.find(' ') + 1, nullptr, 10));
    result.body = response.substr(header_end + 4);
    return result;
}

}  // namespace tern::ctl
