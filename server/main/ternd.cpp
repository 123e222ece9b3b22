// ternd: parses the command line, loads and validates the config, then hands over to Server.
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sodium.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "tern/auth/rest_credential.hpp"
#include "tern/config/config.hpp"
#include "tern/config/config_warnings.hpp"
#include "tern/server/io/tls_context.hpp"
#include "tern/server/main/file_access.hpp"
#include "tern/server/main/server.hpp"
#include "tern/server/main/start_summary.hpp"
#include "tern/server/ops/logging.hpp"
#include "tern/server/request/socket_address.hpp"

namespace {

constexpr const char* usage_text =
    "usage: ternd [--config FILE] [--strict]\n"
    "                                      run the server (no FILE: the embedded default);\n"
    "                                      --strict: refuse to start on a config warning\n"
    "       ternd --check-config [FILE] [--strict] [--user NAME]\n"
    "                                      validate FILE (or --config's) and exit 0 or 1;\n"
    "                                      as root, files are opened as NAME (default tern)\n"
    "       ternd --print-default-config   print the embedded default config\n"
    "       ternd --version\n";

struct Options {
    std::optional<std::string> config_path;
    std::optional<std::string> user;  // --user: whose file access --check-config checks
    bool check = false;
    bool strict = false;  // a warning fails --check-config and the start
    bool print_default = false;
};

// The service's user (packaging/tern.service): file access is checked as it when run as root.
constexpr const char* service_user = "tern";

// A host name for the banner's URLs: the first non-loopback IPv4 address, else 127.0.0.1.
std::string banner_host(const tern::protocol::TransportAddress& bound) {
    const bool wildcard_v4 = bound.family == tern::protocol::AddressFamily::ipv4 &&
                             bound.bytes[0] == 0 && bound.bytes[1] == 0 && bound.bytes[2] == 0 &&
                             bound.bytes[3] == 0;
    if (!wildcard_v4) {
        const auto ip = bound.ip_string();
        return bound.family == tern::protocol::AddressFamily::ipv6 ? "[" + ip + "]" : ip;
    }
    std::string host = "127.0.0.1";
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) == 0) {
        for (ifaddrs* i = list; i; i = i->ifa_next) {
            if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
            const auto a = tern::server::from_sockaddr(i->ifa_addr);
            if (a.bytes[0] == 127) continue;
            host = a.ip_string();
            break;
        }
        freeifaddrs(list);
    }
    return host;
}

// The banner's lines: where ternd listens and, with a generated secret, a ready credential.
std::vector<std::string> banner_lines(const tern::server::Server& server) {
    const auto& listeners = server.bound_listeners();
    std::vector<std::string> lines;
    lines.push_back(std::string("tern ") + TERN_VERSION + " is listening on:");
    for (const auto& l : listeners) lines.push_back("  " + l.to_url());
    if (server.generated_secret().empty()) {
        lines.push_back(
            "Mint credentials for iceServers with: ternctl credential --secret <a secret of "
            "auth.secrets or auth.secrets_file> --user NAME");
        return lines;
    }
    std::vector<std::string> urls;
    for (const auto& l : listeners) {
        if (l.address.family != tern::protocol::AddressFamily::ipv4) continue;
        const std::string hp = banner_host(l.address) + ":" + std::to_string(l.address.port);
        if (l.transport == tern::protocol::Transport::udp) urls.push_back("stun:" + hp);
        if (l.transport == tern::protocol::Transport::tls) {
            urls.push_back("turns:" + hp + "?transport=tcp");
        } else {
            urls.push_back("turn:" + hp + "?transport=" + tern::protocol::to_string(l.transport));
        }
    }
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    const auto cred =
        tern::auth::make_rest_credential(server.generated_secret(), "demo", now, 86400);
    lines.emplace_back();
    lines.push_back("No auth.secrets configured: generated one for this run only:");
    lines.push_back("  " + server.generated_secret());
    lines.push_back("Ready-to-paste iceServers entry (valid 24 h):");
    std::string entry = "  { \"urls\": [";
    for (std::size_t i = 0; i < urls.size(); ++i) {
        entry += (i ? ", \"" : "\"") + urls[i] + "\"";
    }
    entry +=
        "], \"username\": \"" + cred.username + "\", \"credential\": \"" + cred.password + "\" }";
    lines.push_back(entry);
    lines.emplace_back();
    return lines;
}

// On stdout for a person at a terminal; in JSON log mode through the logger, so that every
// line ternd writes is one JSON object.
void print_banner(const tern::server::Server& server) {
    const auto lines = banner_lines(server);
    if (server.config().log.format == tern::config::LogFormat::json) {
        for (const auto& line : lines) {
            if (!line.empty()) spdlog::info("{}", line);
        }
        return;
    }
    for (const auto& line : lines) std::printf("%s\n", line.c_str());
    std::fflush(stdout);
}

