// The warning rules; see config_warnings.hpp.
#include "tern/config/config_warnings.hpp"

#include <algorithm>
#include <array>
#include <string_view>
#include <utility>

#include "tern/config/parse.hpp"

namespace tern::config {

namespace {

// A range a relay should not reach without the operator meaning it, and why.
struct SpecialRange {
    std::string_view cidr;
    std::string_view what;
};

// Most specific first: the first range an allow_peers entry overlaps names the warning, so the
// metadata address is named even inside a wider link-local or private entry.
constexpr std::array<SpecialRange, 10> special_ranges = {{
    {"169.254.169.254/32", "the cloud metadata address 169.254.169.254 (instance credentials)"},
    {"fd00:ec2::254/128", "the cloud metadata address fd00:ec2::254 (instance credentials)"},
    {"127.0.0.0/8", "loopback (127.0.0.0/8): services on the relay host itself"},
    {"::1/128", "loopback (::1): services on the relay host itself"},
    {"10.0.0.0/8", "private addresses (10.0.0.0/8, RFC 1918)"},
    {"172.16.0.0/12", "private addresses (172.16.0.0/12, RFC 1918)"},
    {"192.168.0.0/16", "private addresses (192.168.0.0/16, RFC 1918)"},
    {"fc00::/7", "unique local addresses (fc00::/7)"},
    {"169.254.0.0/16", "link-local addresses (169.254.0.0/16)"},
    {"fe80::/10", "link-local addresses (fe80::/10)"},
}};

Cidr cidr(std::string_view text) {
    return parse_cidr(text).value.value_or(Cidr{});
}

bool overlaps(const Cidr& a, const Cidr& b) {
    return a.contains(b.network) || b.contains(a.network);
}

// The first special range `address` lies in, for the advertised side of a NAT mapping.
const SpecialRange* special_range_of(const TransportAddress& address) {
    for (const auto& range : special_ranges) {
        if (cidr(range.cidr).contains(address)) return &range;
    }
    return nullptr;
}

// Where a plain-text Redis link stays off the open internet: loopback, RFC 1918 and unique
// local addresses (RFC 4193).
bool is_loopback_or_private(const TransportAddress& address) {
    const TransportAddress a = address.unmapped();
    for (std::string_view range :
         {"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"}) {
        if (cidr(range).contains(a)) return true;
    }
    return false;
}

bool is_unspecified(const TransportAddress& a) {
    return std::all_of(a.bytes.begin(), a.bytes.end(), [](std::uint8_t b) { return b == 0; });
}

const char* family_name(const TransportAddress& a) {
    return a.family == protocol::AddressFamily::ipv4 ? "IPv4" : "IPv6";
}

bool same_ip(const TransportAddress& a, const TransportAddress& b) {
    return a.family == b.family && a.bytes == b.bytes;
}

class Rules {
public:
    explicit Rules(const Config& c) : c_(c) {}

