// ternctl: the operator's command line. `credential` mints a TURN REST API credential from a
// shared secret, the same computation ternd validates; `status` and `drain` talk to ternd's
// metrics endpoint.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tern/auth/rest_credential.hpp"
#include "tern/ctl/endpoint_client.hpp"
#include "tern/ctl/status_report.hpp"

namespace {

constexpr std::string_view usage_text =
    "usage: ternctl credential --secret SECRET --user NAME [--ttl SECONDS] [--now UNIX]\n"
    "                          [--uri URI]... [--json]\n"
    "       ternctl status [--endpoint HOST:PORT]\n"
    "       ternctl drain [--endpoint HOST:PORT]\n"
    "       ternctl --version\n"
    "\n"
    "credential  print a TURN REST API username and password valid for --ttl seconds\n"
    "            (default 86400); --secret - reads the secret from standard input.\n"
    "            Each --uri (turn:host:3478?transport=udp, turns:host:5349, stun:host) also\n"
    "            prints a ready RTCIceServer object for a browser's iceServers list.\n"
    "status      summarise a running ternd from its metrics endpoint (metrics.listen;\n"
    "            default 127.0.0.1:9641): state, allocations, traffic, failures.\n"
    "drain       ask ternd to drain: new allocations are refused, /healthz answers 503 and\n"
    "            live allocations finish within limits.shutdown_grace, then ternd exits.\n";

constexpr std::string_view default_endpoint = "127.0.0.1:9641";

int usage(int rc) {
    (rc == 0 ? std::cout : std::cerr) << usage_text;
    return rc;
}

std::optional<long long> parse_int(const std::string& s) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno != 0) return std::nullopt;
    return v;
}

std::string json_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            constexpr std::string_view hex = "0123456789abcdef";
            out += "\\u00";
            out += hex[static_cast<unsigned char>(c) >> 4];
            out += hex[static_cast<unsigned char>(c) & 0xF];
        } else {
            out += c;
        }
    }
    return out;
}

// RFC 7064 / RFC 7065 schemes a browser accepts in RTCIceServer.urls.
bool is_ice_uri(std::string_view uri) {
    for (const std::string_view scheme : {"turn:", "turns:", "stun:", "stuns:"}) {
        if (uri.size() > scheme.size() && uri.substr(0, scheme.size()) == scheme) return true;
    }
    return false;
}

// {"urls": [...], "username": "...", "credential": "..."}: one entry of
// RTCConfiguration.iceServers.
std::string ice_server_json(const std::vector<std::string>& uris,
                            const tern::auth::RestCredential& c) {
    // Appended piecewise: g++ 12 raises a false -Wrestrict on chained std::string operator+.
    std::string out = "{\"urls\": [";
    for (std::size_t i = 0; i < uris.size(); ++i) {
        if (i != 0) out += ", ";
        out += '"';
        out += json_escape(uris[i]);
        out += '"';
    }
    out += "], \"username\": \"";
    out += json_escape(c.username);
    out += "\", \"credential\": \"";
    out += json_escape(c.password);
    out += "\"}";
    return out;
}

