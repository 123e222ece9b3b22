// ClientHelloReader: OpenSSL's real hellos, byte-at-a-time feeding, hellos split over records,
// and every way a hello can be wrong, short or too long.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hellos.hpp"
#include "tern/edge/client_hello.hpp"

namespace tern::edge {
namespace {

using namespace test;

HelloStatus parse_once(const Bytes& bytes) {
    ClientHelloReader reader;
    return reader.parse(bytes);
}

// Feeds every prefix from 0 to the whole; every shorter prefix must be need_more.
HelloStatus feed_bytewise(ClientHelloReader& reader, const Bytes& bytes) {
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        const HelloStatus status = reader.parse(std::span(bytes.data(), n));
        if (status != HelloStatus::need_more) {
            ADD_FAILURE() << "status " << static_cast<int>(status) << " after " << n << " of "
                          << bytes.size() << " bytes";
            return status;
        }
    }
    return reader.parse(bytes);
}

TEST(ClientHello, OpenSslHelloWithSniAndAlpn) {
    const Bytes hello = openssl_client_hello({"turn.example.com", {"h2", "http/1.1"}});
    ClientHelloReader reader;
    ASSERT_EQ(reader.parse(hello), HelloStatus::complete);
    EXPECT_EQ(reader.length(), hello.size());
    EXPECT_TRUE(reader.has_server_name());
    EXPECT_TRUE(reader.server_name_valid());
    EXPECT_EQ(reader.server_name(), "turn.example.com");
    EXPECT_TRUE(reader.offers_alpn());
    EXPECT_TRUE(reader.offers("h2"));
    EXPECT_TRUE(reader.offers("http/1.1"));
    EXPECT_FALSE(reader.offers("http/1.0"));
    EXPECT_FALSE(reader.offers("h"));
    EXPECT_FALSE(reader.offers(""));
    ASSERT_EQ(reader.alpn_count(), 2u);
    EXPECT_EQ(reader.alpn_protocol(0), "h2");
    EXPECT_EQ(reader.alpn_protocol(1), "http/1.1");
    EXPECT_EQ(reader.alpn_protocol(2), "");
}

TEST(ClientHello, OpenSslHelloWithNeither) {
    const Bytes hello = openssl_client_hello({});
    ClientHelloReader reader;
    ASSERT_EQ(reader.parse(hello), HelloStatus::complete);
    EXPECT_FALSE(reader.has_server_name());
    EXPECT_FALSE(reader.server_name_valid());
    EXPECT_EQ(reader.server_name(), "");
    EXPECT_FALSE(reader.offers_alpn());
    EXPECT_EQ(reader.alpn_count(), 0u);
}

TEST(ClientHello, OpenSslTls12HelloAndUppercaseName) {
    const Bytes hello = openssl_client_hello({"TURN.Example.COM", {"stun.turn"}, true});
    ClientHelloReader reader;
    ASSERT_EQ(reader.parse(hello), HelloStatus::complete);
    EXPECT_EQ(reader.server_name(), "turn.example.com");
    EXPECT_TRUE(reader.offers("stun.turn"));
}

TEST(ClientHello, OneBytePerCall) {
    const Bytes hello = openssl_client_hello({"a.example.org", {"stun.turn", "h2"}});
    ClientHelloReader reader;
    ASSERT_EQ(feed_bytewise(reader, hello), HelloStatus::complete);
    EXPECT_EQ(reader.length(), hello.size());
    EXPECT_EQ(reader.server_name(), "a.example.org");
    EXPECT_TRUE(reader.offers("stun.turn"));
}

TEST(ClientHello, BytesAfterTheHelloAreNotItsLength) {
    const Bytes hello = openssl_client_hello({"x.example", {}});
    const Bytes more = concat({hello, {0x14, 0x03, 0x03, 0x00, 0x01, 0x01}});
    ClientHelloReader reader;
    ASSERT_EQ(reader.parse(more), HelloStatus::complete);
    EXPECT_EQ(reader.length(), hello.size());
}

TEST(ClientHello, SplitOverTwoAndThreeRecords) {
    const Bytes message =
        handshake(hello_body({sni_extension("split.example"), alpn_extension({"h2"})}));
    for (const auto& cuts : std::vector<std::vector<std::size_t>>{
             {40}, {1}, {2}, {4}, {message.size() - 1}, {10, 50}, {3, 4}, {1, 2}}) {
        const Bytes bytes = records(message, cuts);
        ClientHelloReader reader;
        ASSERT_EQ(feed_bytewise(reader, bytes), HelloStatus::complete) << cuts[0];
        EXPECT_EQ(reader.length(), bytes.size());
        EXPECT_EQ(reader.server_name(), "split.example");
        EXPECT_TRUE(reader.offers("h2"));
        ClientHelloReader whole;
        EXPECT_EQ(whole.parse(bytes), HelloStatus::complete);
    }
}

TEST(ClientHello, OpenSslHelloRecutIntoThreeRecords) {
    const Bytes hello = openssl_client_hello({"recut.example", {"http/1.1"}});
    const Bytes message(hello.begin() + 5, hello.end());
    const Bytes bytes = records(message, {7, message.size() / 2});
    ClientHelloReader reader;
    ASSERT_EQ(reader.parse(bytes), HelloStatus::complete);
    EXPECT_EQ(reader.length(), hello.size() + 10);
    EXPECT_EQ(reader.server_name(), "recut.example");
}

TEST(ClientHello, NoExtensions) {
    ClientHelloReader absent;
    ASSERT_EQ(absent.parse(records(handshake(hello_body({}, true)))), HelloStatus::complete);
    EXPECT_FALSE(absent.has_server_name());
    EXPECT_FALSE(absent.offers_alpn());
    ClientHelloReader empty_block;
    ASSERT_EQ(empty_block.parse(client_hello({})), HelloStatus::complete);
    EXPECT_FALSE(empty_block.has_server_name());
}

TEST(ClientHello, SniWithoutAlpnAndAlpnWithoutSni) {
    ClientHelloReader sni;
    ASSERT_EQ(sni.parse(client_hello(
                  {extension(0x000A, {0, 2, 0, 0x1D}), sni_extension("only-sni.example")})),
              HelloStatus::complete);
    EXPECT_EQ(sni.server_name(), "only-sni.example");
    EXPECT_FALSE(sni.offers_alpn());

    ClientHelloReader alpn;
    ASSERT_EQ(alpn.parse(client_hello({alpn_extension({"stun.nat-discovery"})})),
              HelloStatus::complete);
    EXPECT_FALSE(alpn.has_server_name());
    EXPECT_TRUE(alpn.offers_alpn());
    EXPECT_TRUE(alpn.offers("stun.nat-discovery"));
}

TEST(ClientHello, UnknownAlpnIsJustAName) {
    ClientHelloReader reader;
    ASSERT_EQ(reader.parse(client_hello({alpn_extension({"x-custom/9", "\x01\xff"})})),
              HelloStatus::complete);
    EXPECT_TRUE(reader.offers("x-custom/9"));
    EXPECT_TRUE(reader.offers("\x01\xff"));
    EXPECT_FALSE(reader.offers("stun.turn"));
    EXPECT_EQ(reader.alpn_count(), 2u);
}

TEST(ClientHello, KeepsSixteenAlpnNamesButSearchesThemAll) {
    std::vector<std::string> names;
    for (int i = 0; i < 20; ++i) names.push_back(std::string(1, 'p').append(std::to_string(i)));
    names.push_back("stun.turn");
    ClientHelloReader reader;
    ASSERT_EQ(reader.parse(client_hello({alpn_extension(names)})), HelloStatus::complete);
    EXPECT_EQ(reader.alpn_count(), max_alpn_protocols);
    EXPECT_EQ(reader.alpn_protocol(15), "p15");
    EXPECT_EQ(reader.alpn_protocol(16), "");
    EXPECT_TRUE(reader.offers("p19"));
    EXPECT_TRUE(reader.offers("stun.turn"));
}

TEST(ClientHello, InvalidNamesAreSentButMatchNothing) {
    // Built with append: GCC 12's -Wrestrict misfires on string + literal at -O3.
    const std::string long_label = std::string(64, 'a').append(".example");
    std::string too_long;
    while (too_long.size() < 254) too_long += "abcdefghi.";
    too_long.resize(254);
    const std::vector<std::string> bad_names{"exa_mple.com",
                                             "a..b",
                                             ".a",
                                             "a.",
                                             "host:443",
                                             "caf\xc3\xa9.example",
                                             std::string("nul\0l.example", 13),
                                             "sp ace",
                                             long_label,
                                             too_long,
                                             "*.x"};
    for (const std::string& bad : bad_names) {
        ClientHelloReader reader;
        ASSERT_EQ(reader.parse(client_hello({sni_extension(bad)})), HelloStatus::complete) << bad;
        EXPECT_TRUE(reader.has_server_name()) << bad;
        EXPECT_FALSE(reader.server_name_valid()) << bad;
        EXPECT_EQ(reader.server_name(), "") << bad;
    }
}

TEST(ClientHello, LongestValidNames) {
    std::string name;
    while (name.size() < 253) name += "abcdefghi.";
    name.resize(253);
    ASSERT_NE(name.back(), '.');
    const std::string label63 = std::string(63, 'z').append(".example");
    for (const std::string& good : {name, label63, std::string("x"), std::string("1-2.3")}) {
        ClientHelloReader reader;
        ASSERT_EQ(reader.parse(client_hello({sni_extension(good)})), HelloStatus::complete);
        EXPECT_TRUE(reader.server_name_valid()) << good;
        EXPECT_EQ(reader.server_name(), good);
    }
}

TEST(ClientHello, SniListSkipsOtherNameTypes) {
    // An entry of an undefined name_type (7), then the host_name.
    const Bytes data{0, 12, 7, 0, 2, 'z', 'z', 0, 0, 4, 'a', '.', 'b', 'c'};
    ClientHelloReader reader;
    ASSERT_EQ(reader.parse(client_hello({extension(0, data)})), HelloStatus::complete);
    EXPECT_EQ(reader.server_name(), "a.bc");
    ClientHelloReader only_other;
    ASSERT_EQ(only_other.parse(client_hello({extension(0, {0, 5, 7, 0, 2, 'z', 'z'})})),
              HelloStatus::complete);
    EXPECT_FALSE(only_other.has_server_name());
}

TEST(ClientHello, LargestHelloFitsAndOneMoreByteIsTooLarge) {
    // A padding extension (21) brings the message to exactly max_client_hello_bytes.
    const std::size_t base = handshake(hello_body({extension(21, {})})).size();
    const Bytes padding(max_client_hello_bytes - base, 0);
    const Bytes message = handshake(hello_body({extension(21, padding)}));
    ASSERT_EQ(message.size(), max_client_hello_bytes);
    ClientHelloReader reader;
    ASSERT_EQ(feed_bytewise(reader, records(message)), HelloStatus::complete);
    EXPECT_EQ(reader.length(), max_client_hello_bytes + 5);

    const Bytes over = handshake(hello_body({extension(21, Bytes(padding.size() + 1, 0))}));
    const Bytes bytes = records(over, {over.size() / 2});
    // Refused as soon as the handshake header declares the size.
    EXPECT_EQ(parse_once(Bytes(bytes.begin(), bytes.begin() + 5 + 3)), HelloStatus::need_more);
    EXPECT_EQ(parse_once(Bytes(bytes.begin(), bytes.begin() + 5 + 4)), HelloStatus::too_large);
}

TEST(ClientHello, TooManyRecordBytesIsTooLarge) {
    // 6000 one-byte records take 36000 bytes, over max_hello_prefix_bytes.
    const Bytes message = handshake(hello_body({extension(21, Bytes(6000 - 49, 0))}));
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < message.size(); ++i) cuts.push_back(i);
    const Bytes bytes = records(message, cuts);
    ASSERT_GT(bytes.size(), max_hello_prefix_bytes);
    ClientHelloReader reader;
    HelloStatus status = HelloStatus::need_more;
    std::size_t n = 0;
    while (status == HelloStatus::need_more && n < bytes.size()) {
        status = reader.parse(std::span(bytes.data(), ++n));
    }
    EXPECT_EQ(status, HelloStatus::too_large);
    // Never need_more for a prefix of max_hello_prefix_bytes.
    EXPECT_LE(n, max_hello_prefix_bytes);
    EXPECT_EQ(parse_once(bytes), HelloStatus::too_large);
    // Records are 6 bytes here: the one at 32766 has no room, whatever its first byte says, so
    // the verdict does not depend on whether that byte came in the same read.
    const std::size_t boundary = max_hello_prefix_bytes / 6 * 6;
    Bytes alert_after(bytes.begin(), bytes.begin() + static_cast<long>(boundary));
    EXPECT_EQ(parse_once(alert_after), HelloStatus::too_large);
    alert_after.push_back(0x15);
    EXPECT_EQ(parse_once(alert_after), HelloStatus::too_large);
}

