// Likely causes behind misleading YAML failures: a coturn file given to ternd, an IPv6 address
// with a port left unquoted, a key written under the wrong section. Each returns text the
// diagnostics append, or nothing when the cause is not recognised. Private to config/.
#pragma once

#include <string>
#include <string_view>

namespace tern::config {

// The text of 1-based `line` without its line break; empty past the end.
std::string_view line_at(std::string_view text, int line);

// The first line written as coturn's `name=value` (or bare `name`) rather than YAML, or 0.
int first_coturn_line(std::string_view text);

// When `line_text` holds an unquoted "[v6]:port" (YAML reads "[" as a list), " (quote ...)"
// naming the value to quote; else empty.
std::string ipv6_quote_hint(std::string_view line_text);

// For an unknown `key` in the map at `section` ("" = top level): where it belongs instead,
// "did you mean limits.max_allocations? it belongs under limits:", or empty. Asks the schema
// itself, by loading tiny probe documents, so the answer cannot drift from the real keys.
std::string misplaced_key_hint(std::string_view key, std::string_view section);

}  // namespace tern::config
