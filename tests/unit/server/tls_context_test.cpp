// make_tls_context (server/io/src/tls_context.cpp): the SNI table, the ALPN choice, errors that
// name file, line and key, and handshakes in memory (OpenSSL's client against the contexts made
// from tests/data/tls) showing which certificate and protocol each client gets.
#include "tern/server/io/tls_context.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tern::server {
namespace {

const std::string data_dir = TERN_TEST_DATA_DIR;

std::vector<unsigned char> wire(const std::vector<std::string>& ids) {
    std::vector<unsigned char> out;
    for (const auto& id : ids) {
        out.push_back(static_cast<unsigned char>(id.size()));
        out.insert(out.end(), id.begin(), id.end());
    }
    return out;
}

TEST(SniTable, ExactNamesFirstThenOneLabelWildcards) {
    SniTable table;
    EXPECT_TRUE(table.empty());
    table.add("turn.example.com", 1);
    table.add("*.turn.example.com", 2);
    table.add("*.example.com", 3);
    table.add("a.turn.example.com", 4);
    EXPECT_FALSE(table.empty());
    EXPECT_EQ(table.find("turn.example.com"), 1u);             // exact beats *.example.com
    EXPECT_EQ(table.find("TURN.Example.COM"), 1u);             // without case
    EXPECT_EQ(table.find("turn.example.com."), std::nullopt);  // SNI has no trailing dot
    EXPECT_EQ(table.find("b.turn.example.com"), 2u);
    EXPECT_EQ(table.find("a.turn.example.com"), 4u);
    EXPECT_EQ(table.find("other.example.com"), 3u);
    // A wildcard covers exactly one label: not the bare name, not two labels.
    EXPECT_EQ(table.find("x.b.turn.example.com"), std::nullopt);
    EXPECT_EQ(table.find("example.com"), std::nullopt);
    EXPECT_EQ(table.find("turn.example.org"), std::nullopt);
    EXPECT_EQ(table.find(""), std::nullopt);
    EXPECT_EQ(table.find("."), std::nullopt);
    EXPECT_EQ(table.find(".example.com"), std::nullopt);
    EXPECT_EQ(table.find("com"), std::nullopt);
}

TEST(SelectAlpn, Rfc7443IdsInOrderOfPreference) {
    const auto select = [](const std::vector<std::string>& ids) {
        const auto list = wire(ids);
        const auto chosen = select_alpn(list);
        return chosen ? std::string(*chosen) : std::string("(none)");
    };
    EXPECT_EQ(select({"stun.turn"}), "stun.turn");
    EXPECT_EQ(select({"stun.nat-discovery"}), "stun.nat-discovery");
    EXPECT_EQ(select({"stun.nat-discovery", "stun.turn"}), "stun.turn");
    EXPECT_EQ(select({"h2", "http/1.1", "stun.nat-discovery"}), "stun.nat-discovery");
    EXPECT_EQ(select({"h2", "http/1.1"}), "(none)");
    EXPECT_EQ(select({}), "(none)");
    EXPECT_EQ(select({"stun.turns"}), "(none)");
    // Malformed lists select nothing: a zero length, a length past the end.
    const std::vector<unsigned char> zero = {0, 9, 's', 't', 'u', 'n', '.', 't', 'u', 'r', 'n'};
    EXPECT_EQ(select_alpn(zero), std::nullopt);
    const std::vector<unsigned char> cut = {10, 's', 't', 'u', 'n', '.', 't', 'u', 'r', 'n'};
    EXPECT_EQ(select_alpn(cut), std::nullopt);
}

config::TlsFiles files_with_pairs() {
    config::TlsFiles files{data_dir + "/tls/cert.pem", data_dir + "/tls/key.pem", "tls", 3};
    files.certificate_line = 4;
    files.private_key_line = 5;
    files.certificates = {
        config::CertificatePair{{"turn.example.com", "*.turn.example.com"},
                                data_dir + "/tls/turn-a.pem",
                                data_dir + "/tls/turn-a.key",
                                "tls.certificates[0]",
                                7,
                                8,
                                9},
        config::CertificatePair{{"turn.example.org"},
                                data_dir + "/tls/turn-b.pem",
                                data_dir + "/tls/turn-b.key",
                                "tls.certificates[1]",
                                10,
                                11,
                                12},
    };
    return files;
}

TEST(MakeTlsContext, ErrorsNameFileLineAndKey) {
    auto files = files_with_pairs();
    files.certificates[1].private_key = data_dir + "/tls/turn-a.key";
    auto made = make_tls_context(files, "tern.yaml");
    EXPECT_FALSE(made.context);
    EXPECT_EQ(made.error.rfind("tern.yaml:12: tls.certificates[1].private_key: cannot load " +
                                   data_dir + "/tls/turn-a.key: ",
                               0),
              0u)
        << made.error;

    files = files_with_pairs();
    files.certificates[0].certificate = data_dir + "/tls/not-a-certificate.pem";
    made = make_tls_context(files, "tern.yaml");
    EXPECT_EQ(made.error.rfind("tern.yaml:8: tls.certificates[0].certificate: cannot load " +
                                   data_dir + "/tls/not-a-certificate.pem: ",
                               0),
              0u)
        << made.error;

    // The default pair of old, with no line (a config not read from a file).
    made = make_tls_context(
        config::TlsFiles{data_dir + "/tls/cert.pem", data_dir + "/tls/other-key.pem"}, "<x>");
    EXPECT_EQ(made.error.rfind("<x>: tls.private_key: cannot load ", 0), 0u) << made.error;
}

// A client and a server SSL joined by memory BIOs, handshaking in one thread.
struct Handshake {
    bool ok = false;
    std::string subject;  // the served certificate's CN
    std::string alpn;     // selected protocol, empty for none
};

Handshake handshake(const std::shared_ptr<boost::asio::ssl::context>& server,
                    const std::optional<std::string>& sni, const std::vector<std::string>& alpn) {
    Handshake result;
    SSL_CTX* client_ctx = SSL_CTX_new(TLS_client_method());
    SSL* client = SSL_new(client_ctx);
    SSL* srv = SSL_new(server->native_handle());
    BIO* client_bio = nullptr;
    BIO* server_bio = nullptr;
    BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
    SSL_set_bio(client, client_bio, client_bio);
    SSL_set_bio(srv, server_bio, server_bio);
    SSL_set_connect_state(client);
    SSL_set_accept_state(srv);
    if (sni) SSL_set_tlsext_host_name(client, sni->c_str());
    if (!alpn.empty()) {
        const auto list = wire(alpn);
        SSL_set_alpn_protos(client, list.data(), static_cast<unsigned>(list.size()));
    }
    bool client_done = false;
    bool server_done = false;
    for (int round = 0; round < 20 && !(client_done && server_done); ++round) {
        if (!client_done) client_done = SSL_do_handshake(client) == 1;
        if (!server_done) server_done = SSL_do_handshake(srv) == 1;
    }
    result.ok = client_done && server_done;
    if (result.ok) {
        X509* peer = SSL_get1_peer_certificate(client);
        char cn[256] = {};
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
        result.subject = cn;
        X509_free(peer);
        const unsigned char* selected = nullptr;
        unsigned int length = 0;
        SSL_get0_alpn_selected(client, &selected, &length);
        result.alpn.assign(reinterpret_cast<const char*>(selected), length);
    }
    ERR_clear_error();
    SSL_free(client);
    SSL_free(srv);
    SSL_CTX_free(client_ctx);
    return result;
}

TEST(MakeTlsContext, SniPicksThePairAndAlpnWorksOnEveryPair) {
    auto made = make_tls_context(files_with_pairs(), "tern.yaml");
    ASSERT_TRUE(made.context) << made.error;
    const auto check = [&](const std::optional<std::string>& sni,
                           const std::vector<std::string>& alpn, const std::string& subject,
                           const std::string& selected) {
        SCOPED_TRACE(sni.value_or("(no SNI)"));
        const auto h = handshake(made.context, sni, alpn);
        ASSERT_TRUE(h.ok);
        EXPECT_EQ(h.subject, subject);
        EXPECT_EQ(h.alpn, selected);
    };
    check("turn.example.com", {}, "turn.example.com", "");
    check("relay1.turn.example.com", {"stun.turn"}, "turn.example.com", "stun.turn");
    check("turn.example.org", {"stun.nat-discovery"}, "turn.example.org", "stun.nat-discovery");
    check("TURN.EXAMPLE.ORG", {"h2", "stun.turn"}, "turn.example.org", "stun.turn");
    check(std::nullopt, {"stun.turn"}, "localhost", "stun.turn");
    check("unknown.example.net", {"h2", "http/1.1"}, "localhost", "");
    check("a.b.turn.example.com", {}, "localhost", "");
}

TEST(MakeTlsContext, TheFirstEntryIsTheDefaultWithoutTlsCertificate) {
    auto files = files_with_pairs();
    const auto& first = files.certificates.front();
    files.certificate = first.certificate;
    files.private_key = first.private_key;
    files.key = first.key;
    auto made = make_tls_context(files, "tern.yaml");
    ASSERT_TRUE(made.context) << made.error;
    EXPECT_EQ(handshake(made.context, std::nullopt, {}).subject, "turn.example.com");
    EXPECT_EQ(handshake(made.context, "turn.example.com", {}).subject, "turn.example.com");
    EXPECT_EQ(handshake(made.context, "turn.example.org", {}).subject, "turn.example.org");
}

TEST(MakeTlsContext, TheHandleKeepsThePairsAlive) {
    auto made = make_tls_context(files_with_pairs(), "tern.yaml");
    ASSERT_TRUE(made.context);
    // Only the handle survives: the SNI callback's table and the pair contexts must too.
    auto handle = std::move(made.context);
    made = {};
    EXPECT_EQ(handshake(handle, "turn.example.org", {"stun.turn"}).subject, "turn.example.org");
}

}  // namespace
}  // namespace tern::server