TEST(ClientHello, TruncatedIsNeedMore) {
    const Bytes hello = openssl_client_hello({"t.example", {"h2"}});
    for (const std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{4}, std::size_t{5},
                                std::size_t{9}, hello.size() - 1}) {
        EXPECT_EQ(parse_once(Bytes(hello.begin(), hello.begin() + static_cast<long>(n))),
                  HelloStatus::need_more)
            << n;
    }
}

TEST(ClientHello, NotTls) {
    EXPECT_EQ(parse_once(text_bytes("HTTP/1.1 200")), HelloStatus::not_tls);
    EXPECT_EQ(parse_once(text_bytes("GET / HTTP/1.1\r\n")), HelloStatus::not_tls);
    EXPECT_EQ(parse_once({'H'}), HelloStatus::not_tls);
    // An SSLv2-compatible hello: two-byte length with the high bit set, then type 1.
    EXPECT_EQ(parse_once({0x80, 0x2E, 0x01, 0x03, 0x01}), HelloStatus::not_tls);
    // A non-handshake record first (alert, application data).
    EXPECT_EQ(parse_once({0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28}), HelloStatus::not_tls);
    EXPECT_EQ(parse_once({0x17, 0x03, 0x03}), HelloStatus::not_tls);
    // A handshake byte but not major version 3; one byte alone is still undecided.
    EXPECT_EQ(parse_once({0x16}), HelloStatus::need_more);
    EXPECT_EQ(parse_once({0x16, 0x02}), HelloStatus::not_tls);
    EXPECT_EQ(parse_once({0x16, 0xFE, 0xFD}), HelloStatus::not_tls);  // DTLS 1.2
}

