// The PROXY protocol (haproxy's proxy-protocol.txt): a load balancer in front of tern prepends
// one header to each TCP connection naming the client it accepted. Versions 1 (text) and 2
// (binary) are read; version 2 is written, for handing a connection on to another server.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "tern/protocol/transport_address.hpp"

namespace tern::edge {

enum class ProxyStatus : std::uint8_t {
    need_more,  // a prefix of a PROXY header so far: call again with more bytes
    complete,   // a whole header of `length` bytes is at the front
    not_proxy,  // the bytes cannot begin "PROXY " nor the 12-byte v2 signature
    malformed,  // a PROXY header, but one the spec does not allow (or we do not accept)
    too_large,  // a v2 header whose declared length exceeds max_proxy_header_bytes
};

// Version 1's longest line, CRLF included ("PROXY UNKNOWN" with two full IPv6 addresses). A
// v1 line with no CRLF in its first 107 bytes is malformed, as the spec calls it invalid.
inline constexpr std::size_t max_proxy_v1_bytes = 107;
// Version 2 header cap: 16 bytes, an IPv6 address block (36) and room for the TLVs load
// balancers add (AWS and GCP send tens of bytes). A longer header is too_large.
inline constexpr std::size_t max_proxy_header_bytes = 1024;
// What write_proxy_v2 needs: the 16-byte header and an IPv6 address block.
inline constexpr std::size_t proxy_v2_max_bytes = 16 + 36;

struct ProxyParse {
    ProxyStatus status = ProxyStatus::need_more;
    std::size_t length = 0;  // header bytes to drop from the stream (complete only)
    // The proxy speaks for itself (v1 UNKNOWN, v2 LOCAL, e.g. health checks): keep the
    // connection's own addresses; source and destination are not set.
    bool local = false;
    protocol::TransportAddress source;       // the client the proxy accepted
    protocol::TransportAddress destination;  // the address that client connected to
};

// `prefix` is every byte the connection has received so far. Each version's signature is
// matched byte by byte, so not_proxy comes with the first byte that differs from both, and a
// v2 header's fixed fields are judged as they arrive. Strict: v1 wants exactly one space
// between fields, addresses in their family's form (IPv4 dotted quad without leading zeros, no
// brackets), ports 0..65535 in decimal without sign or leading zero; "PROXY UNKNOWN" ignores
// the rest of its line. v2 accepts LOCAL with any address block (ignored) and PROXY with TCP
// over IPv4 (0x11) or IPv6 (0x21); UNSPEC, UDP, UNIX and unassigned values are malformed for
// PROXY. TLVs after the addresses are skipped.
ProxyParse parse_proxy_header(std::span<const std::uint8_t> prefix) noexcept;

// A v2 PROXY header for a TCP connection from `source` to `destination`; returns its size, 28
// when both are IPv4 and 52 otherwise (an IPv4 address then as ::ffff:a.b.c.d).
std::size_t write_proxy_v2(std::span<std::uint8_t, proxy_v2_max_bytes> out,
                           const protocol::TransportAddress& source,
                           const protocol::TransportAddress& destination) noexcept;

}  // namespace tern::edge
