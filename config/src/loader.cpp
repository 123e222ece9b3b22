// YAML text -> validated Config. The loader walks the document once, collecting every problem
// with the dotted key and line it belongs to, and only then decides whether a Config exists.
// yaml-cpp reports trouble by throwing; nothing thrown leaves this file.
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <span>
#include <sstream>

#include "config_files.hpp"
#include "tern/config/config.hpp"
#include "tern/config/parse.hpp"

namespace tern::config {

namespace {

namespace fs = std::filesystem;

// yaml-cpp parses recursively. 0.7 has its own depth guard, but we refuse deep documents
// earlier and with a message that says what is wrong; a real config needs only a few levels.
constexpr std::size_t max_nesting_estimate = 200;

// Beyond this many errors a file is not worth reading further, and aliases could otherwise
// multiply a small file into millions of them.
constexpr std::size_t max_errors = 200;

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

// Counts documents without building nodes.
class DocumentCounter final : public YAML::EventHandler {
public:
    int documents = 0;
    YAML::Mark second_start;

    void OnDocumentStart(const YAML::Mark& mark) override {
        if (++documents == 2) second_start = mark;
    }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
};

// Where a second document starts, if there is one. YAML::LoadAll is not safe here: yaml-cpp
// 0.7 never consumes a stray "," after the first document, so LoadAll collects empty
// documents until memory runs out. Asking for two documents at most cannot loop, and a stray
// character shows up as the start of the second.
std::optional<YAML::Mark> start_of_second_document(const std::string& document) {
    std::istringstream input(document);
    YAML::Parser parser(input);
    DocumentCounter counter;
    while (counter.documents < 2 && parser.HandleNextDocument(counter)) {
    }
    if (counter.documents < 2) return std::nullopt;
    return counter.second_start;
}

// Returns the 1-based line on which an estimate of the nesting depth first exceeds the limit,
// or 0. Every block level needs deeper indentation (a sequence may share its parent map's
// column, hence two levels per column) or a same-line indicator ("- ", "? ", ": "), and every
// flow level an open bracket. Quotes and comments are not parsed, so brackets inside them count
// too: a closing one there can hide a level. This early, clear refusal is therefore backed by
// yaml-cpp's own depth guard (YAML::DeepRecursion), which the loader turns into an error too.
int line_of_excessive_nesting(std::string_view text) {
    std::size_t flow_depth = 0;
    int line = 1;
    std::size_t position = 0;
    while (position <= text.size()) {
        const auto end = text.find_first_of("\r\n", position);
        const auto line_text =
            text.substr(position, end == std::string_view::npos ? text.npos : end - position);
        auto indent = line_text.find_first_not_of(" \t");
        // Blank and comment-only lines open nothing, however far they are indented.
        if (indent != std::string_view::npos && line_text[indent] == '#') indent = line_text.size();
        if (indent == std::string_view::npos) indent = line_text.size();
        const bool opens_nothing = indent == line_text.size();
        std::size_t indicators = 0;
        for (std::size_t i = indent; i < line_text.size(); ++i) {
            const char c = line_text[i];
            if (c == '[' || c == '{') {
                ++flow_depth;
            } else if ((c == ']' || c == '}') && flow_depth > 0) {
                --flow_depth;
            } else if (c == '-' || c == '?' || c == ':') {
                const bool at_end = i + 1 == line_text.size();
                if (at_end || line_text[i + 1] == ' ' || line_text[i + 1] == '\t') ++indicators;
            }
            if (2 * indent + indicators + flow_depth + 2 > max_nesting_estimate) return line;
        }
        if (!opens_nothing && 2 * indent + 2 > max_nesting_estimate) return line;
        if (end == std::string_view::npos) break;
        // YAML breaks lines at "\r\n", "\n" and a lone "\r", but yaml-cpp numbers lines by
        // "\n" alone; follow it so that both report the same line.
        position = end + 1;
        if (text[end] == '\r' && position < text.size() && text[position] == '\n') ++position;
        if (text[position - 1] == '\n') ++line;
    }
    return 0;
}

// Whether the leading whitespace of 1-based `line` holds a tab.
bool is_indented_with_tab(std::string_view text, int line) {
    if (line <= 0) return false;
    std::size_t start = 0;
    for (int current = 1; current < line; ++current) {
        start = text.find('\n', start);
        if (start == std::string_view::npos) return false;
        ++start;
    }
    const auto line_text = text.substr(start, text.find('\n', start) - start);
    const auto indent = line_text.substr(0, line_text.find_first_not_of(" \t"));
    return indent.find('\t') != std::string_view::npos;
}

// The first line on which a quote opens a scalar and is not closed on that same line, or 0.
// Only a hint for "illegal EOF in scalar": multi-line quoted scalars are legal, but in a config
// an unclosed quote is the likelier story.
int line_of_unclosed_quote(std::string_view text) {
    int line = 1;
    std::size_t start = 0;
    while (start <= text.size()) {
        const auto end = std::min(text.find('\n', start), text.size());
        const auto line_text = text.substr(start, end - start);
        for (std::size_t i = 0; i < line_text.size(); ++i) {
            const char c = line_text[i];
            if (c == '#' && (i == 0 || line_text[i - 1] == ' ' || line_text[i - 1] == '\t')) {
                break;
            }
            if (c != '"' && c != '\'') continue;
            const auto before = line_text.substr(0, i).find_last_not_of(" \t");
            const bool opens_scalar =
                before == std::string_view::npos ||
                std::string_view(":-[{,?").find(line_text[before]) != std::string_view::npos;
            if (!opens_scalar) continue;
            std::size_t close = i + 1;
            bool closed = false;
            while (close < line_text.size() && !closed) {
                const bool escape = c == '"' && line_text[close] == '\\';
                // '' is an escaped quote inside '...'
                const bool doubled = c == '\'' && line_text[close] == '\'' &&
                                     close + 1 < line_text.size() && line_text[close + 1] == '\'';
                if (escape || doubled) {
                    close += 2;  // the escaped character cannot close the scalar
                } else if (line_text[close] == c) {
                    closed = true;
                } else {
                    ++close;
                }
            }
            if (!closed) return line;
            i = close;
        }
        if (end == text.size()) break;
        start = end + 1;
        ++line;
    }
    return 0;
}

// The number of the last line that holds any text, at least 1.
int last_line_of(std::string_view text) {
    const auto last_text = text.find_last_not_of("\r\n");
    if (last_text == std::string_view::npos) return 1;
    return 1 + static_cast<int>(std::count(
                   text.begin(), text.begin() + static_cast<std::ptrdiff_t>(last_text), '\n'));
}

// The 1-based line of a yaml-cpp exception's mark, 0 when it has none. Errors at the end of the
// text point past it, at the comment line the loader appends; they belong to its last line.
int line_of_mark(const YAML::Mark& mark, std::string_view text) {
    if (mark.is_null()) return 0;
    return std::min(mark.line + 1, last_line_of(text));
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> previous(b.size() + 1);
    std::vector<std::size_t> current(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) previous[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        current[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitution});
        }
        std::swap(previous, current);
    }
    return previous[b.size()];
}

