// Files on disk: the config file itself (load_config_file), paths anchored at its directory, TLS
// files that must be readable, and auth.secrets_file's secrets. Private to config/.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "tern/config/secrets_file.hpp"

namespace tern::config {

// The directory relative paths in the config named `source_name` resolve against: its own,
// made absolute, or the current directory when it has none.
std::filesystem::path anchor_directory(std::string_view source_name);

// `text` if absolute, else `anchor`/`text` with "." components dropped.
std::string resolved_path(const std::filesystem::path& anchor, const std::string& text);

// Empty when `path` is a readable regular file, else "cannot read <path>: <why>".
std::string why_unreadable(const std::string& path);

// auth.secrets_file: read_secrets_file, in the public tern/config/secrets_file.hpp.

}  // namespace tern::config
