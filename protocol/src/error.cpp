// Names for ParseError values and the std::error_category that carries them.
#include "tern/protocol/error.hpp"

#include <string>

namespace tern::protocol {

const char* to_string(ParseError e) noexcept {
    switch (e) {
        case ParseError::ok:
            return "ok";
        case ParseError::truncated_header:
            return "truncated header";
        case ParseError::not_stun:
            return "not a STUN message";
        case ParseError::bad_magic_cookie:
            return "bad magic cookie";
        case ParseError::bad_length:
            return "message length is not a multiple of 4";
        case ParseError::length_mismatch:
            return "message length disagrees with the datagram size";
        case ParseError::attribute_overrun:
            return "attribute runs past the end of the message";
        case ParseError::attribute_after_fingerprint:
            return "attribute after FINGERPRINT";
        case ParseError::duplicate_attribute:
            return "duplicate attribute";
        case ParseError::bad_attribute_length:
            return "bad attribute length";
        case ParseError::bad_attribute_value:
            return "bad attribute value";
        case ParseError::too_many_attributes:
            return "too many attributes";
        case ParseError::bad_channel_number:
            return "bad channel number";
        case ParseError::truncated_channel_data:
            return "truncated ChannelData";
    }
    return "unknown parse error";
}

namespace {

class ParseErrorCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "tern.protocol"; }
    std::string message(int value) const override {
        return to_string(static_cast<ParseError>(value));
    }
};

}  // namespace

const std::error_category& parse_error_category() noexcept {
    static const ParseErrorCategory category;
    return category;
}

}  // namespace tern::protocol
