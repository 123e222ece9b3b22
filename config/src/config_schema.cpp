// The top level of the schema (realm, software, listen, threads, log, metrics) and the
// checks across sections; see config_schema.hpp.
#include "config_schema.hpp"

#include <algorithm>
#include <array>
#include <map>

#include "tern/config/parse.hpp"

namespace tern::config {

namespace {

constexpr unsigned max_threads = 256;

constexpr std::array<std::string_view, 15> top_level_keys = {
    "realm",   "listen", "tls",     "edge",  "proxy_protocol", "auth",  "relay",   "limits",
    "threads", "log",    "metrics", "admin", "usage_records",  "fleet", "software"};
constexpr std::array<std::string_view, 2> log_keys = {"level", "format"};
constexpr std::array<std::string_view, 1> metrics_keys = {"listen"};

// Values of LogLevel in declaration order, with their spelling in the file.
constexpr std::array<LogLevel, 7> log_levels = {
    LogLevel::trace, LogLevel::debug,    LogLevel::info, LogLevel::warn,
    LogLevel::error, LogLevel::critical, LogLevel::off};
constexpr std::array<LogFormat, 2> log_formats = {LogFormat::text, LogFormat::json};

}  // namespace

std::span<const std::string_view> top_level_key_names() noexcept {
    return top_level_keys;
}

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
            } else if (entry.name == "edge") {
                load_edge(entry);
            } else if (entry.name == "proxy_protocol") {
                load_proxy_protocol(entry);
            } else if (entry.name == "admin") {
                load_admin(entry);
            } else if (entry.name == "usage_records") {
                load_usage_records(entry);
            } else if (entry.name == "fleet") {
                load_fleet(entry);
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
    check_edge_and_proxy_protocol();
    check_admin();
}

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
