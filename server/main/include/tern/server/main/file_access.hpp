// `ternd --check-config` run as root opens every file as root, so it passes a key only root can
// read, and the service, which runs as user tern, then fails to start. These check the files a
// config names as the service's user instead.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tern/config/config.hpp"

namespace tern::server {

// A file the config names, with the key and line that name it.
struct NamedFile {
    std::string key;  // "tls.private_key", "tls.certificates[1].certificate", "auth.secrets_file"
    int line = 0;
    std::string path;
};

// Every file `config` reads at start and reload: TLS certificates and keys (tls.certificates
// included) and auth.secrets_file.
std::vector<NamedFile> files_named(const config::Config& config);

struct RunAs {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
};

// The passwd entry of `name`; nullopt when there is no such user.
std::optional<RunAs> find_user(const std::string& name);

// Opens each file in a child process that has become `user` (its groups, gid and uid), and
// returns one error per file it cannot read, in ConfigError's format: "tern.yaml:7:
// tls.private_key: /etc/tern/key.pem is not readable by user tern (Permission denied)". Needs
// root; a failure to switch users is an error of its own.
std::vector<std::string> unreadable_as(const RunAs& user, const std::vector<NamedFile>& files,
                                       std::string_view source);

}  // namespace tern::server
