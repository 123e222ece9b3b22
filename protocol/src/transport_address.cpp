// TransportAddress construction, text parsing and formatting (inet_pton / inet_ntop).
#include "tern/protocol/transport_address.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace tern::protocol {

namespace {

// Longest textual IPv6 address inet_pton accepts, plus room for the terminating NUL.
constexpr std::size_t max_ip_text = INET6_ADDRSTRLEN;

std::optional<TransportAddress> parse_bare_ip(std::string_view text) noexcept {
    // inet_pton stops at a NUL, which would let "192.0.2.1\0junk" through.
    if (text.empty() || text.size() >= max_ip_text || text.find('\0') != std::string_view::npos) {
        return std::nullopt;
    }
    char terminated[max_ip_text] = {};
    std::memcpy(terminated, text.data(), text.size());
    TransportAddress out;
    if (text.find(':') == std::string_view::npos) {
        if (inet_pton(AF_INET, terminated, out.bytes.data()) != 1) return std::nullopt;
        out.family = AddressFamily::ipv4;
    } else {
        if (inet_pton(AF_INET6, terminated, out.bytes.data()) != 1) return std::nullopt;
        out.family = AddressFamily::ipv6;
    }
    return out;
}

std::optional<std::uint16_t> parse_port(std::string_view text) noexcept {
    if (text.empty() || text.size() > 5) return std::nullopt;
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value > 0xFFFF) {
        return std::nullopt;
    }
    return static_cast<std::uint16_t>(value);
}

}  // namespace

TransportAddress TransportAddress::v4(std::array<std::uint8_t, 4> addr,
                                      std::uint16_t port) noexcept {
    TransportAddress out;
    out.family = AddressFamily::ipv4;
    out.port = port;
    std::copy(addr.begin(), addr.end(), out.bytes.begin());
    return out;
}

TransportAddress TransportAddress::v6(const std::array<std::uint8_t, 16>& addr,
                                      std::uint16_t port) noexcept {
    TransportAddress out;
    out.family = AddressFamily::ipv6;
    out.port = port;
    out.bytes = addr;
    return out;
}

std::optional<TransportAddress> TransportAddress::parse_ip(std::string_view text) noexcept {
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
        auto inner = parse_bare_ip(text.substr(1, text.size() - 2));
        if (!inner || inner->family != AddressFamily::ipv6) return std::nullopt;
        return inner;
    }
    return parse_bare_ip(text);
}

std::optional<TransportAddress> TransportAddress::parse(std::string_view text) noexcept {
    std::string_view host;
    std::string_view port_text;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return std::nullopt;
        }
        host = text.substr(0, close + 1);
        port_text = text.substr(close + 2);
    } else {
        const auto colon = text.find(':');
        // A bare IPv6 address has several colons; it needs brackets to carry a port.
        if (colon == std::string_view::npos ||
            text.find(':', colon + 1) != std::string_view::npos) {
            return std::nullopt;
        }
        host = text.substr(0, colon);
        port_text = text.substr(colon + 1);
    }
    auto address = parse_ip(host);
    const auto port = parse_port(port_text);
    if (!address || !port) return std::nullopt;
    address->port = *port;
    return address;
}

bool TransportAddress::is_v4_mapped() const noexcept {
    if (family != AddressFamily::ipv6) return false;
    for (std::size_t i = 0; i < 10; ++i) {
        if (bytes[i] != 0) return false;
    }
    return bytes[10] == 0xFF && bytes[11] == 0xFF;
}

TransportAddress TransportAddress::unmapped() const noexcept {
    if (!is_v4_mapped()) return *this;
    return v4({bytes[12], bytes[13], bytes[14], bytes[15]}, port);
}

std::string TransportAddress::ip_string() const {
    char text[max_ip_text] = {};
    const int af = family == AddressFamily::ipv4 ? AF_INET : AF_INET6;
    if (inet_ntop(af, bytes.data(), text, sizeof text) == nullptr) return {};
    return text;
}

std::string TransportAddress::to_string() const {
    const bool bracketed = family == AddressFamily::ipv6;
    std::string out;
    out.reserve(max_ip_text + 8);
    if (bracketed) out.push_back('[');
    out.append(ip_string());
    if (bracketed) out.push_back(']');
    out.push_back(':');
    out.append(std::to_string(port));
    return out;
}

}  // namespace tern::protocol
