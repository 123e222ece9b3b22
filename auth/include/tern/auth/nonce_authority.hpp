// Stateless NONCE values (RFC 8489 §9.2): the issue time and a keyed MAC over it and the
// client's IP address, so validating a nonce needs no per-client state and survives a restart
// (or moves across a fleet) when the key comes from a shared secret.
//
// Format:  [ "obMatJos2" <4 base64 chars: 24-bit security features> ]  <35 chars base64url>
// The cookie prefix appears only when a security feature is offered. The base64url part holds
// 8 bytes issue time (big-endian unix seconds), 2 bytes client port at issue time and a 16-byte
// BLAKE2b MAC (crypto_generichash, keyed) over prefix, issue time, port and client IP.
//
// The client *port* is bound into the nonce (so two clients behind one NAT address never get the
// same nonce, RFC 8489 §9.2.4) but a later request is checked against the client's IP only: a
// client whose source port changes (a TCP/TLS reconnect, a NAT rebinding) keeps its nonce.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tern/protocol/transport_address.hpp"

namespace tern::auth {

// STUN Security Features (RFC 8489 §9.2, §18.1). Bits counted from the least significant end of
// the 24-bit value, per erratum 6290 and the RFC 8489 Appendix B.1 nonce "obMatJos2AAAC...".
struct SecurityFeatures {
    bool password_algorithms = false;  // bit 0
    bool username_anonymity = false;   // bit 1
    std::uint32_t bits() const noexcept {
        return (password_algorithms ? 1u : 0u) | (username_anonymity ? 2u : 0u);
    }
    friend bool operator==(const SecurityFeatures&, const SecurityFeatures&) = default;
};

inline constexpr std::string_view nonce_cookie = "obMatJos2";
// RFC 8489 §14.10: NONCE is fewer than 128 characters.
inline constexpr std::size_t max_nonce_length = 127;

enum class NonceStatus : std::uint8_t { valid, stale, invalid };

// Immutable after construction: the const members may be called from several threads at once.
class NonceAuthority {
public:
    static constexpr std::uint32_t default_lifetime = 600;
    // How far in the future an issue time may lie (clock skew across a fleet) before the nonce
    // counts as invalid.
    static constexpr std::int64_t max_clock_skew = 60;

    // secret: at least 16 bytes, hashed into the 32-byte MAC key; nullopt (or shorter) = a fresh
    // random key, so nonces die with the process. Throws std::runtime_error only if libsodium
    // cannot initialise.
    NonceAuthority(std::optional<std::string_view> secret, std::uint32_t lifetime_seconds,
                   SecurityFeatures features);

    // A nonce for `client` issued at now_unix; always shorter than 128 characters.
    std::string issue(std::int64_t now_unix, const protocol::TransportAddress& client) const;
    // valid: ours, for this client IP, issued within the lifetime; stale: ours and for this
    // client but older than the lifetime; invalid: anything else (wrong key, other client,
    // tampered, too long, malformed, issued in the future beyond max_clock_skew).
    NonceStatus check(std::string_view nonce, std::int64_t now_unix,
                      const protocol::TransportAddress& client) const noexcept;

    SecurityFeatures features() const noexcept { return features_; }
    std::uint32_t lifetime() const noexcept { return lifetime_; }

    // The security features a nonce's cookie claims (nullopt when it has no cookie). Not
    // authenticated by itself: check() covers the cookie with the MAC.
    static std::optional<SecurityFeatures> features_of(std::string_view nonce) noexcept;

private:
    std::array<std::uint8_t, 16> mac(std::string_view prefix, std::int64_t issued,
                                     std::uint16_t port,
                                     const protocol::TransportAddress& client) const noexcept;
    std::array<std::uint8_t, 32> key_{};
    std::uint32_t lifetime_;
    SecurityFeatures features_;
    std::string prefix_;  // cookie + features, or empty
};

}  // namespace tern::auth
