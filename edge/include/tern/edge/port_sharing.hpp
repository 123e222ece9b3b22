// One port (443) for TURN and a website: what a new connection is from its first bytes, and
// where a TLS connection goes from its ClientHello.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "tern/edge/client_hello.hpp"

namespace tern::edge {

enum class FirstBytes : std::uint8_t {
    need_more,  // too few bytes to tell
    tls,        // a TLS handshake record: byte 0 0x16, byte 1 0x03
    stun,       // TURN over TCP: a STUN message (RFC 8489 §5)
    other,      // anything else, ChannelData and plain-text HTTP included
};

// Decides as early as the bytes allow: one byte for `other`, two for TLS, and up to eight for a
// STUN message (its type's leading 00 bits, a length that is a multiple of 4, and the magic
// cookie 0x2112A442 at bytes 4..7; each is checked as soon as it arrives). A 0x16 0x03 start is
// TLS even though it could also begin a STUN message type. ChannelData (0x40..0x7F) cannot open
// a connection, since no channel is bound on it yet (RFC 8656 §12), so that range, where the
// ASCII capitals of "GET " and "PROXY " also lie, is `other`.
FirstBytes classify(std::span<const std::uint8_t> prefix) noexcept;

// TURN's ALPN protocol ids (RFC 7443 §5).
inline constexpr std::string_view alpn_turn = "stun.turn";
inline constexpr std::string_view alpn_nat_discovery = "stun.nat-discovery";

// Whether `host` matches the name `pattern`: equal ignoring ASCII case, or, for a pattern
// "*.rest", `host` is one non-empty label without dots, a dot, then `rest` (ignoring case), so
// "*.example.com" matches "a.example.com" but neither "example.com" nor "a.b.example.com".
// The certificate wildcard rule (RFC 6125 §6.4.3), usable for choosing a certificate too.
bool name_matches(std::string_view pattern, std::string_view host) noexcept;

enum class TlsDestination : std::uint8_t { turn, fallback };

// Where a TLS connection on the shared port goes, from its complete ClientHello (a reader
// whose parse() returned complete), checked in this order:
//  (a) the client offers ALPN "stun.turn" or "stun.nat-discovery"          -> turn
//  (b) its SNI is valid and name_matches one of `turn_names`                -> turn
//  (c) it sent any other SNI, an invalid one included                      -> fallback
//  (d) no SNI, but it offers ALPN (h2, http/1.1, ...)                       -> fallback
//  (e) no SNI and no ALPN                                                  -> turn
// TURN clients given an IP address send neither SNI nor ALPN; browsers always send SNI for a
// website's name, and ALPN for HTTP.
TlsDestination route(const ClientHelloReader& hello,
                     std::span<const std::string> turn_names) noexcept;

}  // namespace tern::edge
