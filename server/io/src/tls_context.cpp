#include "tern/server/io/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace tern::server {
namespace {

std::string openssl_error() {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return "unknown OpenSSL error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

}  // namespace

TlsContextResult make_tls_context(const config::TlsFiles& files) {
    namespace ssl = boost::asio::ssl;
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    SSL_CTX* raw = ctx->native_handle();
    SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
    SSL_CTX_set_options(
        raw, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(raw, files.certificate.c_str()) != 1) {
        return {nullptr,
                "tls.certificate: cannot load " + files.certificate + ": " + openssl_error()};
    }
    if (SSL_CTX_use_PrivateKey_file(raw, files.private_key.c_str(), SSL_FILETYPE_PEM) != 1) {
        return {nullptr,
                "tls.private_key: cannot load " + files.private_key + ": " + openssl_error()};
    }
    if (SSL_CTX_check_private_key(raw) != 1) {
        return {nullptr, "tls.private_key: " + files.private_key +
                             " does not match tls.certificate " + files.certificate};
    }
    return {std::move(ctx), {}};
}

}  // namespace tern::server
