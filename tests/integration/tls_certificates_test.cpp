// Several TLS certificates chosen by SNI, and ALPN (RFC 7443), against a real ternd: each SNI
// gets its pair's certificate (no SNI and unknown names get the default), the RFC 7443 ids are
// selected and other ids are not, a Binding works over every such connection, and SIGHUP
// renews one pair or, when the pair is broken, names its key and line and keeps the old ones.
// The pairs are tests/data/tls/turn-a.* (turn.example.com, *.turn.example.com), turn-b.*
// (turn.example.org), turn-b-renewed.* and the default cert.pem (localhost).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"
#include "tern/protocol/message.hpp"

namespace tern::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* reloaded = "SIGHUP: configuration reloaded from";
constexpr const char* refused = "keeping the running configuration";

const std::string tls_dir = data_dir() + "/tls";

// What one TLS connection saw.
struct Probe {
    bool handshake = false;
    std::string fingerprint;       // SHA-256 of the served certificate, as certificate_file_sha256
    std::string common_name;       // its subject CN
    std::vector<std::string> dns;  // its subjectAltName DNS names
    std::string alpn;              // the protocol the server selected; empty for none
    bool binding = false;          // a Binding request over the connection was answered
};

std::string describe(const Probe& p) {
    std::string names;
    for (const auto& n : p.dns) names += " " + n;
    return "handshake=" + std::to_string(p.handshake) + " cn=" + p.common_name + " san=" + names +
           " alpn='" + p.alpn + "' binding=" + std::to_string(p.binding);
}

std::vector<unsigned char> alpn_wire(const std::vector<std::string>& ids) {
    std::vector<unsigned char> out;
    for (const auto& id : ids) {
        out.push_back(static_cast<unsigned char>(id.size()));
        out.insert(out.end(), id.begin(), id.end());
    }
    return out;
}

bool read_exactly(SSL* ssl, unsigned char* out, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
        const int r = SSL_read(ssl, out + got, static_cast<int>(n - got));
        if (r <= 0) return false;
        got += static_cast<std::size_t>(r);
    }
    return true;
}

// Connects to `server` over TLS (IPv4), offering `sni` (none if empty) and the ALPN `ids`;
// trusts whatever certificate comes (the test compares it), then sends one Binding request.
Probe probe(std::uint16_t port, const std::optional<std::string>& sni,
            const std::vector<std::string>& ids = {}) {
    Probe p;
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return p;
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL* ssl = SSL_new(ctx);
    const auto done = [&] {
        SSL_free(ssl);
        SSL_CTX_free(ctx);
        ::close(fd);
        ERR_clear_error();
        return p;
    };
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) return done();
    if (sni) SSL_set_tlsext_host_name(ssl, sni->c_str());
    if (!ids.empty()) {
        const auto list = alpn_wire(ids);
        SSL_set_alpn_protos(ssl, list.data(), static_cast<unsigned>(list.size()));
    }
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) return done();
    p.handshake = true;
    X509* cert = SSL_get1_peer_certificate(ssl);
    if (cert != nullptr) {
        char cn[256] = {};
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
        p.common_name = cn;
        auto* names = static_cast<GENERAL_NAMES*>(
            X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
        for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
            const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
            if (name->type != GEN_DNS) continue;
            const ASN1_IA5STRING* dns = name->d.dNSName;
            p.dns.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                               static_cast<std::size_t>(ASN1_STRING_length(dns)));
        }
        GENERAL_NAMES_free(names);
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int length = 0;
        X509_digest(cert, EVP_sha256(), md, &length);
        static const char* hex = "0123456789abcdef";
        for (unsigned int i = 0; i < length; ++i) {
            p.fingerprint += hex[md[i] >> 4];
            p.fingerprint += hex[md[i] & 0xF];
        }
        X509_free(cert);
    }
    const unsigned char* selected = nullptr;
    unsigned int selected_length = 0;
    SSL_get0_alpn_selected(ssl, &selected, &selected_length);
    p.alpn.assign(reinterpret_cast<const char*>(selected), selected_length);

    protocol::TransactionId id;
    const Bytes request = binding_request(&id);
    if (SSL_write(ssl, request.data(), static_cast<int>(request.size())) !=
        static_cast<int>(request.size())) {
        return done();
    }
    Bytes reply(20);
    if (!read_exactly(ssl, reply.data(), 20)) return done();
    reply.resize(20 + ((static_cast<std::size_t>(reply[2]) << 8) | reply[3]));
    if (!read_exactly(ssl, reply.data() + 20, reply.size() - 20)) return done();
    protocol::MessageView message;
    p.binding = protocol::MessageView::parse(reply, message) == protocol::ParseError::ok &&
                message.method() == protocol::Method::binding &&
                message.message_class() == protocol::MessageClass::success_response &&
                message.transaction_id() == id;
    return done();
}

