// Parse outcomes of the STUN codec, as values: every byte the codec sees comes from an attacker.
// ParseError plugs into std::error_code so callers may log or compare it without exceptions.
#pragma once

#include <cstdint>
#include <system_error>

namespace tern::protocol {

enum class ParseError : std::uint8_t {
    ok = 0,
    truncated_header,             // fewer than 20 bytes (STUN) or 4 bytes (ChannelData)
    not_stun,                     // the two most significant bits are not zero
    bad_magic_cookie,             // cookie is not 0x2112A442
    bad_length,                   // message length is not a multiple of 4
    length_mismatch,              // header length disagrees with the bytes given
    attribute_overrun,            // an attribute's value runs past the end of the message
    attribute_after_fingerprint,  // FINGERPRINT must be the last attribute (RFC 8489 §14.7)
    duplicate_attribute,          // a single-valued attribute appears twice
    bad_attribute_length,         // zero length where forbidden, or the wrong fixed size
    bad_attribute_value,          // e.g. unknown address family, bad ERROR-CODE class
    too_many_attributes,          // more than MessageView::max_attributes
    bad_channel_number,           // ChannelData channel outside 0x4000-0x4FFF
    truncated_channel_data,       // ChannelData length field larger than the bytes given
};

const char* to_string(ParseError e) noexcept;
const std::error_category& parse_error_category() noexcept;
inline std::error_code make_error_code(ParseError e) noexcept {
    return {static_cast<int>(e), parse_error_category()};
}

}  // namespace tern::protocol

template <>
struct std::is_error_code_enum<tern::protocol::ParseError> : std::true_type {};
