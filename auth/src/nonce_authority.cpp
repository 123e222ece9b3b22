// Stateless nonces: issue time + client port + keyed BLAKE2b MAC, with the RFC 8489 §9.2
// nonce cookie in front when security features are offered.
#include "tern/auth/nonce_authority.hpp"

#include <sodium.h>

#include <algorithm>
#include <stdexcept>

namespace tern::auth {

namespace {

constexpr std::size_t time_size = 8;
constexpr std::size_t port_size = 2;
constexpr std::size_t mac_size = 16;
constexpr std::size_t payload_size = time_size + port_size + mac_size;  // 26 bytes
constexpr std::size_t features_chars = 4;                               // base64 of 24 bits
constexpr std::size_t min_secret_bytes = 16;
constexpr std::string_view key_label = "tern nonce key v1";

// base64 with the standard alphabet, as RFC 8489 §9.2 asks for the cookie's feature bits.
std::string encode_features(std::uint32_t bits) {
    const std::array<std::uint8_t, 3> raw = {static_cast<std::uint8_t>(bits >> 16),
                                             static_cast<std::uint8_t>(bits >> 8),
                                             static_cast<std::uint8_t>(bits)};
    std::array<char, features_chars + 1> text{};
    sodium_bin2base64(text.data(), text.size(), raw.data(), raw.size(),
                      sodium_base64_VARIANT_ORIGINAL);
    return std::string(text.data(), features_chars);
}

std::size_t encoded_payload_size() noexcept {
    return sodium_base64_encoded_len(payload_size, sodium_base64_VARIANT_URLSAFE_NO_PADDING) - 1;
}

}  // namespace

NonceAuthority::NonceAuthority(std::optional<std::string_view> secret,
                               std::uint32_t lifetime_seconds, SecurityFeatures features)
    : lifetime_(lifetime_seconds), features_(features) {
    if (sodium_init() < 0) throw std::runtime_error("libsodium cannot initialise");
    if (secret && secret->size() >= min_secret_bytes) {
        crypto_generichash_state state;
        crypto_generichash_init(&state, nullptr, 0, key_.size());
        crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(key_label.data()),
                                  key_label.size());
        crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(secret->data()),
                                  secret->size());
        crypto_generichash_final(&state, key_.data(), key_.size());
        sodium_memzero(&state, sizeof state);
    } else {
        randombytes_buf(key_.data(), key_.size());
    }
    if (features.bits() != 0) {
        prefix_ = nonce_cookie;
        prefix_ += encode_features(features.bits());
    }
}

std::array<std::uint8_t, 16> NonceAuthority::mac(
    std::string_view prefix, std::int64_t issued, std::uint16_t port,
    const protocol::TransportAddress& client) const noexcept {
    // IPv4-mapped IPv6 is the same client as its IPv4 form (dual-stack sockets).
    const protocol::TransportAddress ip = client.unmapped();
    std::array<std::uint8_t, time_size + port_size + 1 + 16> message{};
    for (std::size_t i = 0; i < time_size; ++i) {
        message[i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(issued) >>
                                               (8 * (time_size - 1 - i)));
    }
    // cppcheck 2.10 takes the array for time_size bytes long; it is 27.
    // cppcheck-suppress containerOutOfBounds
    message[time_size] = static_cast<std::uint8_t>(port >> 8);
    // cppcheck-suppress containerOutOfBounds
    message[time_size + 1] = static_cast<std::uint8_t>(port);
    // cppcheck-suppress containerOutOfBounds
    message[time_size + port_size] = static_cast<std::uint8_t>(ip.family);
    std::copy_n(ip.bytes.begin(), ip.address_size(), message.begin() + time_size + port_size + 1);

    std::array<std::uint8_t, mac_size> out{};
    crypto_generichash_state state;
    crypto_generichash_init(&state, key_.data(), key_.size(), out.size());
    const std::uint8_t prefix_size = static_cast<std::uint8_t>(prefix.size());
    crypto_generichash_update(&state, &prefix_size, 1);
    crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(prefix.data()),
                              prefix.size());
    crypto_generichash_update(&state, message.data(), message.size());
    crypto_generichash_final(&state, out.data(), out.size());
    return out;
}

