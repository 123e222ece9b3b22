// See config_changes.hpp.
#include "tern/config/config_changes.hpp"

#include <array>
#include <cstdint>
#include <string_view>
#include <utility>

namespace tern::config {

namespace {

struct LimitField {
    std::string_view name;
    std::uint32_t Limits::*member;
};

constexpr std::array<LimitField, 17> limit_fields = {{
    {"max_lifetime", &Limits::max_lifetime},
    {"max_allocations", &Limits::max_allocations},
    {"max_allocations_per_user", &Limits::max_allocations_per_user},
    {"max_permissions_per_allocation", &Limits::max_permissions_per_allocation},
    {"max_channels_per_allocation", &Limits::max_channels_per_allocation},
    {"allocation_bandwidth", &Limits::allocation_bandwidth},
    {"user_bandwidth", &Limits::user_bandwidth},
    {"max_connections", &Limits::max_connections},
    {"max_connections_per_ip", &Limits::max_connections_per_ip},
    {"handshake_timeout", &Limits::handshake_timeout},
    {"connection_idle_timeout", &Limits::connection_idle_timeout},
    {"unauthenticated_timeout", &Limits::unauthenticated_timeout},
    {"ipv6_source_prefix", &Limits::ipv6_source_prefix},
    {"unauthenticated_rate", &Limits::unauthenticated_rate},
    {"unauthenticated_burst", &Limits::unauthenticated_burst},
    {"shutdown_grace", &Limits::shutdown_grace},
    {"max_pending_output", &Limits::max_pending_output},
}};

struct EdgeField {
    std::string_view name;
    std::uint32_t Edge::*member;
};

constexpr std::array<EdgeField, 4> edge_fields = {{
    {"fallback_max_connections", &Edge::fallback_max_connections},
    {"fallback_max_connections_per_ip", &Edge::fallback_max_connections_per_ip},
    {"fallback_connect_timeout", &Edge::fallback_connect_timeout},
    {"fallback_idle_timeout", &Edge::fallback_idle_timeout},
}};

std::string text_of(const std::string& s) {
    // An empty value would leave "key  -> x", which reads like a typo.
    return s.empty() ? std::string("\"\"") : s;
}
std::string text_of(std::uint32_t n) {
    return std::to_string(n);
}
std::string text_of(const PortRange& r) {
    return std::to_string(r.first) + "-" + std::to_string(r.last);
}
std::string text_of(const std::optional<TransportAddress>& a) {
    return a ? a->to_string() : std::string("off");
}
template <typename Enum>
requires std::is_enum_v<Enum> std::string text_of(Enum e) {
    return to_string(e);
}

class Changes {
public:
    // "key before -> after" when the two differ, then `note`.
    template <typename T>
    void value(std::string_view key, const T& before, const T& after, std::string_view note = {}) {
        if (before == after) return;
        out_.push_back(std::string(key) + " " + text_of(before) + " -> " + text_of(after) +
                       std::string(note));
    }
    void text(std::string line) { out_.push_back(std::move(line)); }
    // "key" alone when the two differ.
    template <typename T>
    void key(std::string_view key, const T& before, const T& after) {
        if (before != after) out_.emplace_back(key);
    }
    // "key (n -> m)": for lists whose entries must not be shown.
    template <typename T>
    void count(std::string_view key, const std::vector<T>& before, const std::vector<T>& after) {
        if (before == after) return;
        out_.push_back(std::string(key) + " (" + std::to_string(before.size()) + " -> " +
                       std::to_string(after.size()) + ")");
    }
    // For a section compared field by field: when it differs and no field said so (a field
    // added to the struct but not here), the section's name at least.
    template <typename T>
    void section_fallback(std::size_t mark, std::string_view name, const T& before,
                          const T& after) {
        if (out_.size() == mark && before != after) out_.emplace_back(name);
    }
    std::size_t mark() const noexcept { return out_.size(); }
    std::vector<std::string> take() { return std::move(out_); }

private:
    std::vector<std::string> out_;
};

// Copies of the two with what is written differently but means the same evened out: the URL
// as written ("redis://h" and "redis://h:6379" are one endpoint).
bool same_fleet(Fleet before, const Fleet& after) {
    before.redis_url = after.redis_url;
    return before == after;
}

// The Redis link and the node's identity in it are set up once, at start; the rest is read on
// every Allocate and heartbeat.
void describe_fleet(Changes& c, const Fleet& before, const Fleet& after) {
    constexpr std::string_view at_restart = " (takes effect at restart)";
    if (before.redis.has_value() != after.redis.has_value()) {
        // Turning the fleet on or off: the other fleet keys only ever follow fleet.redis.
        c.text("fleet.redis " + (before.redis ? before.redis_url : std::string("off")) + " -> " +
               (after.redis ? after.redis_url : std::string("off")) + std::string(at_restart));
        return;
    }
    const auto mark = c.mark();
    if (before.redis != after.redis) {
        // A changed password alone leaves the masked URLs equal: then the key alone.
        c.text(before.redis_url != after.redis_url ? "fleet.redis " + before.redis_url + " -> " +
                                                         after.redis_url + std::string(at_restart)
                                                   : "fleet.redis" + std::string(at_restart));
    }
    c.value("fleet.node_id", before.node_id, after.node_id, at_restart);
    c.value("fleet.key_prefix", before.key_prefix, after.key_prefix, at_restart);
    c.key("fleet.advertise", before.advertise, after.advertise);
    c.key("fleet.advertise_tls", before.advertise_tls, after.advertise_tls);
    c.value("fleet.tls_domain", before.tls_domain, after.tls_domain);
    c.value("fleet.allocate_wait_ms", before.allocate_wait_ms, after.allocate_wait_ms);
    c.value("fleet.lease_seconds", before.lease_seconds, after.lease_seconds);
    c.value("fleet.on_store_failure", before.on_store_failure, after.on_store_failure);
    c.value("fleet.redirect_above", before.redirect_above, after.redirect_above);
    c.value("fleet.usage_stream", before.usage_stream, after.usage_stream);
    c.value("fleet.usage_stream_max", before.usage_stream_max, after.usage_stream_max);
    if (c.mark() == mark && !same_fleet(before, after)) c.text("fleet");
}

}  // namespace

std::vector<std::string> describe_changes(const Config& before, const Config& after) {
    Changes c;
    c.value("realm", before.realm, after.realm);
    c.key("listen", before.listen, after.listen);
    c.key("tls", before.tls, after.tls);

    auto mark = c.mark();
    c.key("edge.fallback", before.edge.fallback, after.edge.fallback);
    c.key("edge.turn_names", before.edge.turn_names, after.edge.turn_names);
    c.value("edge.fallback_proxy_protocol", before.edge.fallback_proxy_protocol,
            after.edge.fallback_proxy_protocol);
    for (const auto& f : edge_fields) {
        c.value("edge." + std::string(f.name), before.edge.*f.member, after.edge.*f.member);
    }
    c.section_fallback(mark, "edge", before.edge, after.edge);
    c.key("proxy_protocol.trusted", before.proxy_protocol, after.proxy_protocol);

    mark = c.mark();
    c.count("auth.secrets", before.auth.secrets, after.auth.secrets);
    c.value("auth.secrets_file", before.auth.secrets_file, after.auth.secrets_file);
    c.count("auth.users", before.auth.users, after.auth.users);
    c.value("auth.expiry", before.auth.expiry, after.auth.expiry);
    c.key("auth.nonce_secret", before.auth.nonce_secret, after.auth.nonce_secret);
    c.value("auth.nonce_lifetime", before.auth.nonce_lifetime, after.auth.nonce_lifetime);
    c.value("auth.max_credential_lifetime", before.auth.max_credential_lifetime,
            after.auth.max_credential_lifetime);
    c.section_fallback(mark, "auth", before.auth, after.auth);

    mark = c.mark();
    c.key("relay.addresses", before.relay.addresses, after.relay.addresses);
    c.key("relay.external_addresses", before.relay.external_addresses,
          after.relay.external_addresses);
    c.value("relay.ports", before.relay.ports, after.relay.ports);
    c.key("relay.allow_peers", before.relay.allow_peers, after.relay.allow_peers);
    c.key("relay.deny_peers", before.relay.deny_peers, after.relay.deny_peers);
    c.value("relay.default_family", before.relay.default_family, after.relay.default_family);
    c.value("relay.channel_numbers", before.relay.channel_numbers, after.relay.channel_numbers);
    c.value("relay.kernel_fast_path", before.relay.kernel_fast_path, after.relay.kernel_fast_path);
    c.key("relay.kernel_fast_path_interfaces", before.relay.kernel_fast_path_interfaces,
          after.relay.kernel_fast_path_interfaces);
    c.value("relay.kernel_fast_path_max_channels", before.relay.kernel_fast_path_max_channels,
            after.relay.kernel_fast_path_max_channels);
    c.section_fallback(mark, "relay", before.relay, after.relay);

    mark = c.mark();
    for (const auto& f : limit_fields) {
        c.value("limits." + std::string(f.name), before.limits.*f.member, after.limits.*f.member);
    }
    c.section_fallback(mark, "limits", before.limits, after.limits);

    describe_fleet(c, before.fleet, after.fleet);

    c.value("threads", static_cast<std::uint32_t>(before.threads),
            static_cast<std::uint32_t>(after.threads));
    c.value("log.level", before.log.level, after.log.level);
    c.value("log.format", before.log.format, after.log.format);
    c.value("metrics.listen", before.metrics.listen, after.metrics.listen);
    c.value("software", before.software, after.software);
    // A section added to Config but not to this list is still not silent. The Redis URL as
    // written is evened out first: another spelling of one endpoint changes nothing.
    Config before_evened = before;
    before_evened.fleet.redis_url = after.fleet.redis_url;
    c.section_fallback(0, "other settings", before_evened, after);
    return c.take();
}

}  // namespace tern::config