bool contains(const std::vector<std::string>& names, const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
}

void copy_file(const std::string& from, const std::string& to) {
    // Write beside, then rename: how certificate renewal tools replace files.
    std::filesystem::copy_file(from, to + ".new",
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::rename(to + ".new", to);
}

int line_of(const std::string& text, const std::string& needle) {
    const auto at = text.find(needle);
    if (at == std::string::npos) return 0;
    return 1 +
           static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(at), '\n'));
}

// The pairs' files, copied to a directory of their own so a test can replace them.
struct PairFiles {
    std::string dir;
    PairFiles() {
        char tmpl[] = "/tmp/tern-sni-XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
        dir = tmpl;
        copy_file(tls_dir + "/cert.pem", dir + "/default.pem");
        copy_file(tls_dir + "/key.pem", dir + "/default.key");
        copy_file(tls_dir + "/turn-a.pem", dir + "/a.pem");
        copy_file(tls_dir + "/turn-a.key", dir + "/a.key");
        copy_file(tls_dir + "/turn-b.pem", dir + "/b.pem");
        copy_file(tls_dir + "/turn-b.key", dir + "/b.key");
    }
    ~PairFiles() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    PairFiles(const PairFiles&) = delete;
    PairFiles& operator=(const PairFiles&) = delete;

    std::string yaml(std::uint16_t port, std::uint16_t tls_port) const {
        const std::string p = std::to_string(port);
        return "realm: sni.test\n"
               "threads: 2\n"
               "listen: [ \"udp://127.0.0.1:" +
               p + "\", \"tls://127.0.0.1:" + std::to_string(tls_port) +
               "\" ]\n"
               "tls:\n"
               "  certificate: " +
               dir + "/default.pem\n  private_key: " + dir +
               "/default.key\n"
               "  certificates:\n"
               "    - names: [ turn.example.com, \"*.turn.example.com\" ]\n"
               "      certificate: " +
               dir + "/a.pem\n      private_key: " + dir +
               "/a.key\n"
               "    - names: [ Turn.Example.ORG ]\n"
               "      certificate: " +
               dir + "/b.pem\n      private_key: " + dir +
               "/b.key\n"
               "auth: { secrets: [ \"sni-test-secret-0123456789\" ] }\n"
               "log: { level: debug }\n";
    }
};

const std::string default_fingerprint = certificate_file_sha256(tls_dir + "/cert.pem");
const std::string a_fingerprint = certificate_file_sha256(tls_dir + "/turn-a.pem");
const std::string b_fingerprint = certificate_file_sha256(tls_dir + "/turn-b.pem");
const std::string b_renewed_fingerprint = certificate_file_sha256(tls_dir + "/turn-b-renewed.pem");

class TlsCertificatesTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        files_ = std::make_unique<PairFiles>();
        port_ = free_port();
        tls_port_ = free_port();
        server_ = std::make_unique<TerndProcess>(files_->yaml(port_, tls_port_));
        ASSERT_TRUE(server_->wait_for_output("is listening on", 10s)) << server_->output();
    }
    static void TearDownTestSuite() {
        EXPECT_EQ(server_->stop(), 0) << server_->output();
        server_.reset();
        files_.reset();
    }
    void TearDown() override {
        ASSERT_TRUE(server_->running()) << "ternd died:\n" << server_->output();
    }

    static inline std::unique_ptr<PairFiles> files_;
    static inline std::unique_ptr<TerndProcess> server_;
    static inline std::uint16_t port_ = 0;
    static inline std::uint16_t tls_port_ = 0;
};

TEST_F(TlsCertificatesTest, TheFingerprintsDiffer) {
    ASSERT_FALSE(default_fingerprint.empty());
    ASSERT_FALSE(a_fingerprint.empty());
    ASSERT_FALSE(b_fingerprint.empty());
    EXPECT_NE(default_fingerprint, a_fingerprint);
    EXPECT_NE(a_fingerprint, b_fingerprint);
    EXPECT_NE(b_fingerprint, b_renewed_fingerprint);
}

