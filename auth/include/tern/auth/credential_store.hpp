// Long-term credential keys (RFC 8489 §9.2.2) for static users and TURN REST API users, looked up
// by USERNAME or USERHASH. Keys are derived once at construction for static users and per
// request for REST users; nothing here is logged, and no accessor hands out a password or secret.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tern::auth {

// PASSWORD-ALGORITHM values (RFC 8489 §18.5).
enum class PasswordAlgorithm : std::uint16_t { md5 = 0x0001, sha256 = 0x0002 };

// A long-term key: 16 bytes (MD5) or 32 bytes (SHA-256). Not printable on purpose.
class LongTermKey {
public:
    LongTermKey() = default;
    LongTermKey(PasswordAlgorithm algorithm, std::span<const std::uint8_t> bytes) noexcept;

    PasswordAlgorithm algorithm() const noexcept { return algorithm_; }
    std::span<const std::uint8_t> bytes() const noexcept { return {bytes_.data(), size_}; }
    bool empty() const noexcept { return size_ == 0; }

    friend bool operator==(const LongTermKey& a, const LongTermKey& b) noexcept;

private:
    PasswordAlgorithm algorithm_ = PasswordAlgorithm::md5;
    std::array<std::uint8_t, 32> bytes_{};
    std::size_t size_ = 0;
};

// MD5(username ":" realm ":" password), RFC 8489 §9.2.2. Raw bytes: no OpaqueString processing.
LongTermKey md5_key(std::string_view username, std::string_view realm, std::string_view password);
// SHA-256(username ":" realm ":" password), RFC 8489 §9.2.2.
LongTermKey sha256_key(std::string_view username, std::string_view realm,
                       std::string_view password);
// The key for `algorithm`.
LongTermKey derive_key(PasswordAlgorithm algorithm, std::string_view username,
                       std::string_view realm, std::string_view password);
// USERHASH value: SHA-256(username ":" realm), RFC 8489 §14.4.
std::array<std::uint8_t, 32> userhash(std::string_view username, std::string_view realm);

// One key that may authenticate a request for a user name.
struct CandidateKey {
    LongTermKey key;
    std::optional<std::int64_t> rest_expiry;  // set for TURN REST credentials
};

struct StaticUserCredential {
    std::string name;
    std::string password;                                 // empty when md5_key is given
    std::optional<std::array<std::uint8_t, 16>> md5_key;  // MD5(user:realm:password)
};

// Immutable after construction: the const members may be called from several threads at once.
// A reload builds a new store.
class CredentialStore {
public:
    // `rest_secrets`: any of them validates a REST credential (newest first, for rotation).
    // Users with an empty name, or with neither password nor key, are skipped.
    CredentialStore(std::string realm, std::vector<std::string> rest_secrets,
                    const std::vector<StaticUserCredential>& users);

    const std::string& realm() const noexcept { return realm_; }
    bool has_rest_secrets() const noexcept { return !rest_secrets_.empty(); }
    std::size_t static_user_count() const noexcept { return users_.size(); }

    // Every key that may authenticate `username` under `algorithm`: the static user's key (for
    // SHA-256 only when the user has a plain password), then for a "<unix-expiry>:<user>" name
    // one key per REST secret. Empty = unknown user (or no key of that algorithm).
    std::vector<CandidateKey> keys_for(std::string_view username,
                                       PasswordAlgorithm algorithm) const;

    // The static user whose USERHASH (SHA-256(name ":" realm)) is `hash`. REST users cannot be
    // found this way: their names are not known in advance.
    std::optional<std::string_view> user_for_userhash(
        std::span<const std::uint8_t> hash) const noexcept;

private:
    struct StaticEntry {
        LongTermKey md5;
        std::optional<LongTermKey> sha256;  // absent for key-only users
    };
    std::string realm_;
    std::vector<std::string> rest_secrets_;
    std::map<std::string, StaticEntry, std::less<>> users_;
    std::map<std::array<std::uint8_t, 32>, std::string> names_by_userhash_;
};

}  // namespace tern::auth
