// libFuzzer target: MessageView::parse and every reader of a parsed view, the builder fed from
// what was parsed, and the ChannelData and frame peeks on the same bytes. Beyond "no crash":
// the attribute index matches an independent model of RFC 8489 §14.5/§14.6 (what follows the
// integrity attributes is skipped), address accessors agree with the family bytes, an unknown
// address family makes the message malformed unless it sits where it is ignored, and attributes
// appended after a valid integrity attribute change neither the index nor the verification.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "tern/protocol/channel_data.hpp"
#include "tern/protocol/integrity.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"
#include "tern/protocol/stream_framer.hpp"

namespace {

using namespace tern::protocol;

// Invariant violations must stop the fuzzer with a crash it can report.
void require(bool condition) {
    if (!condition) __builtin_trap();
}

bool same_bytes(ByteSpan a, ByteSpan b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i] != b[i]) return false;
    }
    return true;
}

constexpr std::size_t tlv_header_size = 4;

std::uint16_t load16(const std::uint8_t* p) {
    return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}

bool is_xor_address_type(std::uint16_t type) {
    return type == attr::xor_mapped_address || type == attr::xor_peer_address ||
           type == attr::xor_relayed_address;
}

// Calls f(type, offset, value) for every TLV of a message that parsed, the ignored ones too (the
// parser bounds-checked each of them).
template <typename F>
void for_each_tlv(ByteSpan bytes, F&& f) {
    std::size_t offset = header_size;
    while (offset + tlv_header_size <= bytes.size()) {
        const std::uint16_t type = load16(bytes.data() + offset);
        const std::size_t length = load16(bytes.data() + offset + 2);
        f(type, offset, bytes.subspan(offset + tlv_header_size, length));
        offset += tlv_header_size + ((length + 3) & ~std::size_t{3});
    }
}

// RFC 8489 §14.5/§14.6, written apart from the parser: after MESSAGE-INTEGRITY only
// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT count, after MESSAGE-INTEGRITY-SHA256 only FINGERPRINT.
// The index must hold exactly the TLVs that count, in order (so never a second MI).
void check_index_model(const MessageView& m) {
    bool after_mi = false;
    bool after_sha256 = false;
    std::size_t next = 0;
    for_each_tlv(m.bytes(), [&](std::uint16_t type, std::size_t offset, ByteSpan value) {
        const bool ignored = after_sha256 ? type != attr::fingerprint
                                          : after_mi && type != attr::message_integrity_sha256 &&
                                                type != attr::fingerprint;
        if (ignored) return;
        require(next < m.attribute_count());
        const auto a = m.attribute(next++);
        require(a.type == type && a.offset == offset && a.value.data() == value.data() &&
                a.value.size() == value.size());
        after_mi = after_mi || type == attr::message_integrity;
        after_sha256 = after_sha256 || type == attr::message_integrity_sha256;
    });
    require(next == m.attribute_count());
}

// Address accessors agree with the family byte of every indexed address attribute: the parser
// let through only IPv4 (8 bytes) and IPv6 (20 bytes).
void check_addresses(const MessageView& m) {
    std::size_t peers = 0;
    std::size_t relayed = 0;
    for (std::size_t i = 0; i < m.attribute_count(); ++i) {
        const auto a = m.attribute(i);
        if (a.type == attr::requested_address_family) {
            require(m.requested_address_family() == a.value[0]);
        }
        if (a.type == attr::additional_address_family) {
            require(m.additional_address_family() == a.value[0]);
        }
        if (a.type == attr::lifetime) {
            const std::uint32_t seconds =
                std::uint32_t{load16(a.value.data())} << 16 | load16(a.value.data() + 2);
            require(m.lifetime() == seconds);
        }
        if (!is_address_attribute(a.type)) continue;
        const std::uint8_t family = a.value[1];
        require((family == 0x01 && a.value.size() == 8) ||
                (family == 0x02 && a.value.size() == 20));
        peers += a.type == attr::xor_peer_address ? 1 : 0;
        relayed += a.type == attr::xor_relayed_address ? 1 : 0;
        if (m.find(a.type)->offset != a.offset) continue;  // accessors read the first one
        const auto decoded =
            is_xor_address_type(a.type) ? m.xor_address(a.type) : m.plain_address(a.type);
        require(decoded && static_cast<std::uint8_t>(decoded->family) == family);
    }
    // Every XOR-PEER-ADDRESS / XOR-RELAYED-ADDRESS is listed, duplicates included.
    std::array<TransportAddress, 4> out{};
    require(m.xor_addresses(attr::xor_peer_address, out) == peers);
    require(m.xor_addresses(attr::xor_relayed_address, out) == relayed);
}

