// MessageView::parse and the typed accessors: every length and offset is checked before it is
// read, because every byte comes from the network.
#include "tern/protocol/message.hpp"
#include "byte_order.hpp"

#include <algorithm>

namespace tern::protocol {

using namespace wire;

namespace {

// Longest reason phrase / realm / nonce / software: 127 characters of UTF-8 (RFC 8489 §14).
constexpr std::size_t max_text_length = 763;
// RFC 8489 §14.3 lowered USERNAME to 508 bytes; RFC 5389 clients may still send up to 512.
constexpr std::size_t max_username_length = 512;
// RFC 8489 §14.16: ALTERNATE-DOMAIN is a DNS name, at most 255 bytes.
constexpr std::size_t max_alternate_domain_length = 255;

ParseError check_address(ByteSpan v) noexcept {
    if (v.size() != 8 && v.size() != 20) return ParseError::bad_attribute_length;
    const auto family = v[1];
    if (family == 0x01) return v.size() == 8 ? ParseError::ok : ParseError::bad_attribute_length;
    if (family == 0x02) return v.size() == 20 ? ParseError::ok : ParseError::bad_attribute_length;
    return ParseError::bad_attribute_value;
}

// ERROR-CODE (RFC 8489 §14.8) and ADDRESS-ERROR-CODE (RFC 8656 §18.12) share the class/number
// layout in bytes 2-3: class 3..6, number 0..99, then a reason phrase.
ParseError check_error_code(ByteSpan v) noexcept {
    if (v.size() < 4 || v.size() - 4 > max_text_length) return ParseError::bad_attribute_length;
    const unsigned error_class = v[2] & 0x07;
    if (error_class < 3 || error_class > 6 || v[3] > 99) return ParseError::bad_attribute_value;
    return ParseError::ok;
}

// One PASSWORD-ALGORITHM entry at the front of `v` (RFC 8489 §14.11/§14.12): algorithm,
// parameter length, parameters padded to 4. Returns the entry's size, 0 when malformed.
std::size_t password_algorithm_entry_size(ByteSpan v) noexcept {
    if (v.size() < 4) return 0;
    const std::size_t size = 4 + padded(load16(v.data() + 2));
    return size <= v.size() ? size : 0;
}

ParseError check_password_algorithms(ByteSpan v) noexcept {
    if (v.empty()) return ParseError::bad_attribute_length;
    while (!v.empty()) {
        const auto size = password_algorithm_entry_size(v);
        if (size == 0) return ParseError::bad_attribute_length;
        v = v.subspan(size);
    }
    return ParseError::ok;
}

ParseError length_in(std::size_t n, std::size_t lo, std::size_t hi) noexcept {
    return n >= lo && n <= hi ? ParseError::ok : ParseError::bad_attribute_length;
}
ParseError length_is(std::size_t n, std::size_t expected) noexcept {
    return length_in(n, expected, expected);
}

// The length and value rules of the registry; unknown types are accepted as they are.
ParseError check_attribute(std::uint16_t type, ByteSpan v) noexcept {
    if (is_address_attribute(type)) return check_address(v);
    const auto n = v.size();
    switch (type) {
        case attr::username:
            return length_in(n, 1, max_username_length);
        case attr::realm:
        case attr::nonce:
            return length_in(n, 1, max_text_length);
        case attr::software:
            return length_in(n, 0, max_text_length);
        case attr::alternate_domain:
            return length_in(n, 1, max_alternate_domain_length);
        case attr::message_integrity:
            return length_is(n, 20);
        case attr::message_integrity_sha256:  // RFC 8489 §14.6: 16 to 32 bytes, whole words
            return n >= 16 && n <= 32 && n % 4 == 0 ? ParseError::ok
                                                    : ParseError::bad_attribute_length;
        case attr::fingerprint:
            return length_is(n, 4);
        case attr::error_code:
            return check_error_code(v);
        case attr::unknown_attributes:  // a non-empty list of 16-bit types
            return n > 0 && n % 2 == 0 ? ParseError::ok : ParseError::bad_attribute_length;
        case attr::userhash:
            return length_is(n, 32);
        case attr::password_algorithm: {
            const auto size = password_algorithm_entry_size(v);
            return size != 0 && size == n ? ParseError::ok : ParseError::bad_attribute_length;
        }
        case attr::password_algorithms:
            return check_password_algorithms(v);
        case attr::channel_number:
        case attr::lifetime:
        case attr::requested_transport:
        case attr::requested_address_family:
        case attr::additional_address_family:
        case attr::change_request:
        case attr::response_port:
        case attr::connection_id:
        case attr::priority:
            return length_is(n, 4);
        case attr::even_port:
            return length_is(n, 1);
        case attr::dont_fragment:
        case attr::use_candidate:
            return length_is(n, 0);
        case attr::reservation_token:
        case attr::icmp:
        case attr::ice_controlled:
        case attr::ice_controlling:
            return length_is(n, 8);
        case attr::address_error_code: {
            // RFC 8656 §18.12: family byte, then the ERROR-CODE class/number/reason layout.
            const auto rc = check_error_code(v);
            if (rc != ParseError::ok) return rc;
            return v[0] == 0x01 || v[0] == 0x02 ? ParseError::ok : ParseError::bad_attribute_value;
        }
        default:
            return ParseError::ok;  // DATA, PADDING, MOBILITY-TICKET (may be empty), unknown
    }
}

std::optional<TransportAddress> decode_address(ByteSpan v, bool xored,
                                               const TransactionId& id) noexcept {
    if (check_address(v) != ParseError::ok) return std::nullopt;
    TransportAddress out;
    out.family = v[1] == 0x01 ? AddressFamily::ipv4 : AddressFamily::ipv6;
    out.port = load16(v.data() + 2);
    const std::size_t size = out.address_size();
    std::copy_n(v.data() + 4, size, out.bytes.begin());
    if (xored) {
        // RFC 8489 §14.2: port XOR the cookie's top 16 bits, address XOR cookie || transaction id.
        out.port ^= static_cast<std::uint16_t>(magic_cookie >> 16);
        std::array<std::uint8_t, 16> mask{};
        mask[0] = static_cast<std::uint8_t>(magic_cookie >> 24);
        mask[1] = static_cast<std::uint8_t>(magic_cookie >> 16);
        mask[2] = static_cast<std::uint8_t>(magic_cookie >> 8);
        mask[3] = static_cast<std::uint8_t>(magic_cookie);
        std::copy(id.bytes.begin(), id.bytes.end(), mask.begin() + 4);
        for (std::size_t i = 0; i < size; ++i) out.bytes[i] ^= mask[i];
    }
    return out;
}

}  // namespace

ParseError MessageView::parse(ByteSpan bytes, MessageView& out) noexcept {
    out.bytes_ = {};
    out.count_ = 0;
    if (bytes.size() < header_size) return ParseError::truncated_header;
    const std::uint8_t* p = bytes.data();
    if (!looks_like_stun(p[0])) return ParseError::not_stun;
    if (load32(p + 4) != magic_cookie) return ParseError::bad_magic_cookie;
    const std::size_t length = load16(p + 2);
    if (length % 4 != 0) return ParseError::bad_length;
    if (length != bytes.size() - header_size) return ParseError::length_mismatch;

    MessageView view;
    view.bytes_ = bytes;
    view.type_ = MessageType::decode(load16(p));
    std::copy_n(p + 8, view.transaction_id_.bytes.size(), view.transaction_id_.bytes.begin());

    bool seen_integrity = false;
    bool seen_integrity_sha256 = false;
    bool seen_fingerprint = false;
    std::size_t offset = header_size;
    while (offset < bytes.size()) {
        const std::size_t remaining = bytes.size() - offset;
        if (remaining < attribute_header_size) return ParseError::attribute_overrun;
        const std::uint16_t type = load16(p + offset);
        const std::uint16_t value_length = load16(p + offset + 2);
        if (padded(value_length) > remaining - attribute_header_size) {
            return ParseError::attribute_overrun;
        }
        if (seen_fingerprint) return ParseError::attribute_after_fingerprint;
        const std::size_t value_offset = offset + attribute_header_size;
        const std::size_t next = value_offset + padded(value_length);

        // RFC 8489 §14.5/§14.6: what follows the integrity attributes is not protected, so it
        // is skipped (FINGERPRINT, and MI-SHA256 after MI, are the only exceptions).
        const bool ignored =
            (seen_integrity_sha256 && type != attr::fingerprint) ||
            (seen_integrity && type != attr::message_integrity_sha256 && type != attr::fingerprint);
        if (!ignored) {
            const ByteSpan value = bytes.subspan(value_offset, value_length);
            if (const auto rc = check_attribute(type, value); rc != ParseError::ok) return rc;
            if (is_known_attribute(type) && !is_repeatable_attribute(type)) {
                const Entry* first = view.entries_.data();
                const bool duplicate = std::any_of(
                    first, first + view.count_, [type](const Entry& e) { return e.type == type; });
                if (duplicate) return ParseError::duplicate_attribute;
            }
            if (view.count_ == max_attributes) return ParseError::too_many_attributes;
            view.entries_[view.count_++] = {type, value_length, static_cast<std::uint32_t>(offset)};
            seen_integrity = seen_integrity || type == attr::message_integrity;
            seen_integrity_sha256 = seen_integrity_sha256 || type == attr::message_integrity_sha256;
            seen_fingerprint = type == attr::fingerprint;
        }
        offset = next;
    }
    out = view;
    return ParseError::ok;
}

AttributeView MessageView::attribute(std::size_t index) const noexcept {
    if (index >= count_) return {};
    const Entry& e = entries_[index];
    return {e.type, bytes_.subspan(e.offset + attribute_header_size, e.length), e.offset};
}

std::optional<AttributeView> MessageView::find(std::uint16_t type) const noexcept {
    for (std::size_t i = 0; i < count_; ++i) {
        if (entries_[i].type == type) return attribute(i);
    }
    return std::nullopt;
}

std::size_t MessageView::unknown_comprehension_required(
    std::span<std::uint16_t> out) const noexcept {
    std::size_t total = 0;
    for (std::size_t i = 0; i < count_; ++i) {
        const auto type = entries_[i].type;
        if (!is_comprehension_required(type) || is_known_attribute(type)) continue;
        // List each type once, even when an unknown type is repeated.
        const Entry* first = entries_.data();
        if (std::any_of(first, first + i, [type](const Entry& e) { return e.type == type; })) {
            continue;
        }
        if (total < out.size()) out[total] = type;
        ++total;
    }
    return total;
}

std::optional<TransportAddress> MessageView::xor_address(std::uint16_t type) const noexcept {
    const auto a = find(type);
    if (!a) return std::nullopt;
    return decode_address(a->value, true, transaction_id_);
}

std::optional<TransportAddress> MessageView::plain_address(std::uint16_t type) const noexcept {
    const auto a = find(type);
    if (!a) return std::nullopt;
    return decode_address(a->value, false, transaction_id_);
}

std::size_t MessageView::xor_addresses(std::uint16_t type,
                                       std::span<TransportAddress> out) const noexcept {
    std::size_t total = 0;
    for (std::size_t i = 0; i < count_; ++i) {
        if (entries_[i].type != type) continue;
        const auto address = decode_address(attribute(i).value, true, transaction_id_);
        if (!address) continue;
        if (total < out.size()) out[total] = *address;
        ++total;
    }
    return total;
}

std::optional<std::string_view> MessageView::text(std::uint16_t type) const noexcept {
    const auto a = find(type);
    if (!a) return std::nullopt;
    return std::string_view(reinterpret_cast<const char*>(a->value.data()), a->value.size());
}

std::optional<ErrorCodeValue> MessageView::error_code() const noexcept {
    const auto a = find(attr::error_code);
    if (!a || check_error_code(a->value) != ParseError::ok) return std::nullopt;
    const auto v = a->value;
    return ErrorCodeValue{static_cast<std::uint16_t>((v[2] & 0x07) * 100 + v[3]),
                          {reinterpret_cast<const char*>(v.data() + 4), v.size() - 4}};
}

std::size_t MessageView::unknown_attributes(std::span<std::uint16_t> out) const noexcept {
    const auto a = find(attr::unknown_attributes);
    if (!a) return 0;
    const std::size_t total = a->value.size() / 2;
    for (std::size_t i = 0; i < total && i < out.size(); ++i) {
        out[i] = load16(a->value.data() + 2 * i);
    }
    return total;
}

namespace {

std::optional<ByteSpan> value_of_size(const std::optional<AttributeView>& a,
                                      std::size_t size) noexcept {
    if (!a || a->value.size() != size) return std::nullopt;
    return a->value;
}

}  // namespace

std::optional<std::uint32_t> MessageView::lifetime() const noexcept {
    const auto v = value_of_size(find(attr::lifetime), 4);
    if (!v) return std::nullopt;
    return load32(v->data());
}

std::optional<std::uint16_t> MessageView::channel_number() const noexcept {
    const auto v = value_of_size(find(attr::channel_number), 4);
    if (!v) return std::nullopt;
    return load16(v->data());  // the low 16 bits are RFFU
}

std::optional<std::uint8_t> MessageView::requested_transport() const noexcept {
    const auto v = value_of_size(find(attr::requested_transport), 4);
    if (!v) return std::nullopt;
    return (*v)[0];
}

std::optional<std::uint8_t> MessageView::requested_address_family() const noexcept {
    const auto v = value_of_size(find(attr::requested_address_family), 4);
    if (!v) return std::nullopt;
    return (*v)[0];
}

std::optional<std::uint8_t> MessageView::additional_address_family() const noexcept {
    const auto v = value_of_size(find(attr::additional_address_family), 4);
    if (!v) return std::nullopt;
    return (*v)[0];
}

std::optional<bool> MessageView::even_port() const noexcept {
    const auto v = value_of_size(find(attr::even_port), 1);
    if (!v) return std::nullopt;
    return ((*v)[0] & 0x80) != 0;
}

std::optional<std::uint64_t> MessageView::reservation_token() const noexcept {
    const auto v = value_of_size(find(attr::reservation_token), 8);
    if (!v) return std::nullopt;
    return (std::uint64_t{load32(v->data())} << 32) | load32(v->data() + 4);
}

std::optional<ByteSpan> MessageView::data() const noexcept {
    const auto a = find(attr::data);
    if (!a) return std::nullopt;
    return a->value;
}

std::optional<AddressErrorCodeValue> MessageView::address_error_code() const noexcept {
    const auto a = find(attr::address_error_code);
    if (!a || check_attribute(attr::address_error_code, a->value) != ParseError::ok) {
        return std::nullopt;
    }
    const auto v = a->value;
    return AddressErrorCodeValue{static_cast<AddressFamily>(v[0]),
                                 static_cast<std::uint16_t>((v[2] & 0x07) * 100 + v[3]),
                                 {reinterpret_cast<const char*>(v.data() + 4), v.size() - 4}};
}

std::optional<IcmpValue> MessageView::icmp() const noexcept {
    const auto v = value_of_size(find(attr::icmp), 8);
    if (!v) return std::nullopt;
    return IcmpValue{(*v)[2], (*v)[3], load32(v->data() + 4)};  // RFC 8656 §18.13
}

std::optional<std::uint32_t> MessageView::change_request() const noexcept {
    const auto v = value_of_size(find(attr::change_request), 4);
    if (!v) return std::nullopt;
    return load32(v->data());
}

std::optional<std::uint16_t> MessageView::response_port() const noexcept {
    const auto v = value_of_size(find(attr::response_port), 4);
    if (!v) return std::nullopt;
    return load16(v->data());
}

std::optional<std::uint32_t> MessageView::connection_id() const noexcept {
    const auto v = value_of_size(find(attr::connection_id), 4);
    if (!v) return std::nullopt;
    return load32(v->data());
}

std::optional<ByteSpan> MessageView::mobility_ticket() const noexcept {
    const auto a = find(attr::mobility_ticket);
    if (!a) return std::nullopt;
    return a->value;
}

std::optional<ByteSpan> MessageView::userhash() const noexcept {
    return value_of_size(find(attr::userhash), 32);
}

std::optional<PasswordAlgorithmValue> MessageView::password_algorithm() const noexcept {
    const auto a = find(attr::password_algorithm);
    if (!a || password_algorithm_entry_size(a->value) == 0) return std::nullopt;
    const auto v = a->value;
    return PasswordAlgorithmValue{load16(v.data()), v.subspan(4, load16(v.data() + 2))};
}

std::size_t MessageView::password_algorithms(std::span<PasswordAlgorithmValue> out) const noexcept {
    const auto a = find(attr::password_algorithms);
    if (!a) return 0;
    std::size_t total = 0;
    for (ByteSpan v = a->value; !v.empty();) {
        const auto size = password_algorithm_entry_size(v);
        if (size == 0) break;
        if (total < out.size()) out[total] = {load16(v.data()), v.subspan(4, load16(v.data() + 2))};
        ++total;
        v = v.subspan(size);
    }
    return total;
}

std::optional<std::uint32_t> MessageView::fingerprint() const noexcept {
    const auto v = value_of_size(find(attr::fingerprint), 4);
    if (!v) return std::nullopt;
    return load32(v->data());
}

}  // namespace tern::protocol
