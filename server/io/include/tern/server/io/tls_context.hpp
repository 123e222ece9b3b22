// Builds the server-side TLS contexts from the configured certificate pairs (TLS 1.2+): the
// default pair, plus one context per tls.certificates entry that a client's SNI selects. Errors
// come back as text naming the config file, line and key, for --check-config, start and reload.
//
// ALPN (RFC 7301) with the ids of RFC 7443: a client that offers "stun.turn" gets it, else one
// that offers "stun.nat-discovery" gets that. A client that offers only other protocols ("h2",
// "http/1.1") is served without ALPN: the handshake goes on with no protocol selected rather than
// ending in a no_application_protocol alert, so that TLS stacks which send a generic list still
// reach TURN. A client that offers no ALPN is served as it always was.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "tern/config/config.hpp"

namespace tern::server {

// Which tls.certificates entry serves a client's SNI: the entry that lists the name itself,
// else the one that lists "*." plus the name without its first label (a wildcard covers exactly
// one label), else none, which means the default pair. Names compare without case, as
// edge::name_matches compares them for the shared port. Pure: no OpenSSL.
class SniTable {
public:
    // `name` as the config stores it (lowercase): "turn.example.com" or "*.example.com".
    void add(const std::string& name, std::size_t entry);
    std::optional<std::size_t> find(std::string_view server_name) const;
    bool empty() const noexcept { return exact_.empty() && wildcard_.empty(); }

private:
    std::map<std::string, std::size_t, std::less<>> exact_;
    std::map<std::string, std::size_t, std::less<>> wildcard_;  // keyed by the part after "*."
};

// The protocol to select from a client's ALPN list in wire format (length-prefixed ids):
// stun.turn if offered, else stun.nat-discovery if offered, else none. A malformed list selects
// none. The view points at static storage.
std::optional<std::string_view> select_alpn(std::span<const unsigned char> client_list);

struct TlsContextResult {
    // The default pair's context, owning the per-pair contexts and the SNI table its callbacks
    // use (an aliasing shared_ptr): every context lives as long as any copy of this handle.
    std::shared_ptr<boost::asio::ssl::context> context;  // null on error
    // "tern.yaml:14: tls.certificates[1].private_key: cannot load /x.key: ..." (the
    // ConfigError::to_string format; the line is left out when the config gave none).
    std::string error;
};

// `source_name` is the config file's name (or "<embedded default>"), for the errors.
TlsContextResult make_tls_context(const config::TlsFiles& files, std::string_view source_name);

}  // namespace tern::server
