// Reading from disk: the config file, auth.secrets_file, and whether TLS files can be read.
#include "config_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <system_error>

#include "tern/config/config.hpp"
#include "tern/config/parse.hpp"

namespace tern::config {

namespace {

namespace fs = std::filesystem;

// auth.secrets_file holds a few lines; anything this large is the wrong file. Each secret costs
// an HMAC on every authenticated request, so a long list would be slow as well as odd.
constexpr std::size_t max_secrets_file_bytes = std::size_t{64} << 10;
constexpr std::size_t max_path_shown = 4096;  // PATH_MAX: show any real path whole

// Drops "." components (and the empty one a trailing slash leaves) but keeps "..": resolving
// ".." lexically is wrong when the component before it is a symbolic link.
fs::path without_dot_segments(const fs::path& path) {
    fs::path out;
    for (const auto& part : path) {
        if (part == "." || part.empty()) continue;
        out /= part;
    }
    return out;
}

// Why a small file could not be read whole; the contents otherwise.
struct SmallFile {
    std::string contents;
    std::string error;  // empty on success
    bool too_large = false;
};

// Reads the regular file at `path` if it holds at most `limit` bytes. Opened non-blocking so a
// FIFO cannot hang a start or a reload; the size is checked before and while reading.
SmallFile read_small_file(const std::string& path, std::size_t limit) {
    SmallFile file;
    const auto os_error = [&file](int error) {
        file.error = std::generic_category().message(error);
        return file;
    };
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return os_error(errno);
    struct Closer {
        int fd;
        explicit Closer(int descriptor) : fd(descriptor) {}
        Closer(const Closer&) = delete;
        Closer& operator=(const Closer&) = delete;
        ~Closer() { ::close(fd); }
    } const closer(fd);
    struct stat status {};
    if (::fstat(fd, &status) != 0) return os_error(errno);
    if (!S_ISREG(status.st_mode)) {
        file.error = "not a regular file";
        return file;
    }
    if (status.st_size > static_cast<off_t>(limit)) {
        file.too_large = true;
        return file;
    }
    // One byte past the limit notices a file that grew since fstat.
    file.contents.resize(limit + 1);
    std::size_t used = 0;
    while (used < file.contents.size()) {
        const auto got = ::read(fd, file.contents.data() + used, file.contents.size() - used);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return os_error(errno);
        if (got == 0) break;
        used += static_cast<std::size_t>(got);
    }
    if (used > limit) {
        file.contents.clear();
        file.too_large = true;
        return file;
    }
    file.contents.resize(used);
    return file;
}

}  // namespace

fs::path anchor_directory(std::string_view source_name) {
    std::error_code ignored;
    const fs::path source_directory = fs::path(source_name).parent_path();
    return source_directory.empty() ? fs::current_path(ignored)
                                    : fs::absolute(source_directory, ignored);
}

std::string resolved_path(const fs::path& anchor, const std::string& text) {
    const fs::path path(text);
    if (path.is_absolute()) return text;
    return without_dot_segments(anchor / path).string();
}

std::string why_unreadable(const std::string& path) {
    // Whether the file can be read is all the config checks; its contents are the TLS layer's.
    if (::access(path.c_str(), R_OK) != 0) {
        const int access_error = errno;
        return "cannot read " + escape_for_message(path, max_path_shown) + ": " +
               std::generic_category().message(access_error);
    }
    std::error_code status_error;
    if (!fs::is_regular_file(path, status_error)) {
        return "cannot read " + escape_for_message(path, max_path_shown) + ": not a regular file";
    }
    return {};
}

SecretsFile read_secrets_file(const std::string& path) {
    SecretsFile secrets;  // the problems of a file that could not be read
    const std::string shown = escape_for_message(path, max_path_shown);
    SmallFile file = read_small_file(path, max_secrets_file_bytes);
    if (file.too_large) {
        secrets.problems.push_back(shown + " is larger than " +
                                   std::to_string(max_secrets_file_bytes >> 10) +
                                   " KiB; a secrets file holds a few lines, one secret each");
        return secrets;
    }
    if (!file.error.empty()) {
        secrets.problems.push_back("cannot read " + shown + ": " + file.error);
        return secrets;
    }
    return parse_secrets(file.contents, shown);
}

LoadResult load_config_file(const std::string& path) {
    const auto fail = [&path](std::string message) {
        LoadResult result;
        result.errors.push_back(ConfigError{path, 0, {}, std::move(message)});
        return result;
    };
    try {
        std::error_code status_error;
        const auto status = std::filesystem::status(path, status_error);
        if (status_error) return fail("cannot read: " + status_error.message());
        // A directory opens and reads as empty, which would pass as the all-default config.
        if (!std::filesystem::is_regular_file(status)) return fail("not a regular file");
        std::ifstream file(path, std::ios::binary);
        if (!file) {
            const int open_error = errno;
            return fail("cannot read: " + std::generic_category().message(open_error));
        }
        // Read one byte past the limit so that an oversized file is noticed without reading
        // all of it.
        std::string text(max_config_bytes + 1, '\0');
        file.read(text.data(), static_cast<std::streamsize>(text.size()));
        if (file.bad()) return fail("cannot read the file");
        text.resize(static_cast<std::size_t>(file.gcount()));
        return load_config_text(text, path);
    } catch (const std::exception& e) {
        return fail(std::string("cannot read the file: ") + e.what());
    }
}

}  // namespace tern::config