// As root, opens every file the config names as the service's user. Returns false when one is
// unreadable (each printed); an unknown --user is a usage error (exit 2, set in `exit_code`).
bool files_readable_by_service(const tern::config::Config& config, const std::string& source,
                               const Options& opt, int& exit_code) {
    if (::geteuid() != 0) {
        if (opt.user) {
            std::cerr << "ternd: --user needs root; file access is checked as the current "
                         "user\n";
        }
        return true;
    }
    const std::string name = opt.user.value_or(service_user);
    const auto user = tern::server::find_user(name);
    if (!user) {
        if (opt.user) {
            std::cerr << "ternd: --user: no user named " << name << "\n";
            exit_code = 2;
            return false;
        }
        std::cerr << "ternd: user " << name << " does not exist; file access is checked as root\n";
        return true;
    }
    const auto errors =
        tern::server::unreadable_as(*user, tern::server::files_named(config), source);
    for (const auto& e : errors) std::cerr << e << "\n";
    return errors.empty();
}

int check_config(const Options& opt) {
    const auto& path = opt.config_path;
    const std::string source = path.value_or("<embedded default>");
    const auto loaded =
        path ? tern::config::load_config_file(*path) : tern::config::load_embedded_default();
    for (const auto& e : loaded.errors) std::cerr << e.to_string() << "\n";
    if (!loaded.config) return 1;
    // The config layer only checks that TLS files exist; here they must also load and match.
    if (loaded.config->tls) {
        const auto tls = tern::server::make_tls_context(*loaded.config->tls, source);
        if (!tls.context) {
            std::cerr << tls.error << "\n";  // "<file>:<line>: <key>: <message>"
            return 1;
        }
    }
    int exit_code = 1;
    if (!files_readable_by_service(*loaded.config, source, opt, exit_code)) return exit_code;
    const auto warnings = tern::config::config_warnings(*loaded.config);
    for (const auto& w : warnings) std::cerr << w.to_string(source) << "\n";
    if (opt.strict && !warnings.empty()) {
        std::cerr << source << ": " << warnings.size()
                  << (warnings.size() == 1 ? " warning" : " warnings")
                  << " and --strict: configuration refused\n";
        return 1;
    }
    std::cout << source << ": configuration OK";
    if (!warnings.empty()) {
        std::cout << " (" << warnings.size() << (warnings.size() == 1 ? " warning" : " warnings")
                  << ")";
    }
    std::cout << "\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options opt;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--config" || a == "-c") {
            if (i + 1 >= argc) {
                std::cerr << "ternd: --config needs a file\n" << usage_text;
                return 2;
            }
            opt.config_path = argv[++i];
        } else if (a == "--check-config") {
            opt.check = true;
            if (i + 1 < argc && argv[i + 1][0] != '-') opt.config_path = argv[++i];
        } else if (a == "--strict") {
            opt.strict = true;
        } else if (a == "--user") {
            if (i + 1 >= argc) {
                std::cerr << "ternd: --user needs a user name\n" << usage_text;
                return 2;
            }
            opt.user = argv[++i];
        } else if (a == "--print-default-config") {
            opt.print_default = true;
        } else if (a == "--version") {
            std::cout << "ternd " << TERN_VERSION << "\n";
            return 0;
        } else if (a == "--help" || a == "-h") {
            std::cout << usage_text;
            return 0;
        } else {
            std::cerr << "ternd: unknown argument " << a << "\n" << usage_text;
            return 2;
        }
    }
    if (sodium_init() < 0) {
        std::cerr << "ternd: libsodium failed to initialise\n";
        return 1;
    }
    if (opt.print_default) {
        std::cout << tern::config::embedded_default_yaml();
        return 0;
    }
    if (opt.user && !opt.check) {
        std::cerr << "ternd: --user applies to --check-config only\n" << usage_text;
        return 2;
    }
    if (opt.check) return check_config(opt);

    auto loaded = opt.config_path ? tern::config::load_config_file(*opt.config_path)
                                  : tern::config::load_embedded_default();
    if (!loaded.config) {
        for (const auto& e : loaded.errors) std::cerr << "ternd: " << e.to_string() << "\n";
        return 1;
    }
    std::signal(SIGPIPE, SIG_IGN);
    tern::server::configure_logging(loaded.config->log);
    const std::string source = opt.config_path.value_or("<embedded default>");
    const auto warnings = tern::config::config_warnings(*loaded.config);
    // The log line's level says "warning"; the text is the error format without the marker.
    for (const auto& w : warnings) {
        spdlog::warn("{}", tern::config::ConfigError{source, w.line, w.key, w.message}.to_string());
    }
    if (opt.strict && !warnings.empty()) {
        spdlog::error("{}: {} config warning(s) and --strict: not starting", source,
                      warnings.size());
        return 1;
    }
    tern::server::Server server(std::move(*loaded.config), opt.config_path.value_or(""));
    if (!server.open()) return 1;
    spdlog::info("{}",
                 tern::server::start_summary(server.config(), !server.generated_secret().empty()));
    print_banner(server);
    return server.run();
}