std::string unknown_key_message(std::string_view key, std::span<const std::string_view> known) {
    constexpr std::size_t max_suggestion_distance = 2;
    // Keys far longer than any known one cannot be close; skip the quadratic comparison.
    constexpr std::size_t longest_comparable = 64;
    std::string_view best;
    std::size_t best_distance = max_suggestion_distance + 1;
    if (key.size() <= longest_comparable) {
        for (const auto candidate : known) {
            const auto distance = edit_distance(key, candidate);
            if (distance < best_distance) {
                best = candidate;
                best_distance = distance;
            }
        }
    }
    if (best.empty()) return "unknown key";
    return "unknown key, did you mean " + std::string(best) + "?";
}

const char* kind_of(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Null:
            return "nothing";
        case YAML::NodeType::Scalar:
            return "a string";
        case YAML::NodeType::Sequence:
            return "a list";
        case YAML::NodeType::Map:
            return "a map";
        case YAML::NodeType::Undefined:
            break;
    }
    return "an undefined value";
}

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
        : source_(source_name), base_directory_(anchor_directory(source_name)) {}

    LoadResult load(std::string_view yaml);

private:
    // One key of a map, with where it was written.
    struct Entry {
        std::string name;  // the key as written
        std::string path;  // dotted path from the document root
        int key_line = 0;
        int line = 0;  // the value's line, or the key's when the value is empty
        YAML::Node value;
    };
    // One scalar of a list.
    struct Item {
        std::string text;
        std::string path;  // "listen[2]"
        int line = 0;
    };

    // Thrown (and caught in load) to stop walking a file that has already said enough.
    struct TooManyErrors {};

    void report(int line, std::string key, std::string message) {
        if (errors_.size() == max_errors) throw TooManyErrors{};
        errors_.push_back(ConfigError{source_, line, std::move(key), std::move(message)});
    }
    static int line_of(const YAML::Node& node, int fallback) {
        // An empty value's mark points at whatever token follows it, often on a later line.
        if (node.IsNull()) return fallback;
        const auto mark = node.Mark();
        return mark.is_null() ? fallback : mark.line + 1;
    }

    std::vector<Entry> entries_of(const YAML::Node& map, const std::string& path,
                                  std::span<const std::string_view> known);
    // For sections: true when `entry` holds a map; an empty value counts as an absent section.
    bool is_section(const Entry& entry);
    std::optional<std::string> scalar_of(const Entry& entry,
                                         std::string_view expected = "a string");
    // A whole number of seconds in [min, max], or nullopt after reporting; `max_note` follows
    // the maximum in the message (" (a year)").
    std::optional<std::uint32_t> seconds_of(const Entry& entry, std::uint32_t min,
                                            std::uint32_t max, std::string_view max_note);
    // Empty for an empty value, nullopt (after reporting) when not a list.
    std::optional<std::vector<Item>> string_list_of(const Entry& entry);
    std::optional<TransportAddress> specific_ip_of(std::string_view text, int line,
                                                   const std::string& path);

    void load_root(const YAML::Node& root);
    void load_realm(const Entry& entry);
    void load_software(const Entry& entry);
    void load_listen(const Entry& entry);
    void load_tls(const Entry& entry);
    void load_auth(const Entry& entry);
    void load_users(const Entry& entry);
    void load_secrets_file(const Entry& entry);
    void load_relay(const Entry& entry);
    void load_relay_addresses(const Entry& entry);
    void load_external_addresses(const Entry& entry);
    void load_cidrs(const Entry& entry, std::vector<Cidr>& out);
    void load_limits(const Entry& entry);
    void load_threads(const Entry& entry);
    void load_log(const Entry& entry);
    void load_metrics(const Entry& entry);
    void check_across_keys();

    std::string source_;
    fs::path base_directory_;
    std::vector<ConfigError> errors_;
    Config config_;
    bool listen_given_ = false;
    bool tls_given_ = false;
    // Where the first tls:// listener was written, for "needs a tls section".
    std::optional<Item> first_tls_listener_;
};

