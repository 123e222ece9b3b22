// The long-term credential mechanism on the server side (RFC 8489 §9.2.4): decides whether a
// request is authenticated, and which error (400, 401, 438) it gets otherwise. Pure: the time
// is a parameter, nothing is logged, and every failure is an AuthOutcome value (only running
// out of memory can throw).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tern/auth/credential_store.hpp"
#include "tern/auth/expiry_policy.hpp"
#include "tern/auth/nonce_authority.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::auth {

enum class AuthOutcome : std::uint8_t {
    ok,
    challenge,           // 401: no MESSAGE-INTEGRITY(-SHA256) at all
    bad_request,         // 400: credential attributes missing or malformed, or a
                         //      PASSWORD-ALGORITHM(S) negotiation violation
    unknown_user,        // 401: no key for USERNAME/USERHASH
    integrity_mismatch,  // 401: no candidate key verifies the MAC
    stale_nonce,         // 438: the MAC verified but the NONCE is stale, forged or not ours
    credential_expired,  // 401: a verified REST credential past its expiry, or with an expiry
                         //      beyond the lifetime ceiling (identity is filled in, so a caller
                         //      applying ExpiryPolicy may still accept it)
    revoked,             // 401: a verified credential of a user the operator revoked (set by the
                         //      caller, which holds the RevocationList)
};

// 0 for ok, else the STUN error code the response must carry.
std::uint16_t error_code(AuthOutcome outcome) noexcept;
// "Bad Request", "Unauthenticated", "Stale Nonce" (RFC 8489 §14.8); "" for ok.
std::string_view reason_phrase(AuthOutcome outcome) noexcept;

enum class IntegrityKind : std::uint8_t { message_integrity, message_integrity_sha256 };

struct AuthResult {
    AuthOutcome outcome = AuthOutcome::challenge;
    // Filled in for ok and credential_expired only.
    std::string username;  // resolved from USERHASH when that was sent
    LongTermKey key;       // the key that verified; sign the response with it
    IntegrityKind integrity = IntegrityKind::message_integrity;
    // Set for TURN REST credentials: the expiry ExpiryPolicy goes by. That is the username's
    // timestamp, except for one further ahead than the lifetime ceiling, which is refused as if
    // it had expired at now_unix (so no policy lets it allocate).
    std::optional<std::int64_t> rest_expiry;

    bool ok() const noexcept { return outcome == AuthOutcome::ok; }
    std::uint16_t error_code() const noexcept { return auth::error_code(outcome); }
    // Whether the error response needs REALM + a fresh NONCE (+ PASSWORD-ALGORITHMS): every
    // 401 and 438, never 400 (RFC 8489 §9.2.4).
    bool needs_challenge() const noexcept {
        return outcome != AuthOutcome::ok && outcome != AuthOutcome::bad_request;
    }
};

class LongTermAuthenticator {
public:
    // Both must outlive the authenticator. PASSWORD-ALGORITHMS (SHA-256, MD5) is offered and
    // enforced exactly when nonces.features().password_algorithms is set. A REST credential
    // whose expiry lies more than `max_credential_lifetime` seconds ahead is refused as if
    // expired (auth.max_credential_lifetime); a negative value counts as 0.
    LongTermAuthenticator(
        const CredentialStore& store, const NonceAuthority& nonces,
        std::int64_t max_credential_lifetime = default_max_credential_lifetime) noexcept
        : store_(store),
          nonces_(nonces),
          max_credential_lifetime_(std::max<std::int64_t>(0, max_credential_lifetime)) {}

    std::int64_t max_credential_lifetime() const noexcept { return max_credential_lifetime_; }

    AuthResult authenticate(const protocol::MessageView& request,
                            const protocol::TransportAddress& client, std::int64_t now_unix) const;

    // REALM, a fresh NONCE for `client`, and PASSWORD-ALGORITHMS when offered: the attributes
    // of a 401 or 438 (add ERROR-CODE yourself, before these).
    void add_challenge(protocol::MessageBuilder& builder, const protocol::TransportAddress& client,
                       std::int64_t now_unix) const;

    // MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256 (full 32 bytes), whichever the request used,
    // keyed with the key that authenticated it. Add before FINGERPRINT.
    static void add_integrity(protocol::MessageBuilder& builder, const AuthResult& result) noexcept;

    // The PASSWORD-ALGORITHMS value offered: SHA-256 then MD5, each without parameters.
    static constexpr std::array<std::uint8_t, 8> offered_algorithms = {0x00, 0x02, 0x00, 0x00,
                                                                       0x00, 0x01, 0x00, 0x00};

private:
    const CredentialStore& store_;
    const NonceAuthority& nonces_;
    std::int64_t max_credential_lifetime_;
};

}  // namespace tern::auth