    std::vector<ConfigWarning> run() {
        no_credentials();
        short_secrets();
        short_passwords();
        allow_peers();
        tls_without_listener();
        listener_in_relay_ports();
        external_addresses();
        fast_path_interfaces_while_off();
        fleet();
        // File order; warnings about keys not in the file (line 0) last.
        const auto rank = [](const ConfigWarning& w) { return std::pair(w.line == 0, w.line); };
        std::stable_sort(out_.begin(), out_.end(),
                         [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
        return std::move(out_);
    }

private:
    void warn(std::string key, std::string message) {
        const int line = c_.key_lines.of(key);
        out_.push_back(ConfigWarning{std::move(key), line, std::move(message)});
    }

    void no_credentials() {
        if (!c_.auth.secrets.empty() || !c_.auth.users.empty()) return;
        warn("auth",
             "no auth.secrets, auth.secrets_file or auth.users: ternd generates a random secret "
             "at each start, so credentials minted with any other secret are refused");
    }

    void short_secrets() {
        // auth.secrets_file refuses short secrets as it is read; auth.secrets accepted them
        // before this rule existed, so there they warn rather than fail a config that loaded.
        std::size_t count = 0;
        std::size_t shortest = min_advised_secret_bytes;
        for (const auto& secret : c_.auth.secrets) {
            if (secret.size() >= min_advised_secret_bytes) continue;
            ++count;
            shortest = std::min(shortest, secret.size());
        }
        if (count == 0) return;
        warn("auth.secrets", std::to_string(count) + (count == 1 ? " secret is" : " secrets are") +
                                 " shorter than " + std::to_string(min_advised_secret_bytes) +
                                 " bytes (the shortest " + std::to_string(shortest) +
                                 "); use random ones, e.g. openssl rand -hex 32");
    }

    void short_passwords() {
        for (const auto& user : c_.auth.users) {
            if (user.key || user.password.size() >= min_advised_password_bytes) continue;
            warn("auth.users." + escape_for_message(user.name) + ".password",
                 "short password: " + std::to_string(user.password.size()) +
                     " characters; at least " + std::to_string(min_advised_password_bytes) +
                     " resist offline guessing from a captured request");
        }
    }

    void allow_peers() {
        for (std::size_t i = 0; i < c_.relay.allow_peers.size(); ++i) {
            const Cidr& allowed = c_.relay.allow_peers[i];
            for (const auto& range : special_ranges) {
                if (!overlaps(allowed, cidr(range.cidr))) continue;
                warn("relay.allow_peers[" + std::to_string(i) + "]",
                     allowed.to_string() + " lets clients relay to " + std::string(range.what) +
                         "; allow only the ranges your peers are really in");
                break;
            }
        }
    }

    void tls_without_listener() {
        if (!c_.tls) return;
        const bool served = std::any_of(c_.listen.begin(), c_.listen.end(), [](const auto& l) {
            return l.transport == Transport::tls;
        });
        if (served) return;
        warn("tls", "no tls:// listener serves these certificates; add one to listen");
    }

    void listener_in_relay_ports() {
        const auto& ports = c_.relay.ports;
        for (std::size_t i = 0; i < c_.listen.size(); ++i) {
            const auto port = c_.listen[i].address.port;
            if (port == 0 || port < ports.first || port > ports.last) continue;
            warn("listen[" + std::to_string(i) + "]",
                 "port " + std::to_string(port) + " lies inside relay.ports " +
                     std::to_string(ports.first) + "-" + std::to_string(ports.last) +
                     "; relay sockets compete with the listener for it");
        }
    }

    // Where a mapping was written: the shorthand, or its entry in the map (the key as written
    // may differ in form from ip_string, e.g. brackets, so compare parsed addresses).
    std::string key_of(const ExternalAddress& e) const {
        if (is_unspecified(e.internal)) return "relay.external_address";
        constexpr std::string_view prefix = "relay.external_addresses.";
        for (auto it = c_.key_lines.lines.lower_bound(prefix);
             it != c_.key_lines.lines.end() && it->first.starts_with(prefix); ++it) {
            const auto written =
                parse_ip_address(std::string_view(it->first).substr(prefix.size()));
            if (written.value && same_ip(*written.value, e.internal)) return it->first;
        }
        return "relay.external_addresses";
    }

    void external_addresses() {
        const auto& relay = c_.relay;
        for (const auto& e : relay.external_addresses) {
            const std::string key = key_of(e);
            if (const auto* range = special_range_of(e.external)) {
                warn(key, "advertises " + e.external.ip_string() + ", one of " +
                              std::string(range->what) +
                              "; clients outside that network cannot reach it");
            }
            // Relay sockets of a family bind on the first relay address of that family; a
            // family without one binds where each client arrived, which may be anything.
            const auto first_of_family =
                std::find_if(relay.addresses.begin(), relay.addresses.end(),
                             [&](const auto& a) { return a.family == e.internal.family; });
            if (is_unspecified(e.internal) || first_of_family == relay.addresses.end()) continue;
            if (!same_ip(*first_of_family, e.internal)) {
                warn(key, "maps " + e.internal.ip_string() + ", but " + family_name(e.internal) +
                              " relay sockets bind on " + first_of_family->ip_string() +
                              " (relay.addresses), so this mapping never applies");
            }
        }
    }

    void fast_path_interfaces_while_off() {
        const auto& relay = c_.relay;
        if (relay.kernel_fast_path != KernelFastPath::off ||
            relay.kernel_fast_path_interfaces.empty()) {
            return;
        }
        warn("relay.kernel_fast_path_interfaces",
             "has no effect while relay.kernel_fast_path is off (the default); set it to auto or "
             "on to use the kernel fast path");
    }

    // The key if the file wrote it, else its section: a warning about a key left out still
    // points at the line that turned the feature on.
    std::string written_or(const std::string& key, const std::string& section) const {
        return c_.key_lines.of(key) != 0 ? key : section;
    }

    void fleet() {
        const Fleet& fleet = c_.fleet;
        if (!fleet.redis) return;
        // Only an address can be judged here; a name is resolved when ternd connects.
        if (const auto address = protocol::TransportAddress::parse_ip(fleet.redis->host)) {
            if (!is_loopback_or_private(*address)) {
                warn("fleet.redis",
                     address->ip_string() +
                         " is neither loopback nor a private address: the Redis link is plain "
                         "text; keep it on a private network or a TLS tunnel");
            }
        }
        if (fleet.advertise.empty()) {
            warn(written_or("fleet.advertise", "fleet"),
                 std::string("fleet.advertise is empty: other nodes cannot redirect clients to "
                             "this one") +
                     (fleet.advertise_tls.empty() ? "" : " over UDP or TCP") +
                     "; list the addresses clients reach this node on directly");
        }
        if (!c_.auth.nonce_secret) {
            warn("fleet",
                 "no auth.nonce_secret: nonces minted here are refused by the other nodes, so a "
                 "client sent to another node must authenticate again; set the same "
                 "auth.nonce_secret on every node");
        }
    }

    const Config& c_;
    std::vector<ConfigWarning> out_;
};

}  // namespace

std::string ConfigWarning::to_string(const std::string& source) const {
    return ConfigError{source, line, key, "warning: " + message}.to_string();
}

std::vector<ConfigWarning> config_warnings(const Config& config) {
    return Rules(config).run();
}

}  // namespace tern::config