// Rewrites the family byte of the first few address attributes (and of REQUESTED-ADDRESS-FAMILY,
// ADDITIONAL-ADDRESS-FAMILY, ADDRESS-ERROR-CODE) to `unknown` (neither 0x01 nor 0x02), one at a
// time. Indexed, an address attribute or ADDRESS-ERROR-CODE with an unknown family makes the
// message malformed: no accessor ever sees it. The two *-ADDRESS-FAMILY attributes still parse
// and read back the raw byte, for the allocation layer to refuse. Ignored (after the integrity
// attributes), any of them changes nothing.
void check_unknown_family(const MessageView& m, std::uint8_t unknown) {
    static std::array<std::uint8_t, 20 + 65532> copy;
    const ByteSpan bytes = m.bytes();
    if (bytes.size() > copy.size()) return;
    int budget = 4;  // a few rewrites per input keep the target fast
    std::size_t index = 0;
    for_each_tlv(bytes, [&](std::uint16_t type, std::size_t offset, ByteSpan value) {
        const bool indexed = index < m.attribute_count() && m.attribute(index).offset == offset;
        if (indexed) ++index;
        const bool raw_family =
            type == attr::requested_address_family || type == attr::additional_address_family;
        if (!raw_family && !is_address_attribute(type) && type != attr::address_error_code) return;
        const std::size_t family_at = is_address_attribute(type) ? 1 : 0;
        if (budget == 0 || value.size() <= family_at) return;
        --budget;

        std::copy(bytes.begin(), bytes.end(), copy.begin());
        copy[offset + tlv_header_size + family_at] = unknown;
        MessageView mutated;
        const auto rc = MessageView::parse(ByteSpan(copy.data(), bytes.size()), mutated);
        if (!indexed) {
            require(rc == ParseError::ok && mutated.attribute_count() == m.attribute_count());
        } else if (raw_family) {
            require(rc == ParseError::ok);
            const auto read = type == attr::requested_address_family
                                  ? mutated.requested_address_family()
                                  : mutated.additional_address_family();
            require(read == unknown);
        } else {
            require(rc == ParseError::bad_attribute_value);
        }
    });
}

void read_everything(const MessageView& m) {
    std::array<std::uint16_t, 8> types{};
    std::array<TransportAddress, 4> addresses{};
    std::array<PasswordAlgorithmValue, 4> algorithms{};
    (void)m.unknown_comprehension_required(types);
    (void)m.unknown_attributes(types);
    (void)m.xor_addresses(attr::xor_peer_address, addresses);
    (void)m.xor_addresses(attr::xor_relayed_address, addresses);
    (void)m.password_algorithms(algorithms);
    for (const std::uint16_t type : {attr::xor_mapped_address, attr::alternate_server,
                                     attr::response_origin, attr::other_address}) {
        if (const auto a = m.xor_address(type)) (void)a->to_string();
        (void)m.plain_address(type);
    }
    (void)m.mapped_address();
    (void)m.username();
    (void)m.realm();
    (void)m.nonce();
    (void)m.software();
    if (const auto e = m.error_code()) require(e->code >= 300 && e->code <= 699);
    (void)m.lifetime();
    (void)m.channel_number();
    (void)m.requested_transport();
    (void)m.requested_address_family();
    (void)m.additional_address_family();
    (void)m.even_port();
    (void)m.reservation_token();
    (void)m.data();
    (void)m.address_error_code();
    (void)m.icmp();
    (void)m.change_request();
    (void)m.response_port();
    (void)m.connection_id();
    (void)m.mobility_ticket();
    (void)m.userhash();
    (void)m.password_algorithm();
    (void)m.fingerprint();
    static const std::uint8_t key[] = {'f', 'u', 'z', 'z'};
    (void)verify_message_integrity(m, key);
    (void)verify_message_integrity_sha256(m, key);
    (void)verify_fingerprint(m);
}

// Rebuilding the attributes the view kept must give a message that parses to the same list.
void check_rebuild(const MessageView& m) {
    static std::array<std::uint8_t, 20 + 65532> buffer;
    MessageBuilder builder(buffer, m.type(), m.transaction_id());
    bool protected_message = false;
    for (std::size_t i = 0; i < m.attribute_count(); ++i) {
        const auto a = m.attribute(i);
        builder.add_bytes(a.type, a.value);
        protected_message = protected_message || a.type == attr::message_integrity ||
                            a.type == attr::message_integrity_sha256 || a.type == attr::fingerprint;
    }
    require(builder.ok());
    MessageView rebuilt;
    require(MessageView::parse(builder.finish(), rebuilt) == ParseError::ok);
    require(rebuilt.attribute_count() == m.attribute_count());
    for (std::size_t i = 0; i < m.attribute_count(); ++i) {
        require(rebuilt.attribute(i).type == m.attribute(i).type);
        require(same_bytes(rebuilt.attribute(i).value, m.attribute(i).value));
    }
    if (protected_message) return;
    // Three more attributes must still fit the parser's index (max_attributes), or the sealed copy
    // is refused as too_many_attributes, as any message that long would be.
    if (m.attribute_count() + 3 > max_attributes) return;

    // Sign what was rebuilt; all three checks must then pass.
    static const std::uint8_t key[] = {'k', 'e', 'y'};
    builder.add_message_integrity(key);
    builder.add_message_integrity_sha256(key, 20);
    builder.add_fingerprint();
    if (!builder.ok()) return;  // no room left under the 64 KiB limit
    MessageView sealed;
    require(MessageView::parse(builder.finish(), sealed) == ParseError::ok);
    require(verify_message_integrity(sealed, key) == IntegrityResult::ok);
    require(verify_message_integrity_sha256(sealed, key) == IntegrityResult::ok);
    require(verify_fingerprint(sealed) == IntegrityResult::ok);
}

