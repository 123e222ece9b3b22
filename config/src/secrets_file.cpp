// auth.secrets_file's line rule (reading the file is config_files.cpp's).
#include "tern/config/secrets_file.hpp"

#include <algorithm>

#include "tern/config/parse.hpp"

namespace tern::config {

SecretsFile parse_secrets(std::string_view text, std::string_view shown) {
    SecretsFile secrets;
    // The contents are secret: messages give line numbers and lengths, never text.
    std::string_view rest = text;
    constexpr std::string_view utf8_bom = "\xEF\xBB\xBF";  // some editors write one
    if (rest.starts_with(utf8_bom)) rest.remove_prefix(utf8_bom.size());
    bool refused = false;
    for (int number = 1; !rest.empty(); ++number) {
        const auto end = rest.find('\n');
        const std::string_view secret = trim_blanks(rest.substr(0, end));
        rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
        if (secret.empty() || secret.front() == '#') continue;
        const std::string where = std::string(shown) + " line " + std::to_string(number) + ": ";
        const auto control = std::find_if(secret.begin(), secret.end(), [](char c) {
            const auto byte = static_cast<unsigned char>(c);
            return (byte < 0x20 && c != '\t') || byte == 0x7F;
        });
        if (control != secret.end()) {
            constexpr std::string_view hex = "0123456789abcdef";
            const auto byte = static_cast<unsigned char>(*control);
            secrets.problems.push_back(where + "holds a control character (byte 0x" +
                                       hex[byte >> 4] + hex[byte & 0xF] +
                                       "); a secret is one line of text");
            refused = true;
            continue;
        }
        if (secret.size() < min_file_secret_bytes) {
            secrets.problems.push_back(
                where + "secret too short: " + std::to_string(secret.size()) + " bytes, at least " +
                std::to_string(min_file_secret_bytes) + " are needed");
            refused = true;
            continue;
        }
        secrets.secrets.emplace_back(secret);
    }
    if (secrets.secrets.empty() && !refused) {
        secrets.problems.push_back(std::string(shown) +
                                   " holds no secret (one per line; blank lines and lines "
                                   "starting with # are ignored)");
    }
    return secrets;
}

}  // namespace tern::config
