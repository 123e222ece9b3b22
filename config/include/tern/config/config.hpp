// The validated, immutable server configuration: one value built from YAML (or the embedded
// default). Defaults live here and in config.cpp only; the server never invents its own.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tern/protocol/cidr.hpp"
#include "tern/protocol/transport.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::config {

using protocol::Transport;  // to_string(Transport) is protocol's too
using protocol::TransportAddress;

struct Listener {
    Transport transport = Transport::udp;
    TransportAddress address;    // port 0 = let the kernel pick (tests only)
    std::string to_url() const;  // "udp://0.0.0.0:3478", "tls://[::1]:5349"
    friend bool operator==(const Listener&, const Listener&) = default;
};

// One certificate chain and its key, served to the SNI names it lists.
struct CertificatePair {
    std::vector<std::string> names;  // lowercase SNI host names; "*.example.com" covers one label
    std::string certificate;         // PEM chain
    std::string private_key;         // PEM key
    // Where the pair was written, for errors at start and on reload: "tls" or
    // "tls.certificates[1]", and its line (0 when not from a file); the lines of its
    // certificate and private_key keys name the file OpenSSL refuses.
    std::string key;
    int line = 0;
    int certificate_line = 0;
    int private_key_line = 0;
    // Where a pair was written is not part of its value: a comment added above it changes
    // nothing the server serves.
    friend bool operator==(const CertificatePair& a, const CertificatePair& b) {
        return a.names == b.names && a.certificate == b.certificate &&
               a.private_key == b.private_key;
    }
};

struct TlsFiles {
    // The default pair (tls.certificate and tls.private_key, or else the first entry of
    // tls.certificates): served when the SNI is missing or matches no pair's names.
    std::string certificate;  // PEM chain
    std::string private_key;  // PEM key
    std::string key = "tls";  // config key of the default pair, for errors
    int line = 0;
    std::vector<CertificatePair> certificates{};  // tls.certificates, in file order
    int certificate_line = 0;                     // as in CertificatePair
    int private_key_line = 0;
    friend bool operator==(const TlsFiles& a, const TlsFiles& b) {
        return a.certificate == b.certificate && a.private_key == b.private_key &&
               a.certificates == b.certificates;
    }
};

// PROXY protocol header version the shared port writes towards the fallback.
enum class ProxyHeader : std::uint8_t { off, v2 };
const char* to_string(ProxyHeader p) noexcept;  // "off", "v2"

// The shared port (edge.*): with a fallback, every tls:// listener also hands non-TURN TLS
// connections, undecrypted, to the web server behind it.
struct Edge {
    std::optional<TransportAddress> fallback;  // edge.fallback; absent = no shared port
    std::vector<std::string> turn_names;       // edge.turn_names, lowercase
    ProxyHeader fallback_proxy_protocol = ProxyHeader::off;
    std::uint32_t fallback_max_connections = 10000;       // passed-through connections in total
    std::uint32_t fallback_max_connections_per_ip = 100;  // and per source IP (IPv6: prefix)
    std::uint32_t fallback_connect_timeout = 5;           // seconds to reach the fallback
    std::uint32_t fallback_idle_timeout = 300;            // seconds with no byte either way
    friend bool operator==(const Edge&, const Edge&) = default;
};

// PROXY protocol received (proxy_protocol.*): connections from `trusted` sources must start
// with a v1 or v2 header; from anywhere else a header is refused.
struct ProxyProtocol {
    std::vector<protocol::Cidr> trusted;
    friend bool operator==(const ProxyProtocol&, const ProxyProtocol&) = default;
};

struct StaticUser {
    std::string name;
    std::string password;                             // empty when `key` is given
    std::optional<std::array<std::uint8_t, 16>> key;  // MD5(user:realm:password), from hex
    friend bool operator==(const StaticUser&, const StaticUser&) = default;
};

// Address ranges live in protocol/ so the peer filter in allocation/ shares them; parsing them
// from text (with reasons) is parse_cidr in tern/config/parse.hpp.
using protocol::Cidr;

