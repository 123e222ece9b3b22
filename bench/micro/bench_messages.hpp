// Realistic STUN/TURN messages for the micro-benchmarks, built with the library's own
// MessageBuilder: the Allocate, Binding and ChannelBind requests a WebRTC client sends.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string_view>

#include "tern/auth/credential_store.hpp"
#include "tern/auth/rest_credential.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/message_builder.hpp"
#include "tern/protocol/message_type.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::bench {

// One clock reading for every benchmark that needs unix time, so REST credentials and nonces
// minted at set-up are still valid when measured.
inline constexpr std::int64_t now_unix = 1'700'000'000;
inline constexpr std::string_view rest_secret = "bench-shared-secret-0123456789abcdef";
// A TURN REST username valid for a day, as an application backend hands it to a browser.
inline constexpr std::string_view rest_username = "1700086400:alice@example.org";
inline constexpr std::string_view realm = "turn.example.org";
// A nonce of the length tern issues (cookie + features + 35 base64url characters).
inline constexpr std::string_view sample_nonce = "obMatJos2AAABxJm1dGHJ3fBWaYxC0Lp9qR8sT2uV4wX6yZa";

inline protocol::TransportAddress must_parse(std::string_view text) {
    auto a = protocol::TransportAddress::parse(text);
    if (!a) throw std::invalid_argument("bad address in benchmark set-up");
    return *a;
}

inline protocol::TransactionId transaction_id(std::uint8_t seed) {
    protocol::TransactionId id{};
    for (std::size_t i = 0; i < id.bytes.size(); ++i) {
        id.bytes[i] = static_cast<std::uint8_t>(seed * 31 + i * 7 + 1);
    }
    return id;
}

// A message in its own buffer, sized for anything a client sends before data flows.
struct Built {
    std::array<std::uint8_t, 512> buffer{};
    std::size_t size = 0;
    std::span<const std::uint8_t> bytes() const noexcept { return {buffer.data(), size}; }
};

inline void finish_or_throw(const protocol::MessageBuilder& b, Built& out) {
    if (!b.ok()) throw std::length_error("benchmark message did not fit");
    out.size = b.size();
}

// The authenticated Allocate (the second one, after the 401) with REST credentials.
inline Built allocate_request(std::string_view nonce, std::span<const std::uint8_t> key,
                              bool sha256 = false) {
    Built m;
    protocol::MessageBuilder b(
        m.buffer, {protocol::Method::allocate, protocol::MessageClass::request}, transaction_id(1));
    b.add_requested_transport(17);
    b.add_text(protocol::attr::username, rest_username);
    b.add_text(protocol::attr::realm, realm);
    b.add_text(protocol::attr::nonce, nonce);
    if (sha256) {
        b.add_message_integrity_sha256(key);
    } else {
        b.add_message_integrity(key);
    }
    b.add_fingerprint();
    finish_or_throw(b, m);
    return m;
}

// What browsers send to a STUN server: a bare Binding request with FINGERPRINT.
inline Built binding_request() {
    Built m;
    protocol::MessageBuilder b(
        m.buffer, {protocol::Method::binding, protocol::MessageClass::request}, transaction_id(2));
    b.add_fingerprint();
    finish_or_throw(b, m);
    return m;
}

inline Built channel_bind_request(std::string_view nonce, std::span<const std::uint8_t> key) {
    Built m;
    protocol::MessageBuilder b(m.buffer,
                               {protocol::Method::channel_bind, protocol::MessageClass::request},
                               transaction_id(3));
    b.add_channel_number(0x4001);
    b.add_xor_address(protocol::attr::xor_peer_address, must_parse("93.184.216.34:61000"));
    b.add_text(protocol::attr::username, rest_username);
    b.add_text(protocol::attr::realm, realm);
    b.add_text(protocol::attr::nonce, nonce);
    b.add_message_integrity(key);
    b.add_fingerprint();
    finish_or_throw(b, m);
    return m;
}

// The long-term key a client derives from its REST credential.
inline auth::LongTermKey rest_key(auth::PasswordAlgorithm algorithm) {
    const auto password = auth::rest_password(rest_secret, rest_username);
    return auth::derive_key(algorithm, rest_username, realm, password);
}

}  // namespace tern::bench