int credential(const std::vector<std::string>& args) {
    std::optional<std::string> secret, user;
    long long ttl = 86400;
    std::optional<long long> now;
    bool json = false;
    std::vector<std::string> uris;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto value = [&]() -> std::optional<std::string> {
            if (i + 1 >= args.size()) return std::nullopt;
            return args[++i];
        };
        if (a == "--secret") {
            secret = value();
        } else if (a == "--user") {
            user = value();
        } else if (a == "--ttl") {
            const auto v = value();
            const auto n = v ? parse_int(*v) : std::nullopt;
            if (!n || *n <= 0) {
                std::cerr << "ternctl: --ttl needs a positive number of seconds\n";
                return 2;
            }
            ttl = *n;
        } else if (a == "--now") {
            const auto v = value();
            now = v ? parse_int(*v) : std::nullopt;
            if (!now) {
                std::cerr << "ternctl: --now needs a unix timestamp\n";
                return 2;
            }
        } else if (a == "--uri") {
            const auto v = value();
            if (!v || !is_ice_uri(*v)) {
                std::cerr << "ternctl: --uri needs a turn:, turns:, stun: or stuns: URI\n";
                return 2;
            }
            uris.push_back(*v);
        } else if (a == "--json") {
            json = true;
        } else {
            std::cerr << "ternctl: unknown option " << a << "\n";
            return usage(2);
        }
    }
    if (!secret || !user) {
        std::cerr << "ternctl: credential needs --secret and --user\n";
        return usage(2);
    }
    if (*secret == "-" && !std::getline(std::cin, *secret)) {
        std::cerr << "ternctl: no secret on standard input\n";
        return 2;
    }
    if (secret->empty()) {
        std::cerr << "ternctl: the secret is empty\n";
        return 2;
    }
    const long long t = now ? *now
                            : std::chrono::duration_cast<std::chrono::seconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
    const auto c = tern::auth::make_rest_credential(*secret, *user, t, ttl);
    if (json) {
        // With --uri the object is itself a valid RTCIceServer (browsers ignore "ttl").
        std::cout << "{";
        if (!uris.empty()) {
            const std::string server = ice_server_json(uris, c);
            std::cout << server.substr(1, server.size() - 2) << ", ";
        } else {
            std::cout << "\"username\": \"" << json_escape(c.username) << "\", \"credential\": \""
                      << json_escape(c.password) << "\", ";
        }
        std::cout << "\"ttl\": " << ttl << "}\n";
    } else {
        std::cout << "username: " << c.username << "\npassword: " << c.password << "\n";
        if (!uris.empty()) std::cout << "iceServers entry:\n" << ice_server_json(uris, c) << "\n";
    }
    return 0;
}

// --endpoint HOST:PORT, the only option of status and drain.
std::optional<tern::ctl::Endpoint> endpoint_option(const std::vector<std::string>& args) {
    std::string text(default_endpoint);
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--endpoint" && i + 1 < args.size()) {
            text = args[++i];
        } else {
            std::cerr << "ternctl: unknown option " << args[i] << "\n";
            return std::nullopt;
        }
    }
    auto endpoint = tern::ctl::parse_endpoint(text);
    if (!endpoint) std::cerr << "ternctl: --endpoint needs HOST:PORT, got " << text << "\n";
    return endpoint;
}

void unreachable(const tern::ctl::Endpoint& e, const std::string& error) {
    std::cerr << "ternctl: cannot reach ternd's metrics endpoint at " << e.to_string() << ": "
              << error << "\n(is ternd running with metrics.listen set to this address?)\n";
}

int status(const std::vector<std::string>& args) {
    const auto endpoint = endpoint_option(args);
    if (!endpoint) return usage(2);
    const auto metrics = tern::ctl::http_request(*endpoint, "GET", "/metrics");
    if (metrics.status != 200) {
        unreachable(*endpoint,
                    metrics.status != 0 ? "HTTP " + std::to_string(metrics.status) : metrics.error);
        return 1;
    }
    const auto health = tern::ctl::http_request(*endpoint, "GET", "/healthz");
    std::cout << tern::ctl::format_status(tern::ctl::parse_prometheus(metrics.body),
                                          endpoint->to_string(), health.status == 200);
    return 0;
}

int drain(const std::vector<std::string>& args) {
    const auto endpoint = endpoint_option(args);
    if (!endpoint) return usage(2);
    const auto r = tern::ctl::http_request(*endpoint, "POST", "/drain");
    if (r.status == 0) {
        unreachable(*endpoint, r.error);
        return 1;
    }
    std::cout << "ternd at " << endpoint->to_string() << ": " << r.body;
    return r.status == 202 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty()) return usage(2);
    if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") return usage(0);
    if (args[0] == "--version") {
        std::cout << "ternctl " << TERN_VERSION << "\n";
        return 0;
    }
    if (args[0] == "credential") return credential({args.begin() + 1, args.end()});
    if (args[0] == "status") return status({args.begin() + 1, args.end()});
    if (args[0] == "drain") return drain({args.begin() + 1, args.end()});
    std::cerr << "ternctl: unknown command " << args[0] << "\n";
    return usage(2);
}
