// The auth section of the schema: secrets, users, credential expiry, nonces.
#include "config_schema.hpp"

#include <algorithm>
#include <array>
#include <set>

#include "tern/config/parse.hpp"

namespace tern::config {

namespace {

constexpr std::uint32_t min_nonce_lifetime = 30;
constexpr std::uint32_t max_nonce_lifetime = 3600;
// A REST credential must live long enough to be used (a minute); one good for more than a year
// would outlast any sensible rotation of the secret that signed it.
constexpr std::uint32_t min_max_credential_lifetime = 60;
constexpr std::uint32_t max_max_credential_lifetime = 31536000;
constexpr std::size_t min_nonce_secret_bytes = 16;

constexpr std::array<std::string_view, 7> auth_keys = {
    "secrets",        "secrets_file",           "users", "expiry", "nonce_secret",
    "nonce_lifetime", "max_credential_lifetime"};
constexpr std::array<std::string_view, 2> user_keys = {"password", "key"};
constexpr std::array<CredentialExpiry, 3> credential_expiries = {
    CredentialExpiry::allocate, CredentialExpiry::request, CredentialExpiry::strict};

std::optional<std::array<std::uint8_t, 16>> parse_md5_hex(std::string_view text) {
    std::array<std::uint8_t, 16> key{};
    if (text.size() != key.size() * 2) return std::nullopt;
    const auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < key.size(); ++i) {
        const int high = nibble(text[2 * i]);
        const int low = nibble(text[2 * i + 1]);
        if (high < 0 || low < 0) return std::nullopt;
        key[i] = static_cast<std::uint8_t>(high * 16 + low);
    }
    return key;
}

}  // namespace

std::optional<std::uint32_t> Loader::seconds_of(const MapEntry& entry, std::uint32_t min,
                                                std::uint32_t max, std::string_view max_note) {
    const auto text = yaml_.scalar_of(entry, "a number of seconds");
    if (!text) return std::nullopt;
    const auto seconds = parse_unsigned(*text, max);
    if (!seconds || *seconds < min) {
        yaml_.report(entry.line, entry.path,
                     "expected a whole number of seconds from " + std::to_string(min) + " to " +
                         std::to_string(max) + std::string(max_note) + ", got " +
                         quote_for_message(*text));
        return std::nullopt;
    }
    return seconds;
}

void Loader::load_auth(const MapEntry& entry) {
    if (!yaml_.is_section(entry)) return;
    for (const auto& field : yaml_.entries_of(entry.value, entry.path, auth_keys)) {
        if (field.name == "users") {
            load_users(field);
            continue;
        }
        if (field.name == "secrets_file") {
            load_secrets_file(field);
            continue;
        }
        if (field.name == "expiry") {
            const auto text = yaml_.scalar_of(field);
            if (!text) continue;
            const auto policy =
                std::find_if(credential_expiries.begin(), credential_expiries.end(),
                             [&](CredentialExpiry e) { return *text == to_string(e); });
            if (policy == credential_expiries.end()) {
                yaml_.report(field.line, field.path,
                             "unknown policy " + quote_for_message(*text) +
                                 " (expected allocate, request or strict)");
                continue;
            }
            config_.auth.expiry = *policy;
            continue;
        }
        if (field.name == "nonce_secret") {
            // The value is secret: errors give its length, never its text.
            if (!field.value.IsScalar()) {
                yaml_.report(field.line, field.path,
                             std::string("expected a string, got ") + kind_of(field.value));
                continue;
            }
            const std::string& secret = field.value.Scalar();
            if (secret.size() < min_nonce_secret_bytes) {
                yaml_.report(field.line, field.path,
                             "too short: " + std::to_string(secret.size()) + " bytes, at least " +
                                 std::to_string(min_nonce_secret_bytes) + " are needed");
                continue;
            }
            config_.auth.nonce_secret = secret;
            continue;
        }
        if (field.name == "nonce_lifetime") {
            if (const auto s = seconds_of(field, min_nonce_lifetime, max_nonce_lifetime, "")) {
                config_.auth.nonce_lifetime = *s;
            }
            continue;
        }
        if (field.name == "max_credential_lifetime") {
            if (const auto s = seconds_of(field, min_max_credential_lifetime,
                                          max_max_credential_lifetime, " (a year)")) {
                config_.auth.max_credential_lifetime = *s;
            }
            continue;
        }
        const auto secrets = yaml_.string_list_of(field);
        if (!secrets) continue;
        for (const auto& secret : *secrets) {
            if (secret.text.empty()) {
                yaml_.report(secret.line, secret.path, "a secret must not be empty");
                continue;
            }
            config_.auth.secrets.push_back(secret.text);
        }
    }
    // The same secret in auth.secrets and the file (likely during a move from one to the other)
    // would only cost a second HMAC per request: keep the first of each.
    std::set<std::string, std::less<>> seen;
    std::erase_if(config_.auth.secrets,
                  [&seen](const std::string& secret) { return !seen.insert(secret).second; });
}

void Loader::load_secrets_file(const MapEntry& entry) {
    const auto text = yaml_.scalar_of(entry, "a file name");
    if (!text) return;
    if (text->empty()) {
        yaml_.report(entry.line, entry.path, "must not be empty");
        return;
    }
    const std::string path = resolved_path(base_directory_, *text);
    config_.auth.secrets_file = path;
    auto file = read_secrets_file(path);
    for (auto& problem : file.problems) yaml_.report(entry.line, entry.path, std::move(problem));
    for (auto& secret : file.secrets) config_.auth.secrets.push_back(std::move(secret));
}

void Loader::load_users(const MapEntry& entry) {
    if (!yaml_.is_section(entry)) return;
    for (const auto& user_entry : yaml_.entries_of(entry.value, entry.path, {})) {
        if (user_entry.name.empty()) {
            yaml_.report(user_entry.key_line, user_entry.path, "a user name must not be empty");
            continue;
        }
        if (!user_entry.value.IsMap()) {
            yaml_.report(user_entry.line, user_entry.path,
                         std::string("expected a map with password or key, got ") +
                             kind_of(user_entry.value));
            continue;
        }
        StaticUser user;
        user.name = user_entry.name;
        bool password_given = false;
        bool key_given = false;
        const std::size_t errors_before = yaml_.error_count();
        for (const auto& field : yaml_.entries_of(user_entry.value, user_entry.path, user_keys)) {
            const auto text = yaml_.scalar_of(field);
            if (field.name == "password") {
                password_given = true;
                if (!text) continue;
                if (text->empty()) {
                    yaml_.report(field.line, field.path, "must not be empty");
                    continue;
                }
                user.password = *text;
            } else {
                key_given = true;
                if (!text) continue;
                user.key = parse_md5_hex(*text);
                if (!user.key) {
                    yaml_.report(field.line, field.path,
                                 "expected 32 hex digits (MD5 of user:realm:password), got " +
                                     std::to_string(text->size()) + " characters" +
                                     (text->size() == 32 ? " that are not all hex digits" : ""));
                }
            }
        }
        if (password_given && key_given) {
            yaml_.report(user_entry.key_line, user_entry.path,
                         "give either password or key, not both");
        } else if (!password_given && !key_given && yaml_.error_count() == errors_before) {
            // (A misspelt password or key has been reported already; this would repeat it.)
            yaml_.report(user_entry.key_line, user_entry.path, "needs a password or a key");
        }
        config_.auth.users.push_back(std::move(user));
    }
}

}  // namespace tern::config