TEST_F(TlsCertificatesTest, SniSelectsThePairThatListsTheName) {
    const auto a = probe(tls_port_, "turn.example.com");
    EXPECT_EQ(a.fingerprint, a_fingerprint) << describe(a);
    EXPECT_EQ(a.common_name, "turn.example.com");
    EXPECT_TRUE(contains(a.dns, "turn.example.com")) << describe(a);
    EXPECT_TRUE(a.binding) << describe(a);

    const auto b = probe(tls_port_, "turn.example.org");
    EXPECT_EQ(b.fingerprint, b_fingerprint) << describe(b);
    EXPECT_EQ(b.common_name, "turn.example.org");
    EXPECT_TRUE(contains(b.dns, "turn.example.org")) << describe(b);
    EXPECT_TRUE(b.binding) << describe(b);

    // SNI compares without case.
    EXPECT_EQ(probe(tls_port_, "TURN.example.ORG").fingerprint, b_fingerprint);
}

TEST_F(TlsCertificatesTest, AWildcardCoversOneLabel) {
    const auto one = probe(tls_port_, "relay7.turn.example.com");
    EXPECT_EQ(one.fingerprint, a_fingerprint) << describe(one);
    EXPECT_TRUE(contains(one.dns, "*.turn.example.com")) << describe(one);
    EXPECT_TRUE(one.binding);
    const auto two = probe(tls_port_, "x.relay7.turn.example.com");
    EXPECT_EQ(two.fingerprint, default_fingerprint) << describe(two);
    EXPECT_TRUE(two.binding);
}

TEST_F(TlsCertificatesTest, NoSniOrAnUnknownNameGetsTheDefault) {
    const auto none = probe(tls_port_, std::nullopt);
    EXPECT_EQ(none.fingerprint, default_fingerprint) << describe(none);
    EXPECT_EQ(none.common_name, "localhost");
    EXPECT_TRUE(none.binding) << describe(none);

    const auto unknown = probe(tls_port_, "turn.example.net");
    EXPECT_EQ(unknown.fingerprint, default_fingerprint) << describe(unknown);
    EXPECT_TRUE(contains(unknown.dns, "localhost")) << describe(unknown);
    EXPECT_TRUE(unknown.binding) << describe(unknown);
}

TEST_F(TlsCertificatesTest, AlpnSelectsTheRfc7443Ids) {
    // On the default context and on a pair's (SNI switches the connection over first).
    for (const std::optional<std::string>& sni :
         {std::optional<std::string>(), std::optional<std::string>("turn.example.com")}) {
        SCOPED_TRACE(sni.value_or("(no SNI)"));
        const auto turn = probe(tls_port_, sni, {"stun.turn"});
        EXPECT_EQ(turn.alpn, "stun.turn") << describe(turn);
        EXPECT_TRUE(turn.binding) << describe(turn);

        const auto discovery = probe(tls_port_, sni, {"stun.nat-discovery"});
        EXPECT_EQ(discovery.alpn, "stun.nat-discovery") << describe(discovery);
        EXPECT_TRUE(discovery.binding) << describe(discovery);

        // stun.turn is preferred wherever the client lists it.
        const auto both = probe(tls_port_, sni, {"h2", "stun.nat-discovery", "stun.turn"});
        EXPECT_EQ(both.alpn, "stun.turn") << describe(both);
        EXPECT_TRUE(both.binding) << describe(both);
    }
    EXPECT_EQ(probe(tls_port_, "turn.example.org", {"stun.nat-discovery"}).alpn,
              "stun.nat-discovery");
}

