// classify (first bytes on a shared port), name_matches (the wildcard rule) and route (each
// step of the TURN-or-website rule, with hand-made and OpenSSL hellos).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hellos.hpp"
#include "tern/edge/port_sharing.hpp"

namespace tern::edge {
namespace {

using namespace test;

FirstBytes classify_bytes(const Bytes& bytes) {
    return classify(bytes);
}

TEST(Classify, Tls) {
    EXPECT_EQ(classify_bytes({}), FirstBytes::need_more);
    EXPECT_EQ(classify_bytes({0x16}), FirstBytes::need_more);
    EXPECT_EQ(classify_bytes({0x16, 0x03}), FirstBytes::tls);
    EXPECT_EQ(classify(openssl_client_hello({"x.example", {}})), FirstBytes::tls);
}

TEST(Classify, StunMessage) {
    // A Binding request: type 0x0001, length 0, the cookie, a transaction id.
    const Bytes binding{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4};
    for (std::size_t n = 1; n < 8; ++n) {
        EXPECT_EQ(classify(std::span(binding.data(), n)), FirstBytes::need_more) << n;
    }
    EXPECT_EQ(classify(std::span(binding.data(), 8)), FirstBytes::stun);
    EXPECT_EQ(classify(binding), FirstBytes::stun);
    // 0x16 then not 0x03 can still be a STUN message type.
    EXPECT_EQ(classify_bytes({0x16, 0x01}), FirstBytes::need_more);
    EXPECT_EQ(classify_bytes({0x16, 0x01, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42}), FirstBytes::stun);
}

TEST(Classify, NotStunAsSoonAsAByteDisagrees) {
    EXPECT_EQ(classify_bytes({0x00, 0x01, 0x00, 0x01}), FirstBytes::other);  // length % 4
    EXPECT_EQ(classify_bytes({0x00, 0x01, 0x00, 0x04, 0x21, 0x13}), FirstBytes::other);
    EXPECT_EQ(classify_bytes({0x00, 0x01, 0x00, 0x04, 0x22}), FirstBytes::other);
    EXPECT_EQ(classify_bytes({0x00, 0x01, 0x00, 0x04, 0x21, 0x12, 0xA4, 0x43}), FirstBytes::other);
    EXPECT_EQ(classify_bytes({0x16, 0x02, 0x00, 0x02}), FirstBytes::other);
}

TEST(Classify, ChannelDataCannotOpenAConnection) {
    // No channel is bound on a connection that has not sent a STUN message yet.
    for (const std::uint8_t first : {0x40, 0x4F, 0x50, 0x7F}) {
        EXPECT_EQ(classify_bytes({first}), FirstBytes::other) << int{first};
    }
    // Plain-text HTTP methods share that range.
    EXPECT_EQ(classify(text_bytes("GET / HTTP/1.1\r\n")), FirstBytes::other);
}

TEST(Classify, Other) {
    for (const std::uint8_t first : {0x80, 0xC0, 0xFF}) {
        EXPECT_EQ(classify_bytes({first}), FirstBytes::other) << int{first};
    }
    // An SSLv2-style hello and a PROXY v2 signature (0x0D: a STUN type whose length is odd).
    EXPECT_EQ(classify_bytes({0x80, 0x2E, 0x01}), FirstBytes::other);
    EXPECT_EQ(classify_bytes({0x0D, 0x0A, 0x0D, 0x0A}), FirstBytes::other);
}

TEST(NameMatches, ExactIgnoringCase) {
    EXPECT_TRUE(name_matches("turn.example.com", "turn.example.com"));
    EXPECT_TRUE(name_matches("TURN.Example.com", "turn.example.COM"));
    EXPECT_FALSE(name_matches("turn.example.com", "turn.example.co"));
    EXPECT_FALSE(name_matches("turn.example.com", "xturn.example.com"));
    EXPECT_FALSE(name_matches("", ""));
    EXPECT_FALSE(name_matches("a", ""));
    EXPECT_FALSE(name_matches("", "a"));
}

TEST(NameMatches, WildcardIsOneLeftmostLabel) {
    EXPECT_TRUE(name_matches("*.example.com", "turn.example.com"));
    EXPECT_TRUE(name_matches("*.example.com", "T.EXAMPLE.COM"));
    EXPECT_FALSE(name_matches("*.example.com", "example.com"));
    EXPECT_FALSE(name_matches("*.example.com", ".example.com"));
    EXPECT_FALSE(name_matches("*.example.com", "a.b.example.com"));
    EXPECT_FALSE(name_matches("*.example.com", "aexample.com"));
    EXPECT_FALSE(name_matches("*.example.com", "a.example.org"));
    // Only a whole leftmost "*." is a wildcard.
    EXPECT_FALSE(name_matches("t*.example.com", "turn.example.com"));
    EXPECT_FALSE(name_matches("turn.*.com", "turn.example.com"));
    EXPECT_FALSE(name_matches("*", "turn"));
    EXPECT_FALSE(name_matches("*.", "a."));
    EXPECT_TRUE(name_matches("*.example.com", "*.example.com"));
}

class Route : public ::testing::Test {
protected:
    TlsDestination route_of(const Bytes& hello) {
        ClientHelloReader reader;
        EXPECT_EQ(reader.parse(hello), HelloStatus::complete);
        return route(reader, names_);
    }

