#include "tern/ctl/admin_commands.hpp"

#include <fmt/format.h>

#include <cctype>
#include <chrono>
#include <optional>
#include <ostream>

#include "tern/config/config.hpp"
#include "tern/ctl/endpoint_client.hpp"

namespace tern::ctl {

namespace {

struct Options {
    std::string config_path{default_config_path};
    std::optional<std::string> endpoint;  // overrides metrics.listen
    bool json = false;
    std::string user;                      // --user
    std::optional<std::int64_t> until;     // --until UNIX
    std::optional<std::int64_t> for_time;  // --for SECONDS
    std::vector<std::string> positional;
};

std::optional<std::int64_t> parse_int(const std::string& s) {
    try {
        std::size_t used = 0;
        const long long v = std::stoll(s, &used);
        if (used != s.size()) return std::nullopt;
        return v;
    } catch (...) {
        return std::nullopt;
    }
}

// Accepts the options every admin command shares; false (after saying why) on a mistake.
bool parse_options(const std::vector<std::string>& args, Options& o, std::ostream& err) {
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        const auto value = [&]() -> std::optional<std::string> {
            if (i + 1 >= args.size()) return std::nullopt;
            return args[++i];
        };
        std::optional<std::string> v;
        if (a == "--json") {
            o.json = true;
        } else if (a == "--config" || a == "--endpoint" || a == "--user" || a == "--until" ||
                   a == "--for") {
            v = value();
            if (!v) {
                err << "ternctl: " << a << " needs a value\n";
                return false;
            }
            if (a == "--config") {
                o.config_path = *v;
            } else if (a == "--endpoint") {
                o.endpoint = *v;
            } else if (a == "--user") {
                o.user = *v;
            } else {
                const auto n = parse_int(*v);
                if (!n || *n <= 0) {
                    err << "ternctl: " << a << " needs a positive number of seconds\n";
                    return false;
                }
                (a == "--until" ? o.until : o.for_time) = *n;
            }
        } else if (!a.empty() && a[0] == '-') {
            err << "ternctl: unknown option " << a << "\n";
            return false;
        } else {
            o.positional.push_back(a);
        }
    }
    return true;
}

struct Target {
    Endpoint endpoint;
    std::string token;
};

// metrics.listen as this host reaches it: a wildcard listener on loopback. Empty when unset.
std::string reachable_metrics_address(const config::Config& c) {
    if (!c.metrics.listen) return {};
    auto address = *c.metrics.listen;
    bool unspecified = true;
    for (std::size_t i = 0; i < address.address_size(); ++i) {
        unspecified = unspecified && address.bytes[i] == 0;
    }
    if (unspecified) {
        address = address.family == protocol::AddressFamily::ipv4
                      ? protocol::TransportAddress::v4({127, 0, 0, 1}, address.port)
                      : *protocol::TransportAddress::parse_ip("::1");
        address.port = c.metrics.listen->port;
    }
    return address.to_string();
}

// metrics.listen and the admin token from ternd's config, by the config library's rules.
std::optional<Target> target_of(const Options& o, std::ostream& err) {
    const auto loaded = config::load_config_file(o.config_path);
    if (!loaded.config) {
        err << "ternctl: cannot use " << o.config_path << ":\n";
        for (const auto& e : loaded.errors) err << "  " << e.to_string() << "\n";
        return std::nullopt;
    }
    const auto& c = *loaded.config;
    if (!c.admin.token_file) {
        err << "ternctl: " << o.config_path
            << " sets no admin.token_file, so ternd's admin API is off\n";
        return std::nullopt;
    }
    const std::string text = o.endpoint ? *o.endpoint : reachable_metrics_address(c);
    const auto endpoint = parse_endpoint(text);
    if (!endpoint) {
        err << "ternctl: no usable endpoint (" << (text.empty() ? "metrics.listen unset" : text)
            << ")\n";
        return std::nullopt;
    }
    return Target{*endpoint, c.admin.token};
}

// %-escapes what a path segment or query value cannot hold as is.
std::string escaped(std::string_view text) {
    std::string out;
    for (const char c : text) {
        const auto b = static_cast<unsigned char>(c);
        if (std::isalnum(b) != 0 || c == '-' || c == '_' || c == '.' || c == '~' || c == ':') {
            out += c;
        } else {
            out += fmt::format("%{:02X}", b);
        }
    }
    return out;
}

// Sends one request; prints ternd's error and returns 1 unless the status is 2xx.
int call(const Options& o, std::string_view method, const std::string& target, std::string body,
         std::ostream& out, std::ostream& err, std::string* answer = nullptr) {
    const auto t = target_of(o, err);
    if (!t) return 2;
    const auto r = http_request(t->endpoint, method, target, HttpExtras{t->token, std::move(body)});
    if (r.status == 0) {
        err << "ternctl: cannot reach ternd's admin API at " << t->endpoint.to_string() << ": "
            << r.error << "\n";
        return 1;
    }
    if (r.status < 200 || r.status >= 300) {
        err << "ternctl: ternd answered " << r.status << ": " << r.body;
        return 1;
    }
    if (answer != nullptr) {
        *answer = r.body;
    } else {
        out << r.body;
    }
    return 0;
}

// The text of "key" in one flat JSON object written by ternd (strings unescaped for \" and \\).
std::string field(std::string_view object, std::string_view key) {
    const std::string quoted = fmt::format("\"{}\": ", key);
    const auto at = object.find(quoted);
    if (at == std::string_view::npos) return {};
    auto i = at + quoted.size();
    std::string value;
    if (i < object.size() && object[i] == '[') {
        const auto end = object.find(']', i);
        std::string list;
        for (auto j = i + 1; j < end && j != std::string_view::npos; ++j) {
            if (object[j] != '"' && object[j] != ' ') list += object[j];
        }
        return list;
    }
    if (i < object.size() && object[i] == '"') {
        for (++i; i < object.size() && object[i] != '"'; ++i) {
            if (object[i] == '\\' && i + 1 < object.size()) ++i;
            value += object[i];
        }
        return value;
    }
    const auto end = object.find_first_of(",}", i);
    return std::string(object.substr(i, end - i));
}

std::string human_bytes(const std::string& digits) {
    double v = 0;
    try {
        v = std::stod(digits.empty() ? "0" : digits);
    } catch (...) {
        return digits;
    }
    constexpr std::string_view units[] = {"B", "KB", "MB", "GB", "TB"};
    std::size_t u = 0;
    while (v >= 1000 && u + 1 < std::size(units)) {
        v /= 1000;
        ++u;
    }
    return u == 0 ? fmt::format("{:.0f} B", v) : fmt::format("{:.1f} {}", v, units[u]);
}

}  // namespace