struct PortRange {
    std::uint16_t first = 49152;
    std::uint16_t last = 65535;
    friend bool operator==(const PortRange&, const PortRange&) = default;
};

struct ExternalAddress {
    TransportAddress internal;  // port unused
    TransportAddress external;  // port unused
    friend bool operator==(const ExternalAddress&, const ExternalAddress&) = default;
};

// When an expired TURN REST credential is refused (auth.expiry).
enum class CredentialExpiry : std::uint8_t {
    allocate,  // only a new Allocate is refused after expiry; running allocations live on
    request,   // every authenticated request is refused after expiry
    strict,    // as `request`, and the allocation is torn down at expiry
};
const char* to_string(CredentialExpiry e) noexcept;  // "allocate", "request", "strict"

struct Auth {
    // TURN REST API shared secrets, newest first: those of auth.secrets and of auth.secrets_file
    // together, each once.
    std::vector<std::string> secrets;
    // auth.secrets_file resolved against the config file's directory; empty when not given.
    // Its secrets are already in `secrets`; the loader reads the file, so a reload rereads it.
    std::string secrets_file;
    std::vector<StaticUser> users;
    CredentialExpiry expiry = CredentialExpiry::allocate;
    // Key material for NONCE MACs (at least 16 bytes); absent = a random key at start.
    std::optional<std::string> nonce_secret;
    std::uint32_t nonce_lifetime = 600;  // seconds a nonce stays fresh (30..3600)
    // A REST username whose expiry lies further ahead than this many seconds is refused as if
    // expired, so a leaked long-lived credential cannot outlast a secret's rotation plan.
    std::uint32_t max_credential_lifetime = 259200;  // 3 days
    friend bool operator==(const Auth&, const Auth&) = default;
};

// Relay address family when an Allocate has no REQUESTED-ADDRESS-FAMILY (relay.default_family).
enum class RelayFamily : std::uint8_t {
    ipv4,    // RFC 8656 §7.2: IPv4
    client,  // the family of the address the client reached tern on
};
const char* to_string(RelayFamily f) noexcept;  // "ipv4", "client"

// Which ChannelBind numbers are accepted (relay.channel_numbers).
enum class ChannelNumbers : std::uint8_t {
    rfc8656,  // 0x4000-0x4FFF (RFC 8656 §12)
    rfc5766,  // 0x4000-0x7FFF, as RFC 5766 allowed; older clients pick from the whole range
};
const char* to_string(ChannelNumbers c) noexcept;  // "rfc8656", "rfc5766"

// Whether relayed ChannelData goes through the XDP program (relay.kernel_fast_path).
enum class KernelFastPath : std::uint8_t {
    off,    // nothing loaded: the XDP program would see packets before the host firewall
    auto_,  // load it; on any failure log one line and relay in user space
    on,     // load it; a failure ends the start
};
const char* to_string(KernelFastPath k) noexcept;  // "off", "auto", "on"

struct Relay {
    std::vector<TransportAddress> addresses;  // empty = relay on the address the client reached
    std::vector<ExternalAddress> external_addresses;
    PortRange ports;
    std::vector<Cidr> allow_peers;
    std::vector<Cidr> deny_peers;
    RelayFamily default_family = RelayFamily::ipv4;
    ChannelNumbers channel_numbers = ChannelNumbers::rfc8656;
    KernelFastPath kernel_fast_path = KernelFastPath::off;
    // Empty = the interfaces holding a listener address.
    std::vector<std::string> kernel_fast_path_interfaces;
    std::uint32_t kernel_fast_path_max_channels = 65536;  // map entries per direction
    friend bool operator==(const Relay&, const Relay&) = default;
};

