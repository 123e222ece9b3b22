#include "tern/auth/rest_credential.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <charconv>

namespace tern::auth {

std::string rest_password(std::string_view secret, std::string_view username) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int mac_len = 0;
    HMAC(EVP_sha1(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(username.data()), username.size(), mac.data(),
         &mac_len);
    std::string out(sodium_base64_encoded_len(mac_len, sodium_base64_VARIANT_ORIGINAL), '\0');
    sodium_bin2base64(out.data(), out.size(), mac.data(), mac_len, sodium_base64_VARIANT_ORIGINAL);
    out.resize(out.size() - 1);  // drop the terminating NUL sodium writes
    return out;
}

RestCredential make_rest_credential(std::string_view secret, std::string_view user,
                                    std::int64_t now_unix, std::int64_t ttl_seconds) {
    std::string username = std::to_string(now_unix + ttl_seconds);
    username += ':';
    username += user;
    std::string password = rest_password(secret, username);
    return {std::move(username), std::move(password)};
}

std::optional<std::int64_t> rest_username_expiry(std::string_view username) noexcept {
    const auto colon = username.find(':');
    const auto digits = username.substr(0, colon);
    // ASCII digits only: no sign (from_chars would take "-0"), no spaces, no other syntax. A
    // name whose timestamp is not one, or does not fit an int64, is no REST credential, so it
    // is an unknown user: RFC 8489 §9.2.4 answers a USERNAME that is not valid with 401.
    if (digits.empty() ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    std::int64_t expiry = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), expiry);
    if (ec != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
    return expiry;
}

}  // namespace tern::auth