TEST(ClientHello, RecordLayerErrorsAreMalformed) {
    const Bytes message = handshake(hello_body({sni_extension("r.example")}));
    const Bytes two = records(message, {20});
    // A non-handshake record between the hello's fragments.
    const Bytes alert{0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00};
    Bytes interleaved(two.begin(), two.begin() + 25);
    interleaved.insert(interleaved.end(), alert.begin(), alert.end());
    EXPECT_EQ(parse_once(interleaved), HelloStatus::malformed);
    // The second record's version major is not 3.
    Bytes bad_version = two;
    bad_version[26] = 0x02;
    EXPECT_EQ(parse_once(bad_version), HelloStatus::malformed);
    // Zero-length and over-2^14 records.
    EXPECT_EQ(parse_once({0x16, 0x03, 0x01, 0x00, 0x00}), HelloStatus::malformed);
    EXPECT_EQ(parse_once({0x16, 0x03, 0x01, 0x40, 0x01}), HelloStatus::malformed);
    // First handshake message not a ClientHello (a ServerHello), known from its first byte.
    EXPECT_EQ(parse_once({0x16, 0x03, 0x01, 0x00, 0x30, 0x02}), HelloStatus::malformed);
    // Bytes after the hello inside its last record.
    Bytes trailing = records(message);
    trailing.push_back(0x00);
    trailing[4] = static_cast<std::uint8_t>(trailing[4] + 1);  // the record covers the extra byte
    EXPECT_EQ(parse_once(trailing), HelloStatus::malformed);
}

