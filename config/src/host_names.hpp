// SNI host names as the config writes them (tls.certificates[].names, edge.turn_names): one
// rule for both, so a name that picks a certificate can also route a connection. Private to
// config/.
#pragma once

#include <string>
#include <string_view>

namespace tern::config {

// `text` with ASCII letters lowered: SNI is compared without case (RFC 6066 §3, RFC 4343).
std::string lowercase(std::string_view text);

// Why `written` (lowercased already) can never equal an SNI a client sends, or, as "*.rest", the
// SNI of a name one label under `rest`; empty when it can. The message starts with the quoted
// name. IP addresses pass here: each section says in its own words why they do not belong.
std::string why_not_host_name(std::string_view written);

// Clients never send an IP address as SNI (RFC 6066 §3).
bool is_address_literal(std::string_view name);

}  // namespace tern::config
