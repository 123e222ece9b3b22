// The transport a client reaches tern over: one enum for the config, the allocation's 5-tuple
// (RFC 8656 §2) and the tools, so that no layer converts between copies of it.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace tern::protocol {

enum class Transport : std::uint8_t { udp, tcp, tls };

const char* to_string(Transport t) noexcept;                               // "udp", "tcp", "tls"
std::optional<Transport> parse_transport(std::string_view text) noexcept;  // to_string's inverse

}  // namespace tern::protocol