std::vector<Loader::Entry> Loader::entries_of(const YAML::Node& map, const std::string& path,
                                              std::span<const std::string_view> known) {
    std::vector<Entry> entries;
    std::map<std::string, int, std::less<>> first_line_of_key;
    for (const auto& pair : map) {
        const YAML::Node& key = pair.first;
        const int key_line = line_of(key, line_of(map, 0));
        if (!key.IsScalar()) {
            report(key_line, path, std::string("keys must be plain names, got ") + kind_of(key));
            continue;
        }
        Entry entry;
        entry.name = key.Scalar();
        // The path is for messages only, so it gets the escaped name; lookups use the raw one.
        const std::string shown_name = escape_for_message(entry.name);
        entry.path = path;
        if (!entry.path.empty()) entry.path += '.';
        entry.path += shown_name;
        entry.key_line = key_line;
        entry.line = line_of(pair.second, key_line);
        entry.value = pair.second;
        if (const auto [first, inserted] = first_line_of_key.emplace(entry.name, key_line);
            !inserted) {
            report(key_line, entry.path,
                   "duplicate key (first given on line " + std::to_string(first->second) + ")");
            continue;
        }
        if (!known.empty() && std::find(known.begin(), known.end(), entry.name) == known.end()) {
            report(key_line, entry.path, unknown_key_message(entry.name, known));
            continue;
        }
        entries.push_back(std::move(entry));
    }
    return entries;
}

