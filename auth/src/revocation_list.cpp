#include "tern/auth/revocation_list.hpp"

#include <charconv>

#include "tern/auth/rest_credential.hpp"

namespace tern::auth {

std::string_view user_of(std::string_view username) noexcept {
    if (!rest_username_expiry(username)) return username;
    const auto colon = username.find(':');
    return colon == std::string_view::npos ? username : username.substr(colon + 1);
}

bool RevocationList::refuses(std::string_view username, std::int64_t now_unix) const noexcept {
    if (until_.empty()) return false;
    for (const std::string_view name : {username, user_of(username)}) {
        const auto it = until_.find(name);
        if (it != until_.end() && now_unix < it->second) return true;
    }
    return false;
}

void RevocationList::revoke(std::string user, std::int64_t until_unix) {
    until_[std::move(user)] = until_unix;
}

bool RevocationList::lift(std::string_view user) {
    const auto it = until_.find(user);
    if (it == until_.end()) return false;
    until_.erase(it);
    return true;
}

void RevocationList::forget_lapsed(std::int64_t now_unix) {
    std::erase_if(until_, [now_unix](const auto& e) { return e.second <= now_unix; });
}

std::optional<std::int64_t> RevocationList::until(std::string_view user) const noexcept {
    const auto it = until_.find(user);
    if (it == until_.end()) return std::nullopt;
    return it->second;
}

std::string RevocationList::to_text() const {
    std::string out = "# ternd revocations: <until, unix seconds> <user>; written by ternd\n";
    for (const auto& [user, until] : until_) {
        out += std::to_string(until);
        out += ' ';
        out += user;
        out += '\n';
    }
    return out;
}

RevocationList::Parsed RevocationList::parse(std::string_view text) {
    Parsed parsed;
    std::size_t number = 0;
    while (!text.empty()) {
        const auto end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        ++number;
        if (line.empty() || line.front() == '#') continue;
        const auto space = line.find(' ');
        std::int64_t until = 0;
        const char* first = line.data();
        const char* last = line.data() + (space == std::string_view::npos ? line.size() : space);
        const auto [ptr, ec] = std::from_chars(first, last, until);
        if (space == std::string_view::npos || ec != std::errc{} || ptr != last ||
            space + 1 >= line.size()) {
            parsed.errors.push_back("line " + std::to_string(number) +
                                    ": expected \"<until> <user>\"");
            continue;
        }
        parsed.list.revoke(std::string(line.substr(space + 1)), until);
    }
    return parsed;
}

}  // namespace tern::auth
