// RFC 8489 §9.2.4, server side of the long-term credential mechanism, in the RFC's order:
// integrity present, credential attributes present, password-algorithm negotiation, user known,
// integrity verifies, nonce valid. Expired REST credentials, and those whose expiry lies beyond
// the lifetime ceiling, are refused last.
#include "tern/auth/long_term_authenticator.hpp"

#include <algorithm>
#include <array>
#include <span>

#include "tern/auth/expiry_policy.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/integrity.hpp"

namespace tern::auth {

namespace {

// RFC 8489 §14.9/§14.10: REALM and NONCE are fewer than 128 characters (UTF-8 code points).
constexpr std::size_t max_text_characters = 127;

std::size_t utf8_characters(std::string_view text) noexcept {
    return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
        return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    }));
}

AuthResult fail(AuthOutcome outcome) {
    AuthResult result;
    result.outcome = outcome;
    return result;
}

}  // namespace

std::uint16_t error_code(AuthOutcome outcome) noexcept {
    switch (outcome) {
        case AuthOutcome::ok:
            return 0;
        case AuthOutcome::bad_request:
            return 400;
        case AuthOutcome::stale_nonce:
            return 438;
        case AuthOutcome::challenge:
        case AuthOutcome::unknown_user:
        case AuthOutcome::integrity_mismatch:
        case AuthOutcome::credential_expired:
        case AuthOutcome::revoked:
            return 401;
    }
    return 401;
}

std::string_view reason_phrase(AuthOutcome outcome) noexcept {
    switch (error_code(outcome)) {
        case 0:
            return "";
        case 400:
            return "Bad Request";
        case 438:
            return "Stale Nonce";
        default:
            return "Unauthenticated";
    }
}

