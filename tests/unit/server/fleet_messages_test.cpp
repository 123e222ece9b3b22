// What nodes tell each other through the store: control commands and session lines survive the
// round trip with any bytes in a user name, and anything not written by encode_* is refused.
#include "tern/server/request/fleet_messages.hpp"

#include <gtest/gtest.h>

#include <string>

namespace tern::server {
namespace {

using Op = ControlCommand::Op;

TEST(FleetMessages, EveryCommandRoundTrips) {
    const ControlCommand commands[] = {
        {Op::revoke, "turn-a", "alice", 1796667529, 1796667000123, {}, {}},
        {Op::unrevoke, "turn-a", "alice", 0, 1796667000123, {}, {}},
        {Op::kill, "turn-a", {}, 0, 0, "turn-c", "1-17"},
        {Op::kill_user, "n.2", "1796667529:bob", 0, 0, {}, {}},
    };
    for (const auto& c : commands) {
        const auto parsed = parse_control(encode_control(c));
        ASSERT_TRUE(parsed.has_value()) << encode_control(c);
        EXPECT_EQ(*parsed, c);
    }
}

TEST(FleetMessages, AUserNameMayHoldAnyByteSinceItComesLast) {
    const std::string odd("a\nb\0c:\xff", 7);
    const ControlCommand c{Op::revoke, "n1", odd, 5, 7, {}, {}};
    const auto parsed = parse_control(encode_control(c));
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(parsed->user, odd);
}

TEST(FleetMessages, ForeignTextIsRefused) {
    for (const std::string text : {"",
                                   "revoke",
                                   "revoke\n",
                                   "revoke\nn1\n",
                                   "revoke\nn1\nsoon\n1\nalice",
                                   "revoke\nn1\n0\n1\nalice",
                                   "revoke\nn1\n-5\n1\nalice",
                                   "revoke\nn1\n12x\n1\nalice",
                                   "revoke\nn1\n05\n1\nalice",
                                   "revoke\nn1\n5\nalice",
                                   "revoke\nn1\n5\n0\nalice",
                                   "revoke\n\n5\n1\nalice",
                                   "unrevoke\nn1\n",
                                   "unrevoke\nn1\nalice",
                                   "unrevoke\nn1\n1\n",
                                   "kill\nn1\nn2\n",
                                   "kill\nn1\n\n0-1",
                                   "kill_user\nn1\n",
                                   "shutdown\nn1\nall",
                                   "REVOKE\nn1\n5\n1\nalice",
                                   "{\"op\": \"revoke\"}"}) {
        EXPECT_FALSE(parse_control(text).has_value()) << text;
    }
}

TEST(FleetMessages, SessionLinesRoundTripAndCarryTheFilterFields) {
    const std::string json = R"({"node": "n2", "id": "0-5@n2", "user": "x"})";
    const std::string line = encode_session_line("1796667529:bo:b", "[2001:db8::1]:5000", json);
    const auto parsed = parse_session_line(line);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(parsed->user, "1796667529:bo:b");
    EXPECT_EQ(parsed->client, "[2001:db8::1]:5000");
    EXPECT_EQ(parsed->json, json);
}

TEST(FleetMessages, BrokenSessionLinesAreRefused) {
    for (const std::string text :
         {"", "5:alice", "5:alice9:1.2.3.4:5", "5:alice9:1.2.3.4:5not json",
          "99:alice9:1.2.3.4:5{}", "x:alice9:1.2.3.4:5{}", ":alice9:1.2.3.4:5{}",
          "5:alice9:1.2.3.4:5{\n}", "123456:a", "05:alice9:1.2.3.4:5{}"}) {
        EXPECT_FALSE(parse_session_line(text).has_value()) << text;
    }
    EXPECT_TRUE(parse_session_line("5:alice9:1.2.3.4:5{}").has_value());
}

}  // namespace
}  // namespace tern::server