std::string NonceAuthority::issue(std::int64_t now_unix,
                                  const protocol::TransportAddress& client) const {
    std::array<std::uint8_t, payload_size> payload{};
    for (std::size_t i = 0; i < time_size; ++i) {
        payload[i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(now_unix) >>
                                               (8 * (time_size - 1 - i)));
    }
    payload[time_size] = static_cast<std::uint8_t>(client.port >> 8);
    payload[time_size + 1] = static_cast<std::uint8_t>(client.port);
    const auto tag = mac(prefix_, now_unix, client.port, client);
    std::copy(tag.begin(), tag.end(), payload.begin() + time_size + port_size);

    std::array<char, payload_size * 2> text{};
    sodium_bin2base64(text.data(), text.size(), payload.data(), payload.size(),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    std::string nonce = prefix_;
    nonce.append(text.data(), encoded_payload_size());
    return nonce;
}

NonceStatus NonceAuthority::check(std::string_view nonce, std::int64_t now_unix,
                                  const protocol::TransportAddress& client) const noexcept {
    if (nonce.size() > max_nonce_length) return NonceStatus::invalid;
    std::string_view prefix;
    if (nonce.starts_with(nonce_cookie)) {
        if (nonce.size() < nonce_cookie.size() + features_chars) return NonceStatus::invalid;
        prefix = nonce.substr(0, nonce_cookie.size() + features_chars);
    }
    const std::string_view encoded = nonce.substr(prefix.size());
    if (encoded.size() != encoded_payload_size()) return NonceStatus::invalid;

    std::array<std::uint8_t, payload_size> payload{};
    std::size_t decoded = 0;
    const char* end = nullptr;
    if (sodium_base642bin(payload.data(), payload.size(), encoded.data(), encoded.size(), nullptr,
                          &decoded, &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        decoded != payload_size || end != encoded.data() + encoded.size()) {
        return NonceStatus::invalid;
    }
    std::uint64_t issued_bits = 0;
    for (std::size_t i = 0; i < time_size; ++i) issued_bits = (issued_bits << 8) | payload[i];
    const auto issued = static_cast<std::int64_t>(issued_bits);
    const auto port =
        static_cast<std::uint16_t>((payload[time_size] << 8) | payload[time_size + 1]);

    const auto expected = mac(prefix, issued, port, client);
    if (sodium_memcmp(expected.data(), payload.data() + time_size + port_size, mac_size) != 0) {
        return NonceStatus::invalid;
    }
    // Only our own key signs the time, but keep the arithmetic below free of overflow anyway.
    if (issued < 0 || now_unix < 0) return NonceStatus::invalid;
    if (issued > now_unix && issued - now_unix > max_clock_skew) return NonceStatus::invalid;
    if (now_unix >= issued && now_unix - issued >= static_cast<std::int64_t>(lifetime_)) {
        return NonceStatus::stale;
    }
    return NonceStatus::valid;
}

std::optional<SecurityFeatures> NonceAuthority::features_of(std::string_view nonce) noexcept {
    if (!nonce.starts_with(nonce_cookie) || nonce.size() < nonce_cookie.size() + features_chars) {
        return std::nullopt;
    }
    const std::string_view text = nonce.substr(nonce_cookie.size(), features_chars);
    std::array<std::uint8_t, 3> raw{};
    std::size_t decoded = 0;
    if (sodium_base642bin(raw.data(), raw.size(), text.data(), text.size(), nullptr, &decoded,
                          nullptr, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        decoded != raw.size()) {
        return std::nullopt;
    }
    const std::uint32_t bits =
        (std::uint32_t{raw[0]} << 16) | (std::uint32_t{raw[1]} << 8) | raw[2];
    SecurityFeatures features;
    features.password_algorithms = (bits & 1u) != 0;
    features.username_anonymity = (bits & 2u) != 0;
    return features;
}

}  // namespace tern::auth
