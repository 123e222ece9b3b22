#include "tern/protocol/transport.hpp"

#include <gtest/gtest.h>

namespace tern::protocol {
namespace {

TEST(Transport, ParsesWhatToStringSpells) {
    for (const Transport t : {Transport::udp, Transport::tcp, Transport::tls}) {
        EXPECT_EQ(parse_transport(to_string(t)), t) << to_string(t);
    }
    EXPECT_STREQ(to_string(Transport::tls), "tls");
}

TEST(Transport, RefusesOtherSpellings) {
    for (const char* text : {"", "UDP", "udp ", "dtls", "tcp://"}) {
        EXPECT_FALSE(parse_transport(text)) << text;
    }
}

}  // namespace
}  // namespace tern::protocol
