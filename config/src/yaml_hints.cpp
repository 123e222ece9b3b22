// See yaml_hints.hpp.
#include "yaml_hints.hpp"

#include <algorithm>
#include <cctype>

#include "config_schema.hpp"

namespace tern::config {

namespace {

bool is_name_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
}

// Whether `key` is a key the schema takes under top-level `section` ("" = the top level).
// A probe that sets the key to nothing reports "unknown key" for it only when it is not one.
bool schema_knows(std::string_view section, std::string_view key) {
    const std::string path =
        section.empty() ? std::string(key) : std::string(section) + "." + std::string(key);
    const std::string probe = section.empty()
                                  ? std::string(key) + ":\n"
                                  : std::string(section) + ":\n  " + std::string(key) + ":\n";
    Loader loader("<probe>", Loader::Hints::off);
    const auto result = loader.load(probe);
    return std::none_of(result.errors.begin(), result.errors.end(), [&](const ConfigError& e) {
        return e.key == path && e.message.starts_with("unknown key");
    });
}

}  // namespace

std::string_view line_at(std::string_view text, int line) {
    std::size_t start = 0;
    for (int current = 1; current < line; ++current) {
        start = text.find('\n', start);
        if (start == std::string_view::npos) return {};
        ++start;
    }
    if (line < 1 || start > text.size()) return {};
    auto line_text = text.substr(start, text.find('\n', start) - start);
    if (!line_text.empty() && line_text.back() == '\r') line_text.remove_suffix(1);
    return line_text;
}

int first_coturn_line(std::string_view text) {
    int line = 0;
    std::size_t start = 0;
    while (start < text.size()) {
        ++line;
        const auto end = std::min(text.find('\n', start), text.size());
        const auto line_text = text.substr(start, end - start);
        start = end + 1;
        // coturn writes "name=value" at the start of a line; YAML has no use for that form.
        std::size_t i = 0;
        while (i < line_text.size() && std::isalpha(static_cast<unsigned char>(line_text[i]))) {
            ++i;
        }
        if (i == 0) continue;
        while (i < line_text.size() && is_name_char(line_text[i])) ++i;
        while (i < line_text.size() && line_text[i] == ' ') ++i;
        if (i < line_text.size() && line_text[i] == '=') return line;
    }
    return 0;
}

std::string ipv6_quote_hint(std::string_view line_text) {
    // Only what precedes a comment counts; quoted text is already safe.
    bool in_quote = false;
    for (std::size_t open = 0; open < line_text.size(); ++open) {
        const char c = line_text[open];
        if (c == '"' || c == '\'') in_quote = !in_quote;
        if (c == '#' && !in_quote) break;
        if (c != '[' || in_quote) continue;
        std::size_t close = open + 1;
        while (close < line_text.size() &&
               (std::isxdigit(static_cast<unsigned char>(line_text[close])) != 0 ||
                line_text[close] == ':' || line_text[close] == '.')) {
            ++close;
        }
        const bool has_colon = line_text.substr(open, close - open).find(':') != std::string::npos;
        const bool is_address_and_port =
            has_colon && close + 2 < line_text.size() && line_text[close] == ']' &&
            line_text[close + 1] == ':' &&
            std::isdigit(static_cast<unsigned char>(line_text[close + 2])) != 0;
        if (!is_address_and_port) continue;
        // The whole value: back to the blank or bracket before it ("udp://[::]:3478"), on to
        // the end of the port.
        std::size_t first = open;
        while (first > 0 &&
               std::string_view(" \t,[{").find(line_text[first - 1]) == std::string_view::npos) {
            --first;
        }
        std::size_t last = close + 2;
        while (last < line_text.size() &&
               std::isdigit(static_cast<unsigned char>(line_text[last]))) {
            ++last;
        }
        const auto value = line_text.substr(first, last - first);
        return " (YAML reads an unquoted [ as the start of a list: quote the address, \"" +
               std::string(value) + "\")";
    }
    return {};
}

std::string misplaced_key_hint(std::string_view key, std::string_view section) {
    // Only the top level and its sections are searched: that is where a key lands when it is
    // indented one level too far or too little.
    constexpr std::string_view sentinel = "no_such_key_in_any_section";
    // A probe document is built from the key, so only plain names are looked up.
    if (key.empty() || !std::all_of(key.begin(), key.end(), is_name_char)) return {};
    for (const auto candidate : top_level_key_names()) {
        if (candidate == section) continue;
        if (schema_knows(candidate, key) && !schema_knows(candidate, sentinel)) {
            return "did you mean " + std::string(candidate) + "." + std::string(key) +
                   "? it belongs under " + std::string(candidate) + ":";
        }
    }
    if (!section.empty() && schema_knows({}, key)) {
        return "did you mean " + std::string(key) + "? it belongs at the top level";
    }
    return {};
}

}  // namespace tern::config
