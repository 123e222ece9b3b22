// The STUN attribute registry tern knows: RFC 8489, RFC 8656, RFC 5780, RFC 6062, RFC 8016 and
// the ICE attributes of RFC 8445, with the length rules the parser enforces for each.
#pragma once

#include <cstdint>

namespace tern::protocol {

namespace attr {
// RFC 8489
inline constexpr std::uint16_t mapped_address = 0x0001;
inline constexpr std::uint16_t username = 0x0006;
inline constexpr std::uint16_t message_integrity = 0x0008;
inline constexpr std::uint16_t error_code = 0x0009;
inline constexpr std::uint16_t unknown_attributes = 0x000A;
inline constexpr std::uint16_t realm = 0x0014;
inline constexpr std::uint16_t nonce = 0x0015;
inline constexpr std::uint16_t message_integrity_sha256 = 0x001C;
inline constexpr std::uint16_t password_algorithm = 0x001D;
inline constexpr std::uint16_t userhash = 0x001E;
inline constexpr std::uint16_t xor_mapped_address = 0x0020;
inline constexpr std::uint16_t password_algorithms = 0x8002;
inline constexpr std::uint16_t alternate_domain = 0x8003;
inline constexpr std::uint16_t software = 0x8022;
inline constexpr std::uint16_t alternate_server = 0x8023;
inline constexpr std::uint16_t fingerprint = 0x8028;
// RFC 8656
inline constexpr std::uint16_t channel_number = 0x000C;
inline constexpr std::uint16_t lifetime = 0x000D;
inline constexpr std::uint16_t xor_peer_address = 0x0012;
inline constexpr std::uint16_t data = 0x0013;
inline constexpr std::uint16_t xor_relayed_address = 0x0016;
inline constexpr std::uint16_t requested_address_family = 0x0017;
inline constexpr std::uint16_t even_port = 0x0018;
inline constexpr std::uint16_t requested_transport = 0x0019;
inline constexpr std::uint16_t dont_fragment = 0x001A;
inline constexpr std::uint16_t reservation_token = 0x0022;
inline constexpr std::uint16_t additional_address_family = 0x8000;
inline constexpr std::uint16_t address_error_code = 0x8001;
inline constexpr std::uint16_t icmp = 0x8004;
// RFC 5780
inline constexpr std::uint16_t change_request = 0x0003;
inline constexpr std::uint16_t padding = 0x0026;
inline constexpr std::uint16_t response_port = 0x0027;
inline constexpr std::uint16_t response_origin = 0x802B;
inline constexpr std::uint16_t other_address = 0x802C;
// RFC 6062
inline constexpr std::uint16_t connection_id = 0x002A;
// RFC 8016
inline constexpr std::uint16_t mobility_ticket = 0x8030;
// RFC 8445 (ICE); known so that a Binding carrying them is not answered with 420
inline constexpr std::uint16_t priority = 0x0024;
inline constexpr std::uint16_t use_candidate = 0x0025;
inline constexpr std::uint16_t ice_controlled = 0x8029;
inline constexpr std::uint16_t ice_controlling = 0x802A;
}  // namespace attr

// RFC 8489 §14: 0x0000-0x7FFF must be understood or the request is rejected with 420.
constexpr bool is_comprehension_required(std::uint16_t type) noexcept {
    return type < 0x8000;
}

// True for the attributes that carry a family, a port and an address (RFC 8489 §14.1, §14.2,
// §14.15; RFC 8656 §18.3, §18.5; RFC 5780 §7.3, §7.4): an unknown family makes them malformed.
constexpr bool is_address_attribute(std::uint16_t type) noexcept {
    switch (type) {
        case attr::mapped_address:
        case attr::xor_mapped_address:
        case attr::xor_peer_address:
        case attr::xor_relayed_address:
        case attr::alternate_server:
        case attr::response_origin:
        case attr::other_address:
            return true;
        default:
            return false;
    }
}

// True for every type listed in namespace attr.
bool is_known_attribute(std::uint16_t type) noexcept;

// True where the defining RFC lets the attribute appear several times in one message
// (XOR-PEER-ADDRESS in CreatePermission, two XOR-RELAYED-ADDRESS in a dual-stack Allocate).
bool is_repeatable_attribute(std::uint16_t type) noexcept;

// "XOR-MAPPED-ADDRESS" etc.; "UNKNOWN" for types not in the registry.
const char* attribute_name(std::uint16_t type) noexcept;

}  // namespace tern::protocol
