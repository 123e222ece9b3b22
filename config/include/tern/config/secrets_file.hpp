// The rule that turns the text of auth.secrets_file into REST secrets. Public so that ternctl
// mints with exactly the secret ternd reads: a CR of a CRLF line end or a trailing blank copied
// into an HMAC key gives a password ternd refuses.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace tern::config {

// A file of secrets is meant for generated values, so, unlike an inline auth.secrets entry
// (kept lenient for existing configs), each line must be as long as a nonce secret.
inline constexpr std::size_t min_file_secret_bytes = 16;

// Secrets in file order (the first is the newest, the one to sign with) and the problems found.
// `problems` are whole messages for the auth.secrets_file key, in the order found; they never
// show a secret, only line numbers and lengths.
struct SecretsFile {
    std::vector<std::string> secrets;  // in file order, even when some lines are refused
    std::vector<std::string> problems;
};

// One secret per line, blanks (a CR included) trimmed from both ends, a leading UTF-8 BOM
// dropped, blank lines and lines starting with # skipped; a line with a control character or
// shorter than min_file_secret_bytes is a problem. `shown` names the text in problems.
SecretsFile parse_secrets(std::string_view text, std::string_view shown);

// parse_secrets on the file at `path`, which must be a regular file of at most 64 KiB.
SecretsFile read_secrets_file(const std::string& path);

}  // namespace tern::config
