#include "tern/server/main/file_access.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace tern::server {

namespace {

// What the child reports for one file: its index and errno, or index -1 when it could not
// become the user at all.
struct Record {
    std::int32_t index = 0;
    std::int32_t error = 0;
};

void write_record(int fd, Record r) {
    // A pipe write of a few bytes is atomic; a short write cannot happen.
    [[maybe_unused]] const auto written = ::write(fd, &r, sizeof r);
}

[[noreturn]] void check_in_child(const RunAs& user, const std::vector<NamedFile>& files, int out) {
    if (::initgroups(user.name.c_str(), user.gid) != 0 || ::setgid(user.gid) != 0 ||
        ::setuid(user.uid) != 0) {
        write_record(out, Record{-1, errno});
        ::_exit(1);
    }
    for (std::size_t i = 0; i < files.size(); ++i) {
        // Non-blocking: a FIFO named as a key file must not hang the check.
        const int fd = ::open(files[i].path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
            write_record(out, Record{static_cast<std::int32_t>(i), errno});
            continue;
        }
        ::close(fd);
    }
    ::_exit(0);
}

}  // namespace

std::vector<NamedFile> files_named(const config::Config& config) {
    std::vector<NamedFile> files;
    if (config.tls) {
        const auto& tls = *config.tls;
        if (!tls.certificate.empty()) {
            files.push_back({tls.key + ".certificate", tls.certificate_line, tls.certificate});
        }
        if (!tls.private_key.empty()) {
            files.push_back({tls.key + ".private_key", tls.private_key_line, tls.private_key});
        }
        for (const auto& pair : tls.certificates) {
            files.push_back({pair.key + ".certificate", pair.certificate_line, pair.certificate});
            files.push_back({pair.key + ".private_key", pair.private_key_line, pair.private_key});
        }
    }
    if (!config.auth.secrets_file.empty()) {
        files.push_back({"auth.secrets_file", config.key_lines.of("auth.secrets_file"),
                         config.auth.secrets_file});
    }
    if (config.admin.token_file) {
        files.push_back({"admin.token_file", config.key_lines.of("admin.token_file"),
                         *config.admin.token_file});
    }
    return files;
}

std::optional<RunAs> find_user(const std::string& name) {
    passwd entry{};
    passwd* found = nullptr;
    std::array<char, 4096> buffer{};
    if (::getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 ||
        found == nullptr) {
        return std::nullopt;
    }
    return RunAs{name, entry.pw_uid, entry.pw_gid};
}

std::vector<std::string> unreadable_as(const RunAs& user, const std::vector<NamedFile>& files,
                                       std::string_view source) {
    std::vector<std::string> errors;
    const std::string source_name(source);
    std::array<int, 2> pipe{};
    if (::pipe2(pipe.data(), O_CLOEXEC) != 0) {
        errors.push_back(source_name + ": cannot check files as user " + user.name + ": " +
                         std::strerror(errno));
        return errors;
    }
    const pid_t child = ::fork();
    if (child == 0) {
        ::close(pipe[0]);
        check_in_child(user, files, pipe[1]);
    }
    ::close(pipe[1]);
    if (child < 0) {
        ::close(pipe[0]);
        errors.push_back(source_name + ": cannot check files as user " + user.name + ": " +
                         std::strerror(errno));
        return errors;
    }
    Record r;
    while (::read(pipe[0], &r, sizeof r) == static_cast<ssize_t>(sizeof r)) {
        const std::string why = std::strerror(r.error);
        if (r.index < 0 || static_cast<std::size_t>(r.index) >= files.size()) {
            std::string error = source_name;
            error.append(": cannot become user ").append(user.name).append(" (").append(why);
            errors.push_back(error.append(") to check its file access"));
            continue;
        }
        const auto& f = files[static_cast<std::size_t>(r.index)];
        errors.push_back(
            config::ConfigError{source_name, f.line, f.key,
                                f.path + " is not readable by user " + user.name + " (" + why + ")"}
                .to_string());
    }
    ::close(pipe[0]);
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    return errors;
}

}  // namespace tern::server
