// The admin and usage_records sections of the schema: the admin API's bearer token (read here,
// so --check-config proves it readable), where revocations persist, and where usage records go.
#include <array>
#include <fstream>

#include "config_schema.hpp"
#include "tern/config/parse.hpp"

namespace tern::config {

namespace {

constexpr std::array<std::string_view, 2> admin_keys = {"token_file", "revocations_file"};
constexpr std::array<std::string_view, 2> usage_records_keys = {"file", "journal"};
// A guessable token hands out kill and revoke; 16 bytes is what `openssl rand -hex 16` prints
// half of.
constexpr std::size_t min_token_bytes = 16;
constexpr std::size_t max_token_bytes = 4096;

// The token is the file's first line, trimmed; nullopt with `error` set when unusable. The
// contents are secret: messages give lengths, never text.
std::optional<std::string> read_token(const std::string& path, std::string& error) {
    if (auto why = why_unreadable(path); !why.empty()) {
        error = why;
        return std::nullopt;
    }
    std::ifstream in(path, std::ios::binary);
    std::string first;
    std::getline(in, first);
    if (first.size() > max_token_bytes) {
        error = "the token is longer than " + std::to_string(max_token_bytes) + " bytes";
        return std::nullopt;
    }
    const std::string_view token = trim_blanks(first);
    if (token.size() < min_token_bytes) {
        error = "the token in " + path + " is " + std::to_string(token.size()) +
                " bytes, at least " + std::to_string(min_token_bytes) +
                " are needed (make one with: openssl rand -hex 32)";
        return std::nullopt;
    }
    return std::string(token);
}

}  // namespace

void Loader::load_admin(const MapEntry& entry) {
    if (!yaml_.is_section(entry)) return;
    for (const auto& field : yaml_.entries_of(entry.value, entry.path, admin_keys)) {
        const auto text = yaml_.scalar_of(field, "a file name");
        if (!text) continue;
        if (text->empty()) {
            yaml_.report(field.line, field.path, "must not be empty");
            continue;
        }
        const std::string path = resolved_path(base_directory_, *text);
        if (field.name == "token_file") {
            admin_token_file_ = ListItem{path, field.path, field.line};
            config_.admin.token_file = path;
            std::string error;
            if (auto token = read_token(path, error)) {
                config_.admin.token = std::move(*token);
            } else {
                yaml_.report(field.line, field.path, error);
            }
        } else {
            config_.admin.revocations_file = path;
        }
    }
}

void Loader::load_usage_records(const MapEntry& entry) {
    if (!yaml_.is_section(entry)) return;
    for (const auto& field : yaml_.entries_of(entry.value, entry.path, usage_records_keys)) {
        const auto text = yaml_.scalar_of(field);
        if (!text) continue;
        if (field.name == "file") {
            if (text->empty()) {
                yaml_.report(field.line, field.path, "must not be empty");
                continue;
            }
            config_.usage_records.file = resolved_path(base_directory_, *text);
        } else if (*text == "true" || *text == "false") {
            config_.usage_records.journal = *text == "true";
        } else {
            yaml_.report(field.line, field.path,
                         "expected true or false, got " + quote_for_message(*text));
        }
    }
}

void Loader::check_admin() {
    if (admin_token_file_ && !config_.metrics.listen) {
        yaml_.report(admin_token_file_->line, admin_token_file_->path,
                     "the admin API is served on the metrics endpoint; set metrics.listen too");
    }
}

}  // namespace tern::config
