// Users the operator cut off (POST /v1/users/{user}/revoke): their credentials, REST or static,
// are refused until a wall-clock time. An immutable value: the server builds a new one per
// change and hands it to every worker, so checking it takes no lock.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tern::auth {

// The user a username names: a TURN REST username ("<expiry>:<user>") names its user part,
// any other username itself.
std::string_view user_of(std::string_view username) noexcept;

class RevocationList {
public:
    // Whether a verified `username` is refused at `now_unix`: its own name or its user part is
    // revoked until later than now.
    bool refuses(std::string_view username, std::int64_t now_unix) const noexcept;

    // Adds or replaces; `until_unix` is when the revocation lapses.
    void revoke(std::string user, std::int64_t until_unix);
    bool lift(std::string_view user);  // false when `user` was not revoked
    void forget_lapsed(std::int64_t now_unix);

    std::optional<std::int64_t> until(std::string_view user) const noexcept;
    const std::map<std::string, std::int64_t, std::less<>>& entries() const noexcept {
        return until_;
    }
    std::size_t size() const noexcept { return until_.size(); }

    // The state file: one "<until-unix> <user>\n" line per entry after a comment line. A user
    // name holds no line break (the admin API refuses one), so the rest of the line is the name.
    std::string to_text() const;
    struct Parsed;
    static Parsed parse(std::string_view text);

private:
    std::map<std::string, std::int64_t, std::less<>> until_;
};

struct RevocationList::Parsed {
    RevocationList list;
    std::vector<std::string> errors;  // "line N: ..." for each line skipped
};

}  // namespace tern::auth
