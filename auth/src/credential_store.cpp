// Long-term keys for static and TURN REST users (RFC 8489 §9.2.2) and USERHASH (§14.4).
#include "tern/auth/credential_store.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>

#include "tern/auth/rest_credential.hpp"

namespace tern::auth {

namespace {

// Digest of a ":"-joined list of parts; out must hold the digest size.
void digest_joined(const EVP_MD* md, std::initializer_list<std::string_view> parts,
                   std::span<std::uint8_t> out) noexcept {
    std::fill(out.begin(), out.end(), std::uint8_t{0});
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    if (ctx == nullptr) return;
    bool ok = EVP_DigestInit_ex(ctx, md, nullptr) == 1;
    bool first = true;
    for (const auto part : parts) {
        if (!first) ok = ok && EVP_DigestUpdate(ctx, ":", 1) == 1;
        first = false;
        if (!part.empty()) ok = ok && EVP_DigestUpdate(ctx, part.data(), part.size()) == 1;
    }
    unsigned int size = 0;
    std::array<std::uint8_t, EVP_MAX_MD_SIZE> digest{};
    ok = ok && EVP_DigestFinal_ex(ctx, digest.data(), &size) == 1;
    EVP_MD_CTX_free(ctx);
    if (ok && size == out.size()) std::copy_n(digest.begin(), size, out.begin());
    OPENSSL_cleanse(digest.data(), digest.size());
}

}  // namespace

LongTermKey::LongTermKey(PasswordAlgorithm algorithm, std::span<const std::uint8_t> bytes) noexcept
    : algorithm_(algorithm), size_(std::min(bytes.size(), bytes_.size())) {
    std::copy_n(bytes.begin(), size_, bytes_.begin());
}

bool operator==(const LongTermKey& a, const LongTermKey& b) noexcept {
    return a.algorithm_ == b.algorithm_ && a.size_ == b.size_ &&
           CRYPTO_memcmp(a.bytes_.data(), b.bytes_.data(), a.size_) == 0;
}

LongTermKey md5_key(std::string_view username, std::string_view realm, std::string_view password) {
    std::array<std::uint8_t, 16> key{};
    digest_joined(EVP_md5(), {username, realm, password}, key);
    return LongTermKey(PasswordAlgorithm::md5, key);
}

LongTermKey sha256_key(std::string_view username, std::string_view realm,
                       std::string_view password) {
    std::array<std::uint8_t, 32> key{};
    digest_joined(EVP_sha256(), {username, realm, password}, key);
    return LongTermKey(PasswordAlgorithm::sha256, key);
}

LongTermKey derive_key(PasswordAlgorithm algorithm, std::string_view username,
                       std::string_view realm, std::string_view password) {
    return algorithm == PasswordAlgorithm::sha256 ? sha256_key(username, realm, password)
                                                  : md5_key(username, realm, password);
}

std::array<std::uint8_t, 32> userhash(std::string_view username, std::string_view realm) {
    std::array<std::uint8_t, 32> hash{};
    digest_joined(EVP_sha256(), {username, realm}, hash);
    return hash;
}

CredentialStore::CredentialStore(std::string realm, std::vector<std::string> rest_secrets,
                                 const std::vector<StaticUserCredential>& users)
    : realm_(std::move(realm)), rest_secrets_(std::move(rest_secrets)) {
    std::erase_if(rest_secrets_, [](const std::string& s) { return s.empty(); });
    for (const auto& user : users) {
        if (user.name.empty()) continue;
        StaticEntry entry;
        if (user.md5_key) {
            entry.md5 = LongTermKey(PasswordAlgorithm::md5, *user.md5_key);
        } else if (!user.password.empty()) {
            entry.md5 = md5_key(user.name, realm_, user.password);
            entry.sha256 = sha256_key(user.name, realm_, user.password);
        } else {
            continue;
        }
        names_by_userhash_.insert_or_assign(userhash(user.name, realm_), user.name);
        users_.insert_or_assign(user.name, entry);
    }
}

std::vector<CandidateKey> CredentialStore::keys_for(std::string_view username,
                                                    PasswordAlgorithm algorithm) const {
    std::vector<CandidateKey> keys;
    if (const auto user = users_.find(username); user != users_.end()) {
        if (algorithm == PasswordAlgorithm::md5) {
            keys.push_back({user->second.md5, std::nullopt});
        } else if (user->second.sha256) {
            keys.push_back({*user->second.sha256, std::nullopt});
        }
    }
    if (!rest_secrets_.empty()) {
        if (const auto expiry = rest_username_expiry(username)) {
            for (const auto& secret : rest_secrets_) {
                std::string password = rest_password(secret, username);
                keys.push_back({derive_key(algorithm, username, realm_, password), expiry});
                OPENSSL_cleanse(password.data(), password.size());
            }
        }
    }
    return keys;
}

std::optional<std::string_view> CredentialStore::user_for_userhash(
    std::span<const std::uint8_t> hash) const noexcept {
    if (hash.size() != 32) return std::nullopt;
    std::array<std::uint8_t, 32> key{};
    std::copy_n(hash.begin(), key.size(), key.begin());
    const auto found = names_by_userhash_.find(key);
    if (found == names_by_userhash_.end()) return std::nullopt;
    return std::string_view(found->second);
}

}  // namespace tern::auth
