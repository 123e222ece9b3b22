// YAML text -> validated Config: each key's meaning, type, range and default. The document is
// walked once, every problem is collected (yaml_diagnostics), and only then does a Config exist.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "config_files.hpp"
#include "tern/config/config.hpp"
#include "tern/config/parse.hpp"
#include "yaml_diagnostics.hpp"

namespace tern::config {

namespace {

namespace fs = std::filesystem;

constexpr unsigned max_threads = 256;
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
constexpr std::uint32_t min_nonce_lifetime = 30;
constexpr std::uint32_t max_nonce_lifetime = 3600;
// A REST credential must live long enough to be used (a minute); one good for more than a year
// would outlast any sensible rotation of the secret that signed it.
constexpr std::uint32_t min_max_credential_lifetime = 60;
constexpr std::uint32_t max_max_credential_lifetime = 31536000;
// Before its first authenticated request a connection gets at most an hour.
constexpr std::uint32_t max_unauthenticated_timeout = 3600;
// Shorter than a /32 (a typical ISP's whole allocation) would lump unrelated networks together.
constexpr std::uint32_t min_ipv6_source_prefix = 32;
constexpr std::uint32_t max_ipv6_source_prefix = 128;
constexpr std::size_t min_nonce_secret_bytes = 16;

constexpr std::array<std::string_view, 10> top_level_keys = {
    "realm", "listen", "tls", "auth", "relay", "limits", "threads", "log", "metrics", "software"};
constexpr std::array<std::string_view, 2> tls_keys = {"certificate", "private_key"};
constexpr std::array<std::string_view, 7> auth_keys = {
    "secrets",        "secrets_file",           "users", "expiry", "nonce_secret",
    "nonce_lifetime", "max_credential_lifetime"};
constexpr std::array<std::string_view, 2> user_keys = {"password", "key"};
constexpr std::array<std::string_view, 7> relay_keys = {
    "addresses",  "external_addresses", "ports",          "allow_peers",
    "deny_peers", "default_family",     "channel_numbers"};
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
constexpr std::array<CredentialExpiry, 3> credential_expiries = {
    CredentialExpiry::allocate, CredentialExpiry::request, CredentialExpiry::strict};
constexpr std::array<RelayFamily, 2> relay_families = {RelayFamily::ipv4, RelayFamily::client};
constexpr std::array<std::string_view, 2> log_keys = {"level", "format"};
constexpr std::array<std::string_view, 1> metrics_keys = {"listen"};

// Values of LogLevel in declaration order, with their spelling in the file.
constexpr std::array<LogLevel, 7> log_levels = {
    LogLevel::trace, LogLevel::debug,    LogLevel::info, LogLevel::warn,
    LogLevel::error, LogLevel::critical, LogLevel::off};
constexpr std::array<LogFormat, 2> log_formats = {LogFormat::text, LogFormat::json};

// Decimal digits only; nullopt also when larger than `limit`.
std::optional<std::uint32_t> parse_unsigned(std::string_view text, std::uint32_t limit) {
    if (text.empty() || text.size() > 10) return std::nullopt;
    std::uint64_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (value > limit) return std::nullopt;
    return static_cast<std::uint32_t>(value);
}

std::optional<std::array<std::uint8_t, 16>> parse_md5_hex(std::string_view text) {
    std::array<std::uint8_t, 16> key{};
    if (text.size() != key.size() * 2) return std::nullopt;
    const auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < key.size(); ++i) {
        const int high = nibble(text[2 * i]);
        const int low = nibble(text[2 * i + 1]);
        if (high < 0 || low < 0) return std::nullopt;
        key[i] = static_cast<std::uint8_t>(high * 16 + low);
    }
    return key;
}

bool is_unspecified(const TransportAddress& address) {
    return std::all_of(address.bytes.begin(), address.bytes.end(),
                       [](std::uint8_t b) { return b == 0; });
}

class Loader {
public:
    explicit Loader(std::string_view source_name)
        : yaml_(source_name), base_directory_(anchor_directory(source_name)) {}

