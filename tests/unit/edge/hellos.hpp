// ClientHellos for the edge tests: real ones from OpenSSL's client, and hand-made ones whose
// every length the tests can bend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace tern::edge::test {

using Bytes = std::vector<std::uint8_t>;

struct OpenSslHello {
    std::string server_name;        // empty: no SNI
    std::vector<std::string> alpn;  // empty: no ALPN
    bool tls12_only = false;        // cap the client at TLS 1.2
};

// The bytes an OpenSSL client (memory BIOs, no server) sends first: its ClientHello records.
Bytes openssl_client_hello(const OpenSslHello& options);

Bytes concat(std::initializer_list<Bytes> parts);
Bytes text_bytes(std::string_view text);

Bytes extension(std::uint16_t type, const Bytes& data);
Bytes sni_extension(std::string_view host);                       // one host_name entry
Bytes alpn_extension(const std::vector<std::string>& protocols);  // a ProtocolNameList

// A ClientHello body (version 0x0303, random, empty session id, two suites, null compression)
// and the extensions block made of `extensions`; without_block leaves the block out.
Bytes hello_body(const std::vector<Bytes>& extensions, bool without_block = false);
// The handshake message: type 1, 24-bit length, body.
Bytes handshake(const Bytes& body, std::uint8_t type = 1);
// The message cut into handshake records at `cuts` (offsets into the message).
Bytes records(const Bytes& message, const std::vector<std::size_t>& cuts = {});
// A whole single-record hello with these extensions.
Bytes client_hello(const std::vector<Bytes>& extensions);

}  // namespace tern::edge::test
