#include "turn_messages.hpp"

#include <ctime>
#include <random>

#include "tern/auth/rest_credential.hpp"
#include "tern/protocol/attribute_type.hpp"

namespace ternbench {

namespace p = tern::protocol;

Credential rest_credential(const std::string& secret, const std::string& name) {
    Credential c;
    c.username = std::to_string(std::time(nullptr) + 86400) + ":" + name;
    c.password = tern::auth::rest_password(secret, c.username);
    return c;
}

p::TransactionId random_transaction_id() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    p::TransactionId id;
    for (auto& b : id.bytes) b = static_cast<std::uint8_t>(rng());
    return id;
}

namespace {

p::MessageType request(p::Method m) {
    return {m, p::MessageClass::request};
}

std::span<const std::uint8_t> sign(p::MessageBuilder& b, const Signing& s) {
    if (!s.nonce.empty() && s.credential != nullptr) {
        b.add_text(p::attr::username, s.credential->username);
        b.add_text(p::attr::realm, s.realm);
        b.add_text(p::attr::nonce, s.nonce);
        b.add_message_integrity(s.credential->key.bytes());
    }
    return b.finish();
}

}  // namespace

std::span<const std::uint8_t> allocate_request(std::span<std::uint8_t> out,
                                               const p::TransactionId& id, const Signing& signing) {
    p::MessageBuilder b(out, request(p::Method::allocate), id);
    b.add_requested_transport(17);
    return sign(b, signing);
}

std::span<const std::uint8_t> create_permission_request(std::span<std::uint8_t> out,
                                                        const p::TransactionId& id,
                                                        const TransportAddress& peer,
                                                        const Signing& signing) {
    p::MessageBuilder b(out, request(p::Method::create_permission), id);
    b.add_xor_address(p::attr::xor_peer_address, peer);
    return sign(b, signing);
}

std::span<const std::uint8_t> channel_bind_request(std::span<std::uint8_t> out,
                                                   const p::TransactionId& id,
                                                   std::uint16_t channel,
                                                   const TransportAddress& peer,
                                                   const Signing& signing) {
    p::MessageBuilder b(out, request(p::Method::channel_bind), id);
    b.add_channel_number(channel);
    b.add_xor_address(p::attr::xor_peer_address, peer);
    return sign(b, signing);
}

std::span<const std::uint8_t> refresh_request(std::span<std::uint8_t> out,
                                              const p::TransactionId& id, std::uint32_t lifetime,
                                              const Signing& signing) {
    p::MessageBuilder b(out, request(p::Method::refresh), id);
    b.add_lifetime(lifetime);
    return sign(b, signing);
}

std::span<const std::uint8_t> send_indication(std::span<std::uint8_t> out,
                                              const TransportAddress& peer,
                                              std::size_t payload_size, std::size_t& data_offset) {
    p::MessageBuilder b(out, {p::Method::send, p::MessageClass::indication},
                        random_transaction_id());
    b.add_xor_address(p::attr::xor_peer_address, peer);
    data_offset = b.size() + 4;
    static const std::array<std::uint8_t, 65536> zeros{};
    b.add_bytes(p::attr::data, std::span(zeros.data(), payload_size));
    return b.finish();
}

std::optional<std::span<const std::uint8_t>> data_indication_payload(
    std::span<const std::uint8_t> message) {
    p::MessageView view;
    if (p::MessageView::parse(message, view) != p::ParseError::ok) return std::nullopt;
    return view.data();
}

}  // namespace ternbench
