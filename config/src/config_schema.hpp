// The config file's schema: each key's meaning, type, range and default, checked in one walk
// over the YAML. The Loader's sections live in config_schema.cpp (top level, listen, threads,
// log, metrics), tls_schema.cpp, auth_schema.cpp, relay_schema.cpp, limits_schema.cpp and
// edge_schema.cpp (edge, proxy_protocol), admin_schema.cpp (admin, usage_records) and
// fleet_schema.cpp.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config_files.hpp"
#include "tern/config/config.hpp"
#include "yaml_diagnostics.hpp"

namespace tern::config {

// Decimal digits only; nullopt also when larger than `limit`.
std::optional<std::uint32_t> parse_unsigned(std::string_view text, std::uint32_t limit);

// The keys of the top level, in schema order (config_schema.cpp).
std::span<const std::string_view> top_level_key_names() noexcept;

// Walks one document into a Config; every problem goes to yaml_, so a Config exists only when
// there was none. Used once.
class Loader {
public:
    // `off` for the probes that look up where a misplaced key belongs (yaml_hints.cpp), which
    // must not look up hints of their own.
    enum class Hints : std::uint8_t { on, off };
    explicit Loader(std::string_view source_name, Hints hints = Hints::on)
        : yaml_(source_name), base_directory_(anchor_directory(source_name)) {
        if (hints == Hints::on) yaml_.enable_hints();
    }

    LoadResult load(std::string_view yaml) {
        LoadResult result;
        result.errors = yaml_.check(yaml, [this](const YAML::Node& root) { load_root(root); });
        config_.key_lines.lines = yaml_.take_key_lines();
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
    // tls_schema.cpp: the tls section. tls_file_of resolves and checks one file path (nullopt
    // after reporting); load_certificates returns how many entries tls.certificates wrote,
    // refused ones included.
    void load_tls(const MapEntry& entry);
    std::optional<std::string> tls_file_of(const MapEntry& entry);
    std::size_t load_certificates(const MapEntry& entry, std::vector<CertificatePair>& out);
    void load_auth(const MapEntry& entry);
    void load_users(const MapEntry& entry);
    void load_secrets_file(const MapEntry& entry);
    void load_relay(const MapEntry& entry);
    void load_relay_addresses(const MapEntry& entry);
    void load_external_addresses(const MapEntry& entry);
    void load_cidrs(const MapEntry& entry, std::vector<Cidr>& out);
    void load_fast_path_interfaces(const MapEntry& entry);
    void load_limits(const MapEntry& entry);
    void load_threads(const MapEntry& entry);
    void load_log(const MapEntry& entry);
    void load_metrics(const MapEntry& entry);
    void load_edge(const MapEntry& entry);
    void load_turn_names(const MapEntry& entry);
    void load_proxy_protocol(const MapEntry& entry);
    // admin_schema.cpp: admin (the token file, read here) and usage_records.
    void load_admin(const MapEntry& entry);
    void load_usage_records(const MapEntry& entry);
    void check_admin();  // against metrics.listen; part of check_across_keys
    // fleet_schema.cpp: the fleet section; load_fleet_addresses reads fleet.advertise and
    // fleet.advertise_tls.
    void load_fleet(const MapEntry& entry);
    void load_fleet_addresses(const MapEntry& entry, std::vector<TransportAddress>& out);
    void check_across_keys();
    void check_edge_and_proxy_protocol();  // against the listeners; part of check_across_keys

    YamlDiagnostics yaml_;
    std::filesystem::path base_directory_;
    Config config_;
    bool listen_given_ = false;
    bool tls_given_ = false;
    // Where the first tls:// listener was written, for "needs a tls section".
    std::optional<ListItem> first_tls_listener_;
    // Where edge.fallback (when a string) and a non-empty proxy_protocol.trusted were written,
    // for the checks against the listeners.
    std::optional<ListItem> edge_fallback_;
    std::optional<ListItem> proxy_protocol_trusted_;
    std::optional<ListItem> admin_token_file_;  // where admin.token_file was written
};

}  // namespace tern::config