    LoadResult load(std::string_view yaml) {
        LoadResult result;
        result.errors = yaml_.check(yaml, [this](const YAML::Node& root) { load_root(root); });
        if (result.errors.empty()) result.config = std::move(config_);
        return result;
    }

private:
    // A whole number of seconds in [min, max], or nullopt after reporting; `max_note` follows
    // the maximum in the message (" (a year)").
    std::optional<std::uint32_t> seconds_of(const MapEntry& entry, std::uint32_t min,
                                            std::uint32_t max, std::string_view max_note);
    std::optional<TransportAddress> specific_ip_of(std::string_view text, int line,
                                                   const std::string& path);

    void load_root(const YAML::Node& root);
    void load_realm(const MapEntry& entry);
    void load_software(const MapEntry& entry);
    void load_listen(const MapEntry& entry);
    void load_tls(const MapEntry& entry);
    void load_auth(const MapEntry& entry);
    void load_users(const MapEntry& entry);
    void load_secrets_file(const MapEntry& entry);
    void load_relay(const MapEntry& entry);
    void load_relay_addresses(const MapEntry& entry);
    void load_external_addresses(const MapEntry& entry);
    void load_cidrs(const MapEntry& entry, std::vector<Cidr>& out);
    void load_limits(const MapEntry& entry);
    void load_threads(const MapEntry& entry);
    void load_log(const MapEntry& entry);
    void load_metrics(const MapEntry& entry);
    void check_across_keys();

