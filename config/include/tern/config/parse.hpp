// The text forms the config file uses for addresses, listeners, CIDRs and port ranges, parsed
// with a message that says what is wrong. The YAML loader is built on these; they are public so
// that tests and tools apply exactly the same rules as the loader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "tern/config/config.hpp"

namespace tern::config {

// Either a value or the reason there is none (a message meant for the operator, without the
// key or line, which the loader adds).
template <typename T>
struct Parsed {
    std::optional<T> value;
    std::string error;  // empty when `value` is set

    static Parsed ok(T v) { return Parsed{std::move(v), {}}; }
    static Parsed fail(std::string why) { return Parsed{std::nullopt, std::move(why)}; }
};

// Relay ports below this are privileged (and often taken by real services).
inline constexpr std::uint16_t min_relay_port = 1024;
// A relay range must hold at least this many ports: RFC 8656 EVEN-PORT/RESERVATION-TOKEN pairs
// need two, and a single port serves one allocation at a time.
inline constexpr std::uint32_t min_relay_port_count = 2;
// Both REALM and SOFTWARE are limited to 763 bytes by RFC 8489 §14.9 and §14.14.
inline constexpr std::size_t max_realm_bytes = 763;
inline constexpr std::size_t max_software_bytes = 763;

// `text` made safe for one line of an error message: control bytes escaped as \xNN, cut after
// `max_bytes` (marked "..."). quote_for_message also puts it in single quotes.
std::string escape_for_message(std::string_view text, std::size_t max_bytes = 64);
std::string quote_for_message(std::string_view text);

// `text` without leading and trailing blanks (space, tab, CR of a CRLF line end, VT, FF): how a
// line of a secrets file, a token file or a coturn option is read.
std::string_view trim_blanks(std::string_view text) noexcept;

// "192.0.2.1", "2001:db8::1" or "[2001:db8::1]"; no port, no host names.
Parsed<TransportAddress> parse_ip_address(std::string_view text);

// "192.0.2.1:3478" or "[2001:db8::1]:3478". Ports below `lowest_port` are refused; 0 is only
// meaningful for listeners, where it lets the kernel choose.
Parsed<TransportAddress> parse_socket_address(std::string_view text, std::uint16_t lowest_port);

// "udp://0.0.0.0:3478", "tcp://[::]:3478", "tls://192.0.2.1:5349"; port 0 = kernel's choice.
Parsed<Listener> parse_listener_url(std::string_view text);

// "10.0.0.0/8", "fd00::/8", or a bare address (= /32 or /128). Host bits must be zero. A range
// inside ::ffff:0:0/96 is stored as the IPv4 range it denotes, so that one rule covers an IPv4
// peer however it is written.
Parsed<Cidr> parse_cidr(std::string_view text);

// "49152-65535": both ends inclusive, first >= min_relay_port, at least min_relay_port_count.
Parsed<PortRange> parse_relay_port_range(std::string_view text);

// "redis://[[user]:password@]host[:port][/db]" (fleet.redis): host is an IPv4 address, a
// bracketed IPv6 address or a name; the port defaults to 6379 and the db to 0; user and
// password may carry %XX escapes. rediss:// is refused (hiredis 0.14 has no TLS). Messages
// never show the password.
Parsed<RedisEndpoint> parse_redis_url(std::string_view text);

// `text` with the password (everything between the user's ':' and the '@', or the whole part
// before '@' when it has no ':') replaced by "***": fit for logs and error messages.
std::string masked_redis_url(std::string_view text);

}  // namespace tern::config