bool Loader::is_section(const Entry& entry) {
    if (entry.value.IsMap()) return true;
    if (!entry.value.IsNull()) {
        report(entry.line, entry.path, std::string("expected a map, got ") + kind_of(entry.value));
    }
    return false;
}

std::optional<std::string> Loader::scalar_of(const Entry& entry, std::string_view expected) {
    if (entry.value.IsScalar()) return entry.value.Scalar();
    report(entry.line, entry.path,
           "expected " + std::string(expected) + ", got " + kind_of(entry.value));
    return std::nullopt;
}

std::optional<std::vector<Loader::Item>> Loader::string_list_of(const Entry& entry) {
    std::vector<Item> items;
    if (entry.value.IsNull()) return items;
    if (!entry.value.IsSequence()) {
        report(entry.line, entry.path,
               std::string("expected a list of strings, got ") + kind_of(entry.value));
        return std::nullopt;
    }
    std::size_t index = 0;
    for (const auto& element : entry.value) {
        const std::string path = entry.path + "[" + std::to_string(index++) + "]";
        const int line = line_of(element, entry.line);
        if (!element.IsScalar()) {
            report(line, path, std::string("expected a string, got ") + kind_of(element));
            continue;
        }
        items.push_back(Item{element.Scalar(), path, line});
    }
    return items;
}

std::optional<TransportAddress> Loader::specific_ip_of(std::string_view text, int line,
                                                       const std::string& path) {
    auto address = parse_ip_address(text);
    if (!address.value) {
        report(line, path, address.error);
        return std::nullopt;
    }
    if (is_unspecified(*address.value)) {
        report(line, path,
               quote_for_message(text) + " is the unspecified address; give the address itself");
        return std::nullopt;
    }
    return address.value;
}

