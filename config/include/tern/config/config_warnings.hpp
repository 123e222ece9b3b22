// The warning tier: settings that load but are probably not what the operator meant (a peer
// range that opens the internal network, a secret too short to resist guessing, a mapping that
// never applies). ternd --check-config prints them and ternd logs them at start; with --strict
// either refuses to go on. Pure: the rules read a Config and nothing else.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "tern/config/config.hpp"

namespace tern::config {

// Static user passwords shorter than this are guessable offline from one captured request
// (the MESSAGE-INTEGRITY key is MD5(user:realm:password)).
inline constexpr std::size_t min_advised_password_bytes = 12;
// REST secrets shorter than this are refused in auth.secrets_file and warned about in
// auth.secrets, where a short one was accepted before the rule existed.
inline constexpr std::size_t min_advised_secret_bytes = 16;

struct ConfigWarning {
    std::string key;  // dotted path, as in ConfigError
    int line = 0;     // 1-based; 0 when the key was not written in the file
    std::string message;
    // "tern.yaml:12: relay.allow_peers[0]: warning: ..." (ConfigError's format, marked).
    std::string to_string(const std::string& source) const;
};

// Every warning for `config`, in file order (those without a line last).
std::vector<ConfigWarning> config_warnings(const Config& config);

}  // namespace tern::config
