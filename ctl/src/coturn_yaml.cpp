// import-coturn: what was gathered from turnserver.conf, written as tern.yaml.
#include <algorithm>

#include "coturn_importer.hpp"

namespace tern::ctl {

namespace {

// tern's defaults and ranges the converted values are checked against (config/src/*_schema.cpp).
constexpr std::uint64_t min_lifetime = 600, max_lifetime = 86400;
constexpr std::uint64_t min_nonce_lifetime = 30, max_nonce_lifetime = 3600;
constexpr std::uint16_t default_metrics_port = 9641;  // coturn's prometheus-port default too
constexpr std::size_t recommended_secret_bytes = 16;

std::uint64_t clamped(std::uint64_t n, std::uint64_t low, std::uint64_t high) {
    return std::clamp(n, low, high);
}

std::string list_item(std::string_view text) {
    return "    - " + quoted(text) + "\n";
}

}  // namespace

std::string Importer::yaml() {
    std::string y =
        "# tern.yaml converted from a coturn turnserver.conf by ternctl import-coturn.\n"
        "# Options not carried over were named on standard error, with the reason; check this\n"
        "# file with ternd --check-config. Unlike coturn, tern refuses peers in private and\n"
        "# other special-purpose ranges unless relay.allow_peers lists them\n"
        "# (docs/migrating-from-coturn.md).\n";
    if (realm_) y += "realm: " + quoted(*realm_) + "\n";
    write_listen(y);
    write_auth(y);
    write_relay(y);
    write_limits(y);
    if (verbose_) {
        const bool very = verbose_->name == "Verbose" || verbose_->name == "V";
        y += std::string("log: { level: ") + (very ? "trace" : "debug") + " }\n";
    }
    if (prometheus_) {
        const std::string host = prometheus_address_ ? host_of(*prometheus_address_) : "127.0.0.1";
        y += "metrics: { listen: " +
             quoted(host + ":" + std::to_string(prometheus_port_.value_or(default_metrics_port))) +
             " }\n";
        if (!prometheus_address_) {
            note(*prometheus_,
                 "carried over on 127.0.0.1 only: coturn's exporter listens on every address, "
                 "but tern's endpoint also takes POST /drain; set metrics.listen to a management "
                 "address to scrape it from elsewhere");
        }
    }
    if (no_software_) y += "software: \"\"\n";
    return y;
}

void Importer::write_listen(std::string& y) {
    const bool tls = !no_tls_ && cert_ && pkey_;
    if (!no_tls_ && !tls) {
        const int line = cert_ ? cert_->line : pkey_ ? pkey_->line : 0;
        note(line, "tls-listening-port",
             "no TLS listener carried over: it needs both cert= and pkey= (coturn's default "
             "file names are not assumed); set tls.certificate and tls.private_key, then add "
             "tls:// listeners");
    }
    if (tls) {
        y += "tls:\n  certificate: " + quoted(cert_->value) +
             "\n  private_key: " + quoted(pkey_->value) + "\n";
        for (const auto& file : {*cert_, *pkey_}) {
            if (!file.value.starts_with("/")) {
                note(file,
                     "a relative path: tern resolves it against the directory of tern.yaml, "
                     "coturn against its own search path; write it absolute");
            }
        }
    }
    // Without listening-ip coturn listens on every IPv4 and IPv6 address.
    std::vector<TransportAddress> ips = listening_ips_;
    if (ips.empty()) {
        ips.push_back(*TransportAddress::parse_ip("0.0.0.0"));
        ips.push_back(*TransportAddress::parse_ip("::"));
    }
    std::vector<std::string> urls;
    for (const auto& ip : ips) {
        const std::string host = host_of(ip);
        if (!no_udp_) urls.push_back("udp://" + host + ":" + std::to_string(port_));
        if (!no_tcp_) urls.push_back("tcp://" + host + ":" + std::to_string(port_));
        if (tls) urls.push_back("tls://" + host + ":" + std::to_string(tls_port_));
    }
    if (urls.empty()) {
        note(0, "listen",
             "no-udp, no-tcp and no-tls leave no listener; tern's default listeners apply");
        return;
    }
    y += "listen:\n";
    for (const auto& url : urls) y += "  - " + quoted(url) + "\n";
}

void Importer::write_auth(std::string& y) {
    std::string a;
    if (use_auth_secret_) {
        if (secrets_.empty()) {
            note(*use_auth_secret_,
                 "no static-auth-secret given (coturn would look in its database): add the "
                 "secrets to auth.secrets_file");
        } else {
            a += "  secrets:\n";
        }
    }
    for (const auto& [option, secret] : secrets_) {
        if (!use_auth_secret_) {
            note(option,
                 "not carried over: without use-auth-secret coturn does not accept REST "
                 "credentials, and tern would");
            continue;
        }
        a += list_item(secret);
        if (secret.size() < recommended_secret_bytes) {
            note(option,
                 "carried over, but shorter than 16 bytes: ternd warns, and ternctl "
                 "credential refuses it without --force; rotate to a longer one");
        }
    }
    if (!user_lines_.empty()) {
        a += "  users:\n";
        for (const auto& line : user_lines_) a += line;
        if (keyed_users_ && !realm_) {
            note(0, "user",
                 "0x keys are MD5(user:realm:password) for coturn's realm, and no realm= was "
                 "given: set realm: to the realm coturn used, or the keys will not match");
        }
    }
    if (stale_nonce_) {
        const auto n = clamped(stale_nonce_->value, min_nonce_lifetime, max_nonce_lifetime);
        if (n != stale_nonce_->value) {
            note(stale_nonce_->line, "stale-nonce",
                 "tern keeps nonces fresh for 30 to 3600 s; " + std::to_string(n) + " is used");
        }
        a += "  nonce_lifetime: " + std::to_string(n) + "\n";
    }
    if (no_auth_) {
        note(*no_auth_,
             "not carried over: tern never relays without credentials (with none configured it "
             "makes a random REST secret at each start)");
    }
    if (a.find("secrets:") == std::string::npos && user_lines_.empty() && !no_auth_) {
        note(0, "auth",
             "no credentials carried over: ternd makes a random REST secret at each start; add "
             "auth.secrets_file or auth.users");
    }
    if (!a.empty()) y += "auth:\n" + a;
}

void Importer::write_relay(std::string& y) {
    std::string r;
    if (!relay_ips_.empty()) {
        r += "  addresses:\n";
        for (const auto& a : relay_ips_) r += list_item(a.ip_string());
        for (const auto family : {AddressFamily::ipv4, AddressFamily::ipv6}) {
            const auto count = std::count_if(relay_ips_.begin(), relay_ips_.end(),
                                             [&](const auto& a) { return a.family == family; });
            if (count > 1) {
                note(0, "relay-ip",
                     "tern relays from the first address of each family in relay.addresses; "
                     "coturn spreads allocations over all of them");
            }
        }
    }
    // external-ip=PUBLIC alone means "every relay address is seen as PUBLIC"; tern needs the
    // private address, found when there is exactly one candidate of the family.
    for (const auto& [option, external] : external_alone_) {
        std::vector<TransportAddress> candidates;
        for (const auto* list : {&relay_ips_, &listening_ips_}) {
            for (const auto& a : *list) {
                if (a.family == external.family && a.ip_string() != "0.0.0.0" &&
                    a.ip_string() != "::") {
                    candidates.push_back(a);
                }
            }
            if (!candidates.empty()) break;
        }
        if (candidates.size() == 1) {
            external_.emplace_back(candidates.front(), external);
        } else {
            note(option,
                 "tern maps each private relay address to its public one and cannot tell "
                 "which is meant here: write external-ip=PUBLIC/PRIVATE");
        }
    }
    std::set<std::string> internals;
    std::string mappings;
    for (const auto& [internal, external] : external_) {
        if (!internals.insert(internal.ip_string()).second) continue;
        mappings +=
            "    " + quoted(internal.ip_string()) + ": " + quoted(external.ip_string()) + "\n";
    }
    if (!mappings.empty()) r += "  external_addresses:\n" + mappings;
    if (min_port_ || max_port_) {
        const std::string ports = std::to_string(min_port_ ? min_port_->value : 49152) + "-" +
                                  std::to_string(max_port_ ? max_port_->value : 65535);
        const auto range = config::parse_relay_port_range(ports);
        if (range.value) {
            r += "  ports: " + ports + "\n";
        } else {
            note(min_port_ ? min_port_->line : max_port_->line, "min-port",
                 range.error + "; tern's default 49152-65535 applies");
        }
    }
    // coturn accepts ChannelBind numbers from RFC 5766's range, which clients written against it
    // (its own turnutils_uclient included) pick from; RFC 8656 narrowed it.
    r += "  channel_numbers: rfc5766\n";
    y += "relay:\n" + r;
    write_peers(y);
}

void Importer::write_peers(std::string& y) {
    std::vector<AddressRange> allowed;
    for (const auto& p : allowed_) allowed.push_back(p.range);
    std::string allow, deny;
    for (const auto& p : allowed_) {
        for (const auto& c : cidrs_of(p.range)) allow += list_item(c.to_string());
    }
    if (allow_loopback_) allow += list_item("127.0.0.0/8") + list_item("::1/128");
    for (const auto& p : denied_) {
        // coturn lets an allowed peer through a denied range; tern refuses a peer on both
        // lists, so the allowed part is cut out of the denied range.
        const auto kept = subtract_ranges({p.range}, allowed);
        if (kept.size() != 1 || kept.front().first != p.range.first ||
            kept.front().last != p.range.last) {
            note(p.line, "denied-peer-ip",
                 p.text +
                     ": the allowed-peer-ip ranges inside it are left out of "
                     "relay.deny_peers, since tern refuses a peer in both lists");
        }
        for (const auto& range : kept) {
            for (const auto& c : cidrs_of(range)) deny += list_item(c.to_string());
        }
    }
    if (allow.empty() && deny.empty() && !default_family_) return;
    // Still inside the relay section write_relay opened.
    if (!allow.empty()) y += "  allow_peers:\n" + allow;
    if (!deny.empty()) y += "  deny_peers:\n" + deny;
    if (default_family_) y += "  default_family: " + *default_family_ + "\n";
}

void Importer::write_limits(std::string& y) {
    std::string l;
    const auto quota = [&](const std::optional<Numbered>& n, std::string_view option,
                           std::string_view key, std::string_view fallback) {
        if (!n) return;
        if (n->value == 0) {
            note(n->line, std::string(option),
                 "0 (no quota) has no tern counterpart; tern's default limits." + std::string(key) +
                     " (" + std::string(fallback) + ") applies");
            return;
        }
        l += "  " + std::string(key) + ": " + std::to_string(n->value) + "\n";
    };
    quota(user_quota_, "user-quota", "max_allocations_per_user", "100");
    quota(total_quota_, "total-quota", "max_allocations", "100000");
    // Both count payload bytes per second of one allocation, each direction on its own; 0 is
    // "no cap" in both.
    if (max_bps_) l += "  allocation_bandwidth: " + std::to_string(max_bps_->value) + "\n";
    if (lifetime_) {
        const auto n = clamped(lifetime_->value, min_lifetime, max_lifetime);
        if (n != lifetime_->value) {
            note(lifetime_->line, "max-allocate-lifetime",
                 "tern grants at most 600 to 86400 s; " + std::to_string(n) + " is used");
        }
        l += "  max_lifetime: " + std::to_string(n) + "\n";
    }
    if (!l.empty()) y += "limits:\n" + l;
}

}  // namespace tern::ctl
