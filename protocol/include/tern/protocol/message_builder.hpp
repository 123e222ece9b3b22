// MessageBuilder: writes a STUN message into a caller-owned buffer, keeping the header length
// current so integrity and fingerprint attributes can be appended at any point. No heap, no throw.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "tern/protocol/message_type.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::protocol {

class MessageBuilder {
public:
    // Writes the 20-byte header at once. A buffer too small for anything leaves ok() false.
    MessageBuilder(std::span<std::uint8_t> buffer, MessageType type,
                   const TransactionId& id) noexcept;

    // Each add_* appends one attribute padded to 4 bytes. When the buffer cannot hold it, nothing
    // is written and the builder stays failed: ok() returns false and finish() an empty span.
    // A value the parser would reject fails the builder the same way (an (ADDRESS-)ERROR-CODE
    // outside 300..699, an empty UNKNOWN-ATTRIBUTES list, a MI-SHA256 length not 16..32 step 4).
    void add_bytes(std::uint16_t type, std::span<const std::uint8_t> value) noexcept;
    void add_text(std::uint16_t type, std::string_view value) noexcept;
    void add_u32(std::uint16_t type, std::uint32_t value) noexcept;
    void add_flag(std::uint16_t type) noexcept;  // zero-length attribute, e.g. DONT-FRAGMENT
    void add_address(std::uint16_t type, const TransportAddress& address) noexcept;
    void add_xor_address(std::uint16_t type, const TransportAddress& address) noexcept;
    void add_error_code(std::uint16_t code, std::string_view reason) noexcept;
    // RFC 8656 §18.12: why the relayed address of `family` was not allocated (same code range).
    void add_address_error_code(AddressFamily family, std::uint16_t code,
                                std::string_view reason) noexcept;
    void add_unknown_attributes(std::span<const std::uint16_t> types) noexcept;
    void add_channel_number(std::uint16_t channel) noexcept;
    void add_lifetime(std::uint32_t seconds) noexcept;
    void add_requested_transport(std::uint8_t protocol) noexcept;
    void add_even_port(bool reserve_next) noexcept;
    void add_reservation_token(std::uint64_t token) noexcept;

    // HMAC-SHA1 over the message so far, with the length field counting the MI attribute
    // (RFC 8489 §14.5). key: the long-term key (MD5 of user:realm:pass) or short-term password.
    void add_message_integrity(std::span<const std::uint8_t> key) noexcept;
    // HMAC-SHA256, truncated to `length` bytes (16..32, multiple of 4) (RFC 8489 §14.6).
    void add_message_integrity_sha256(std::span<const std::uint8_t> key,
                                      std::size_t length = 32) noexcept;
    // CRC-32 of the message so far XOR 0x5354554E (RFC 8489 §14.7); must be added last.
    void add_fingerprint() noexcept;

    // Byte written into the padding after values that are not a multiple of 4 (default 0x00;
    // RFC 5769's vectors pad with 0x20). Receivers ignore padding (RFC 8489 §14).
    void set_padding_byte(std::uint8_t byte) noexcept { padding_byte_ = byte; }

    bool ok() const noexcept { return ok_; }
    std::size_t size() const noexcept { return ok_ ? size_ : 0; }
    std::span<const std::uint8_t> finish() const noexcept {
        return ok_ ? std::span<const std::uint8_t>(buffer_.data(), size_)
                   : std::span<const std::uint8_t>{};
    }

private:
    std::uint8_t* reserve(std::uint16_t type, std::size_t value_length) noexcept;
    // Class, number and reason (RFC 8489 §14.8) written; the first byte is the caller's.
    std::uint8_t* reserve_error_code(std::uint16_t type, std::uint16_t code,
                                     std::string_view reason) noexcept;
    std::span<std::uint8_t> buffer_;
    std::size_t size_ = 0;
    bool ok_ = true;
    std::uint8_t padding_byte_ = 0;
};

}  // namespace tern::protocol
