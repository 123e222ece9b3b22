// Where in a YAML document each problem lies: the dotted key and line of every error, "did you
// mean" for unknown keys, and yaml-cpp's own failures turned into errors. Private to config/.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tern/config/config.hpp"

namespace tern::config {

// One key of a map, with where it was written.
struct MapEntry {
    std::string name;  // the key as written
    std::string path;  // dotted path from the document root
    int key_line = 0;
    int line = 0;  // the value's line, or the key's when the value is empty
    YAML::Node value;
};

// One scalar of a list.
struct ListItem {
    std::string text;
    std::string path;  // "listen[2]"
    int line = 0;
};

// "a map", "a list", "a string", "nothing": what a node is, for "expected X, got Y".
const char* kind_of(const YAML::Node& node);

// The errors of one document, and node accessors that report a value of the wrong kind.
class YamlDiagnostics {
public:
    explicit YamlDiagnostics(std::string_view source_name) : source_(source_name) {}

    // Parses `yaml` and hands its root to `walk`. Returns every error, the walk's included, in
    // file order; a syntax error or too many errors end the walk. yaml-cpp's exceptions stay
    // inside; only running out of memory while reporting escapes.
    std::vector<ConfigError> check(std::string_view yaml,
                                   const std::function<void(const YAML::Node&)>& walk);

    // Unknown keys also get "it belongs under limits:" (yaml_hints.hpp); off by default.
    void enable_hints() noexcept { hints_ = true; }
    // The line of every key and list item the walk visited, by dotted path.
    std::map<std::string, int, std::less<>> take_key_lines() { return std::move(key_lines_); }

    // Records an error; beyond the limit, ends the walk instead.
    void report(int line, std::string key, std::string message);
    std::size_t error_count() const noexcept { return errors_.size(); }

    static int line_of(const YAML::Node& node, int fallback);
    // The keys of `map` under `path`; duplicates and keys not in `known` (unless it is empty)
    // are reported and left out.
    std::vector<MapEntry> entries_of(const YAML::Node& map, const std::string& path,
                                     std::span<const std::string_view> known);
    // For sections: true when `entry` holds a map; an empty value counts as an absent section.
    bool is_section(const MapEntry& entry);
    std::optional<std::string> scalar_of(const MapEntry& entry,
                                         std::string_view expected = "a string");
    // Empty for an empty value, nullopt (after reporting) when not a list.
    std::optional<std::vector<ListItem>> string_list_of(const MapEntry& entry);

private:
    // Thrown (and caught in check) to stop walking a file that has already said enough.
    struct TooManyErrors {};

    // Where a YAML syntax error most likely comes from, as the error to report.
    void report_syntax_error(std::string_view yaml, int line, const std::string& what);

    std::string source_;
    std::vector<ConfigError> errors_;
    std::map<std::string, int, std::less<>> key_lines_;
    bool hints_ = false;
    // Misplaced-key hints load probe documents; a file full of unknown keys gets a few.
    std::size_t hints_given_ = 0;
};

}  // namespace tern::config
