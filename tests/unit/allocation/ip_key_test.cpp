// IpKey::source_of: the key per-source limits count under (IPv4 per address, IPv6 per prefix).
#include "tern/allocation/ip_key.hpp"

#include <gtest/gtest.h>

namespace tern::allocation {
namespace {

using protocol::TransportAddress;

IpKey key(const char* text, unsigned prefix) {
    const auto a = TransportAddress::parse(text);
    EXPECT_TRUE(a) << text;
    return IpKey::source_of(a.value_or(TransportAddress{}), prefix);
}

IpKey plain(const char* text) {
    const auto a = TransportAddress::parse(text);
    EXPECT_TRUE(a) << text;
    return IpKey::of(a.value_or(TransportAddress{}));
}

TEST(IpKeySourceOf, Ipv6KeepsOnlyThePrefix) {
    EXPECT_EQ(key("[2001:db8:1:2:3:4:5:6]:1", 64), plain("[2001:db8:1:2::]:0"));
    EXPECT_EQ(key("[2001:db8:1:2:3:4:5:6]:1", 48), plain("[2001:db8:1::]:0"));
    // Off a byte boundary: /61 keeps the top 5 bits of the eighth byte (0x02 -> 0x00, 0xff ->
    // 0xf8).
    EXPECT_EQ(key("[2001:db8:1:2:3:4:5:6]:1", 61), plain("[2001:db8:1::]:0"));
    EXPECT_EQ(key("[2001:db8:1:ff:3:4:5:6]:1", 61), plain("[2001:db8:1:f8::]:0"));
    EXPECT_EQ(key("[2001:db8:1:2:3:4:5:6]:1", 128), plain("[2001:db8:1:2:3:4:5:6]:0"));
}

TEST(IpKeySourceOf, Ipv4InEitherFormStaysWhole) {
    EXPECT_EQ(key("198.51.100.7:1", 64), plain("198.51.100.7:0"));
    EXPECT_EQ(key("[::ffff:198.51.100.7]:1", 32), plain("198.51.100.7:0"));
    EXPECT_NE(key("198.51.100.7:1", 64), key("198.51.100.8:1", 64));
    EXPECT_TRUE(plain("198.51.100.7:0").is_ipv4());
    EXPECT_FALSE(plain("[2001:db8::1]:0").is_ipv4());
}

}  // namespace
}  // namespace tern::allocation
