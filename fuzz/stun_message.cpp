// libFuzzer target: MessageView::parse and every reader of a parsed view, the builder fed from
// what was parsed, and the ChannelData and frame peeks on the same bytes.
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
        read_everything(m);
        check_rebuild(m);
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
