// import-coturn: turnserver.conf options read in one pass, then written out as tern keys.
#include "tern/ctl/coturn_import.hpp"

#include <algorithm>
#include <charconv>
#include <climits>
#include <optional>
#include <set>

#include "coturn_importer.hpp"
#include "coturn_options.hpp"
#include "tern/config/parse.hpp"

namespace tern::ctl {

namespace {

// coturn's syntax: "name", "name=value" or "name value", a # line a comment. A leading "--"
// (the command-line spelling) is accepted too.
std::vector<Option> options_of(std::string_view text) {
    std::vector<Option> options;
    for (int number = 1; !text.empty(); ++number) {
        const auto end = text.find('\n');
        const std::string_view line = config::trim_blanks(text.substr(0, end));
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
        if (line.empty() || line.front() == '#') continue;
        const auto split = line.find_first_of("= \t");
        Option o{number, std::string(line.substr(0, split)), {}, split != std::string_view::npos};
        if (o.has_value) o.value = std::string(config::trim_blanks(line.substr(split + 1)));
        // coturn's own example quotes some values (allocation-default-address-family="ipv4").
        if (o.value.size() >= 2 && o.value.front() == '"' && o.value.back() == '"') {
            o.value = o.value.substr(1, o.value.size() - 2);
        }
        if (o.name.starts_with("--")) o.name.erase(0, 2);
        options.push_back(std::move(o));
    }
    return options;
}

// coturn's booleans: no value means true.
std::optional<bool> flag_of(const Option& o) {
    if (!o.has_value) return true;
    for (const std::string_view yes : {"1", "on", "yes", "true", "t"}) {
        if (o.value == yes) return true;
    }
    for (const std::string_view no : {"0", "off", "no", "false", "f"}) {
        if (o.value == no) return false;
    }
    return std::nullopt;
}

std::optional<std::uint64_t> number_of(const std::string& text) {
    std::uint64_t n = 0;
    const auto* end = text.data() + text.size();
    const auto [at, error] = std::from_chars(text.data(), end, n);
    if (text.empty() || error != std::errc() || at != end) return std::nullopt;
    return n;
}

}  // namespace

// A YAML double-quoted scalar: safe for any byte of a secret or a path.
std::string quoted(std::string_view text) {
    std::string out = "\"";
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (byte < 0x20 || byte == 0x7F) {
            constexpr std::string_view hex = "0123456789abcdef";
            out += "\\x";
            out += hex[byte >> 4];
            out += hex[byte & 0xF];
        } else {
            out += c;
        }
    }
    return out + "\"";
}

std::string host_of(const TransportAddress& a) {
    if (a.family == AddressFamily::ipv4) return a.ip_string();
    // Appended piecewise: g++ 12 raises a false -Wrestrict on chained std::string operator+.
    std::string out = "[";
    out += a.ip_string();
    out += ']';
    return out;
}

bool Importer::on(const Option& o) {
    const auto flag = flag_of(o);
    if (!flag) note(o, "not a boolean: '" + o.value + "'; ignored");
    return flag.value_or(false);
}

std::optional<std::uint64_t> Importer::number(const Option& o, std::uint64_t max) {
    const auto n = number_of(o.value);
    if (!n || *n > max) {
        note(o, "expected a number up to " + std::to_string(max) + ", got '" + o.value +
                    "'; not carried over");
        return std::nullopt;
    }
    return n;
}

std::optional<TransportAddress> Importer::ip(const Option& o, std::string_view text) {
    const auto parsed = config::parse_ip_address(text);
    if (!parsed.value) note(o, parsed.error + "; not carried over");
    return parsed.value ? std::optional(parsed.value->unmapped()) : std::nullopt;
}