TEST_F(TlsCertificatesTest, WithoutAnRfc7443IdTheHandshakeGoesOnWithoutAlpn) {
    const auto none = probe(tls_port_, "turn.example.com");
    EXPECT_TRUE(none.handshake);
    EXPECT_EQ(none.alpn, "") << describe(none);
    EXPECT_TRUE(none.binding) << describe(none);

    // Only other protocols offered: no alert, no protocol selected, TURN served all the same.
    for (const std::optional<std::string>& sni :
         {std::optional<std::string>(), std::optional<std::string>("turn.example.org")}) {
        SCOPED_TRACE(sni.value_or("(no SNI)"));
        const auto h2 = probe(tls_port_, sni, {"h2"});
        EXPECT_TRUE(h2.handshake) << describe(h2);
        EXPECT_EQ(h2.alpn, "") << describe(h2);
        EXPECT_TRUE(h2.binding) << describe(h2);
        const auto web = probe(tls_port_, sni, {"h2", "http/1.1"});
        EXPECT_TRUE(web.handshake) << describe(web);
        EXPECT_EQ(web.alpn, "") << describe(web);
        EXPECT_TRUE(web.binding) << describe(web);
    }
}

// Retries `check` for a while: a reload is posted to each worker's own thread, so the log line
// can come a moment before the last worker has applied it.
bool eventually(const std::function<bool()>& check, std::chrono::milliseconds timeout = 3s) {
    for (const auto deadline = Clock::now() + timeout; Clock::now() < deadline;) {
        if (check()) return true;
        std::this_thread::sleep_for(50ms);
    }
    return check();
}

bool wait_for_count(const TerndProcess& ternd, const std::string& needle, std::size_t n,
                    std::chrono::milliseconds timeout = 5s) {
    return eventually([&] { return count_of(ternd.output(), needle) >= n; }, timeout);
}

TEST(TlsCertificatesReload, SighupRenewsOnePairAndRefusesABrokenOne) {
    PairFiles files;
    const auto port = free_port();
    const auto tls_port = free_port();
    const std::string yaml = files.yaml(port, tls_port);
    TerndProcess ternd(yaml);
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    ASSERT_EQ(probe(tls_port, "turn.example.org").fingerprint, b_fingerprint) << ternd.output();

    // Renewal of pair B: same paths, new contents, SIGHUP.
    copy_file(tls_dir + "/turn-b-renewed.pem", files.dir + "/b.pem");
    copy_file(tls_dir + "/turn-b-renewed.key", files.dir + "/b.key");
    ternd.send_signal(SIGHUP);
    ASSERT_TRUE(wait_for_count(ternd, reloaded, 1)) << ternd.output();
    EXPECT_TRUE(eventually([&] {
        return probe(tls_port, "turn.example.org").fingerprint == b_renewed_fingerprint;
    })) << ternd.output();
    const auto renewed = probe(tls_port, "turn.example.org", {"stun.turn"});
    EXPECT_EQ(renewed.alpn, "stun.turn");
    EXPECT_TRUE(renewed.binding) << describe(renewed);
    EXPECT_EQ(probe(tls_port, "turn.example.com").fingerprint, a_fingerprint);
    EXPECT_EQ(probe(tls_port, std::nullopt).fingerprint, default_fingerprint);

    // Pair B broken: a key that is not its certificate's. Refused, named by key and line.
    copy_file(tls_dir + "/turn-a.key", files.dir + "/b.key");
    ternd.send_signal(SIGHUP);
    ASSERT_TRUE(wait_for_count(ternd, refused, 1)) << ternd.output();
    const std::string expected =
        "SIGHUP: " + ternd.config_path() + ":" + std::to_string(line_of(yaml, "/b.key")) +
        ": tls.certificates[1].private_key: cannot load " + files.dir + "/b.key: ";
    const std::string log = ternd.output();
    EXPECT_NE(log.find(expected), std::string::npos) << expected << "\n" << log;
    EXPECT_NE(log.find("key values mismatch; " + std::string(refused)), std::string::npos) << log;
    EXPECT_EQ(count_of(log, reloaded), 1u) << log;

    // The running contexts stay: every name still gets what it got before the broken reload.
    const auto still_b = probe(tls_port, "turn.example.org");
    EXPECT_EQ(still_b.fingerprint, b_renewed_fingerprint) << describe(still_b);
    EXPECT_TRUE(still_b.binding);
    EXPECT_EQ(probe(tls_port, "turn.example.com").fingerprint, a_fingerprint);
    EXPECT_EQ(probe(tls_port, "any.turn.example.com").fingerprint, a_fingerprint);
    EXPECT_EQ(probe(tls_port, std::nullopt).fingerprint, default_fingerprint);
    EXPECT_TRUE(ternd.running());
    EXPECT_EQ(ternd.stop(), 0) << ternd.output();
}

}  // namespace
}  // namespace tern::test
