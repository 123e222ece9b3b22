// ternctl: the operator's command line. `credential` mints a TURN REST API credential from a
// shared secret, the same computation ternd validates; `status` and `drain` talk to ternd's
// metrics endpoint.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tern/ctl/admin_commands.hpp"
#include "tern/ctl/coturn_import.hpp"
#include "tern/ctl/credential_command.hpp"
#include "tern/ctl/endpoint_client.hpp"
#include "tern/ctl/status_report.hpp"

namespace {

constexpr std::string_view usage_text =
    "usage: ternctl credential (--secret SECRET | --secrets-file FILE | --config FILE)\n"
    "                          --user NAME [--ttl SECONDS] [--now UNIX] [--uri URI]... [--json]\n"
    "                          [--force]\n"
    "       ternctl status [--endpoint HOST:PORT | --config FILE]\n"
    "       ternctl drain [--endpoint HOST:PORT | --config FILE]\n"
    "       ternctl sessions [--user NAME] [--json] [--config FILE] [--endpoint HOST:PORT]\n"
    "       ternctl kill (ID | --user NAME) [--config FILE] [--endpoint HOST:PORT]\n"
    "       ternctl revoke NAME [--until UNIX | --for SECONDS] [--config FILE] [...]\n"
    "       ternctl unrevoke NAME [--config FILE] [--endpoint HOST:PORT]\n"
    "       ternctl import-coturn TURNSERVER_CONF\n"
    "       ternctl --version\n"
    "\n"
    "credential  print a TURN REST API username and password valid for --ttl seconds\n"
    "            (default 86400, at most 604800 without --force). The secret is the first\n"
    "            (newest) of --secrets-file or of ternd's --config, read as ternd reads them;\n"
    "            --secret - reads it from standard input by the secrets file's rules (blanks\n"
    "            and a CR trimmed). A secret needs at least 16 bytes.\n"
    "            Each --uri (turn:host:3478?transport=udp, turns:host:5349, stun:host) also\n"
    "            prints a ready RTCIceServer object for a browser's iceServers list.\n"
    "status      summarise a running ternd from its metrics endpoint (metrics.listen;\n"
    "            default 127.0.0.1:9641): state, allocations, traffic, failures.\n"
    "drain       ask ternd to drain: new allocations are refused, /healthz answers 503 and\n"
    "            live allocations finish within limits.shutdown_grace, then ternd exits.\n"
    "sessions    list live allocations (ternd's admin API: metrics.listen and the token in\n"
    "            admin.token_file, both read from --config, default /etc/tern/tern.yaml).\n"
    "kill        end one allocation now (its ID from sessions), or every one of --user.\n"
    "revoke      refuse NAME's credentials (REST or static) and end NAME's allocations, for a\n"
    "            week or until --until / for --for; it survives SIGHUP and restarts.\n"
    "unrevoke    lift a revocation.\n"
    "import-coturn  print a tern.yaml for what a coturn turnserver.conf sets; each option\n"
    "            that cannot be carried over is named on standard error with the reason.\n";

constexpr std::string_view default_endpoint = "127.0.0.1:9641";

int usage(int rc) {
    (rc == 0 ? std::cout : std::cerr) << usage_text;
    return rc;
}

// --endpoint HOST:PORT, or --config FILE for its metrics.listen: the options of status and
// drain.
std::optional<tern::ctl::Endpoint> endpoint_option(const std::vector<std::string>& args) {
    std::string text(default_endpoint);
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--endpoint" && i + 1 < args.size()) {
            text = args[++i];
        } else if (args[i] == "--config" && i + 1 < args.size()) {
            const auto address = tern::ctl::metrics_endpoint_of(args[++i], std::cerr);
            if (!address) return std::nullopt;
            text = *address;
        } else {
            std::cerr << "ternctl: unknown option " << args[i] << "\n";
            return std::nullopt;
        }
    }
    auto endpoint = tern::ctl::parse_endpoint(text);
    if (!endpoint) std::cerr << "ternctl: --endpoint needs HOST:PORT, got " << text << "\n";
    return endpoint;
}

void unreachable(const tern::ctl::Endpoint& e, const std::string& error) {
    std::cerr << "ternctl: cannot reach ternd's metrics endpoint at " << e.to_string() << ": "
              << error << "\n(is ternd running with metrics.listen set to this address?)\n";
}

int status(const std::vector<std::string>& args) {
    const auto endpoint = endpoint_option(args);
    if (!endpoint) return usage(2);
    const auto metrics = tern::ctl::http_request(*endpoint, "GET", "/metrics");
    if (metrics.status != 200) {
        unreachable(*endpoint,
                    metrics.status != 0 ? "HTTP " + std::to_string(metrics.status) : metrics.error);
        return 1;
    }
    const auto health = tern::ctl::http_request(*endpoint, "GET", "/healthz");
    std::cout << tern::ctl::format_status(tern::ctl::parse_prometheus(metrics.body),
                                          endpoint->to_string(), health.status == 200);
    return 0;
}

int drain(const std::vector<std::string>& args) {
    const auto endpoint = endpoint_option(args);
    if (!endpoint) return usage(2);
    const auto r = tern::ctl::http_request(*endpoint, "POST", "/drain");
    if (r.status == 0) {
        unreachable(*endpoint, r.error);
        return 1;
    }
    std::cout << "ternd at " << endpoint->to_string() << ": " << r.body;
    return r.status == 202 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty()) return usage(2);
    if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") return usage(0);
    if (args[0] == "--version") {
        std::cout << "ternctl " << TERN_VERSION << "\n";
        return 0;
    }
    if (args[0] == "credential") {
        return tern::ctl::credential_command({args.begin() + 1, args.end()}, std::cin, std::cout,
                                             std::cerr);
    }
    if (args[0] == "status") return status({args.begin() + 1, args.end()});
    if (args[0] == "drain") return drain({args.begin() + 1, args.end()});
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    if (args[0] == "sessions") return tern::ctl::sessions_command(rest, std::cout, std::cerr);
    if (args[0] == "kill") return tern::ctl::kill_command(rest, std::cout, std::cerr);
    if (args[0] == "revoke") return tern::ctl::revoke_command(rest, std::cout, std::cerr);
    if (args[0] == "unrevoke") return tern::ctl::unrevoke_command(rest, std::cout, std::cerr);
    if (args[0] == "import-coturn")
        return tern::ctl::import_coturn_command({args.begin() + 1, args.end()}, std::cout,
                                                std::cerr);
    std::cerr << "ternctl: unknown command " << args[0] << "\n";
    return usage(2);
}
