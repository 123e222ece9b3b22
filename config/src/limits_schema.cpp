// The limits section of the schema: every limits.* key, its bounds and unit.
#include "config_schema.hpp"

#include <algorithm>
#include <array>

#include "tern/config/parse.hpp"

namespace tern::config {

namespace {

constexpr std::uint32_t min_max_lifetime = 600;  // RFC 8656 default lifetime must fit
constexpr std::uint32_t max_max_lifetime = 86400;
// Below 5 s a quiet but live client would be cut off; a day is already generous.
constexpr std::uint32_t min_idle_timeout = 5;
constexpr std::uint32_t max_handshake_timeout = 300;
// One largest ChannelData must fit; 16 MiB per connection is already a lot of memory.
constexpr std::uint32_t min_pending_output = 65536 + 128;
constexpr std::uint32_t max_pending_output = 16u << 20;
constexpr std::uint32_t max_request_rate = 1000000;
constexpr std::uint32_t max_shutdown_grace = 3600;
constexpr std::uint32_t max_idle_timeout = 86400;
// Before its first authenticated request a connection gets at most an hour.
constexpr std::uint32_t max_unauthenticated_timeout = 3600;
// Shorter than a /32 (a typical ISP's whole allocation) would lump unrelated networks together.
constexpr std::uint32_t min_ipv6_source_prefix = 32;
constexpr std::uint32_t max_ipv6_source_prefix = 128;

// Every limits.* key is a bounded whole number; the bounds are part of the documented contract.
struct LimitRule {
    std::string_view name;
    std::uint32_t min;
    std::uint32_t max;
    bool seconds;
    std::uint32_t Limits::*member;
};
constexpr std::uint32_t any_u32 = 0xFFFFFFFFu;
constexpr std::array<LimitRule, 17> limit_rules = {{
    {"max_lifetime", min_max_lifetime, max_max_lifetime, true, &Limits::max_lifetime},
    {"max_allocations", 1, any_u32, false, &Limits::max_allocations},
    {"max_allocations_per_user", 1, any_u32, false, &Limits::max_allocations_per_user},
    // Channel numbers 0x4000-0x4FFF give at most 4096 channels (RFC 8656 §12).
    {"max_permissions_per_allocation", 1, 65535, false, &Limits::max_permissions_per_allocation},
    {"max_channels_per_allocation", 1, 4096, false, &Limits::max_channels_per_allocation},
    {"allocation_bandwidth", 0, any_u32, false, &Limits::allocation_bandwidth},
    {"user_bandwidth", 0, any_u32, false, &Limits::user_bandwidth},
    {"max_connections", 1, any_u32, false, &Limits::max_connections},
    {"max_connections_per_ip", 1, any_u32, false, &Limits::max_connections_per_ip},
    {"handshake_timeout", 1, max_handshake_timeout, true, &Limits::handshake_timeout},
    {"connection_idle_timeout", min_idle_timeout, max_idle_timeout, true,
     &Limits::connection_idle_timeout},
    {"unauthenticated_timeout", 1, max_unauthenticated_timeout, true,
     &Limits::unauthenticated_timeout},
    {"ipv6_source_prefix", min_ipv6_source_prefix, max_ipv6_source_prefix, false,
     &Limits::ipv6_source_prefix},
    {"unauthenticated_rate", 0, max_request_rate, false, &Limits::unauthenticated_rate},
    {"unauthenticated_burst", 1, max_request_rate, false, &Limits::unauthenticated_burst},
    {"shutdown_grace", 0, max_shutdown_grace, true, &Limits::shutdown_grace},
    {"max_pending_output", min_pending_output, max_pending_output, false,
     &Limits::max_pending_output},
}};
template <std::size_t N>
constexpr std::array<std::string_view, N> names_of(const std::array<LimitRule, N>& rules) {
    std::array<std::string_view, N> names{};
    std::transform(rules.begin(), rules.end(), names.begin(),
                   [](const LimitRule& r) { return r.name; });
    return names;
}
constexpr auto limits_keys = names_of(limit_rules);

}  // namespace

void Loader::load_limits(const MapEntry& entry) {
    if (!yaml_.is_section(entry)) return;
    for (const auto& field : yaml_.entries_of(entry.value, entry.path, limits_keys)) {
        const auto* rule = std::find_if(limit_rules.begin(), limit_rules.end(),
                                        [&](const LimitRule& r) { return r.name == field.name; });
        if (rule == limit_rules.end()) continue;  // entries_of() already reported it
        const auto text =
            yaml_.scalar_of(field, rule->seconds ? "a number of seconds" : "a number");
        if (!text) continue;
        const auto value = parse_unsigned(*text, rule->max);
        if (!value || *value < rule->min) {
            yaml_.report(field.line, field.path,
                         std::string("expected a whole number ") +
                             (rule->seconds ? "of seconds " : "") + "from " +
                             std::to_string(rule->min) + " to " + std::to_string(rule->max) +
                             ", got " + quote_for_message(*text));
            continue;
        }
        config_.limits.*(rule->member) = *value;
    }
}

}  // namespace tern::config
