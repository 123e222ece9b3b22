// Value types' text forms, the embedded default, and reading a config file from disk.
#include "tern/config/config.hpp"

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <system_error>

namespace tern::config {

namespace {

// The whole built-in default. Only `listen` is spelled out: every other setting keeps the
// initialiser in config.hpp, so a default is never stated twice.
constexpr std::string_view embedded_default_text =
    "# tern built-in default: STUN/TURN over UDP and TCP on port 3478, on every IPv4 and IPv6\n"
    "# interface. All other settings keep their built-in defaults (realm \"tern\"); with no\n"
    "# auth.secrets or auth.users, ternd generates a secret at start and prints it.\n"
    "listen:\n"
    "  - \"udp://0.0.0.0:3478\"\n"
    "  - \"tcp://0.0.0.0:3478\"\n"
    "  - \"udp://[::]:3478\"\n"
    "  - \"tcp://[::]:3478\"\n";

constexpr std::string_view embedded_default_source = "<embedded default>";

}  // namespace

const char* to_string(LogLevel l) noexcept {
    switch (l) {
        case LogLevel::trace:
            return "trace";
        case LogLevel::debug:
            return "debug";
        case LogLevel::info:
            return "info";
        case LogLevel::warn:
            return "warn";
        case LogLevel::error:
            return "error";
        case LogLevel::critical:
            return "critical";
        case LogLevel::off:
            return "off";
    }
    return "unknown";
}

const char* to_string(LogFormat f) noexcept {
    switch (f) {
        case LogFormat::text:
            return "text";
        case LogFormat::json:
            return "json";
    }
    return "unknown";
}

const char* to_string(CredentialExpiry e) noexcept {
    switch (e) {
        case CredentialExpiry::allocate:
            return "allocate";
        case CredentialExpiry::request:
            return "request";
        case CredentialExpiry::strict:
            return "strict";
    }
    return "unknown";
}

const char* to_string(ChannelNumbers c) noexcept {
    return c == ChannelNumbers::rfc5766 ? "rfc5766" : "rfc8656";
}

const char* to_string(RelayFamily f) noexcept {
    switch (f) {
        case RelayFamily::ipv4:
            return "ipv4";
        case RelayFamily::client:
            return "client";
    }
    return "unknown";
}

std::string Listener::to_url() const {
    return std::string(to_string(transport)) + "://" + address.to_string();
}

std::string ConfigError::to_string() const {
    std::string out = source;
    if (line > 0) {
        // Appended piecewise: g++ 12 raises a false -Wrestrict on ":" + std::to_string(line).
        out += ':';
        out += std::to_string(line);
    }
    out += ": ";
    if (!key.empty()) out += key + ": ";
    out += message;
    return out;
}

std::string_view embedded_default_yaml() noexcept {
    return embedded_default_text;
}

LoadResult load_embedded_default() {
    return load_config_text(embedded_default_text, embedded_default_source);
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