Bytes with_body_patch(Bytes body, std::size_t at, std::initializer_list<std::uint8_t> bytes) {
    std::copy(bytes.begin(), bytes.end(), body.begin() + static_cast<long>(at));
    return records(handshake(body));
}

TEST(ClientHello, BodyErrorsAreMalformed) {
    const Bytes body = hello_body({sni_extension("b.example"), alpn_extension({"h2"})});
    ASSERT_EQ(parse_once(records(handshake(body))), HelloStatus::complete);
    // Offsets: version 0, random 2, session id length 34, suites 35, compression 41, block 43,
    // the first extension's type 45 and length 47.
    EXPECT_EQ(parse_once(with_body_patch(body, 0, {0x02})), HelloStatus::malformed);
    EXPECT_EQ(parse_once(with_body_patch(body, 34, {33})), HelloStatus::malformed);
    EXPECT_EQ(parse_once(with_body_patch(body, 35, {0, 3})), HelloStatus::malformed);
    EXPECT_EQ(parse_once(with_body_patch(body, 35, {0, 0})), HelloStatus::malformed);
    EXPECT_EQ(parse_once(with_body_patch(body, 41, {0})), HelloStatus::malformed);
    const std::size_t block = body.size() - 45;
    EXPECT_EQ(parse_once(with_body_patch(body, 43, {0, static_cast<std::uint8_t>(block + 1)})),
              HelloStatus::malformed);
    EXPECT_EQ(parse_once(with_body_patch(body, 43, {0, static_cast<std::uint8_t>(block - 1)})),
              HelloStatus::malformed);
    // The first extension's length runs past the block.
    EXPECT_EQ(parse_once(with_body_patch(body, 47, {0xFF})), HelloStatus::malformed);
    // A body too short for its fixed fields; one byte of extensions block.
    EXPECT_EQ(parse_once(records(handshake(Bytes(body.begin(), body.begin() + 20)))),
              HelloStatus::malformed);
    EXPECT_EQ(parse_once(records(handshake(Bytes(body.begin(), body.begin() + 42)))),
              HelloStatus::malformed);
    EXPECT_EQ(parse_once(records(handshake({}))), HelloStatus::malformed);
}

