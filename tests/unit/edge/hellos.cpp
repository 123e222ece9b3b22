// OpenSSL's ClientHello through memory BIOs, and the hand-made hello builder.
#include "hellos.hpp"

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <memory>
#include <span>
#include <stdexcept>

namespace tern::edge::test {

namespace {

// Size-then-copy: vector::insert trips a GCC 12 -Wstringop-overflow false alarm at -O3.
void append(Bytes& out, std::span<const std::uint8_t> more) {
    const std::size_t at = out.size();
    out.resize(at + more.size());
    std::copy(more.begin(), more.end(), out.begin() + static_cast<std::ptrdiff_t>(at));
}

void append(Bytes& out, std::string_view more) {
    append(out, {reinterpret_cast<const std::uint8_t*>(more.data()), more.size()});
}

void put16(Bytes& out, std::size_t value) {
    out.push_back(static_cast<std::uint8_t>(value >> 8));
    out.push_back(static_cast<std::uint8_t>(value & 0xFF));
}

}  // namespace

Bytes openssl_client_hello(const OpenSslHello& options) {
    const std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                                &SSL_CTX_free);
    if (!ctx) throw std::runtime_error("SSL_CTX_new");
    if (options.tls12_only) SSL_CTX_set_max_proto_version(ctx.get(), TLS1_2_VERSION);
    const std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), &SSL_free);
    if (!ssl) throw std::runtime_error("SSL_new");
    BIO* in = BIO_new(BIO_s_mem());
    BIO* out = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl.get(), in, out);  // the SSL owns both now
    if (!options.server_name.empty() &&
        SSL_set_tlsext_host_name(ssl.get(), options.server_name.c_str()) != 1) {
        throw std::runtime_error("SSL_set_tlsext_host_name");
    }
    if (!options.alpn.empty()) {
        Bytes wire;
        for (const auto& p : options.alpn) {
            wire.push_back(static_cast<std::uint8_t>(p.size()));
            append(wire, p);
        }
        // SSL_set_alpn_protos returns 0 on success, unlike most of OpenSSL.
        if (SSL_set_alpn_protos(ssl.get(), wire.data(), static_cast<unsigned>(wire.size())) != 0) {
            throw std::runtime_error("SSL_set_alpn_protos");
        }
    }
    SSL_set_connect_state(ssl.get());
    if (SSL_do_handshake(ssl.get()) == 1) throw std::runtime_error("handshake without a server");
    Bytes hello(static_cast<std::size_t>(BIO_pending(out)));
    if (hello.empty() || BIO_read(out, hello.data(), static_cast<int>(hello.size())) !=
                             static_cast<int>(hello.size())) {
        throw std::runtime_error("no ClientHello written");
    }
    return hello;
}

Bytes concat(std::initializer_list<Bytes> parts) {
    std::size_t total = 0;
    for (const auto& p : parts) total += p.size();
    Bytes out(total);
    auto at = out.begin();
    for (const auto& p : parts) at = std::copy(p.begin(), p.end(), at);
    return out;
}

Bytes text_bytes(std::string_view text) {
    return {text.begin(), text.end()};
}

Bytes extension(std::uint16_t type, const Bytes& data) {
    Bytes out;
    put16(out, type);
    put16(out, data.size());
    append(out, data);
    return out;
}

Bytes sni_extension(std::string_view host) {
    Bytes data;
    put16(data, host.size() + 3);
    data.push_back(0);  // host_name
    put16(data, host.size());
    append(data, host);
    return extension(0, data);
}

Bytes alpn_extension(const std::vector<std::string>& protocols) {
    Bytes list;
    for (const auto& p : protocols) {
        list.push_back(static_cast<std::uint8_t>(p.size()));
        append(list, p);
    }
    Bytes data;
    put16(data, list.size());
    append(data, list);
    return extension(16, data);
}

Bytes hello_body(const std::vector<Bytes>& extensions, bool without_block) {
    Bytes body{0x03, 0x03};
    for (std::uint8_t i = 0; i < 32; ++i) body.push_back(i);
    // Empty session id, two cipher suites, null compression.
    append(body, Bytes{0, 0, 4, 0x13, 0x01, 0xC0, 0x2F, 1, 0});
    if (without_block) return body;
    Bytes block;
    for (const auto& e : extensions) append(block, e);
    put16(body, block.size());
    append(body, block);
    return body;
}

Bytes handshake(const Bytes& body, std::uint8_t type) {
    Bytes out{type, static_cast<std::uint8_t>(body.size() >> 16),
              static_cast<std::uint8_t>(body.size() >> 8 & 0xFF),
              static_cast<std::uint8_t>(body.size() & 0xFF)};
    append(out, body);
    return out;
}

Bytes records(const Bytes& message, const std::vector<std::size_t>& cuts) {
    Bytes out;
    std::size_t from = 0;
    auto add = [&](std::size_t to) {
        append(out, Bytes{0x16, 0x03, 0x01});
        put16(out, to - from);
        append(out, std::span(message).subspan(from, to - from));
        from = to;
    };
    for (const std::size_t cut : cuts) add(cut);
    add(message.size());
    return out;
}

Bytes client_hello(const std::vector<Bytes>& extensions) {
    return records(handshake(hello_body(extensions)));
}

}  // namespace tern::edge::test