struct Limits {
    std::uint32_t max_lifetime = 3600;             // seconds, upper bound on allocation lifetime
    std::uint32_t max_allocations = 100000;        // in total, at least 1
    std::uint32_t max_allocations_per_user = 100;  // per user name, at least 1
    std::uint32_t max_permissions_per_allocation = 64;
    std::uint32_t max_channels_per_allocation = 64;
    // Relayed payload bytes per second, each direction on its own; 0 = no cap.
    std::uint32_t allocation_bandwidth = 10000000;  // per allocation (80 Mbit/s)
    std::uint32_t user_bandwidth = 50000000;        // all of one user name's allocations
    std::uint32_t max_connections = 10000;          // TCP/TLS clients in total, at least 1
    std::uint32_t max_connections_per_ip = 100;     // TCP/TLS clients per source IP, at least 1
    // Seconds a new TCP/TLS connection has for its TLS handshake, and again for its first
    // complete message.
    std::uint32_t handshake_timeout = 10;
    std::uint32_t connection_idle_timeout = 600;  // seconds a TCP/TLS client may send nothing
    // Seconds a TCP/TLS connection may stay open without an authenticated TURN request; until
    // then whichever of this, handshake_timeout and the idle timeout ends first closes it.
    std::uint32_t unauthenticated_timeout = 30;
    // IPv6 sources are counted per prefix of this length by every per-source limit (one host
    // commonly holds a whole /64); IPv4 sources per address.
    std::uint32_t ipv6_source_prefix = 64;
    // Requests per second (and burst) one source IP may send without authenticating; 0 = no
    // limit.
    std::uint32_t unauthenticated_rate = 50;
    std::uint32_t unauthenticated_burst = 100;
    // On SIGTERM, seconds live allocations may keep relaying (new ones refused) before exit.
    std::uint32_t shutdown_grace = 30;
    // Bytes queued towards one TCP/TLS client before relayed data to it is dropped.
    std::uint32_t max_pending_output = 262144;
    friend bool operator==(const Limits&, const Limits&) = default;
};

enum class LogLevel : std::uint8_t { trace, debug, info, warn, error, critical, off };
enum class LogFormat : std::uint8_t { text, json };
const char* to_string(LogLevel l) noexcept;
const char* to_string(LogFormat f) noexcept;

struct Log {
    LogLevel level = LogLevel::info;
    LogFormat format = LogFormat::text;
    friend bool operator==(const Log&, const Log&) = default;
};

struct Metrics {
    std::optional<TransportAddress> listen;  // absent = off
    friend bool operator==(const Metrics&, const Metrics&) = default;
};

// Where each key was written: "relay.allow_peers[1]" -> its 1-based line, for warnings and
// checks after loading. Not part of a config's value, like a pair's lines: a comment added
// above a key changes nothing the server does.
struct KeyLines {
    std::map<std::string, int, std::less<>> lines;
    int of(std::string_view key) const {
        const auto found = lines.find(key);
        return found == lines.end() ? 0 : found->second;
    }
    friend bool operator==(const KeyLines&, const KeyLines&) { return true; }
};

// The admin API under /v1/ on metrics.listen: on only with a token file.
struct Admin {
    std::optional<std::string> token_file;  // absolute; absent = the admin API is off
    std::string token;                      // its first line, trimmed
    // Revocations kept across restarts (resolved absolute).
    std::string revocations_file = "/var/lib/tern/revocations";
    friend bool operator==(const Admin&, const Admin&) = default;
};

// One record per ended allocation.
struct UsageRecords {
    std::optional<std::string> file;  // JSON lines, appended; reopened on SIGHUP
    bool journal = false;             // also to the systemd journal, with TERN_* fields
    friend bool operator==(const UsageRecords&, const UsageRecords&) = default;
};

// Where the fleet's shared store is: fleet.redis, "redis://[[user]:password@]host[:port][/db]".
struct RedisEndpoint {
    std::string host;
    std::uint16_t port = 6379;
    std::string username;  // empty: AUTH with the password alone
    std::string password;  // empty: no AUTH
    std::uint32_t db = 0;
    friend bool operator==(const RedisEndpoint&, const RedisEndpoint&) = default;
};

