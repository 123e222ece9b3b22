#include "tern/server/main/start_summary.hpp"

#include <array>
#include <utility>

#include "tern/server/io/certificate_info.hpp"

namespace tern::server {

namespace {

using protocol::AddressFamily;
using protocol::TransportAddress;

bool is_unspecified(const TransportAddress& a) {
    for (std::size_t i = 0; i < a.address_size(); ++i) {
        if (a.bytes[i] != 0) return false;
    }
    return true;
}

// The relay address of `family` (the first of relay.addresses; nullopt = the one each client
// reached) and what clients are told, as the allocation manager decides them.
struct FamilyRelay {
    std::optional<TransportAddress> bound;
    std::optional<TransportAddress> advertised;  // nullopt = the bound one
};

FamilyRelay relay_of(const config::Relay& relay, AddressFamily family) {
    FamilyRelay r;
    for (const auto& a : relay.addresses) {
        if (a.family == family) {
            r.bound = a;
            break;
        }
    }
    for (const auto& e : relay.external_addresses) {
        if (e.internal.family != family) continue;
        const bool any = is_unspecified(e.internal);
        if (any || (r.bound && r.bound->bytes == e.internal.bytes)) {
            r.advertised = e.external;
            break;
        }
    }
    return r;
}

const char* family_name(AddressFamily f) {
    return f == AddressFamily::ipv4 ? "ipv4" : "ipv6";
}

std::string counted(std::size_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string certificate_text(const std::string& key, const std::string& path) {
    const auto info = read_certificate_info(path);
    if (!info.error.empty()) return "certificate " + key + " " + info.error;
    return "certificate " + key + " " + info.subject + " expires " + info.not_after;
}

std::string cidrs_text(const std::vector<config::Cidr>& cidrs) {
    std::string text;
    for (const auto& c : cidrs) {
        if (!text.empty()) text += ' ';
        text += c.to_string();
    }
    return text.empty() ? "none" : text;
}

}  // namespace

std::vector<std::string> relay_address_lines(const config::Config& config) {
    const auto& relay = config.relay;
    const std::string ports =
        std::to_string(relay.ports.first) + "-" + std::to_string(relay.ports.last);
    std::vector<std::string> lines;
    for (const auto family : {AddressFamily::ipv4, AddressFamily::ipv6}) {
        const auto r = relay_of(relay, family);
        const std::string bound =
            r.bound ? r.bound->ip_string() : std::string("the address each client reached");
        const std::string advertised =
            r.advertised ? r.advertised->ip_string() : std::string("the same");
        std::string line = std::string("relay ") + family_name(family) + ": bound on ";
        line.append(bound).append(", advertised as ").append(advertised);
        lines.push_back(line.append(", ports ").append(ports));
    }
    return lines;
}

std::string start_summary(const config::Config& config, bool generated_secret) {
    std::string text = "start: realm " + config.realm + ", ";
    text += generated_secret ? std::string("a secret generated for this run")
                             : counted(config.auth.secrets.size(), "secret", "secrets");
    text += ", " + counted(config.auth.users.size(), "static user", "static users");
    if (config.tls) {
        const auto& tls = *config.tls;
        // The default pair is tls.certificates[0] itself when tls.certificate is not given.
        const bool own_default =
            tls.certificates.empty() || tls.certificates.front().certificate != tls.certificate;
        if (own_default) text += ", " + certificate_text(tls.key, tls.certificate);
        for (std::size_t i = 0; i < tls.certificates.size(); ++i) {
            text += ", " + certificate_text("tls.certificates[" + std::to_string(i) + "]",
                                            tls.certificates[i].certificate);
        }
    }
    for (const auto family : {AddressFamily::ipv4, AddressFamily::ipv6}) {
        const auto r = relay_of(config.relay, family);
        text += std::string(", relay ") + family_name(family) + " " +
                (r.bound ? r.bound->ip_string() : std::string("client's")) + " -> " +
                (r.advertised ? r.advertised->ip_string() : std::string("same"));
    }
    text += ", allow_peers " + cidrs_text(config.relay.allow_peers);
    text += ", deny_peers " + cidrs_text(config.relay.deny_peers);
    return text;
}

}  // namespace tern::server
