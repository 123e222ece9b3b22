// Locating YAML problems and wording them; see yaml_diagnostics.hpp.
#include "yaml_diagnostics.hpp"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <map>
#include <sstream>

#include "tern/config/parse.hpp"
#include "yaml_hints.hpp"

namespace tern::config {

namespace {

// yaml-cpp parses recursively. 0.7 has its own depth guard, but we refuse deep documents
// earlier and with a message that says what is wrong; a real config needs only a few levels.
constexpr std::size_t max_nesting_estimate = 200;

// Beyond this many errors a file is not worth reading further, and aliases could otherwise
// multiply a small file into millions of them.
constexpr std::size_t max_errors = 200;

// Each misplaced-key hint loads a dozen tiny probe documents.
constexpr std::size_t max_key_hints = 20;

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

}  // namespace

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

void YamlDiagnostics::report(int line, std::string key, std::string message) {
    if (errors_.size() == max_errors) throw TooManyErrors{};
    errors_.push_back(ConfigError{source_, line, std::move(key), std::move(message)});
}

int YamlDiagnostics::line_of(const YAML::Node& node, int fallback) {
    // An empty value's mark points at whatever token follows it, often on a later line.
    if (node.IsNull()) return fallback;
    const auto mark = node.Mark();
    return mark.is_null() ? fallback : mark.line + 1;
}

std::vector<MapEntry> YamlDiagnostics::entries_of(const YAML::Node& map, const std::string& path,
                                                  std::span<const std::string_view> known) {
    std::vector<MapEntry> entries;
    std::map<std::string, int, std::less<>> first_line_of_key;
    for (const auto& pair : map) {
        const YAML::Node& key = pair.first;
        const int key_line = line_of(key, line_of(map, 0));
        if (!key.IsScalar()) {
            report(key_line, path, std::string("keys must be plain names, got ") + kind_of(key));
            continue;
        }
        MapEntry entry;
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
            std::string message = unknown_key_message(entry.name, known);
            // A close spelling in this section is the likelier story; else the key may have
            // landed under the wrong section.
            if (hints_ && message == "unknown key" && hints_given_ < max_key_hints) {
                ++hints_given_;
                if (auto hint = misplaced_key_hint(entry.name, path); !hint.empty()) {
                    message += ", " + hint;
                }
            }
            report(key_line, entry.path, std::move(message));
            continue;
        }
        key_lines_.emplace(entry.path, key_line);
        entries.push_back(std::move(entry));
    }
    return entries;
}

bool YamlDiagnostics::is_section(const MapEntry& entry) {
    if (entry.value.IsMap()) return true;
    if (!entry.value.IsNull()) {
        report(entry.line, entry.path, std::string("expected a map, got ") + kind_of(entry.value));
    }
    return false;
}

std::optional<std::string> YamlDiagnostics::scalar_of(const MapEntry& entry,
                                                      std::string_view expected) {
    if (entry.value.IsScalar()) return entry.value.Scalar();
    report(entry.line, entry.path,
           "expected " + std::string(expected) + ", got " + kind_of(entry.value));
    return std::nullopt;
}

std::optional<std::vector<ListItem>> YamlDiagnostics::string_list_of(const MapEntry& entry) {
    std::vector<ListItem> items;
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
        key_lines_.emplace(path, line);
        items.push_back(ListItem{element.Scalar(), path, line});
    }
    return items;
}

void YamlDiagnostics::report_syntax_error(std::string_view yaml, int line,
                                          const std::string& what) {
    // yaml-cpp's wording names the symptom, often lines after the cause; name the cause where
    // it can be seen. yaml-cpp quotes input characters in some messages, control bytes too.
    std::string symptom = escape_for_message(what, 200);
    if (is_indented_with_tab(yaml, line)) {
        report(line, {}, "YAML syntax error: " + symptom + " (YAML indents with spaces, not tabs)");
        return;
    }
    // An open quote swallows the lines after it, so the parser stops somewhere later; the
    // quote's own line is the one to fix.
    if (const int quote_line = line_of_unclosed_quote(yaml);
        quote_line != 0 && quote_line <= line) {
        report(quote_line, {},
               "YAML syntax error: a quote opened on this line is not closed (the parser "
               "stopped on line " +
                   std::to_string(line) + ": " + symptom + ")");
        return;
    }
    for (const int candidate : {line, line - 1}) {
        if (auto hint = ipv6_quote_hint(line_at(yaml, candidate)); !hint.empty()) {
            report(candidate, {}, "YAML syntax error: " + symptom.append(hint));
            return;
        }
    }
    report(line, {}, "YAML syntax error: " + symptom);
}

std::vector<ConfigError> YamlDiagnostics::check(
    std::string_view yaml, const std::function<void(const YAML::Node&)>& walk) {
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
                walk(YAML::Load(document));
            }
        }
    } catch (const TooManyErrors&) {
        stopped_early = true;
    } catch (const YAML::DeepRecursion& e) {
        report(line_of_mark(e.mark, yaml), {}, "YAML nesting too deep");
    } catch (const YAML::ParserException& e) {
        report_syntax_error(yaml, line_of_mark(e.mark, yaml), e.msg);
    } catch (const YAML::Exception& e) {
        report(line_of_mark(e.mark, yaml), {}, "YAML error: " + escape_for_message(e.msg, 200));
    } catch (const std::exception& e) {
        report(0, {}, "cannot load: " + escape_for_message(e.what(), 200));
    }
    // A coturn turnserver.conf is a plain scalar to YAML, so the errors above name symptoms
    // only; say what the file is instead.
    if (!errors_.empty() && !stopped_early) {
        if (const int line = first_coturn_line(yaml); line != 0) {
            errors_.push_back(ConfigError{
                source_,
                line,
                {},
                "this looks like a coturn turnserver.conf (name=value lines): convert it with "
                "`ternctl import-coturn`"});
        }
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
    return std::move(errors_);
}

}  // namespace tern::config
