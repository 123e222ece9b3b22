// The relay section of the schema: relay and external addresses, ports, peer filters.
#include "config_schema.hpp"

#include <algorithm>
#include <array>
#include <map>

#include "tern/config/parse.hpp"

namespace tern::config {

namespace {

constexpr std::array<std::string_view, 8> relay_keys = {
    "addresses",   "external_addresses", "external_address", "ports",
    "allow_peers", "deny_peers",         "default_family",   "channel_numbers"};
constexpr std::array<RelayFamily, 2> relay_families = {RelayFamily::ipv4, RelayFamily::client};

bool is_unspecified(const TransportAddress& address) {
    return std::all_of(address.bytes.begin(), address.bytes.end(),
                       [](std::uint8_t b) { return b == 0; });
}

}  // namespace

std::optional<TransportAddress> Loader::specific_ip_of(std::string_view text, int line,
                                                       const std::string& path) {
    auto address = parse_ip_address(text);
    if (!address.value) {
        yaml_.report(line, path, address.error);
        return std::nullopt;
    }
    if (is_unspecified(*address.value)) {
        yaml_.report(
            line, path,
            quote_for_message(text) + " is the unspecified address; give the address itself");
        return std::nullopt;
    }
    return address.value;
}

void Loader::load_relay(const MapEntry& entry) {
    if (!yaml_.is_section(entry)) return;
    const auto fields = yaml_.entries_of(entry.value, entry.path, relay_keys);
    const auto given = [&](std::string_view name) {
        return std::find_if(fields.begin(), fields.end(),
                            [&](const MapEntry& f) { return f.name == name; });
    };
    if (const auto one = given("external_address"), many = given("external_addresses");
        one != fields.end() && many != fields.end()) {
        yaml_.report(one->key_line, one->path,
                     "give either relay.external_address or relay.external_addresses (line " +
                         std::to_string(many->key_line) +
                         "), not both (the one address is shorthand for a map of them)");
    }
    for (const auto& field : fields) {
        if (field.name == "addresses") {
            load_relay_addresses(field);
        } else if (field.name == "external_addresses") {
            load_external_addresses(field);
        } else if (field.name == "external_address") {
            // Every relay address of its family, whichever the socket is bound on: a single
            // mapping from that family's unspecified address (relay_settings and the manager
            // read the unspecified internal address as "any").
            const auto text = yaml_.scalar_of(field);
            if (!text) continue;
            const auto external = specific_ip_of(*text, field.line, field.path);
            if (!external) continue;
            TransportAddress any;
            any.family = external->family;
            config_.relay.external_addresses.push_back(ExternalAddress{any, *external});
        } else if (field.name == "ports") {
            const auto text = yaml_.scalar_of(field);
            if (!text) continue;
            const auto range = parse_relay_port_range(*text);
            if (range.value) {
                config_.relay.ports = *range.value;
            } else {
                yaml_.report(field.line, field.path, range.error);
            }
        } else if (field.name == "allow_peers") {
            load_cidrs(field, config_.relay.allow_peers);
        } else if (field.name == "deny_peers") {
            load_cidrs(field, config_.relay.deny_peers);
        } else if (field.name == "default_family") {
            const auto text = yaml_.scalar_of(field);
            if (!text) continue;
            const auto family = std::find_if(relay_families.begin(), relay_families.end(),
                                             [&](RelayFamily f) { return *text == to_string(f); });
            if (family == relay_families.end()) {
                yaml_.report(
                    field.line, field.path,
                    "unknown family " + quote_for_message(*text) + " (expected ipv4 or client)");
                continue;
            }
            config_.relay.default_family = *family;
        } else if (field.name == "channel_numbers") {
            const auto text = yaml_.scalar_of(field);
            if (!text) continue;
            if (*text == to_string(ChannelNumbers::rfc8656)) {
                config_.relay.channel_numbers = ChannelNumbers::rfc8656;
            } else if (*text == to_string(ChannelNumbers::rfc5766)) {
                config_.relay.channel_numbers = ChannelNumbers::rfc5766;
            } else {
                yaml_.report(
                    field.line, field.path,
                    "unknown range " + quote_for_message(*text) + " (expected rfc8656 or rfc5766)");
            }
        }
    }
}

void Loader::load_relay_addresses(const MapEntry& entry) {
    const auto items = yaml_.string_list_of(entry);
    if (!items) return;
    std::map<std::string, std::string, std::less<>> path_of_address;
    for (const auto& item : *items) {
        const auto address = specific_ip_of(item.text, item.line, item.path);
        if (!address) continue;
        const auto [earlier, inserted] =
            path_of_address.try_emplace(address->ip_string(), item.path);
        if (!inserted) {
            yaml_.report(item.line, item.path, "duplicate of " + earlier->second);
            continue;
        }
        config_.relay.addresses.push_back(*address);
    }
}

void Loader::load_external_addresses(const MapEntry& entry) {
    if (!yaml_.is_section(entry)) return;
    for (const auto& mapping : yaml_.entries_of(entry.value, entry.path, {})) {
        const auto internal = specific_ip_of(mapping.name, mapping.key_line, mapping.path);
        const auto text = yaml_.scalar_of(mapping);
        if (!text) continue;
        const auto external = specific_ip_of(*text, mapping.line, mapping.path);
        if (!internal || !external) continue;
        if (internal->family != external->family) {
            yaml_.report(mapping.line, mapping.path,
                         "maps " + internal->ip_string() + " to " + external->ip_string() +
                             "; internal and external addresses must be of the same IP family");
            continue;
        }
        config_.relay.external_addresses.push_back(ExternalAddress{*internal, *external});
    }
}

void Loader::load_cidrs(const MapEntry& entry, std::vector<Cidr>& out) {
    const auto items = yaml_.string_list_of(entry);
    if (!items) return;
    for (const auto& item : *items) {
        const auto cidr = parse_cidr(item.text);
        if (cidr.value) {
            out.push_back(*cidr.value);
        } else {
            yaml_.report(item.line, item.path, cidr.error);
        }
    }
}

}  // namespace tern::config
