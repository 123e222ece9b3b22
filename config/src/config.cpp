// Value types' text forms and the embedded default.
#include "tern/config/config.hpp"

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

const char* to_string(KernelFastPath k) noexcept {
    switch (k) {
        case KernelFastPath::off:
            return "off";
        case KernelFastPath::auto_:
            return "auto";
        case KernelFastPath::on:
            return "on";
    }
    return "unknown";
}

const char* to_string(ProxyHeader p) noexcept {
    switch (p) {
        case ProxyHeader::off:
            return "off";
        case ProxyHeader::v2:
            return "v2";
    }
    return "unknown";
}

const char* to_string(StoreFailure f) noexcept {
    switch (f) {
        case StoreFailure::local:
            return "local";
        case StoreFailure::refuse:
            return "refuse";
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

}  // namespace tern::config
