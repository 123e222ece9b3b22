// Revocations that outlive the process: the current auth::RevocationList and its state file
// (admin.revocations_file), rewritten whole through a temporary file and rename(2), so a crash
// leaves the old file or the new one, never half of one. Main thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tern/auth/revocation_list.hpp"

namespace tern::server {

class RevocationStore {
public:
    explicit RevocationStore(std::string path) : path_(std::move(path)) {}

    // Reads the file; a missing one is an empty list. Returns problems to log (lines skipped,
    // an unreadable file); lapsed entries are dropped.
    std::vector<std::string> load(std::int64_t now_unix);
    // Writes the list; empty on success, else why not (the list in memory still applies).
    std::string save() const;

    // Each returns the new list to hand to the workers.
    std::shared_ptr<const auth::RevocationList> revoke(const std::string& user,
                                                       std::int64_t until_unix,
                                                       std::int64_t now_unix);
    std::shared_ptr<const auth::RevocationList> lift(const std::string& user, bool& was_revoked);

    std::shared_ptr<const auth::RevocationList> current() const { return list_; }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    std::shared_ptr<const auth::RevocationList> list_ = std::make_shared<auth::RevocationList>();
};

}  // namespace tern::server
