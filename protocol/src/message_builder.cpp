// MessageBuilder: appends attributes to a caller-owned buffer. The integrity and fingerprint
// attributes are in integrity.cpp, beside the code that verifies them.
#include "tern/protocol/message_builder.hpp"

#include <algorithm>
#include <cstring>

#include "byte_order.hpp"
#include "tern/protocol/attribute_type.hpp"

namespace tern::protocol {

using namespace wire;

namespace {

// The header's length field is 16 bits and counts whole 32-bit words.
constexpr std::size_t max_body_size = 0xFFFC;

}  // namespace

MessageBuilder::MessageBuilder(std::span<std::uint8_t> buffer, MessageType type,
                               const TransactionId& id) noexcept
    : buffer_(buffer) {
    if (buffer_.size() < header_size) {
        ok_ = false;
        return;
    }
    std::uint8_t* p = buffer_.data();
    store16(p, type.encode());
    store16(p + 2, 0);
    store32(p + 4, magic_cookie);
    std::copy(id.bytes.begin(), id.bytes.end(), p + 8);
    size_ = header_size;
}

std::uint8_t* MessageBuilder::reserve(std::uint16_t type, std::size_t value_length) noexcept {
    if (!ok_) return nullptr;
    const std::size_t total = attribute_header_size + padded(value_length);
    if (value_length > 0xFFFF || total > buffer_.size() - size_ ||
        size_ - header_size + total > max_body_size) {
        ok_ = false;
        return nullptr;
    }
    std::uint8_t* p = buffer_.data() + size_;
    store16(p, type);
    store16(p + 2, static_cast<std::uint16_t>(value_length));
    std::fill(p + attribute_header_size + value_length, p + total, padding_byte_);
    size_ += total;
    store16(buffer_.data() + 2, static_cast<std::uint16_t>(size_ - header_size));
    return p + attribute_header_size;
}

void MessageBuilder::add_bytes(std::uint16_t type, std::span<const std::uint8_t> value) noexcept {
    if (std::uint8_t* p = reserve(type, value.size())) {
        if (!value.empty()) std::memcpy(p, value.data(), value.size());
    }
}

void MessageBuilder::add_text(std::uint16_t type, std::string_view value) noexcept {
    if (std::uint8_t* p = reserve(type, value.size())) {
        if (!value.empty()) std::memcpy(p, value.data(), value.size());
    }
}

void MessageBuilder::add_u32(std::uint16_t type, std::uint32_t value) noexcept {
    if (std::uint8_t* p = reserve(type, 4)) store32(p, value);
}

void MessageBuilder::add_flag(std::uint16_t type) noexcept {
    reserve(type, 0);
}

void MessageBuilder::add_address(std::uint16_t type, const TransportAddress& address) noexcept {
    const std::size_t size = address.address_size();
    if (std::uint8_t* p = reserve(type, 4 + size)) {
        p[0] = 0;
        p[1] = static_cast<std::uint8_t>(address.family);
        store16(p + 2, address.port);
        std::copy_n(address.bytes.begin(), size, p + 4);
    }
}

void MessageBuilder::add_xor_address(std::uint16_t type, const TransportAddress& address) noexcept {
    const std::size_t size = address.address_size();
    if (std::uint8_t* p = reserve(type, 4 + size)) {
        p[0] = 0;
        p[1] = static_cast<std::uint8_t>(address.family);
        store16(p + 2, static_cast<std::uint16_t>(address.port ^ (magic_cookie >> 16)));
        // RFC 8489 §14.2: the mask is the cookie then the transaction id, both already in the
        // header at bytes 4..19.
        const std::uint8_t* mask = buffer_.data() + 4;
        for (std::size_t i = 0; i < size; ++i) {
            p[4 + i] = static_cast<std::uint8_t>(address.bytes[i] ^ mask[i]);
        }
    }
}

void MessageBuilder::add_error_code(std::uint16_t code, std::string_view reason) noexcept {
    if (std::uint8_t* p = reserve_error_code(attr::error_code, code, reason)) p[0] = 0;
}

void MessageBuilder::add_address_error_code(AddressFamily family, std::uint16_t code,
                                            std::string_view reason) noexcept {
    if (std::uint8_t* p = reserve_error_code(attr::address_error_code, code, reason)) {
        p[0] = static_cast<std::uint8_t>(family);
    }
}

std::uint8_t* MessageBuilder::reserve_error_code(std::uint16_t type, std::uint16_t code,
                                                 std::string_view reason) noexcept {
    // Codes the parser would reject (RFC 8489 §14.8: 300..699) fail the builder instead.
    if (code < 300 || code > 699) {
        ok_ = false;
        return nullptr;
    }
    std::uint8_t* p = reserve(type, 4 + reason.size());
    if (p == nullptr) return nullptr;
    p[1] = 0;
    p[2] = static_cast<std::uint8_t>(code / 100);
    p[3] = static_cast<std::uint8_t>(code % 100);
    if (!reason.empty()) std::memcpy(p + 4, reason.data(), reason.size());
    return p;
}

void MessageBuilder::add_unknown_attributes(std::span<const std::uint16_t> types) noexcept {
    // An empty list is malformed (the parser requires a non-zero length).
    if (types.empty()) {
        ok_ = false;
        return;
    }
    if (types.size() > 0xFFFF / 2) {
        ok_ = false;
        return;
    }
    if (std::uint8_t* p = reserve(attr::unknown_attributes, 2 * types.size())) {
        for (const auto t : types) {
            store16(p, t);
            p += 2;
        }
    }
}

void MessageBuilder::add_channel_number(std::uint16_t channel) noexcept {
    add_u32(attr::channel_number, std::uint32_t{channel} << 16);  // low 16 bits are RFFU
}

void MessageBuilder::add_lifetime(std::uint32_t seconds) noexcept {
    add_u32(attr::lifetime, seconds);
}

void MessageBuilder::add_requested_transport(std::uint8_t protocol) noexcept {
    add_u32(attr::requested_transport, std::uint32_t{protocol} << 24);
}

void MessageBuilder::add_even_port(bool reserve_next) noexcept {
    if (std::uint8_t* p = reserve(attr::even_port, 1)) *p = reserve_next ? 0x80 : 0x00;
}

void MessageBuilder::add_reservation_token(std::uint64_t token) noexcept {
    if (std::uint8_t* p = reserve(attr::reservation_token, 8)) {
        store32(p, static_cast<std::uint32_t>(token >> 32));
        store32(p + 4, static_cast<std::uint32_t>(token));
    }
}

}  // namespace tern::protocol
