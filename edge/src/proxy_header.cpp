// PROXY protocol v1 and v2 headers: parse_proxy_header and write_proxy_v2.
#include "tern/edge/proxy_header.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <string_view>

namespace tern::edge {

namespace {

using protocol::AddressFamily;
using protocol::TransportAddress;

constexpr std::array<std::uint8_t, 6> v1_signature{'P', 'R', 'O', 'X', 'Y', ' '};
constexpr std::array<std::uint8_t, 12> v2_signature{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::size_t v2_fixed_size = 16;  // signature, ver_cmd, fam, len
constexpr std::uint8_t v2_version = 0x2;
constexpr std::uint8_t v2_command_local = 0x0;
constexpr std::uint8_t v2_command_proxy = 0x1;
constexpr std::uint8_t v2_tcp_over_ipv4 = 0x11;
constexpr std::uint8_t v2_tcp_over_ipv6 = 0x21;
constexpr std::size_t v2_ipv4_block = 2 * 4 + 2 * 2;
constexpr std::size_t v2_ipv6_block = 2 * 16 + 2 * 2;

static_assert(v2_fixed_size + v2_ipv6_block == proxy_v2_max_bytes);

ProxyParse verdict(ProxyStatus status) noexcept {
    ProxyParse out;
    out.status = status;
    return out;
}

// Whether the bytes so far agree with the start of `signature`.
bool agrees(std::span<const std::uint8_t> prefix, std::span<const std::uint8_t> signature) {
    const std::size_t n = std::min(prefix.size(), signature.size());
    return std::equal(prefix.begin(), prefix.begin() + static_cast<std::ptrdiff_t>(n),
                      signature.begin());
}

// Whether `seen` is `word` or a beginning of it.
bool begins(std::string_view word, std::string_view seen) noexcept {
    return seen.size() <= word.size() && word.substr(0, seen.size()) == seen;
}

bool is_v1_address_char(char c) noexcept {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.' ||
           c == ':' || c == ' ';
}

std::optional<std::uint16_t> v1_port(std::string_view text) noexcept {
    // Decimal 0..65535; the spec forbids leading zeros (they read as octal elsewhere).
    if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) {
        return std::nullopt;
    }
    std::uint32_t value = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<std::uint32_t>(c - '0');
    }
    if (value > 0xFFFF) return std::nullopt;
    return static_cast<std::uint16_t>(value);
}

std::optional<TransportAddress> v1_address(std::string_view text, AddressFamily family) noexcept {
    // inet_pton's forms; v1_address_char already kept brackets out, so parse_ip cannot take
    // "[::1]". IPv4 in dotted quad only: glibc refuses leading zeros and short forms.
    auto address = TransportAddress::parse_ip(text);
    if (!address || address->family != family) return std::nullopt;
    return address;
}

ProxyParse parse_v1(std::span<const std::uint8_t> prefix) noexcept {
    const std::string_view seen(reinterpret_cast<const char*>(prefix.data()),
                                std::min(prefix.size(), max_proxy_v1_bytes));
    const std::size_t eol = seen.find_first_of("\r\n", v1_signature.size());
    const std::string_view body =
        seen.substr(v1_signature.size(), eol == std::string_view::npos ? std::string_view::npos
                                                                       : eol - v1_signature.size());

    // The protocol word is judged as it arrives, so a wrong one is refused without waiting for
    // a CRLF that may never come.
    bool unknown = false;
    AddressFamily family = AddressFamily::ipv4;
    if (body.substr(0, 7) == "UNKNOWN") {
        if (body.size() > 7 && body[7] != ' ') return verdict(ProxyStatus::malformed);
        unknown = true;
    } else if (body.substr(0, 5) == "TCP4 " || body.substr(0, 5) == "TCP6 ") {
        family = body[3] == '4' ? AddressFamily::ipv4 : AddressFamily::ipv6;
        if (!std::all_of(body.begin() + 5, body.end(), is_v1_address_char)) {
            return verdict(ProxyStatus::malformed);
        }
    } else {
        // Only the start of a word so far: fine while the line goes on ("PROXY TCP"), refused
        // once it has ended ("PROXY TCP4\r\n") or cannot become one ("PROXY TCP5").
        const bool partial =
            begins("UNKNOWN", body) || begins("TCP4 ", body) || begins("TCP6 ", body);
        if (!partial || eol != std::string_view::npos) return verdict(ProxyStatus::malformed);
    }

    if (eol == std::string_view::npos) {
        return verdict(seen.size() == max_proxy_v1_bytes ? ProxyStatus::malformed
                                                         : ProxyStatus::need_more);
    }
    // Only CRLF ends the line: a lone CR or LF is refused, and so is a CRLF past byte 107.
    if (seen[eol] != '\r' || eol + 2 > max_proxy_v1_bytes) return verdict(ProxyStatus::malformed);
    if (eol + 1 == prefix.size()) return verdict(ProxyStatus::need_more);
    if (prefix[eol + 1] != '\n') return verdict(ProxyStatus::malformed);

    ProxyParse out;
    out.length = eol + 2;
    if (unknown) {
        // The rest of an UNKNOWN line is ignored, as the spec asks.
        out.status = ProxyStatus::complete;
        out.local = true;
        return out;
    }
    // Exactly "src dst sport dport", one space apart: an empty field means a doubled space.
    std::array<std::string_view, 4> fields{};
    std::string_view rest = body.substr(5);
    for (std::size_t i = 0; i < fields.size(); ++i) {
        const std::size_t space = rest.find(' ');
        const bool last = i + 1 == fields.size();
        if (last != (space == std::string_view::npos)) return verdict(ProxyStatus::malformed);
        fields[i] = rest.substr(0, space);
        if (fields[i].empty()) return verdict(ProxyStatus::malformed);
        if (!last) rest.remove_prefix(space + 1);
    }
    const auto source = v1_address(fields[0], family);
    const auto destination = v1_address(fields[1], family);
    const auto source_port = v1_port(fields[2]);
    const auto destination_port = v1_port(fields[3]);
    if (!source || !destination || !source_port || !destination_port) {
        return verdict(ProxyStatus::malformed);
    }
    out.status = ProxyStatus::complete;
    out.source = *source;
    out.source.port = *source_port;
    out.destination = *destination;
    out.destination.port = *destination_port;
    return out;
}

std::uint16_t read_u16(std::span<const std::uint8_t> bytes, std::size_t at) noexcept {
    return static_cast<std::uint16_t>(bytes[at] << 8 | bytes[at + 1]);
}

ProxyParse parse_v2(std::span<const std::uint8_t> prefix) noexcept {
    // Each fixed byte is judged as soon as it is here; then the length says how long to wait.
    if (prefix.size() <= 12) return verdict(ProxyStatus::need_more);
    const std::uint8_t version = prefix[12] >> 4;
    const std::uint8_t command = prefix[12] & 0x0F;
    if (version != v2_version || (command != v2_command_local && command != v2_command_proxy)) {
        return verdict(ProxyStatus::malformed);
    }
    if (prefix.size() <= 13) return verdict(ProxyStatus::need_more);
    const std::uint8_t family = prefix[13];
    // LOCAL's address block is ignored whatever its family says (spec §2.2).
    if (command == v2_command_proxy && family != v2_tcp_over_ipv4 && family != v2_tcp_over_ipv6) {
        return verdict(ProxyStatus::malformed);
    }
    if (prefix.size() < v2_fixed_size) return verdict(ProxyStatus::need_more);
    const std::size_t length = v2_fixed_size + read_u16(prefix, 14);
    if (length > max_proxy_header_bytes) return verdict(ProxyStatus::too_large);
    const std::size_t block = family == v2_tcp_over_ipv4 ? v2_ipv4_block : v2_ipv6_block;
    if (command == v2_command_proxy && length < v2_fixed_size + block) {
        return verdict(ProxyStatus::malformed);
    }
    if (prefix.size() < length) return verdict(ProxyStatus::need_more);

    ProxyParse out;
    out.status = ProxyStatus::complete;
    out.length = length;
    if (command == v2_command_local) {
        out.local = true;
        return out;
    }
    // Source address, destination address, source port, destination port; TLVs follow.
    const auto addresses = prefix.subspan(v2_fixed_size, block);
    if (family == v2_tcp_over_ipv4) {
        out.source = TransportAddress::v4({addresses[0], addresses[1], addresses[2], addresses[3]},
                                          read_u16(addresses, 8));
        out.destination = TransportAddress::v4(
            {addresses[4], addresses[5], addresses[6], addresses[7]}, read_u16(addresses, 10));
    } else {
        std::array<std::uint8_t, 16> source{};
        std::array<std::uint8_t, 16> destination{};
        std::copy_n(addresses.begin(), 16, source.begin());
        std::copy_n(addresses.begin() + 16, 16, destination.begin());
        out.source = TransportAddress::v6(source, read_u16(addresses, 32));
        out.destination = TransportAddress::v6(destination, read_u16(addresses, 34));
    }
    return out;
}

// The address as IPv6, an IPv4 one mapped into ::ffff:0:0/96 (RFC 4291 §2.5.5.2).
std::array<std::uint8_t, 16> as_ipv6(const TransportAddress& address) noexcept {
    if (address.family == AddressFamily::ipv6) return address.bytes;
    std::array<std::uint8_t, 16> out{};
    out[10] = 0xFF;
    out[11] = 0xFF;
    std::copy_n(address.bytes.begin(), 4, out.begin() + 12);
    return out;
}

std::uint8_t* put_u16(std::uint8_t* at, std::uint16_t value) noexcept {
    at[0] = static_cast<std::uint8_t>(value >> 8);
    at[1] = static_cast<std::uint8_t>(value & 0xFF);
    return at + 2;
}

}  // namespace