    std::vector<std::string> names_{"turn.example.com", "*.turn.example.net"};
};

TEST_F(Route, TurnAlpnWinsWhateverTheName) {
    EXPECT_EQ(route_of(client_hello({alpn_extension({"h2", "stun.turn"})})), TlsDestination::turn);
    EXPECT_EQ(route_of(client_hello(
                  {sni_extension("www.example.com"), alpn_extension({"stun.nat-discovery"})})),
              TlsDestination::turn);
    EXPECT_EQ(route_of(openssl_client_hello({"www.example.com", {"stun.turn"}})),
              TlsDestination::turn);
}

TEST_F(Route, TurnNameGoesToTurn) {
    EXPECT_EQ(route_of(client_hello({sni_extension("Turn.Example.Com")})), TlsDestination::turn);
    EXPECT_EQ(route_of(client_hello(
                  {sni_extension("eu1.turn.example.net"), alpn_extension({"h2", "http/1.1"})})),
              TlsDestination::turn);
    EXPECT_EQ(route_of(openssl_client_hello({"turn.example.com", {"h2"}})), TlsDestination::turn);
}

TEST_F(Route, AnyOtherNameGoesToTheWebsite) {
    EXPECT_EQ(route_of(client_hello({sni_extension("www.example.com")})), TlsDestination::fallback);
    EXPECT_EQ(route_of(client_hello({sni_extension("turn.example.net")})),
              TlsDestination::fallback);
    EXPECT_EQ(route_of(client_hello({sni_extension("a.b.turn.example.net")})),
              TlsDestination::fallback);
    // An invalid name is still a name: not TURN's.
    EXPECT_EQ(route_of(client_hello({sni_extension("turn.example.com.")})),
              TlsDestination::fallback);
    EXPECT_EQ(route_of(client_hello({sni_extension("turn_example.com")})),
              TlsDestination::fallback);
    EXPECT_EQ(route_of(openssl_client_hello({"www.example.com", {"h2", "http/1.1"}})),
              TlsDestination::fallback);
}

TEST_F(Route, NoNameButHttpAlpnGoesToTheWebsite) {
    EXPECT_EQ(route_of(client_hello({alpn_extension({"h2", "http/1.1"})})),
              TlsDestination::fallback);
    EXPECT_EQ(route_of(openssl_client_hello({"", {"http/1.1"}})), TlsDestination::fallback);
}

TEST_F(Route, NeitherNameNorAlpnIsTurn) {
    EXPECT_EQ(route_of(client_hello({})), TlsDestination::turn);
    EXPECT_EQ(route_of(records(handshake(hello_body({}, true)))), TlsDestination::turn);
    EXPECT_EQ(route_of(openssl_client_hello({})), TlsDestination::turn);
}

TEST_F(Route, NoTurnNamesConfigured) {
    names_.clear();
    EXPECT_EQ(route_of(client_hello({sni_extension("turn.example.com")})),
              TlsDestination::fallback);
    EXPECT_EQ(route_of(client_hello({})), TlsDestination::turn);
    EXPECT_EQ(route_of(client_hello({alpn_extension({"stun.turn"})})), TlsDestination::turn);
}

}  // namespace
}  // namespace tern::edge