AuthResult LongTermAuthenticator::authenticate(const protocol::MessageView& request,
                                               const protocol::TransportAddress& client,
                                               std::int64_t now_unix) const {
    namespace attr = protocol::attr;
    const bool has_sha256 = request.has(attr::message_integrity_sha256);
    const bool has_sha1 = request.has(attr::message_integrity);
    // §9.2.4: no MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256 -> 401 with REALM and NONCE.
    if (!has_sha256 && !has_sha1) return fail(AuthOutcome::challenge);

    // §9.2.4: integrity without USERNAME/USERHASH, REALM or NONCE -> 400.
    const auto username_attr = request.username();
    const auto hash_attr = request.userhash();
    const auto realm = request.realm();
    const auto nonce = request.nonce();
    if ((!username_attr && !hash_attr) || !realm || !nonce) {
        return fail(AuthOutcome::bad_request);
    }
    // §14.9: REALM is fewer than 128 characters; a longer one is malformed.
    if (utf8_characters(*realm) > max_text_characters) return fail(AuthOutcome::bad_request);

    // §9.2.4: a nonce cookie with the "Password algorithms" bit set governs the negotiation.
    // The cookie is covered by the nonce MAC, so stripping the bit (a bid-down) ends in 438.
    PasswordAlgorithm algorithm = PasswordAlgorithm::md5;
    const auto features = NonceAuthority::features_of(*nonce);
    if (features && features->password_algorithms) {
        const auto chosen = request.password_algorithm();
        const bool listed = request.has(attr::password_algorithms);
        if (chosen || listed) {
            // §9.2.4 (1) both present, (2) the list is what we sent, (3) the choice is in it.
            if (!chosen || !listed) return fail(AuthOutcome::bad_request);
            const auto list = request.find(attr::password_algorithms);
            if (!list || !std::equal(list->value.begin(), list->value.end(),
                                     offered_algorithms.begin(), offered_algorithms.end())) {
                return fail(AuthOutcome::bad_request);
            }
            if (!chosen->parameters.empty()) return fail(AuthOutcome::bad_request);
            if (chosen->algorithm == static_cast<std::uint16_t>(PasswordAlgorithm::sha256)) {
                algorithm = PasswordAlgorithm::sha256;
            } else if (chosen->algorithm != static_cast<std::uint16_t>(PasswordAlgorithm::md5)) {
                return fail(AuthOutcome::bad_request);
            }
        }
        // Neither present: processed as though PASSWORD-ALGORITHM were MD5 (§9.2.4).
    }

    // §9.2.4: USERNAME, else USERHASH (§14.4, static users only) must name a known user.
    // An unknown name costs the same HMAC as a wrong password, so the time to the 401 does not
    // tell an attacker which static user names exist.
    const auto unknown_user = [&] {
        static constexpr std::array<std::uint8_t, 32> no_key{};
        if (has_sha256) {
            (void)protocol::verify_message_integrity_sha256(request, no_key);
        } else {
            (void)protocol::verify_message_integrity(request, std::span(no_key).first(16));
        }
        return fail(AuthOutcome::unknown_user);
    };
    std::string_view username;
    if (username_attr) {
        username = *username_attr;
    } else if (const auto resolved = store_.user_for_userhash(*hash_attr)) {
        username = *resolved;
    } else {
        return unknown_user();
    }
    const auto candidates = store_.keys_for(username, algorithm);
    if (candidates.empty()) return unknown_user();

    // §9.2.4: verify MESSAGE-INTEGRITY-SHA256 when present, else MESSAGE-INTEGRITY, against
    // every candidate key (several REST secrets during a rotation). A REALM other than ours
    // cannot verify: every key is derived with our realm.
    const CandidateKey* match = nullptr;
    if (*realm == store_.realm()) {
        for (const auto& candidate : candidates) {
            const auto verdict =
                has_sha256
                    ? protocol::verify_message_integrity_sha256(request, candidate.key.bytes())
                    : protocol::verify_message_integrity(request, candidate.key.bytes());
            if (verdict == protocol::IntegrityResult::ok) {
                match = &candidate;
                break;
            }
        }
    }
    if (match == nullptr) return fail(AuthOutcome::integrity_mismatch);

    // §9.2.4: a nonce that is stale, forged, or not this client's -> 438 with a fresh one.
    if (nonces_.check(*nonce, now_unix, client) != NonceStatus::valid) {
        return fail(AuthOutcome::stale_nonce);
    }

    AuthResult result;
    result.outcome = AuthOutcome::ok;
    result.username = std::string(username);
    result.key = match->key;
    result.integrity =
        has_sha256 ? IntegrityKind::message_integrity_sha256 : IntegrityKind::message_integrity;
    result.rest_expiry = match->rest_expiry;
    // TURN REST: an expired credential is refused; ExpiryPolicy decides when a caller may
    // still accept it (the identity stays filled in for that). One that claims to live longer
    // than the ceiling is refused the same way, as if it had expired just now: a credential
    // minted for years (or leaked from a backend that does) must not outlive the rotation of
    // its secret, and must never create an allocation.
    if (result.rest_expiry &&
        exceeds_lifetime(*result.rest_expiry, now_unix, max_credential_lifetime_)) {
        result.rest_expiry = now_unix;
    }
    if (result.rest_expiry && is_expired(*result.rest_expiry, now_unix)) {
        result.outcome = AuthOutcome::credential_expired;
    }
    return result;
}

void LongTermAuthenticator::add_challenge(protocol::MessageBuilder& builder,
                                          const protocol::TransportAddress& client,
                                          std::int64_t now_unix) const {
    builder.add_text(protocol::attr::realm, store_.realm());
    builder.add_text(protocol::attr::nonce, nonces_.issue(now_unix, client));
    if (nonces_.features().password_algorithms) {
        builder.add_bytes(protocol::attr::password_algorithms, offered_algorithms);
    }
}

void LongTermAuthenticator::add_integrity(protocol::MessageBuilder& builder,
                                          const AuthResult& result) noexcept {
    if (result.integrity == IntegrityKind::message_integrity_sha256) {
        builder.add_message_integrity_sha256(result.key.bytes());
    } else {
        builder.add_message_integrity(result.key.bytes());
    }
}

}  // namespace tern::auth
