// TURN REST API ephemeral credentials: username "<unix-expiry>:<user>", password
// base64(HMAC-SHA1(secret, username)). Shared by ternd (validation) and ternctl (minting).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tern::auth {

struct RestCredential {
    std::string username;
    std::string password;
};

// base64 (standard alphabet, padded) of HMAC-SHA1(secret, username).
std::string rest_password(std::string_view secret, std::string_view username);

// A credential valid until now_unix + ttl_seconds for `user`.
RestCredential make_rest_credential(std::string_view secret, std::string_view user,
                                    std::int64_t now_unix, std::int64_t ttl_seconds);

// The expiry encoded in a REST username ("1700000000:alice" -> 1700000000); nullopt if the part
// before the first ':' is not ASCII decimal digits alone (no sign, no spaces) or does not fit an
// int64.
std::optional<std::int64_t> rest_username_expiry(std::string_view username) noexcept;

}  // namespace tern::auth
