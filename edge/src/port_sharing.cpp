// classify, name_matches and route: the port-sharing decisions.
#include "tern/edge/port_sharing.hpp"

#include <algorithm>
#include <array>

namespace tern::edge {

namespace {

constexpr std::uint8_t tls_handshake = 0x16;
constexpr std::uint8_t tls_major_version = 0x03;
constexpr std::array<std::uint8_t, 4> magic_cookie{0x21, 0x12, 0xA4, 0x42};  // RFC 8489 §5
constexpr std::size_t stun_cookie_offset = 4;

char lower(char c) noexcept {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool equal_ignoring_case(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(),
                      [](char x, char y) noexcept { return lower(x) == lower(y); });
}

}  // namespace

FirstBytes classify(std::span<const std::uint8_t> prefix) noexcept {
    if (prefix.empty()) return FirstBytes::need_more;
    const std::uint8_t first = prefix[0];
    if (first == tls_handshake) {
        if (prefix.size() < 2) return FirstBytes::need_more;
        if (prefix[1] == tls_major_version) return FirstBytes::tls;
        // 0x16 also begins a STUN message type (its top two bits are 00): judged below.
    }
    // Only a STUN message can open a TURN connection: ChannelData needs a channel bound on that
    // connection first (RFC 8656 §12). So 0x40..0x7F, where ChannelData and the ASCII capitals
    // of "GET " and "PROXY " live, is not TURN here.
    if ((first & 0xC0) != 0x00) return FirstBytes::other;
    // A STUN message: its length (bytes 2..3) counts whole 4-byte attributes, and the cookie
    // follows. Each byte is judged as it comes, so most non-STUN input is out early.
    if (prefix.size() > 3 && (prefix[3] & 0x03) != 0) return FirstBytes::other;
    for (std::size_t i = stun_cookie_offset; i < prefix.size() && i < 8; ++i) {
        if (prefix[i] != magic_cookie[i - stun_cookie_offset]) return FirstBytes::other;
    }
    return prefix.size() < 8 ? FirstBytes::need_more : FirstBytes::stun;
}

bool name_matches(std::string_view pattern, std::string_view host) noexcept {
    if (pattern.empty() || host.empty()) return false;
    if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
        // "*.example.com": one extra leftmost label, never zero or two.
        const std::string_view rest = pattern.substr(1);  // ".example.com"
        if (host.size() <= rest.size()) return false;
        const std::size_t label = host.size() - rest.size();
        if (host.substr(0, label).find('.') != std::string_view::npos) return false;
        return equal_ignoring_case(host.substr(label), rest);
    }
    return equal_ignoring_case(pattern, host);
}

TlsDestination route(const ClientHelloReader& hello,
                     std::span<const std::string> turn_names) noexcept {
    if (hello.offers(alpn_turn) || hello.offers(alpn_nat_discovery)) return TlsDestination::turn;
    if (hello.server_name_valid()) {
        const std::string_view name = hello.server_name();
        for (const std::string& turn_name : turn_names) {
            if (name_matches(turn_name, name)) return TlsDestination::turn;
        }
    }
    if (hello.has_server_name()) return TlsDestination::fallback;
    if (hello.offers_alpn()) return TlsDestination::fallback;
    return TlsDestination::turn;
}

}  // namespace tern::edge
