// The fleet section of the schema: where the shared Redis is, who this node is, where other
// nodes send clients to reach it, and how long Allocates wait for the store. Without
// fleet.redis the node stands alone, so every other fleet key then is an error.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <climits>
#include <map>

#include "config_schema.hpp"
#include "host_names.hpp"
#include "tern/config/parse.hpp"

namespace tern::config {

namespace {

constexpr std::array<std::string_view, 12> fleet_keys = {
    "redis",          "node_id",          "advertise",        "advertise_tls",
    "tls_domain",     "allocate_wait_ms", "lease_seconds",    "on_store_failure",
    "redirect_above", "usage_stream",     "usage_stream_max", "key_prefix"};

constexpr std::uint32_t any_u32 = 0xFFFFFFFFu;
// An Allocate is a client's round trip; a second spent waiting for Redis already costs the
// client a retransmission.
constexpr std::uint32_t max_allocate_wait_ms = 1000;
// Renewed every lease_seconds/3, so 3 is one renewal a second; an hour of quota held by a dead
// node is as long as anyone would accept.
constexpr std::uint32_t min_lease_seconds = 3;
constexpr std::uint32_t max_lease_seconds = 3600;
// The node id is part of session ids (W-N@NODE) and lease members (NODE/TOKEN), so it keeps to
// characters neither uses as a separator.
constexpr std::size_t max_node_id_bytes = 64;

bool is_node_id_character(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

// Why `id` cannot name a node; empty when it can.
std::string why_not_node_id(std::string_view id) {
    if (id.empty()) return "must not be empty";
    if (id.size() > max_node_id_bytes) {
        return "too long: " + std::to_string(id.size()) + " bytes, at most " +
               std::to_string(max_node_id_bytes);
    }
    const auto bad = std::find_if_not(id.begin(), id.end(), is_node_id_character);
    if (bad != id.end()) {
        return quote_for_message(id) + " holds " + quote_for_message(std::string(1, *bad)) +
               "; a node id has letters, digits, '.', '_' and '-'";
    }
    return {};
}

// Redis keys are binary-safe, but a blank or control byte in one makes it hard to type into
// redis-cli and to read in a log.
bool has_blank_or_control(std::string_view text) {
    return std::any_of(text.begin(), text.end(), [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return byte <= 0x20 || byte == 0x7F;
    });
}

std::string host_name() {
    std::array<char, HOST_NAME_MAX + 1> name{};
    if (gethostname(name.data(), name.size()) != 0) return {};
    name.back() = '\0';
    return name.data();
}

}  // namespace

void Loader::load_fleet(const MapEntry& entry) {
    if (!yaml_.is_section(entry)) return;
    const auto fields = yaml_.entries_of(entry.value, entry.path, fleet_keys);
    const bool redis_given = std::any_of(fields.begin(), fields.end(),
                                         [](const MapEntry& f) { return f.name == "redis"; });
    bool node_id_given = false;
    Fleet& fleet = config_.fleet;
    for (const auto& field : fields) {
        if (!redis_given) {
            yaml_.report(field.key_line, field.path,
                         "needs fleet.redis (without it this node runs on its own)");
            continue;
        }
        if (field.name == "advertise" || field.name == "advertise_tls") {
            load_fleet_addresses(field,
                                 field.name == "advertise" ? fleet.advertise : fleet.advertise_tls);
            continue;
        }
        if (field.name == "lease_seconds") {
            if (const auto s = seconds_of(field, min_lease_seconds, max_lease_seconds, "")) {
                fleet.lease_seconds = *s;
            }
            continue;
        }
        if (field.name == "allocate_wait_ms" || field.name == "redirect_above" ||
            field.name == "usage_stream_max") {
            const bool wait = field.name == "allocate_wait_ms";
            const std::uint32_t min = field.name == "redirect_above" ? 0 : 1;
            const std::uint32_t max = wait ? max_allocate_wait_ms : any_u32;
            const auto text =
                yaml_.scalar_of(field, wait ? "a number of milliseconds" : "a number");
            if (!text) continue;
            const auto value = parse_unsigned(*text, max);
            if (!value || *value < min) {
                yaml_.report(field.line, field.path,
                             std::string("expected a whole number ") +
                                 (wait ? "of milliseconds " : "") + "from " + std::to_string(min) +
                                 " to " + std::to_string(max) + ", got " +
                                 quote_for_message(*text));
                continue;
            }
            (wait                             ? fleet.allocate_wait_ms
             : field.name == "redirect_above" ? fleet.redirect_above
                                              : fleet.usage_stream_max) = *value;
            continue;
        }
        const auto text = yaml_.scalar_of(field);
        if (!text) continue;
        if (field.name == "redis") {
            if (text->empty()) {
                yaml_.report(field.line, field.path,
                             "must not be empty; leave fleet out for a node on its own");
                continue;
            }
            auto endpoint = parse_redis_url(*text);
            if (!endpoint.value) {
                yaml_.report(field.line, field.path, endpoint.error);
                continue;
            }
            fleet.redis = std::move(*endpoint.value);
            fleet.redis_url = masked_redis_url(*text);
        } else if (field.name == "node_id") {
            node_id_given = true;
            if (auto why = why_not_node_id(*text); !why.empty()) {
                yaml_.report(field.line, field.path, why);
                continue;
            }
            fleet.node_id = *text;
        } else if (field.name == "tls_domain") {
            // Empty = no ALTERNATE-DOMAIN, the default.
            if (text->empty()) continue;
            std::string name = lowercase(*text);
            if (is_address_literal(name)) {
                yaml_.report(field.line, field.path,
                             quote_for_message(name) +
                                 " is an IP address; ALTERNATE-DOMAIN carries the host name the "
                                 "certificate is for");
                continue;
            }
            if (name.starts_with("*")) {
                yaml_.report(field.line, field.path,
                             quote_for_message(name) +
                                 " is a wildcard; give this node's own name, as a client checks "
                                 "it against the certificate");
                continue;
            }
            if (auto why = why_not_host_name(name); !why.empty()) {
                yaml_.report(field.line, field.path, why);
                continue;
            }
            fleet.tls_domain = std::move(name);
        } else if (field.name == "on_store_failure") {
            if (*text == to_string(StoreFailure::local)) {
                fleet.on_store_failure = StoreFailure::local;
            } else if (*text == to_string(StoreFailure::refuse)) {
                fleet.on_store_failure = StoreFailure::refuse;
            } else {
                yaml_.report(
                    field.line, field.path,
                    "unknown value " + quote_for_message(*text) + " (expected local or refuse)");
            }
        } else if (field.name == "usage_stream") {
            // Empty = no stream, the default.
            if (has_blank_or_control(*text)) {
                yaml_.report(field.line, field.path,
                             quote_for_message(*text) +
                                 " holds a blank or control character; a stream key has none");
                continue;
            }
            fleet.usage_stream = *text;
        } else if (field.name == "key_prefix") {
            if (text->empty()) {
                // Without a prefix the fleet's keys mix with whatever else the database holds.
                yaml_.report(field.line, field.path, "must not be empty, e.g. \"tern:\"");
                continue;
            }
            if (has_blank_or_control(*text)) {
                yaml_.report(field.line, field.path,
                             quote_for_message(*text) +
                                 " holds a blank or control character; a key prefix has none");
                continue;
            }
            fleet.key_prefix = *text;
        }
    }
    if (fleet.redis && !node_id_given) {
        // Host names are unique within most fleets already, and rarely need more than this.
        std::string name = host_name();
        if (auto why = why_not_node_id(name); !why.empty()) {
            yaml_.report(entry.key_line, entry.path,
                         "this host's name " + quote_for_message(name) +
                             " cannot be the node id (" + why + "); set fleet.node_id");
        } else {
            fleet.node_id = std::move(name);
        }
    }
}

void Loader::load_fleet_addresses(const MapEntry& entry, std::vector<TransportAddress>& out) {
    const auto items = yaml_.string_list_of(entry);
    if (!items) return;
    std::map<std::string, std::string, std::less<>> path_of;
    for (const auto& item : *items) {
        const auto address = parse_socket_address(item.text, 1);
        if (!address.value) {
            yaml_.report(item.line, item.path, address.error);
            continue;
        }
        const TransportAddress advertised = address.value->unmapped();
        if (std::all_of(advertised.bytes.begin(), advertised.bytes.end(),
                        [](std::uint8_t b) { return b == 0; })) {
            yaml_.report(item.line, item.path,
                         quote_for_message(item.text) +
                             " has the unspecified address; give the address clients reach "
                             "this node on");
            continue;
        }
        const auto [earlier, inserted] = path_of.try_emplace(advertised.to_string(), item.path);
        if (!inserted) {
            yaml_.report(item.line, item.path, "duplicate of " + earlier->second);
            continue;
        }
        out.push_back(advertised);
    }
}

}  // namespace tern::config