TEST(ClientHello, ExtensionErrorsAreMalformed) {
    const Bytes ok_sni = sni_extension("e.example");
    const Bytes ok_alpn = alpn_extension({"h2"});
    const std::vector<std::vector<Bytes>> bad{
        {ok_sni, ok_sni},                                    // duplicate SNI
        {ok_alpn, ok_sni, ok_alpn},                          // duplicate ALPN
        {extension(0, {})},                                  // SNI without a list
        {extension(0, {0, 0})},                              // empty server_name_list
        {extension(0, {0, 5, 0, 0, 1, 'a'})},                // list longer than its entry
        {extension(0, {0, 3, 0, 0, 0})},                     // empty host_name
        {extension(0, {0, 6, 0, 0, 1, 'a', 9, 0, 1, 'b'})},  // list length short by 2
        {extension(0, {0, 4, 0, 0, 2, 'a'})},                // name runs past the list
        {extension(16, {})},                                 // ALPN without a list
        {extension(16, {0, 0})},                             // empty protocol_name_list
        {extension(16, {0, 1, 0})},                          // empty protocol name
        {extension(16, {0, 3, 2, 'h'})},                     // name runs past the list
        {extension(16, {0, 3, 1, 'h'})},                     // list longer than its data
        {extension(16, {0, 2, 1, 'h', 'x'})},                // data after the list
    };
    for (std::size_t i = 0; i < bad.size(); ++i) {
        EXPECT_EQ(parse_once(client_hello(bad[i])), HelloStatus::malformed) << i;
    }
    // Duplicates of extensions routing does not read are the TLS stack's business.
    const Bytes other = extension(0x000A, {0, 2, 0, 0x1D});
    EXPECT_EQ(parse_once(client_hello({other, other})), HelloStatus::complete);
}

TEST(ClientHello, TwoHostNamesInOneList) {
    // server_name_list of two host_name entries, each "a" / "b": 2 * (1 + 2 + 1) = 8 bytes.
    EXPECT_EQ(parse_once(client_hello({extension(0, {0, 8, 0, 0, 1, 'a', 0, 0, 1, 'b'})})),
              HelloStatus::malformed);
    // The same list with the second entry of another type is fine.
    ClientHelloReader reader;
    EXPECT_EQ(reader.parse(client_hello({extension(0, {0, 8, 0, 0, 1, 'a', 9, 0, 1, 'b'})})),
              HelloStatus::complete);
    EXPECT_EQ(reader.server_name(), "a");
}

TEST(ClientHello, MalformedLeavesNoResults) {
    ClientHelloReader reader;
    ASSERT_EQ(reader.parse(client_hello({sni_extension("left.example"), alpn_extension({"h2"}),
                                         Bytes{0x00, 0x0A, 0x00}})),  // a cut-off extension
              HelloStatus::malformed);
    EXPECT_FALSE(reader.has_server_name());
    EXPECT_EQ(reader.server_name(), "");
    EXPECT_FALSE(reader.offers_alpn());
    EXPECT_FALSE(reader.offers("h2"));
    EXPECT_EQ(reader.length(), 0u);
}

TEST(ClientHello, VerdictIsFinalAndResetStartsOver) {
    ClientHelloReader reader;
    EXPECT_EQ(reader.parse(text_bytes("GET")), HelloStatus::not_tls);
    const Bytes hello = client_hello({sni_extension("again.example")});
    EXPECT_EQ(reader.parse(hello), HelloStatus::not_tls);
    EXPECT_EQ(reader.status(), HelloStatus::not_tls);
    reader.reset();
    EXPECT_EQ(reader.parse(hello), HelloStatus::complete);
    EXPECT_EQ(reader.server_name(), "again.example");
    EXPECT_EQ(reader.parse({}), HelloStatus::complete);  // final: the prefix is not looked at
}

TEST(ClientHello, ShorterPrefixStartsOver) {
    const Bytes first = client_hello({sni_extension("one.example")});
    const Bytes second = client_hello({sni_extension("two.example")});
    ClientHelloReader reader;
    ASSERT_EQ(reader.parse(std::span(first.data(), 30)), HelloStatus::need_more);
    ASSERT_EQ(reader.parse(std::span(second.data(), 10)), HelloStatus::need_more);
    ASSERT_EQ(reader.parse(second), HelloStatus::complete);
    EXPECT_EQ(reader.server_name(), "two.example");
}

}  // namespace
}  // namespace tern::edge
