#include "tern/server/io/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include "tern/edge/port_sharing.hpp"

namespace tern::server {
namespace {

namespace ssl = boost::asio::ssl;

// The RFC 7443 ids (edge::alpn_turn, edge::alpn_nat_discovery) in ALPN wire format, so the
// selection callback can point OpenSSL at them.
constexpr std::array<unsigned char, 10> stun_turn_wire = {9,   's', 't', 'u', 'n',
                                                          '.', 't', 'u', 'r', 'n'};
constexpr std::array<unsigned char, 19> stun_nat_discovery_wire = {
    18, 's', 't', 'u', 'n', '.', 'n', 'a', 't', '-', 'd', 'i', 's', 'c', 'o', 'v', 'e', 'r', 'y'};

std::string_view id_of(const auto& wire) {
    return {reinterpret_cast<const char*>(wire.data() + 1), wire.size() - 1};
}

std::string openssl_error() {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return "unknown OpenSSL error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

std::string lowercase(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) {
        return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    });
    return out;
}

// Every context of one configuration: [0] is the default pair's, the handle listeners hold.
struct ContextSet {
    std::vector<ssl::context> contexts;
    SniTable names;  // SNI -> index into contexts
};

int select_alpn_callback(SSL*, const unsigned char** out, unsigned char* out_length,
                         const unsigned char* in, unsigned int in_length, void*) {
    const auto chosen = select_alpn({in, in_length});
    // NOACK: no protocol selected, the handshake goes on (see tls_context.hpp).
    if (!chosen) return SSL_TLSEXT_ERR_NOACK;
    *out = reinterpret_cast<const unsigned char*>(chosen->data());
    *out_length = static_cast<unsigned char>(chosen->size());
    return SSL_TLSEXT_ERR_OK;
}

int server_name_callback(SSL* ssl, int*, void* arg) {
    auto& set = *static_cast<ContextSet*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    // No SNI, or a name no entry lists: the default pair, which the SSL already has.
    if (name == nullptr) return SSL_TLSEXT_ERR_NOACK;
    const auto entry = set.names.find(name);
    if (!entry) return SSL_TLSEXT_ERR_NOACK;
    SSL_CTX* chosen = set.contexts[*entry].native_handle();
    if (SSL_get_SSL_CTX(ssl) != chosen && SSL_set_SSL_CTX(ssl, chosen) == nullptr) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
}

// One pair's context with the options every context shares, or an error in the
// ConfigError::to_string format.
struct Made {
    std::optional<ssl::context> context;
    std::string error;
};

Made make_pair_context(const std::string& certificate, const std::string& private_key,
                       const std::string& key, int certificate_line, int private_key_line,
                       std::string_view source_name) {
    const auto error = [&](int line, const std::string& field, std::string message) {
        return Made{std::nullopt, config::ConfigError{std::string(source_name), line,
                                                      key + "." + field, std::move(message)}
                                      .to_string()};
    };
    ssl::context context(ssl::context::tls_server);
    SSL_CTX* raw = context.native_handle();
    SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
    SSL_CTX_set_options(
        raw, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    // On every context, not only the default: ALPN is chosen after the SNI callback, with the
    // callback of the context SNI switched to (on OpenSSL 3.0 a pair context without it selects
    // no protocol; tests/unit/server/tls_context_test.cpp shows it).
    SSL_CTX_set_alpn_select_cb(raw, select_alpn_callback, nullptr);
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(raw, certificate.c_str()) != 1) {
        return error(certificate_line, "certificate",
                     "cannot load " + certificate + ": " + openssl_error());
    }
    if (SSL_CTX_use_PrivateKey_file(raw, private_key.c_str(), SSL_FILETYPE_PEM) != 1) {
        return error(private_key_line, "private_key",
                     "cannot load " + private_key + ": " + openssl_error());
    }
    if (SSL_CTX_check_private_key(raw) != 1) {
        ERR_clear_error();
        return error(private_key_line, "private_key",
                     private_key + " does not match " + key + ".certificate " + certificate);
    }
    return {std::move(context), {}};
}

}  // namespace

void SniTable::add(const std::string& name, std::size_t entry) {
    if (name.starts_with("*.")) {
        wildcard_.try_emplace(name.substr(2), entry);
    } else {
        exact_.try_emplace(name, entry);
    }
}

std::optional<std::size_t> SniTable::find(std::string_view server_name) const {
    // RFC 6066 §3 sends names without a trailing dot; one with a dot matches nothing here, as
    // in the shared port's routing (edge::name_matches).
    if (server_name.empty()) return std::nullopt;
    const std::string name = lowercase(server_name);
    if (const auto exact = exact_.find(name); exact != exact_.end()) return exact->second;
    // "*.example.com" covers "turn.example.com", not "example.com" nor "a.turn.example.com".
    const auto dot = name.find('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == name.size()) return std::nullopt;
    if (const auto wild = wildcard_.find(std::string_view(name).substr(dot + 1));
        wild != wildcard_.end()) {
        return wild->second;
    }
    return std::nullopt;
}

std::optional<std::string_view> select_alpn(std::span<const unsigned char> client_list) {
    bool nat_discovery = false;
    while (!client_list.empty()) {
        const std::size_t length = client_list[0];
        if (length == 0 || length + 1 > client_list.size()) return std::nullopt;
        const std::string_view id(reinterpret_cast<const char*>(client_list.data() + 1), length);
        if (id == edge::alpn_turn) return id_of(stun_turn_wire);
        if (id == edge::alpn_nat_discovery) nat_discovery = true;
        client_list = client_list.subspan(length + 1);
    }
    if (nat_discovery) return id_of(stun_nat_discovery_wire);
    return std::nullopt;
}

TlsContextResult make_tls_context(const config::TlsFiles& files, std::string_view source_name) {
    auto set = std::make_shared<ContextSet>();
    // Reserved so the contexts never move while the set is built (moving keeps the SSL_CTX,
    // but the handle below points at the first element).
    set->contexts.reserve(1 + files.certificates.size());
    auto made = make_pair_context(files.certificate, files.private_key, files.key,
                                  files.certificate_line, files.private_key_line, source_name);
    if (!made.context) return {nullptr, std::move(made.error)};
    set->contexts.push_back(std::move(*made.context));
    for (const auto& pair : files.certificates) {
        std::size_t index = 0;
        // With no tls.certificate the default pair is tls.certificates[0]: load it once.
        if (pair.key != files.key) {
            made = make_pair_context(pair.certificate, pair.private_key, pair.key,
                                     pair.certificate_line, pair.private_key_line, source_name);
            if (!made.context) return {nullptr, std::move(made.error)};
            index = set->contexts.size();
            set->contexts.push_back(std::move(*made.context));
        }
        for (const auto& name : pair.names) set->names.add(name, index);
    }
    SSL_CTX* default_context = set->contexts.front().native_handle();
    if (!set->names.empty()) {
        // The SNI callback runs on the context the SSL was made from, so only the default
        // needs it; the set outlives every SSL made from the handle (see TlsContextResult).
        SSL_CTX_set_tlsext_servername_callback(default_context, server_name_callback);
        SSL_CTX_set_tlsext_servername_arg(default_context, set.get());
    }
    ssl::context* handle = &set->contexts.front();
    return {std::shared_ptr<ssl::context>(std::move(set), handle), {}};
}

}  // namespace tern::server
