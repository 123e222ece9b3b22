// The config file's schema: each key's meaning, type, range and default, checked in one walk
// over the YAML. The Loader's sections live in config_schema.cpp (top level, listen, tls,
// threads, log, metrics), auth_schema.cpp, relay_schema.cpp and limits_schema.cpp.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <optional>
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

// Walks one document into a Config; every problem goes to yaml_, so a Config exists only when
// there was none. Used once.
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
    std::filesystem::path base_directory_;
    Config config_;
    bool listen_given_ = false;
    bool tls_given_ = false;
    // Where the first tls:// listener was written, for "needs a tls section".
    std::optional<ListItem> first_tls_listener_;
};

}  // namespace tern::config
