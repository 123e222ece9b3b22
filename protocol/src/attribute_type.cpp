// The attribute registry: which types tern understands, which may repeat, and their names.
#include "tern/protocol/attribute_type.hpp"

namespace tern::protocol {

namespace {
constexpr const char unknown_name[] = "UNKNOWN";
}  // namespace

const char* attribute_name(std::uint16_t type) noexcept {
    switch (type) {
        case attr::mapped_address:
            return "MAPPED-ADDRESS";
        case attr::username:
            return "USERNAME";
        case attr::message_integrity:
            return "MESSAGE-INTEGRITY";
        case attr::error_code:
            return "ERROR-CODE";
        case attr::unknown_attributes:
            return "UNKNOWN-ATTRIBUTES";
        case attr::realm:
            return "REALM";
        case attr::nonce:
            return "NONCE";
        case attr::message_integrity_sha256:
            return "MESSAGE-INTEGRITY-SHA256";
        case attr::password_algorithm:
            return "PASSWORD-ALGORITHM";
        case attr::userhash:
            return "USERHASH";
        case attr::xor_mapped_address:
            return "XOR-MAPPED-ADDRESS";
        case attr::password_algorithms:
            return "PASSWORD-ALGORITHMS";
        case attr::alternate_domain:
            return "ALTERNATE-DOMAIN";
        case attr::software:
            return "SOFTWARE";
        case attr::alternate_server:
            return "ALTERNATE-SERVER";
        case attr::fingerprint:
            return "FINGERPRINT";
        case attr::channel_number:
            return "CHANNEL-NUMBER";
        case attr::lifetime:
            return "LIFETIME";
        case attr::xor_peer_address:
            return "XOR-PEER-ADDRESS";
        case attr::data:
            return "DATA";
        case attr::xor_relayed_address:
            return "XOR-RELAYED-ADDRESS";
        case attr::requested_address_family:
            return "REQUESTED-ADDRESS-FAMILY";
        case attr::even_port:
            return "EVEN-PORT";
        case attr::requested_transport:
            return "REQUESTED-TRANSPORT";
        case attr::dont_fragment:
            return "DONT-FRAGMENT";
        case attr::reservation_token:
            return "RESERVATION-TOKEN";
        case attr::additional_address_family:
            return "ADDITIONAL-ADDRESS-FAMILY";
        case attr::address_error_code:
            return "ADDRESS-ERROR-CODE";
        case attr::icmp:
            return "ICMP";
        case attr::change_request:
            return "CHANGE-REQUEST";
        case attr::padding:
            return "PADDING";
        case attr::response_port:
            return "RESPONSE-PORT";
        case attr::response_origin:
            return "RESPONSE-ORIGIN";
        case attr::other_address:
            return "OTHER-ADDRESS";
        case attr::connection_id:
            return "CONNECTION-ID";
        case attr::mobility_ticket:
            return "MOBILITY-TICKET";
        case attr::priority:
            return "PRIORITY";
        case attr::use_candidate:
            return "USE-CANDIDATE";
        case attr::ice_controlled:
            return "ICE-CONTROLLED";
        case attr::ice_controlling:
            return "ICE-CONTROLLING";
        default:
            return unknown_name;
    }
}

bool is_known_attribute(std::uint16_t type) noexcept {
    // attribute_name is the single list of known types, so the two cannot drift apart.
    return attribute_name(type) != unknown_name;
}

bool is_repeatable_attribute(std::uint16_t type) noexcept {
    return type == attr::xor_peer_address || type == attr::xor_relayed_address;
}

}  // namespace tern::protocol
