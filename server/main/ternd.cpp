// ternd: parses the command line, loads and validates the config, then hands over to Server.
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sodium.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "tern/auth/rest_credential.hpp"
#include "tern/config/config.hpp"
#include "tern/server/io/tls_context.hpp"
#include "tern/server/main/server.hpp"
#include "tern/server/ops/logging.hpp"
#include "tern/server/request/socket_address.hpp"

namespace {

constexpr const char* usage_text =
    "usage: ternd [--config FILE]          run the server (no FILE: the embedded default)\n"
    "       ternd --check-config [FILE]    validate FILE (or --config's) and exit 0 or 1\n"
    "       ternd --print-default-config   print the embedded default config\n"
    "       ternd --version\n";

struct Options {
    std::optional<std::string> config_path;
    bool check = false;
    bool print_default = false;
};

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

void print_banner(const tern::server::Server& server) {
    const auto& listeners = server.bound_listeners();
    std::printf("tern %s is listening on:\n", TERN_VERSION);
    for (const auto& l : listeners) std::printf("  %s\n", l.to_url().c_str());
    if (server.generated_secret().empty()) {
        std::printf(
            "Mint credentials for iceServers with: ternctl credential --secret <a secret of "
            "auth.secrets or auth.secrets_file> --user NAME\n");
        std::fflush(stdout);
        return;
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
    std::printf("\nNo auth.secrets configured: generated one for this run only:\n  %s\n",
                server.generated_secret().c_str());
    std::printf("Ready-to-paste iceServers entry (valid 24 h):\n  { \"urls\": [");
    for (std::size_t i = 0; i < urls.size(); ++i) {
        std::printf("%s\"%s\"", i ? ", " : "", urls[i].c_str());
    }
    std::printf("], \"username\": \"%s\", \"credential\": \"%s\" }\n\n", cred.username.c_str(),
                cred.password.c_str());
    std::fflush(stdout);
}

int check_config(const std::optional<std::string>& path) {
    const auto loaded =
        path ? tern::config::load_config_file(*path) : tern::config::load_embedded_default();
    for (const auto& e : loaded.errors) std::cerr << e.to_string() << "\n";
    if (!loaded.config) return 1;
    // The config layer only checks that TLS files exist; here they must also load and match.
    if (loaded.config->tls) {
        const auto tls = tern::server::make_tls_context(*loaded.config->tls,
                                                        path.value_or("<embedded default>"));
        if (!tls.context) {
            std::cerr << tls.error << "\n";  // "<file>:<line>: <key>: <message>"
            return 1;
        }
    }
    std::cout << path.value_or("<embedded default>") << ": configuration OK\n";
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
    if (opt.check) return check_config(opt.config_path);

    auto loaded = opt.config_path ? tern::config::load_config_file(*opt.config_path)
                                  : tern::config::load_embedded_default();
    if (!loaded.config) {
        for (const auto& e : loaded.errors) std::cerr << "ternd: " << e.to_string() << "\n";
        return 1;
    }
    std::signal(SIGPIPE, SIG_IGN);
    tern::server::configure_logging(loaded.config->log);
    tern::server::Server server(std::move(*loaded.config), opt.config_path.value_or(""));
    if (!server.open()) return 1;
    print_banner(server);
    return server.run();
}