void Importer::take(const Option& o) {
    const std::string& n = o.name;
    if (n == "listening-port" || n == "tls-listening-port") {
        if (const auto p = number(o, 65535); p && *p > 0) {
            (n == "listening-port" ? port_ : tls_port_) = static_cast<std::uint16_t>(*p);
        }
    } else if (n == "listening-ip" || n == "relay-ip") {
        auto& list = n == "listening-ip" ? listening_ips_ : relay_ips_;
        const auto a = ip(o, o.value);
        if (a && std::find(list.begin(), list.end(), *a) == list.end()) list.push_back(*a);
    } else if (n == "external-ip") {
        take_external_ip(o);
    } else if (n == "min-port" || n == "max-port") {
        (n == "min-port" ? min_port_ : max_port_) = numbered(o, 65535);
    } else if (n == "realm") {
        realm_ = o.value;
    } else if (n == "use-auth-secret") {
        if (on(o)) use_auth_secret_ = o;
    } else if (n == "static-auth-secret") {
        if (o.value.empty()) {
            note(o, "an empty secret; not carried over");
        } else {
            secrets_.emplace_back(o, o.value);
        }
    } else if (n == "user") {
        take_user(o);
    } else if (n == "lt-cred-mech" || n == "no-loopback-peers" || n == "no-multicast-peers") {
        // Long-term credentials are tern's only kind, and loopback and multicast peers are
        // refused by default: nothing to write.
    } else if (n == "rest-api-separator") {
        if (o.value != ":") {
            note(o, "tern's REST usernames are expiry:user; backends must join with ':'");
        }
    } else if (n == "no-auth") {
        if (on(o)) no_auth_ = o;
    } else if (n == "cert") {
        cert_ = o;
    } else if (n == "pkey") {
        pkey_ = o;
    } else if (n == "denied-peer-ip" || n == "allowed-peer-ip") {
        take_peer_range(o, n == "denied-peer-ip" ? denied_ : allowed_);
    } else if (n == "no-udp" || n == "no-tcp" || n == "no-tls") {
        (n == "no-udp" ? no_udp_ : n == "no-tcp" ? no_tcp_ : no_tls_) = on(o);
    } else if (n == "allow-loopback-peers") {
        allow_loopback_ = on(o);
    } else if (n == "user-quota" || n == "total-quota") {
        (n == "user-quota" ? user_quota_ : total_quota_) = numbered(o, 0xFFFFFFFF);
    } else if (n == "max-bps") {
        max_bps_ = numbered(o, 0xFFFFFFFF);
    } else if (n == "bps-capacity") {
        note(o,
             "tern has no server-wide bandwidth cap; limits.user_bandwidth caps each user "
             "and limits.allocation_bandwidth each allocation");
    } else if (n == "max-allocate-lifetime") {
        lifetime_ = numbered(o, 0xFFFFFFFF);
    } else if (n == "stale-nonce") {
        // Without a value coturn takes 600 s, which is tern's default too.
        stale_nonce_ = o.has_value ? numbered(o, 0xFFFFFFFF) : Numbered{o.line, 600};
    } else if (n == "prometheus") {
        if (on(o)) prometheus_ = o;
    } else if (n == "prometheus-port") {
        if (const auto p = number(o, 65535); p && *p > 0) {
            prometheus_port_ = static_cast<std::uint16_t>(*p);
        }
    } else if (n == "prometheus-address") {
        prometheus_address_ = ip(o, o.value);
    } else if (n == "verbose" || n == "v" || n == "Verbose" || n == "V") {
        if (!verbose_ || n == "Verbose" || n == "V") verbose_ = o;
    } else if (n == "no-software-attribute") {
        no_software_ = on(o);
    } else if (n == "allocation-default-address-family") {
        if (o.value == "ipv4" || o.value == "keep") {
            default_family_ = o.value == "ipv4" ? "ipv4" : "client";
        } else {
            note(o,
                 "'" + o.value +
                     "': tern relays an Allocate without "
                     "REQUESTED-ADDRESS-FAMILY over IPv4 (ipv4) or the client's family (client)");
        }
    } else if (const auto reason = unmapped_reason(n)) {
        note(o, std::string(*reason));
    } else {
        note(o, "not an option import-coturn knows; check by hand what it did");
    }
}

// user=name:password, or user=name:0x<32 hex digits> (the MD5 key coturn's turnadmin -k makes).
void Importer::take_user(const Option& o) {
    const auto colon = o.value.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == o.value.size()) {
        note(o, "expected name:password or name:0xKEY; not carried over");
        return;
    }
    const std::string name = o.value.substr(0, colon);
    const std::string secret = o.value.substr(colon + 1);
    if (!user_names_.insert(name).second) {
        note(o, "user '" + name + "' is given twice; the first one is kept");
        return;
    }
    const bool hex_key = secret.size() == 34 && secret.starts_with("0x") &&
                         secret.find_first_not_of("0123456789abcdefABCDEF", 2) == std::string::npos;
    if (secret.starts_with("0x") && !hex_key) {
        note(o, "user '" + name + "': a 0x key must be 32 hex digits (MD5); not carried over");
        return;
    }
    keyed_users_ = keyed_users_ || hex_key;
    user_lines_.push_back(
        "    " + quoted(name) + ": { " +
        (hex_key ? "key: " + quoted(secret.substr(2)) : "password: " + quoted(secret)) + " }\n");
}

// external-ip=PUBLIC or external-ip=PUBLIC/PRIVATE.
void Importer::take_external_ip(const Option& o) {
    const auto slash = o.value.find('/');
    const auto external = ip(o, o.value.substr(0, slash));
    if (!external) return;
    if (slash == std::string::npos) {
        external_alone_.emplace_back(o, *external);
        return;
    }
    const auto internal = ip(o, o.value.substr(slash + 1));
    if (!internal) return;
    if (internal->family != external->family) {
        note(o, "public and private addresses differ in family; not carried over");
        return;
    }
    external_.emplace_back(*internal, *external);
}

void Importer::take_peer_range(const Option& o, std::vector<PeerRange>& out) {
    const auto range = parse_address_range(o.value);
    if (!range) {
        note(o, "'" + o.value +
                    "' is not an address or an address range first-last of one "
                    "family; not carried over");
        return;
    }
    out.push_back({o.line, o.value, *range});
}

std::string ImportNote::to_string(std::string_view file) const {
    std::string out(file);
    if (line != 0) {
        out += ':';
        out += std::to_string(line);
    }
    out += ": ";
    out += option;
    out += ": ";
    out += reason;
    return out;
}

CoturnImport Importer::run(std::string_view text) {
    for (const auto& o : options_of(text)) take(o);
    CoturnImport result;
    result.yaml = yaml();
    result.notes = std::move(notes_);
    // In file order; notes about the file at large (line 0) last.
    std::stable_sort(result.notes.begin(), result.notes.end(), [](const auto& a, const auto& b) {
        return (a.line == 0 ? INT_MAX : a.line) < (b.line == 0 ? INT_MAX : b.line);
    });
    return result;
}

CoturnImport import_coturn(std::string_view turnserver_conf) {
    return Importer().run(turnserver_conf);
}

}  // namespace tern::ctl