std::string format_sessions(std::string_view json) {
    std::string out = fmt::format(
        "{:<10} {:<28} {:<24} {:<4} {:<24} {:<20} {:>5} {:>5} {:>10} {:>10}\n", "ID", "USER",
        "CLIENT", "TR", "RELAYED", "STARTED", "PERMS", "CHANS", "TO PEER", "TO CLIENT");
    std::size_t count = 0;
    while (!json.empty()) {
        const auto end = json.find('\n');
        const auto line = json.substr(0, end);
        json = end == std::string_view::npos ? std::string_view{} : json.substr(end + 1);
        if (line.find("\"id\": ") == std::string_view::npos) continue;
        ++count;
        std::string started = field(line, "started");
        if (started.size() > 19) started.resize(19);  // to the second
        out += fmt::format(
            "{:<10} {:<28} {:<24} {:<4} {:<24} {:<20} {:>5} {:>5} {:>10} {:>10}\n",
            field(line, "id"), field(line, "user"), field(line, "client"), field(line, "transport"),
            field(line, "relayed"), started, field(line, "permissions"), field(line, "channels"),
            human_bytes(field(line, "bytes_to_peer")), human_bytes(field(line, "bytes_to_client")));
    }
    out += fmt::format("{} session{}\n", count, count == 1 ? "" : "s");
    return out;
}

int sessions_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Options o;
    if (!parse_options(args, o, err) || !o.positional.empty() || o.until || o.for_time) {
        if (!o.positional.empty()) err << "ternctl: sessions takes options only\n";
        return 2;
    }
    std::string target = "/v1/sessions";
    if (!o.user.empty()) target += "?user=" + escaped(o.user);
    std::string body;
    const int rc = call(o, "GET", target, {}, out, err, &body);
    if (rc != 0) return rc;
    out << (o.json ? body : format_sessions(body));
    return 0;
}

int kill_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Options o;
    if (!parse_options(args, o, err)) return 2;
    if (o.user.empty() == o.positional.empty() || o.positional.size() > 1) {
        err << "ternctl: kill needs one session ID (from ternctl sessions) or --user NAME\n";
        return 2;
    }
    if (!o.user.empty())
        return call(o, "DELETE", "/v1/sessions?user=" + escaped(o.user), {}, out, err);
    return call(o, "DELETE", "/v1/sessions/" + escaped(o.positional[0]), {}, out, err);
}

int revoke_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Options o;
    if (!parse_options(args, o, err)) return 2;
    if (o.positional.size() != 1 || (o.until && o.for_time)) {
        err << "ternctl: revoke needs one USER, and at most one of --until UNIX and --for "
               "SECONDS\n";
        return 2;
    }
    std::string body;
    if (o.for_time) {
        const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
        o.until = now + *o.for_time;
    }
    if (o.until) body = fmt::format("{{\"until\": {}}}", *o.until);
    return call(o, "POST", "/v1/users/" + escaped(o.positional[0]) + "/revoke", body, out, err);
}

int unrevoke_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Options o;
    if (!parse_options(args, o, err)) return 2;
    if (o.positional.size() != 1 || o.until || o.for_time) {
        err << "ternctl: unrevoke needs one USER\n";
        return 2;
    }
    return call(o, "DELETE", "/v1/users/" + escaped(o.positional[0]) + "/revoke", {}, out, err);
}

std::optional<std::string> metrics_endpoint_of(const std::string& config_path, std::ostream& err) {
    const auto loaded = config::load_config_file(config_path);
    if (!loaded.config) {
        err << "ternctl: cannot use " << config_path << ":\n";
        for (const auto& e : loaded.errors) err << "  " << e.to_string() << "\n";
        return std::nullopt;
    }
    std::string text = reachable_metrics_address(*loaded.config);
    if (text.empty()) {
        err << "ternctl: " << config_path << " sets no metrics.listen\n";
        return std::nullopt;
    }
    return text;
}

}  // namespace tern::ctl
