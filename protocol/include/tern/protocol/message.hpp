// MessageView: a parsed STUN message over the caller's bytes: validated once, then read without
// copies or heap allocation. The bytes must outlive the view.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/error.hpp"
#include "tern/protocol/message_type.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::protocol {

using ByteSpan = std::span<const std::uint8_t>;

struct AttributeView {
    std::uint16_t type = 0;
    ByteSpan value;          // unpadded value
    std::size_t offset = 0;  // offset of the attribute's TLV header from the start of the message
};

struct ErrorCodeValue {
    std::uint16_t code = 0;  // 300..699
    std::string_view reason;
};

struct PasswordAlgorithmValue {
    std::uint16_t algorithm = 0;  // 0x0001 MD5, 0x0002 SHA-256
    ByteSpan parameters;
};

struct IcmpValue {
    std::uint8_t type = 0;
    std::uint8_t code = 0;
    std::uint32_t error_data = 0;
};

struct AddressErrorCodeValue {
    AddressFamily family = AddressFamily::ipv4;
    std::uint16_t code = 0;
    std::string_view reason;
};

// Ceiling on the attributes one message may carry; more is ParseError::too_many_attributes.
inline constexpr std::size_t max_attributes = 48;

class MessageView {
public:
    // Validates the whole message: header, cookie, length (exactly bytes.size() - 20), every
    // attribute's bounds and the length/value rules of every known attribute, duplicates,
    // and FINGERPRINT last. Attributes after MESSAGE-INTEGRITY other than
    // MESSAGE-INTEGRITY-SHA256 and FINGERPRINT, and after MESSAGE-INTEGRITY-SHA256 other than
    // FINGERPRINT, are skipped as RFC 8489 §14.5/§14.6 require: find() does not see them.
    static ParseError parse(ByteSpan bytes, MessageView& out) noexcept;

    MessageType type() const noexcept { return type_; }
    Method method() const noexcept { return type_.method; }
    MessageClass message_class() const noexcept { return type_.cls; }
    const TransactionId& transaction_id() const noexcept { return transaction_id_; }
    ByteSpan bytes() const noexcept { return bytes_; }

    std::size_t attribute_count() const noexcept { return count_; }
    AttributeView attribute(std::size_t index) const noexcept;  // index < attribute_count()
    std::optional<AttributeView> find(std::uint16_t type) const noexcept;  // first occurrence

    // Writes up to out.size() comprehension-required types not in the registry; returns how
    // many such types the message has (may exceed out.size()).
    std::size_t unknown_comprehension_required(std::span<std::uint16_t> out) const noexcept;

    // Typed accessors: std::nullopt when the attribute is absent.
    std::optional<TransportAddress> xor_address(std::uint16_t type) const noexcept;
    std::optional<TransportAddress> plain_address(std::uint16_t type) const noexcept;
    std::optional<TransportAddress> xor_mapped_address() const noexcept {
        return xor_address(attr::xor_mapped_address);
    }
    std::optional<TransportAddress> xor_relayed_address() const noexcept {
        return xor_address(attr::xor_relayed_address);
    }
    std::optional<TransportAddress> xor_peer_address() const noexcept {
        return xor_address(attr::xor_peer_address);
    }
    std::optional<TransportAddress> mapped_address() const noexcept {
        return plain_address(attr::mapped_address);
    }
    // Every XOR-PEER-ADDRESS / XOR-RELAYED-ADDRESS in order; returns the total count.
    std::size_t xor_addresses(std::uint16_t type, std::span<TransportAddress> out) const noexcept;

    std::optional<std::string_view> text(std::uint16_t type) const noexcept;
    std::optional<std::string_view> username() const noexcept { return text(attr::username); }
    std::optional<std::string_view> realm() const noexcept { return text(attr::realm); }
    std::optional<std::string_view> nonce() const noexcept { return text(attr::nonce); }
    std::optional<std::string_view> software() const noexcept { return text(attr::software); }

    std::optional<ErrorCodeValue> error_code() const noexcept;
    // Types listed in UNKNOWN-ATTRIBUTES; returns their count.
    std::size_t unknown_attributes(std::span<std::uint16_t> out) const noexcept;
    std::optional<std::uint32_t> lifetime() const noexcept;
    std::optional<std::uint16_t> channel_number() const noexcept;
    std::optional<std::uint8_t> requested_transport() const noexcept;  // IANA protocol, 17 = UDP
    std::optional<std::uint8_t> requested_address_family() const noexcept;   // raw family byte
    std::optional<std::uint8_t> additional_address_family() const noexcept;  // raw family byte
    std::optional<bool> even_port() const noexcept;  // value = the R (reserve next) bit
    std::optional<std::uint64_t> reservation_token() const noexcept;
    bool has(std::uint16_t type) const noexcept { return find(type).has_value(); }
    std::optional<ByteSpan> data() const noexcept;
    std::optional<AddressErrorCodeValue> address_error_code() const noexcept;
    std::optional<IcmpValue> icmp() const noexcept;
    std::optional<std::uint32_t> change_request() const noexcept;  // flag bits, 0x4 IP, 0x2 port
    std::optional<std::uint16_t> response_port() const noexcept;
    std::optional<std::uint32_t> connection_id() const noexcept;
    std::optional<ByteSpan> mobility_ticket() const noexcept;
    std::optional<ByteSpan> userhash() const noexcept;  // 32 bytes
    std::optional<PasswordAlgorithmValue> password_algorithm() const noexcept;
    // Entries of PASSWORD-ALGORITHMS in order; returns the total count.
    std::size_t password_algorithms(std::span<PasswordAlgorithmValue> out) const noexcept;
    std::optional<std::uint32_t> fingerprint() const noexcept;

private:
    struct Entry {
        std::uint16_t type;
        std::uint16_t length;
        std::uint32_t offset;  // of the TLV header
    };
    ByteSpan bytes_;
    MessageType type_;
    TransactionId transaction_id_;
    std::size_t count_ = 0;
    std::array<Entry, max_attributes> entries_{};
};

// Demultiplexing by the first two bits (RFC 8656 §12): 00 STUN, 01 ChannelData.
constexpr bool looks_like_stun(std::uint8_t first_byte) noexcept {
    return (first_byte & 0xC0) == 0;
}
constexpr bool looks_like_channel_data(std::uint8_t first_byte) noexcept {
    return (first_byte & 0xC0) == 0x40;
}

}  // namespace tern::protocol