LoadResult Loader::load(std::string_view yaml) {
    bool stopped_early = false;
    try {
        if (yaml.size() > max_config_bytes) {
            report(0, {},
                   "file is larger than " + std::to_string(max_config_bytes >> 20) +
                       " MiB; refusing to parse it");
        } else if (const int line = line_of_excessive_nesting(yaml); line != 0) {
            report(line, {},
                   "nesting too deep (indentation, brackets and indicators exceed " +
                       std::to_string(max_nesting_estimate) + " levels)");
        } else {
            // yaml-cpp 0.7 accepts a quote left open when the text ends in a line break,
            // swallowing the rest of the file into the string. A final comment line makes it
            // report the open quote, and changes nothing else.
            std::string document(yaml);
            document += "\n#";
            if (const auto second = start_of_second_document(document)) {
                const bool marked =
                    document.compare(static_cast<std::size_t>(second->pos), 3, "---") == 0;
                report(line_of_mark(*second, yaml), {},
                       marked ? "more than one YAML document; a config is a single document"
                              : "unexpected " +
                                    quote_for_message(
                                        document.substr(static_cast<std::size_t>(second->pos), 1)) +
                                    " after the end of the configuration");
            } else {
                load_root(YAML::Load(document));
            }
        }
    } catch (const TooManyErrors&) {
        stopped_early = true;
    } catch (const YAML::DeepRecursion& e) {
        report(line_of_mark(e.mark, yaml), {}, "YAML nesting too deep");
    } catch (const YAML::ParserException& e) {
        const int line = line_of_mark(e.mark, yaml);
        // yaml-cpp's wording names the symptom; add the likely cause where we can see it.
        std::string hint;
        if (is_indented_with_tab(yaml, line)) {
            hint = " (YAML indents with spaces, not tabs)";
        } else if (e.msg == YAML::ErrorMsg::EOF_IN_SCALAR) {
            if (const int quote_line = line_of_unclosed_quote(yaml); quote_line != 0) {
                hint = " (is the quote on line " + std::to_string(quote_line) + " closed?)";
            }
        }
        // yaml-cpp quotes input characters in some messages, control bytes included.
        report(line, {}, "YAML syntax error: " + escape_for_message(e.msg, 200) + hint);
    } catch (const YAML::Exception& e) {
        report(line_of_mark(e.mark, yaml), {}, "YAML error: " + escape_for_message(e.msg, 200));
    } catch (const std::exception& e) {
        report(0, {}, "cannot load: " + escape_for_message(e.what(), 200));
    }
    // Checks run in key order, cross-key checks at the end; present them in file order.
    std::stable_sort(errors_.begin(), errors_.end(),
                     [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
    if (stopped_early) {
        errors_.push_back(
            ConfigError{source_,
                        0,
                        {},
                        "more than " + std::to_string(max_errors) + " errors; stopped checking"});
    }
    LoadResult result;
    if (errors_.empty()) result.config = std::move(config_);
    result.errors = std::move(errors_);
    return result;
}

void Loader::load_root(const YAML::Node& root) {
    if (!root.IsNull() && !root.IsMap()) {
        report(line_of(root, 1), {},
               std::string("the configuration must be a map of keys such as realm and listen, "
                           "got ") +
                   kind_of(root));
        return;
    }
    if (root.IsMap()) {
        for (const auto& entry : entries_of(root, {}, top_level_keys)) {
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

void Loader::load_realm(const Entry& entry) {
    const auto realm = scalar_of(entry);
    if (!realm) return;
    if (realm->empty()) {
        report(entry.line, entry.path, "must not be empty");
    } else if (realm->size() > max_realm_bytes) {
        report(entry.line, entry.path,
               "too long: " + std::to_string(realm->size()) + " bytes, at most " +
                   std::to_string(max_realm_bytes) + " are allowed");
    }
    config_.realm = *realm;
}

void Loader::load_software(const Entry& entry) {
    const auto software = scalar_of(entry);
    if (!software) return;
    if (software->size() > max_software_bytes) {
        report(entry.line, entry.path,
               "too long: " + std::to_string(software->size()) + " bytes, at most " +
                   std::to_string(max_software_bytes) + " are allowed");
    }
    config_.software = *software;
}

void Loader::load_listen(const Entry& entry) {
    listen_given_ = true;
    const auto items = string_list_of(entry);
    if (!items) return;
    if (entry.value.size() == 0) {
        report(entry.line, entry.path, "needs at least one listener such as udp://0.0.0.0:3478");
        return;
    }
    // Who holds each socket so far: UDP and stream (TCP and TLS) ports are separate, so the key
    // is the socket type plus address and port. Maps, not pairwise checks: a 1 MiB file can
    // list a great many listeners.
    std::map<std::string, std::pair<Transport, std::string>, std::less<>> owner_of_socket;
    for (const auto& item : *items) {
        const auto listener = parse_listener_url(item.text);
        if (!listener.value) {
            report(item.line, item.path, listener.error);
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
                report(item.line, item.path,
                       earlier_transport == transport
                           ? "duplicate of " + earlier_path
                           : "tcp and tls cannot share a port; " + earlier_path + " already uses " +
                                 listener.value->address.to_string());
                continue;
            }
        }
        config_.listen.push_back(*listener.value);
    }
}

void Loader::load_tls(const Entry& entry) {
    if (entry.value.IsNull()) return;
    // Even a malformed section counts as given, so that tls:// listeners are not blamed too.
    tls_given_ = true;
    if (!is_section(entry)) return;
    TlsFiles files;
    bool certificate_given = false;
    bool private_key_given = false;
    for (const auto& field : entries_of(entry.value, entry.path, tls_keys)) {
        const bool is_certificate = field.name == "certificate";
        (is_certificate ? certificate_given : private_key_given) = true;
        const auto text = scalar_of(field);
        if (!text) continue;
        if (text->empty()) {
            report(field.line, field.path, "must not be empty");
            continue;
        }
        std::string path = resolved_path(base_directory_, *text);
        if (auto why = why_unreadable(path); !why.empty()) report(field.line, field.path, why);
        (is_certificate ? files.certificate : files.private_key) = std::move(path);
    }
    if (!certificate_given) {
        report(entry.key_line, entry.path + ".certificate",
               "missing; the tls section needs certificate and private_key");
    }
    if (!private_key_given) {
        report(entry.key_line, entry.path + ".private_key",
               "missing; the tls section needs certificate and private_key");
    }
    config_.tls = std::move(files);
}

std::optional<std::uint32_t> Loader::seconds_of(const Entry& entry, std::uint32_t min,
                                                std::uint32_t max, std::string_view max_note) {
    const auto text = scalar_of(entry, "a number of seconds");
    if (!text) return std::nullopt;
    const auto seconds = parse_unsigned(*text, max);
    if (!seconds || *seconds < min) {
        report(entry.line, entry.path,
               "expected a whole number of seconds from " + std::to_string(min) + " to " +
                   std::to_string(max) + std::string(max_note) + ", got " +
                   quote_for_message(*text));
        return std::nullopt;
    }
    return seconds;
}

void Loader::load_auth(const Entry& entry) {
    if (!is_section(entry)) return;
    for (const auto& field : entries_of(entry.value, entry.path, auth_keys)) {
        if (field.name == "users") {
            load_users(field);
            continue;
        }
        if (field.name == "secrets_file") {
            load_secrets_file(field);
            continue;
        }
        if (field.name == "expiry") {
            const auto text = scalar_of(field);
            if (!text) continue;
            const auto policy =
                std::find_if(credential_expiries.begin(), credential_expiries.end(),
                             [&](CredentialExpiry e) { return *text == to_string(e); });
            if (policy == credential_expiries.end()) {
                report(field.line, field.path,
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
                report(field.line, field.path,
                       std::string("expected a string, got ") + kind_of(field.value));
                continue;
            }
            const std::string& secret = field.value.Scalar();
            if (secret.size() < min_nonce_secret_bytes) {
                report(field.line, field.path,
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
        const auto secrets = string_list_of(field);
        if (!secrets) continue;
        for (const auto& secret : *secrets) {
            if (secret.text.empty()) {
                report(secret.line, secret.path, "a secret must not be empty");
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

void Loader::load_secrets_file(const Entry& entry) {
    const auto text = scalar_of(entry, "a file name");
    if (!text) return;
    if (text->empty()) {
        report(entry.line, entry.path, "must not be empty");
        return;
    }
    const std::string path = resolved_path(base_directory_, *text);
    config_.auth.secrets_file = path;
    auto file = read_secrets_file(path);
    for (auto& problem : file.problems) report(entry.line, entry.path, std::move(problem));
    for (auto& secret : file.secrets) config_.auth.secrets.push_back(std::move(secret));
}

void Loader::load_users(const Entry& entry) {
    if (!is_section(entry)) return;
    for (const auto& user_entry : entries_of(entry.value, entry.path, {})) {
        if (user_entry.name.empty()) {
            report(user_entry.key_line, user_entry.path, "a user name must not be empty");
            continue;
        }
        if (!user_entry.value.IsMap()) {
            report(user_entry.line, user_entry.path,
                   std::string("expected a map with password or key, got ") +
                       kind_of(user_entry.value));
            continue;
        }
        StaticUser user;
        user.name = user_entry.name;
        bool password_given = false;
        bool key_given = false;
        const std::size_t errors_before = errors_.size();
        for (const auto& field : entries_of(user_entry.value, user_entry.path, user_keys)) {
            const auto text = scalar_of(field);
            if (field.name == "password") {
                password_given = true;
                if (!text) continue;
                if (text->empty()) {
                    report(field.line, field.path, "must not be empty");
                    continue;
                }
                user.password = *text;
            } else {
                key_given = true;
                if (!text) continue;
                user.key = parse_md5_hex(*text);
                if (!user.key) {
                    report(field.line, field.path,
                           "expected 32 hex digits (MD5 of user:realm:password), got " +
                               std::to_string(text->size()) + " characters" +
                               (text->size() == 32 ? " that are not all hex digits" : ""));
                }
            }
        }
        if (password_given && key_given) {
            report(user_entry.key_line, user_entry.path, "give either password or key, not both");
        } else if (!password_given && !key_given && errors_.size() == errors_before) {
            // (A misspelt password or key has been reported already; this would repeat it.)
            report(user_entry.key_line, user_entry.path, "needs a password or a key");
        }
        config_.auth.users.push_back(std::move(user));
    }
}

void Loader::load_relay(const Entry& entry) {
    if (!is_section(entry)) return;
    for (const auto& field : entries_of(entry.value, entry.path, relay_keys)) {
        if (field.name == "addresses") {
            load_relay_addresses(field);
        } else if (field.name == "external_addresses") {
            load_external_addresses(field);
        } else if (field.name == "ports") {
            const auto text = scalar_of(field);
            if (!text) continue;
            const auto range = parse_relay_port_range(*text);
            if (range.value) {
                config_.relay.ports = *range.value;
            } else {
                report(field.line, field.path, range.error);
            }
        } else if (field.name == "allow_peers") {
            load_cidrs(field, config_.relay.allow_peers);
        } else if (field.name == "deny_peers") {
            load_cidrs(field, config_.relay.deny_peers);
        } else if (field.name == "default_family") {
            const auto text = scalar_of(field);
            if (!text) continue;
            const auto family = std::find_if(relay_families.begin(), relay_families.end(),
                                             [&](RelayFamily f) { return *text == to_string(f); });
            if (family == relay_families.end()) {
                report(field.line, field.path,
                       "unknown family " + quote_for_message(*text) + " (expected ipv4 or client)");
                continue;
            }
            config_.relay.default_family = *family;
        } else if (field.name == "channel_numbers") {
            const auto text = scalar_of(field);
            if (!text) continue;
            if (*text == to_string(ChannelNumbers::rfc8656)) {
                config_.relay.channel_numbers = ChannelNumbers::rfc8656;
            } else if (*text == to_string(ChannelNumbers::rfc5766)) {
                config_.relay.channel_numbers = ChannelNumbers::rfc5766;
            } else {
                report(
                    field.line, field.path,
                    "unknown range " + quote_for_message(*text) + " (expected rfc8656 or rfc5766)");
            }
        }
    }
}

void Loader::load_relay_addresses(const Entry& entry) {
    const auto items = string_list_of(entry);
    if (!items) return;
    std::map<std::string, std::string, std::less<>> path_of_address;
    for (const auto& item : *items) {
        const auto address = specific_ip_of(item.text, item.line, item.path);
        if (!address) continue;
        const auto [earlier, inserted] =
            path_of_address.try_emplace(address->ip_string(), item.path);
        if (!inserted) {
            report(item.line, item.path, "duplicate of " + earlier->second);
            continue;
        }
        config_.relay.addresses.push_back(*address);
    }
}

void Loader::load_external_addresses(const Entry& entry) {
    if (!is_section(entry)) return;
    for (const auto& mapping : entries_of(entry.value, entry.path, {})) {
        const auto internal = specific_ip_of(mapping.name, mapping.key_line, mapping.path);
        const auto text = scalar_of(mapping);
        if (!text) continue;
        const auto external = specific_ip_of(*text, mapping.line, mapping.path);
        if (!internal || !external) continue;
        if (internal->family != external->family) {
            report(mapping.line, mapping.path,
                   "maps " + internal->ip_string() + " to " + external->ip_string() +
                       "; internal and external addresses must be of the same IP family");
            continue;
        }
        config_.relay.external_addresses.push_back(ExternalAddress{*internal, *external});
    }
}

void Loader::load_cidrs(const Entry& entry, std::vector<Cidr>& out) {
    const auto items = string_list_of(entry);
    if (!items) return;
    for (const auto& item : *items) {
        const auto cidr = parse_cidr(item.text);
        if (cidr.value) {
            out.push_back(*cidr.value);
        } else {
            report(item.line, item.path, cidr.error);
        }
    }
}

void Loader::load_limits(const Entry& entry) {
    if (!is_section(entry)) return;
    for (const auto& field : entries_of(entry.value, entry.path, limits_keys)) {
        const auto* rule = std::find_if(limit_rules.begin(), limit_rules.end(),
                                        [&](const LimitRule& r) { return r.name == field.name; });
        if (rule == limit_rules.end()) continue;  // entries_of() already reported it
        const auto text = scalar_of(field, rule->seconds ? "a number of seconds" : "a number");
        if (!text) continue;
        const auto value = parse_unsigned(*text, rule->max);
        if (!value || *value < rule->min) {
            report(field.line, field.path,
                   std::string("expected a whole number ") + (rule->seconds ? "of seconds " : "") +
                       "from " + std::to_string(rule->min) + " to " + std::to_string(rule->max) +
                       ", got " + quote_for_message(*text));
            continue;
        }
        config_.limits.*(rule->member) = *value;
    }
}

void Loader::load_threads(const Entry& entry) {
    const auto text = scalar_of(entry, "auto or a number");
    if (!text) return;
    if (*text == "auto") {
        config_.threads = 0;
        return;
    }
    const auto count = parse_unsigned(*text, max_threads);
    if (!count || *count == 0) {
        report(entry.line, entry.path,
               "expected auto or a number from 1 to " + std::to_string(max_threads) + ", got " +
                   quote_for_message(*text));
        return;
    }
    config_.threads = *count;
}

void Loader::load_log(const Entry& entry) {
    if (!is_section(entry)) return;
    for (const auto& field : entries_of(entry.value, entry.path, log_keys)) {
        const auto text = scalar_of(field);
        if (!text) continue;
        if (field.name == "level") {
            const auto level = std::find_if(log_levels.begin(), log_levels.end(),
                                            [&](LogLevel l) { return *text == to_string(l); });
            if (level == log_levels.end()) {
                report(field.line, field.path,
                       "unknown level " + quote_for_message(*text) +
                           " (expected trace, debug, info, warn, error, critical or off)");
                continue;
            }
            config_.log.level = *level;
        } else {
            const auto format = std::find_if(log_formats.begin(), log_formats.end(),
                                             [&](LogFormat f) { return *text == to_string(f); });
            if (format == log_formats.end()) {
                report(field.line, field.path,
                       "unknown format " + quote_for_message(*text) + " (expected text or json)");
                continue;
            }
            config_.log.format = *format;
        }
    }
}

void Loader::load_metrics(const Entry& entry) {
    if (!is_section(entry)) return;
    for (const auto& field : entries_of(entry.value, entry.path, metrics_keys)) {
        const auto text = scalar_of(field);
        if (!text) continue;
        const auto address = parse_socket_address(*text, 1);
        if (!address.value) {
            report(field.line, field.path, address.error);
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
        report(first_tls_listener_->line, first_tls_listener_->path,
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
