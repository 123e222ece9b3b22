#include "tern/server/ops/revocation_store.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace tern::server {

namespace {

std::string errno_text(int error) {
    return std::strerror(error);  // NOLINT(concurrency-mt-unsafe): main thread only
}

}  // namespace

std::vector<std::string> RevocationStore::load(std::int64_t now_unix) {
    std::vector<std::string> problems;
    std::ifstream in(path_, std::ios::binary);
    if (!in) {
        if (errno != ENOENT) problems.push_back("cannot read " + path_ + ": " + errno_text(errno));
        return problems;
    }
    std::ostringstream text;
    text << in.rdbuf();
    auto parsed = auth::RevocationList::parse(text.str());
    for (auto& e : parsed.errors) problems.push_back(path_ + " " + e + "; skipped");
    parsed.list.forget_lapsed(now_unix);
    list_ = std::make_shared<auth::RevocationList>(std::move(parsed.list));
    return problems;
}

std::string RevocationStore::save() const {
    const std::string temporary = path_ + ".new";
    const std::string text = list_->to_text();
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) return "cannot write " + temporary + ": " + errno_text(errno);
    std::size_t written = 0;
    while (written < text.size()) {
        const auto n = ::write(fd, text.data() + written, text.size() - written);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const std::string why = errno_text(errno);
            ::close(fd);
            ::unlink(temporary.c_str());
            return fmt::format("cannot write {}: {}", temporary, why);
        }
        written += static_cast<std::size_t>(n);
    }
    // The rename must not reach the disk before the contents do.
    const bool synced = ::fsync(fd) == 0;
    const int sync_error = errno;
    ::close(fd);
    if (!synced) {
        ::unlink(temporary.c_str());
        return "cannot sync " + temporary + ": " + errno_text(sync_error);
    }
    if (::rename(temporary.c_str(), path_.c_str()) != 0) {
        const std::string why = errno_text(errno);
        ::unlink(temporary.c_str());
        return fmt::format("cannot replace {}: {}", path_, why);
    }
    return {};
}

std::shared_ptr<const auth::RevocationList> RevocationStore::revoke(const std::string& user,
                                                                    std::int64_t until_unix,
                                                                    std::int64_t now_unix) {
    auth::RevocationList next = *list_;
    next.forget_lapsed(now_unix);
    next.revoke(user, until_unix);
    list_ = std::make_shared<auth::RevocationList>(std::move(next));
    return list_;
}

std::shared_ptr<const auth::RevocationList> RevocationStore::lift(const std::string& user,
                                                                  bool& was_revoked) {
    auth::RevocationList next = *list_;
    was_revoked = next.lift(user);
    list_ = std::make_shared<auth::RevocationList>(std::move(next));
    return list_;
}

}  // namespace tern::server