    YamlDiagnostics yaml_;
    fs::path base_directory_;
    Config config_;
    bool listen_given_ = false;
    bool tls_given_ = false;
    // Where the first tls:// listener was written, for "needs a tls section".
    std::optional<ListItem> first_tls_listener_;
};

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

void Loader::load_root(const YAML::Node& root) {
    if (!root.IsNull() && !root.IsMap()) {
        yaml_.report(
            yaml_.line_of(root, 1), {},
            std::string("the configuration must be a map of keys such as realm and listen, "
                        "got ") +
                kind_of(root));
        return;
    }
    if (root.IsMap()) {
        for (const auto& entry : yaml_.entries_of(root, {}, top_level_keys)) {
            if (entry.name == "realm") {
                load_realm(entry);
            } else if (entry.name == "listen") {
                load_listen(entry);
            } else if (entry.name == "tls") {
                load_tls(entry);
            } else if (entry.name == "auth") {
                load_auth(entry);
            } else if (entry.name == "relay") {
                load_relay(entry);
            } else if (entry.name == "limits") {
                load_limits(entry);
            } else if (entry.name == "threads") {
                load_threads(entry);
            } else if (entry.name == "log") {
                load_log(entry);
            } else if (entry.name == "metrics") {
                load_metrics(entry);
            } else if (entry.name == "software") {
                load_software(entry);
            }
        }
    }
    check_across_keys();
}

void Loader::load_realm(const MapEntry& entry) {
    const auto realm = yaml_.scalar_of(entry);
    if (!realm) return;
    if (realm->empty()) {
        yaml_.report(entry.line, entry.path, "must not be empty");
    } else if (realm->size() > max_realm_bytes) {
        yaml_.report(entry.line, entry.path,
                     "too long: " + std::to_string(realm->size()) + " bytes, at most " +
                         std::to_string(max_realm_bytes) + " are allowed");
    }
    config_.realm = *realm;
}

void Loader::load_software(const MapEntry& entry) {
    const auto software = yaml_.scalar_of(entry);
    if (!software) return;
    if (software->size() > max_software_bytes) {
        yaml_.report(entry.line, entry.path,
                     "too long: " + std::to_string(software->size()) + " bytes, at most " +
                         std::to_string(max_software_bytes) + " are allowed");
    }
    config_.software = *software;
}

void Loader::load_listen(const MapEntry& entry) {
    listen_given_ = true;
    const auto items = yaml_.string_list_of(entry);
    if (!items) return;
    if (entry.value.size() == 0) {
        yaml_.report(entry.line, entry.path,
                     "needs at least one listener such as udp://0.0.0.0:3478");
        return;
    }
    // Who holds each socket so far: UDP and stream (TCP and TLS) ports are separate, so the key
    // is the socket type plus address and port. Maps, not pairwise checks: a 1 MiB file can
    // list a great many listeners.
    std::map<std::string, std::pair<Transport, std::string>, std::less<>> owner_of_socket;
    for (const auto& item : *items) {
        const auto listener = parse_listener_url(item.text);
        if (!listener.value) {
            yaml_.report(item.line, item.path, listener.error);
            continue;
        }
        const Transport transport = listener.value->transport;
        if (transport == Transport::tls && !first_tls_listener_) first_tls_listener_ = item;
        // Port 0 asks the kernel for a fresh port each time, so it never collides.
        if (listener.value->address.port != 0) {
            const std::string socket =
                std::string(transport == Transport::udp ? "udp " : "stream ") +
                listener.value->address.to_string();
            const auto [owner, inserted] =
                owner_of_socket.try_emplace(socket, transport, item.path);
            if (!inserted) {
                const auto& [earlier_transport, earlier_path] = owner->second;
                yaml_.report(item.line, item.path,
                             earlier_transport == transport
                                 ? "duplicate of " + earlier_path
                                 : "tcp and tls cannot share a port; " + earlier_path +
                                       " already uses " + listener.value->address.to_string());
                continue;
            }
        }
        config_.listen.push_back(*listener.value);
    }
}

void Loader::load_tls(const MapEntry& entry) {
    if (entry.value.IsNull()) return;
    // Even a malformed section counts as given, so that tls:// listeners are not blamed too.
    tls_given_ = true;
    if (!yaml_.is_section(entry)) return;
    TlsFiles files;
    bool certificate_given = false;
    bool private_key_given = false;
    for (const auto& field : yaml_.entries_of(entry.value, entry.path, tls_keys)) {
        const bool is_certificate = field.name == "certificate";
        (is_certificate ? certificate_given : private_key_given) = true;
        const auto text = yaml_.scalar_of(field);
        if (!text) continue;
        if (text->empty()) {
            yaml_.report(field.line, field.path, "must not be empty");
            continue;
        }
        std::string path = resolved_path(base_directory_, *text);
        if (auto why = why_unreadable(path); !why.empty())
            yaml_.report(field.line, field.path, why);
        (is_certificate ? files.certificate : files.private_key) = std::move(path);
    }
    if (!certificate_given) {
        yaml_.report(entry.key_line, entry.path + ".certificate",
                     "missing; the tls section needs certificate and private_key");
    }
    if (!private_key_given) {
        yaml_.report(entry.key_line, entry.path + ".private_key",
                     "missing; the tls section needs certificate and private_key");
    }
    config_.tls = std::move(files);
}

std::optional<std::uint32_t> Loader::seconds_of(const MapEntry& entry, std::uint32_t min,
                                                std::uint32_t max, std::string_view max_note) {
    const auto text = yaml_.scalar_of(entry, "a number of seconds");
    if (!text) return std::nullopt;
    const auto seconds = parse_unsigned(*text, max);
    if (!seconds || *seconds < min) {
        yaml_.report(entry.line, entry.path,
                     "expected a whole number of seconds from " + std::to_string(min) + " to " +
                         std::to_string(max) + std::string(max_note) + ", got " +
                         quote_for_message(*text));
        return std::nullopt;
    }
    return seconds;
}

void Loader::load_auth(const MapEntry& entry) {
    if (!yaml_.is_section(entry)) return;
    for (const auto& field : yaml_.entries_of(entry.value, entry.path, auth_keys)) {
        if (field.name == "users") {
            load_users(field);
            continue;
        }
        if (field.name == "secrets_file") {
            load_secrets_file(field);
            continue;
        }
        if (field.name == "expiry") {
            const auto text = yaml_.scalar_of(field);
            if (!text) continue;
            const auto policy =
                std::find_if(credential_expiries.begin(), credential_expiries.end(),
                             [&](CredentialExpiry e) { return *text == to_string(e); });
            if (policy == credential_expiries.end()) {
                yaml_.report(field.line, field.path,
                             "unknown policy " + quote_for_message(*text) +
                                 " (expected allocate, request or strict)");
                continue;
            }
            config_.auth.expiry = *policy;
            continue;
        }
        if (field.name == "nonce_secret") {
            // The value is secret: errors give its length, never its text.
            if (!field.value.IsScalar()) {
                yaml_.report(field.line, field.path,
                             std::string("expected a string, got ") + kind_of(field.value));
                continue;
            }
            const std::string& secret = field.value.Scalar();
            if (secret.size() < min_nonce_secret_bytes) {
                yaml_.report(field.line, field.path,
                             "too short: " + std::to_string(secret.size()) + " bytes, at least " +
                                 std::to_string(min_nonce_secret_bytes) + " are needed");
                continue;
            }
            config_.auth.nonce_secret = secret;
            continue;
        }
        if (field.name == "nonce_lifetime") {
            if (const auto s = seconds_of(field, min_nonce_lifetime, max_nonce_lifetime, "")) {
                config_.auth.nonce_lifetime = *s;
            }
            continue;
        }
        if (field.name == "max_credential_lifetime") {
            if (const auto s = seconds_of(field, min_max_credential_lifetime,
                                          max_max_credential_lifetime, " (a year)")) {
                config_.auth.max_credential_lifetime = *s;
            }
            continue;
        }
        const auto secrets = yaml_.string_list_of(field);
        if (!secrets) continue;
        for (const auto& secret : *secrets) {
            if (secret.text.empty()) {
                yaml_.report(secret.line, secret.path, "a secret must not be empty");
                continue;
            }
            config_.auth.secrets.push_back(secret.text);
        }
    }
    // The same secret in auth.secrets and the file (likely during a move from one to the other)
    // would only cost a second HMAC per request: keep the first of each.
    std::set<std::string, std::less<>> seen;
    std::erase_if(config_.auth.secrets,
                  [&seen](const std::string& secret) { return !seen.insert(secret).second; });
}

void Loader::load_secrets_file(const MapEntry& entry) {
    const auto text = yaml_.scalar_of(entry, "a file name");
    if (!text) return;
    if (text->empty()) {
        yaml_.report(entry.line, entry.path, "must not be empty");
        return;
    }
    const std::string path = resolved_path(base_directory_, *text);
    config_.auth.secrets_file = path;
    auto file = read_secrets_file(path);
    for (auto& problem : file.problems) yaml_.report(entry.line, entry.path, std::move(problem));
    for (auto& secret : file.secrets) config_.auth.secrets.push_back(std::move(secret));
}

void Loader::load_users(const MapEntry& entry) {
    if (!yaml_.is_section(entry)) return;
    for (const auto& user_entry : yaml_.entries_of(entry.value, entry.path, {})) {
        if (user_entry.name.empty()) {
            yaml_.report(user_entry.key_line, user_entry.path, "a user name must not be empty");
            continue;
        }
        if (!user_entry.value.IsMap()) {
            yaml_.report(user_entry.line, user_entry.path,
                         std::string("expected a map with password or key, got ") +
                             kind_of(user_entry.value));
            continue;
        }
        StaticUser user;
        user.name = user_entry.name;
        bool password_given = false;
        bool key_given = false;
        const std::size_t errors_before = yaml_.error_count();
        for (const auto& field : yaml_.entries_of(user_entry.value, user_entry.path, user_keys)) {
            const auto text = yaml_.scalar_of(field);
            if (field.name == "password") {
                password_given = true;
                if (!text) continue;
                if (text->empty()) {
                    yaml_.report(field.line, field.path, "must not be empty");
                    continue;
                }
                user.password = *text;
            } else {
                key_given = true;
                if (!text) continue;
                user.key = parse_md5_hex(*text);
                if (!user.key) {
                    yaml_.report(field.line, field.path,
                                 "expected 32 hex digits (MD5 of user:realm:password), got " +
                                     std::to_string(text->size()) + " characters" +
                                     (text->size() == 32 ? " that are not all hex digits" : ""));
                }
            }
        }
        if (password_given && key_given) {
            yaml_.report(user_entry.key_line, user_entry.path,
                         "give either password or key, not both");
        } else if (!password_given && !key_given && yaml_.error_count() == errors_before) {
            // (A misspelt password or key has been reported already; this would repeat it.)
            yaml_.report(user_entry.key_line, user_entry.path, "needs a password or a key");
        }
        config_.auth.users.push_back(std::move(user));
    }
}

void Loader::load_relay(const MapEntry& entry) {
    if (!yaml_.is_section(entry)) return;
    for (const auto& field : yaml_.entries_of(entry.value, entry.path, relay_keys)) {
        if (field.name == "addresses") {
            load_relay_addresses(field);
        } else if (field.name == "external_addresses") {
            load_external_addresses(field);
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

void Loader::load_threads(const MapEntry& entry) {
    const auto text = yaml_.scalar_of(entry, "auto or a number");
    if (!text) return;
    if (*text == "auto") {
        config_.threads = 0;
        return;
    }
    const auto count = parse_unsigned(*text, max_threads);
    if (!count || *count == 0) {
        yaml_.report(entry.line, entry.path,
                     "expected auto or a number from 1 to " + std::to_string(max_threads) +
                         ", got " + quote_for_message(*text));
        return;
    }
    config_.threads = *count;
}

void Loader::load_log(const MapEntry& entry) {
    if (!yaml_.is_section(entry)) return;
    for (const auto& field : yaml_.entries_of(entry.value, entry.path, log_keys)) {
        const auto text = yaml_.scalar_of(field);
        if (!text) continue;
        if (field.name == "level") {
            const auto level = std::find_if(log_levels.begin(), log_levels.end(),
                                            [&](LogLevel l) { return *text == to_string(l); });
            if (level == log_levels.end()) {
                yaml_.report(field.line, field.path,
                             "unknown level " + quote_for_message(*text) +
                                 " (expected trace, debug, info, warn, error, critical or off)");
                continue;
            }
            config_.log.level = *level;
        } else {
            const auto format = std::find_if(log_formats.begin(), log_formats.end(),
                                             [&](LogFormat f) { return *text == to_string(f); });
            if (format == log_formats.end()) {
                yaml_.report(
                    field.line, field.path,
                    "unknown format " + quote_for_message(*text) + " (expected text or json)");
                continue;
            }
            config_.log.format = *format;
        }
    }
}

void Loader::load_metrics(const MapEntry& entry) {
    if (!yaml_.is_section(entry)) return;
    for (const auto& field : yaml_.entries_of(entry.value, entry.path, metrics_keys)) {
        const auto text = yaml_.scalar_of(field);
        if (!text) continue;
        const auto address = parse_socket_address(*text, 1);
        if (!address.value) {
            yaml_.report(field.line, field.path, address.error);
            continue;
        }
        config_.metrics.listen = *address.value;
    }
}

void Loader::check_across_keys() {
    if (!listen_given_) {
        // The embedded default is the one place the default listeners are written down.
        static const std::vector<Listener> default_listeners = [] {
            auto loaded = load_embedded_default();
            return loaded.config ? loaded.config->listen : std::vector<Listener>{};
        }();
        config_.listen = default_listeners;
    }
    if (first_tls_listener_ && !tls_given_) {
        yaml_.report(first_tls_listener_->line, first_tls_listener_->path,
                     "a tls:// listener needs the tls section (certificate and private_key)");
    }
}

}  // namespace

LoadResult load_config_text(std::string_view yaml, std::string_view source_name) {
    try {
        return Loader(source_name).load(yaml);
    } catch (...) {
        // Only reachable when memory runs out while recording an error.
        LoadResult result;
        result.errors.push_back(ConfigError{std::string(source_name), 0, {}, "out of memory"});
        return result;
    }
}

}  // namespace tern::config