enum class StoreFailure : std::uint8_t {
    local,   // Allocates are admitted on this node's own quotas alone
    refuse,  // Allocates get 508 until the store answers again
};
const char* to_string(StoreFailure f) noexcept;  // "local", "refuse"

// The optional fleet section: several ternd sharing quotas, revocations, kills, the session
// list and a registry through one Redis. Absent (redis unset) = a node on its own.
struct Fleet {
    std::optional<RedisEndpoint> redis;  // fleet.redis; absent = no fleet
    std::string redis_url;               // as written, password masked, for logs
    std::string node_id;                 // fleet.node_id; default: the host name
    // Where clients reach this node directly (not through a load balancer), for other nodes'
    // 300 redirects: over UDP and TCP, and over TLS with the name its certificate carries.
    std::vector<TransportAddress> advertise;      // fleet.advertise
    std::vector<TransportAddress> advertise_tls;  // fleet.advertise_tls
    std::string tls_domain;                       // fleet.tls_domain (ALTERNATE-DOMAIN)
    std::uint32_t allocate_wait_ms = 50;          // longest an Allocate waits for Redis, 1-1000
    std::uint32_t lease_seconds = 15;  // a dead node's quota leases lapse after this, 3-3600
    StoreFailure on_store_failure = StoreFailure::local;
    // Allocations on this node past which new Allocates are redirected (300); 0 = only while
    // draining.
    std::uint32_t redirect_above = 0;
    std::string usage_stream;                 // Redis stream key for usage records; empty = none
    std::uint32_t usage_stream_max = 100000;  // its approximate MAXLEN, at least 1
    std::string key_prefix = "tern:";         // every key and channel the fleet uses
    friend bool operator==(const Fleet&, const Fleet&) = default;
};

struct Config {
    std::string realm = "tern";
    std::vector<Listener> listen;  // a file without `listen` gets the embedded default's
    std::optional<TlsFiles> tls;
    Edge edge;
    ProxyProtocol proxy_protocol;
    Auth auth;
    Relay relay;
    Limits limits;
    unsigned threads = 0;  // 0 = auto: one worker per core
    Log log;
    Metrics metrics;
    Admin admin;
    UsageRecords usage_records;
    Fleet fleet;
    std::string software = "tern";  // SOFTWARE attribute value; empty = omit
    KeyLines key_lines;             // empty for a Config not loaded from text

    friend bool operator==(const Config&, const Config&) = default;
};

// One problem found in a config file; `line` is 1-based, 0 when not tied to a line.
struct ConfigError {
    std::string source;  // file name or "<embedded default>"
    int line = 0;
    std::string key;  // dotted path: "relay.ports", "listen[2]", "auth.users.bob.key"
    std::string message;
    // "tern.yaml:12: relay.ports: first port 60000 > last 50000"; ":12" is left out when line
    // is 0 and "relay.ports: " when key is empty (errors about the file as a whole).
    std::string to_string() const;
};

struct LoadResult {
    std::optional<Config> config;     // set only when errors is empty
    std::vector<ConfigError> errors;  // every problem found, in file order
};

// The YAML text of the built-in default: UDP and TCP on port 3478 on all IPv4 and IPv6
// interfaces, no secrets (the server generates one at start and prints it).
std::string_view embedded_default_yaml() noexcept;

// Larger inputs are refused before parsing: a real config is a few kilobytes.
inline constexpr std::size_t max_config_bytes = std::size_t{1} << 20;

// Never throws; every problem comes back in LoadResult::errors. `source_name` names the text in
// errors and is also where relative tls paths are anchored: they resolve against its directory
// (the current directory when it has none) and are stored absolute.
LoadResult load_config_text(std::string_view yaml, std::string_view source_name);
LoadResult load_config_file(const std::string& path);  // = load_config_text(contents, path)
LoadResult load_embedded_default();

}  // namespace tern::config
