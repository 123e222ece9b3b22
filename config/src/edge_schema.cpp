// The edge and proxy_protocol sections of the schema: the web server behind the shared TLS port,
// the SNI names that are TURN, and the sources that must send a PROXY header.
#include "config_schema.hpp"
#include "host_names.hpp"

#include <algorithm>
#include <array>
#include <map>

#include "tern/config/parse.hpp"

namespace tern::config {

namespace {

constexpr std::array<std::string_view, 7> edge_keys = {"fallback",
                                                       "turn_names",
                                                       "fallback_proxy_protocol",
                                                       "fallback_max_connections",
                                                       "fallback_max_connections_per_ip",
                                                       "fallback_connect_timeout",
                                                       "fallback_idle_timeout"};
constexpr std::array<std::string_view, 1> proxy_protocol_keys = {"trusted"};

constexpr std::uint32_t any_u32 = 0xFFFFFFFFu;
// A web server that takes longer than a minute to accept is down; a day without a byte either
// way is already generous for a passed-through connection.
constexpr std::uint32_t max_fallback_connect_timeout = 60;
constexpr std::uint32_t max_fallback_idle_timeout = 86400;
bool is_unspecified(const TransportAddress& address) {
    return std::all_of(address.bytes.begin(), address.bytes.end(),
                       [](std::uint8_t b) { return b == 0; });
}

bool is_loopback(const TransportAddress& address) {
    if (address.family == protocol::AddressFamily::ipv4) return address.bytes[0] == 127;
    return std::all_of(address.bytes.begin(), address.bytes.end() - 1,
                       [](std::uint8_t b) { return b == 0; }) &&
           address.bytes.back() == 1;
}

// Whether a TCP connection to `target` reaches `listener`'s socket. TCP listeners on [::] are
// IPv6-only, and a loopback address is always local; any other address might be another host's,
// so a wildcard listener is only known to catch loopback.
bool reaches(const TransportAddress& target, const Listener& listener) {
    const TransportAddress bound = listener.address.unmapped();
    if (bound.port == 0 || bound.port != target.port || bound.family != target.family) {
        return false;
    }
    return bound == target || (is_unspecified(bound) && is_loopback(target));
}

}  // namespace

void Loader::load_edge(const MapEntry& entry) {
    if (!yaml_.is_section(entry)) return;
    const auto fields = yaml_.entries_of(entry.value, entry.path, edge_keys);
    const bool fallback_given = std::any_of(fields.begin(), fields.end(),
                                            [](const MapEntry& f) { return f.name == "fallback"; });
    for (const auto& field : fields) {
        if (!fallback_given) {
            yaml_.report(field.key_line, field.path, "has no effect without edge.fallback");
            continue;
        }
        if (field.name == "fallback") {
            const auto text = yaml_.scalar_of(field);
            if (!text) continue;
            edge_fallback_ = ListItem{*text, field.path, field.line};
            const auto address = parse_socket_address(*text, 1);
            if (!address.value) {
                yaml_.report(field.line, field.path, address.error);
                continue;
            }
            const TransportAddress fallback = address.value->unmapped();
            if (is_unspecified(fallback)) {
                yaml_.report(field.line, field.path,
                             quote_for_message(*text) +
                                 " has the unspecified address; give the web server's address");
                continue;
            }
            config_.edge.fallback = fallback;
        } else if (field.name == "turn_names") {
            load_turn_names(field);
        } else if (field.name == "fallback_proxy_protocol") {
            const auto text = yaml_.scalar_of(field);
            if (!text) continue;
            if (*text == to_string(ProxyHeader::v2)) {
                config_.edge.fallback_proxy_protocol = ProxyHeader::v2;
            } else if (*text == to_string(ProxyHeader::off)) {
                config_.edge.fallback_proxy_protocol = ProxyHeader::off;
            } else if (*text == "v1") {
                yaml_.report(field.line, field.path,
                             "PROXY protocol v1 is not written, only received (see "
                             "proxy_protocol.trusted); expected v2 or off");
            } else {
                yaml_.report(
                    field.line, field.path,
                    "unknown version " + quote_for_message(*text) + " (expected v2 or off)");
            }
        } else if (field.name == "fallback_connect_timeout" ||
                   field.name == "fallback_idle_timeout") {
            const bool connect = field.name == "fallback_connect_timeout";
            const auto seconds = seconds_of(
                field, 1, connect ? max_fallback_connect_timeout : max_fallback_idle_timeout, "");
            if (!seconds) continue;
            (connect ? config_.edge.fallback_connect_timeout : config_.edge.fallback_idle_timeout) =
                *seconds;
        } else {
            const auto text = yaml_.scalar_of(field, "a number");
            if (!text) continue;
            const auto count = parse_unsigned(*text, any_u32);
            if (!count || *count == 0) {
                yaml_.report(field.line, field.path,
                             "expected a whole number from 1 to " + std::to_string(any_u32) +
                                 ", got " + quote_for_message(*text));
                continue;
            }
            (field.name == "fallback_max_connections"
                 ? config_.edge.fallback_max_connections
                 : config_.edge.fallback_max_connections_per_ip) = *count;
        }
    }
}

void Loader::load_turn_names(const MapEntry& entry) {
    const auto items = yaml_.string_list_of(entry);
    if (!items) return;
    std::map<std::string, std::string, std::less<>> path_of_name;
    for (const auto& item : *items) {
        if (item.text.empty()) {
            yaml_.report(item.line, item.path, "a name must not be empty");
            continue;
        }
        std::string name = lowercase(item.text);
        if (is_address_literal(name)) {
            yaml_.report(
                item.line, item.path,
                quote_for_message(name) + " is an IP address; SNI carries host names only");
            continue;
        }
        if (auto why = why_not_host_name(name); !why.empty()) {
            yaml_.report(item.line, item.path, why);
            continue;
        }
        const auto [earlier, inserted] = path_of_name.try_emplace(name, item.path);
        if (!inserted) {
            yaml_.report(item.line, item.path, "duplicate of " + earlier->second);
            continue;
        }
        config_.edge.turn_names.push_back(std::move(name));
    }
}

void Loader::load_proxy_protocol(const MapEntry& entry) {
    if (!yaml_.is_section(entry)) return;
    for (const auto& field : yaml_.entries_of(entry.value, entry.path, proxy_protocol_keys)) {
        load_cidrs(field, config_.proxy_protocol.trusted);
        if (!config_.proxy_protocol.trusted.empty()) {
            proxy_protocol_trusted_ = ListItem{{}, field.path, field.line};
        }
    }
}

void Loader::check_edge_and_proxy_protocol() {
    const auto has = [this](auto&& wanted) {
        return std::any_of(config_.listen.begin(), config_.listen.end(), wanted);
    };
    if (edge_fallback_) {
        if (!has([](const Listener& l) { return l.transport == Transport::tls; })) {
            yaml_.report(edge_fallback_->line, edge_fallback_->path,
                         "needs a tls:// listener (the shared port)");
        }
        const auto& fallback = config_.edge.fallback;
        const auto loop =
            std::find_if(config_.listen.begin(), config_.listen.end(), [&](const Listener& l) {
                return fallback && l.transport != Transport::udp && reaches(*fallback, l);
            });
        if (loop != config_.listen.end()) {
            yaml_.report(edge_fallback_->line, edge_fallback_->path,
                         "loops back to ternd: " + fallback->to_string() +
                             " is served by its own listener " + loop->to_url() +
                             "; give the web server's address");
        }
    }
    if (proxy_protocol_trusted_ &&
        !has([](const Listener& l) { return l.transport != Transport::udp; })) {
        yaml_.report(proxy_protocol_trusted_->line, proxy_protocol_trusted_->path,
                     "applies to tcp:// and tls:// listeners; none is configured");
    }
}

}  // namespace tern::config