// Appends, after a valid integrity attribute, copies of every attribute plus a second (wrong)
// MESSAGE-INTEGRITY (and with MI-SHA256 also a second MI-SHA256), then FINGERPRINT: RFC 8489
// §14.5/§14.6 says all of that but FINGERPRINT is ignored, so the index is the original one plus
// the integrity attribute and FINGERPRINT, every accessor still finds the protected copy, and
// the MAC and FINGERPRINT both verify.
void check_ignored_after_integrity(const MessageView& m) {
    if (m.attribute_count() + 2 > max_attributes) return;
    for (std::size_t i = 0; i < m.attribute_count(); ++i) {
        const auto t = m.attribute(i).type;
        if (t == attr::message_integrity || t == attr::message_integrity_sha256 ||
            t == attr::fingerprint) {
            return;
        }
    }
    static std::array<std::uint8_t, 20 + 65532> buffer;
    static const std::uint8_t key[] = {'k', 'e', 'y'};
    static const std::uint8_t wrong_key[] = {'w', 'r', 'o', 'n', 'g'};
    const bool sha256 = (m.transaction_id().bytes[11] & 1) != 0;
    MessageBuilder builder(buffer, m.type(), m.transaction_id());
    for (std::size_t i = 0; i < m.attribute_count(); ++i) {
        builder.add_bytes(m.attribute(i).type, m.attribute(i).value);
    }
    const std::size_t integrity_offset = builder.size();
    if (sha256) {
        builder.add_message_integrity_sha256(key);
    } else {
        builder.add_message_integrity(key);
    }
    for (std::size_t i = 0; i < m.attribute_count(); ++i) {
        builder.add_bytes(m.attribute(i).type, m.attribute(i).value);
    }
    builder.add_message_integrity(wrong_key);
    if (sha256) builder.add_message_integrity_sha256(wrong_key, 16);
    builder.add_fingerprint();
    if (!builder.ok()) return;  // no room left under the 64 KiB limit

    MessageView sealed;
    require(MessageView::parse(builder.finish(), sealed) == ParseError::ok);
    const std::size_t n = m.attribute_count();
    require(sealed.attribute_count() == n + 2);
    for (std::size_t i = 0; i < n; ++i) {
        require(sealed.attribute(i).type == m.attribute(i).type);
        require(same_bytes(sealed.attribute(i).value, m.attribute(i).value));
        require(sealed.find(m.attribute(i).type)->offset < integrity_offset);
    }
    require(sealed.attribute(n).offset == integrity_offset);
    require(sealed.attribute(n + 1).type == attr::fingerprint);
    if (sha256) {
        require(verify_message_integrity_sha256(sealed, key) == IntegrityResult::ok);
        require(verify_message_integrity(sealed, key) == IntegrityResult::absent);
    } else {
        require(verify_message_integrity(sealed, key) == IntegrityResult::ok);
        require(verify_message_integrity_sha256(sealed, key) == IntegrityResult::absent);
    }
    require(verify_fingerprint(sealed) == IntegrityResult::ok);
    check_index_model(sealed);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> input(data, size);

    MessageView m;
    if (MessageView::parse(input, m) == ParseError::ok) {
        require(m.bytes().data() == data && m.bytes().size() == size);
        require(m.attribute_count() <= max_attributes);
        for (std::size_t i = 0; i < m.attribute_count(); ++i) {
            const auto a = m.attribute(i);
            require(a.offset >= header_size && a.offset % 4 == 0);
            require(a.offset + 4 + a.value.size() <= size);
            require(a.value.data() == data + a.offset + 4);
        }
        check_index_model(m);
        check_addresses(m);
        std::uint8_t unknown = data[size - 1];
        if (unknown == 0x01 || unknown == 0x02) unknown ^= 0x80;
        check_unknown_family(m, unknown);
        read_everything(m);
        check_rebuild(m);
        check_ignored_after_integrity(m);
    }

    ChannelDataView channel;
    if (parse_channel_data(input, channel) == ParseError::ok) {
        require(is_channel_data_number(channel.channel));
        require(channel.payload.data() == data + channel_data_header_size);
        require(channel.payload.size() + channel_data_header_size <= size);
    }

    Frame frame;
    if (peek_frame(input, max_stream_frame_size, frame) == FrameStatus::complete) {
        require(frame.size <= frame.consumed && frame.consumed <= size);
        require(frame.consumed <= max_stream_frame_size);
    }
    return 0;
}
