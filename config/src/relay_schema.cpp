// The relay section of the schema: relay and external addresses, ports, peer filters, the
// kernel fast path.
#include "config_schema.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <map>

#include "tern/config/parse.hpp"

namespace tern::config {

namespace {

constexpr std::array<std::string_view, 11> relay_keys = {"addresses",
                                                         "external_addresses",
                                                         "external_address",
                                                         "ports",
                                                         "allow_peers",
                                                         "deny_peers",
                                                         "default_family",
                                                         "channel_numbers",
                                                         "kernel_fast_path",
                                                         "kernel_fast_path_interfaces",
                                                         "kernel_fast_path_max_channels"};
constexpr std::array<RelayFamily, 2> relay_families = {RelayFamily::ipv4, RelayFamily::client};
constexpr std::array<KernelFastPath, 3> fast_path_modes = {
    KernelFastPath::off, KernelFastPath::auto_, KernelFastPath::on};
// One map entry per channel and direction: 16 Mi of them is already gigabytes of kernel memory.
constexpr std::uint32_t max_fast_path_channels = 16u << 20;
// Linux's IFNAMSIZ less the terminating NUL.
constexpr std::size_t max_interface_name = 15;

// Why `name` cannot be a Linux interface name (the kernel's dev_valid_name), or empty.
std::string why_not_interface_name(std::string_view name) {
    if (name.empty()) return "an interface name must not be empty";
    if (name.size() > max_interface_name) {
        return quote_for_message(name) + " is longer than " + std::to_string(max_interface_name) +
               " bytes, the longest interface name Linux allows";
    }
    const bool bad_char = std::any_of(name.begin(), name.end(), [](char c) {
        return c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c)) != 0;
    });
    if (bad_char || name == "." || name == "..") {
        return quote_for_message(name) +
               " is not an interface name (no '/', ':' or whitespace, not . or ..)";
    }
    return {};
}

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
        } else if (field.name == "kernel_fast_path") {
            const auto text = yaml_.scalar_of(field);
            if (!text) continue;
            const auto mode = std::find_if(fast_path_modes.begin(), fast_path_modes.end(),
                                           [&](KernelFastPath k) { return *text == to_string(k); });
            if (mode == fast_path_modes.end()) {
                yaml_.report(
                    field.line, field.path,
                    "unknown mode " + quote_for_message(*text) + " (expected off, auto or on)");
                continue;
            }
            config_.relay.kernel_fast_path = *mode;
        } else if (field.name == "kernel_fast_path_interfaces") {
            load_fast_path_interfaces(field);
        } else if (field.name == "kernel_fast_path_max_channels") {
            const auto text = yaml_.scalar_of(field, "a number");
            if (!text) continue;
            const auto count = parse_unsigned(*text, max_fast_path_channels);
            if (!count || *count == 0) {
                yaml_.report(field.line, field.path,
                             "expected a whole number from 1 to " +
                                 std::to_string(max_fast_path_channels) + ", got " +
                                 quote_for_message(*text));
                continue;
            }
            config_.relay.kernel_fast_path_max_channels = *count;
        }
    }
}

void Loader::load_fast_path_interfaces(const MapEntry& entry) {
    const auto items = yaml_.string_list_of(entry);
    if (!items) return;
    std::map<std::string, std::string, std::less<>> path_of_name;
    for (const auto& item : *items) {
        if (auto why = why_not_interface_name(item.text); !why.empty()) {
            yaml_.report(item.line, item.path, why);
            continue;
        }
        const auto [earlier, inserted] = path_of_name.try_emplace(item.text, item.path);
        if (!inserted) {
            yaml_.report(item.line, item.path, "duplicate of " + earlier->second);
            continue;
        }
        config_.relay.kernel_fast_path_interfaces.push_back(item.text);
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
