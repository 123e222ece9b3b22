// The coturn options tern has no key for, grouped by the reason.
#include "coturn_options.hpp"

#include <array>
#include <initializer_list>
#include <utility>

namespace tern::ctl {

namespace {

struct Group {
    std::string_view reason;
    std::initializer_list<std::string_view> options;
};

const std::array<Group, 21> groups = {{
    {"tern logs to standard error (the journal under systemd); log.level and log.format are "
     "its settings",
     {"log-file", "syslog", "simple-log", "no-stdout-log", "new-log-timestamp",
      "new-log-timestamp-format", "log-binding", "syslog-facility"}},
    {"tern has no telnet CLI; ternctl and the metrics endpoint take its place",
     {"no-cli", "cli-ip", "cli-port", "cli-password", "cli-max-output-sessions"}},
    {"tern has no web admin interface",
     {"web-admin", "web-admin-ip", "web-admin-port", "web-admin-listen-on-workers",
      "acme-redirect"}},
    {"tern reads credentials from its configuration only (auth.users, auth.secrets, "
     "auth.secrets_file); export the accounts you need into them",
     {"userdb", "psql-userdb", "mysql-userdb", "mongo-userdb", "redis-userdb", "redis-statsdb",
      "secret-key-file", "sql-userdb", "mysql-ssl-ca"}},
    {"tern has no OAuth (RFC 7635) authentication", {"oauth"}},
    {"tern binds addresses, not devices; use listen and relay.addresses",
     {"listening-device", "relay-device"}},
    {"tern does not implement NAT behaviour discovery (RFC 5780) or its alternate ports",
     {"alt-listening-port", "alt-tls-listening-port", "rfc5780", "no-rfc5780",
      "response-origin-only-with-rfc5780"}},
    {"tern answers STUN Binding (RFC 8489, without credentials) and TURN on every listener; "
     "neither can be turned off",
     {"stun-only", "no-stun", "secure-stun", "no-stun-backward-compatibility"}},
    {"tern does not implement MOBILITY-TICKET (RFC 8016)", {"mobility"}},
    {"tern does not redirect clients (ALTERNATE-SERVER)",
     {"alternate-server", "tls-alternate-server", "aux-server", "udp-self-balance"}},
    {"tern's TLS versions (1.2 and 1.3) and ciphers are built in; the certificate chain "
     "goes in tls.certificate",
     {"cipher-list", "CA-file", "dh-file", "dh566", "dh1066", "dh2066", "ec-curve-name", "ca-file",
      "no-tlsv1", "no-tlsv1_1", "no-tlsv1_2", "pkey-pwd"}},
    {"tern has no DTLS listener; nothing to turn off", {"no-dtls"}},
    {"tern relays UDP only (no RFC 6062 TCP relay); nothing to turn off", {"no-tcp-relay"}},
    {"tern relays UDP only and cannot turn that off", {"no-udp-relay"}},
    {"systemd runs ternd as the user tern; there is no PID file",
     {"pidfile", "proc-user", "proc-group"}},
    {"tern runs one worker per core by default (threads: auto); set threads by hand if needed",
     {"relay-threads", "general-threads"}},
    {"a balancer's PROXY protocol is accepted from proxy_protocol.trusted sources on any "
     "tcp:// or tls:// listener; add the balancer's addresses there",
     {"tcp-proxy-port"}},
    {"tern checks no HTTP Origin", {"check-origin-consistency"}},
    {"tern's permission and channel lifetimes are RFC 8656's (300 s and 600 s)",
     {"permission-lifetime", "channel-lifetime", "max-allocate-timeout"}},
    {"tern always follows RFC 8656 for the relay's address family (REQUESTED-ADDRESS-FAMILY, "
     "ADDITIONAL-ADDRESS-FAMILY)",
     {"keep-address-family"}},
    {"no tern setting; tern handles it itself",
     {"fingerprint", "server-name", "no-auth-pings", "no-dynamic-ip-list", "no-dynamic-realms",
      "prod", "no-software-attribute-check", "no-hostname-resolution", "sock-buf-size",
      "lt-cred-mech-only", "ne", "server-relay", "verbose-level", "daemon",
      "no-prometheus-username-labels", "prometheus-username-labels"}},
}};

}  // namespace

std::optional<std::string_view> unmapped_reason(std::string_view option) {
    for (const auto& group : groups) {
        for (const auto name : group.options) {
            if (name == option) return group.reason;
        }
    }
    return std::nullopt;
}

}  // namespace tern::ctl