ProxyParse parse_proxy_header(std::span<const std::uint8_t> prefix) noexcept {
    if (prefix.empty()) return verdict(ProxyStatus::need_more);
    // The two signatures differ in their first byte, so it picks the version.
    if (prefix[0] == v1_signature[0]) {
        if (!agrees(prefix, v1_signature)) return verdict(ProxyStatus::not_proxy);
        if (prefix.size() < v1_signature.size()) return verdict(ProxyStatus::need_more);
        return parse_v1(prefix);
    }
    if (prefix[0] == v2_signature[0]) {
        if (!agrees(prefix, v2_signature)) return verdict(ProxyStatus::not_proxy);
        return parse_v2(prefix);
    }
    return verdict(ProxyStatus::not_proxy);
}

std::size_t write_proxy_v2(std::span<std::uint8_t, proxy_v2_max_bytes> out,
                           const TransportAddress& source,
                           const TransportAddress& destination) noexcept {
    const bool ipv4 =
        source.family == AddressFamily::ipv4 && destination.family == AddressFamily::ipv4;
    const std::size_t block = ipv4 ? v2_ipv4_block : v2_ipv6_block;
    std::uint8_t* at = std::copy(v2_signature.begin(), v2_signature.end(), out.data());
    *at++ = v2_version << 4 | v2_command_proxy;
    *at++ = ipv4 ? v2_tcp_over_ipv4 : v2_tcp_over_ipv6;
    at = put_u16(at, static_cast<std::uint16_t>(block));
    if (ipv4) {
        at = std::copy_n(source.bytes.begin(), 4, at);
        at = std::copy_n(destination.bytes.begin(), 4, at);
    } else {
        const auto source6 = as_ipv6(source);
        const auto destination6 = as_ipv6(destination);
        at = std::copy(source6.begin(), source6.end(), at);
        at = std::copy(destination6.begin(), destination6.end(), at);
    }
    at = put_u16(at, source.port);
    put_u16(at, destination.port);
    return v2_fixed_size + block;
}

}  // namespace tern::edge
