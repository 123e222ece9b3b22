// The admin API's rules without sockets: which command a /v1/ request is (or its 4xx), the
// bearer-token check, the lockout after wrong tokens, session ids, and the JSON pieces.
#include "tern/server/ops/admin_api.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "tern/allocation/allocation_record.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::server {
namespace {

using namespace std::chrono_literals;
using Kind = AdminCommand::Kind;
using allocation::first_allocation_id;

// The command a request parses to; fails the test (and gives a default) when it is an answer.
AdminCommand command(std::string_view method, std::string_view target, std::string_view body = {}) {
    auto parsed = parse_admin_request(method, target, body);
    if (auto* answer = std::get_if<HttpAnswer>(&parsed)) {
        ADD_FAILURE() << method << " " << target << " got " << answer->status << ": "
                      << answer->body;
        return {};
    }
    return std::get<AdminCommand>(parsed);
}

// The status of the answer a request gets instead of a command; 0 when it parsed.
unsigned refusal(std::string_view method, std::string_view target, std::string_view body = {}) {
    auto parsed = parse_admin_request(method, target, body);
    const auto* answer = std::get_if<HttpAnswer>(&parsed);
    if (answer == nullptr) return 0;
    // Every refusal is a JSON error object.
    EXPECT_EQ(answer->content_type, "application/json");
    EXPECT_TRUE(answer->body.starts_with("{\"error\": \"")) << answer->body;
    return answer->status;
}

// ---------------------------------------------------------------------------------------------
// Routes

TEST(AdminRequest, ListSessions) {
    for (const auto* method : {"GET", "HEAD"}) {
        const auto c = command(method, "/v1/sessions");
        EXPECT_EQ(c.kind, Kind::list_sessions);
        EXPECT_EQ(c.user, "");
        EXPECT_EQ(c.client, "");
    }
}

TEST(AdminRequest, ListSessionsWithFilters) {
    const auto c = command("GET", "/v1/sessions?user=alice&client=203.0.113.5:40000");
    EXPECT_EQ(c.kind, Kind::list_sessions);
    EXPECT_EQ(c.user, "alice");
    EXPECT_EQ(c.client, "203.0.113.5:40000");
    // An IPv6 client as the list prints it, escaped.
    EXPECT_EQ(command("GET", "/v1/sessions?client=%5B2001%3Adb8%3A%3A1%5D%3A5").client,
              "[2001:db8::1]:5");
}

TEST(AdminRequest, KillOneSession) {
    const auto c = command("DELETE", "/v1/sessions/3-17");
    EXPECT_EQ(c.kind, Kind::kill_session);
    EXPECT_EQ(c.session, first_allocation_id(3) + 16);
}

TEST(AdminRequest, KillEverySessionOfAUser) {
    const auto c = command("DELETE", "/v1/sessions?user=alice");
    EXPECT_EQ(c.kind, Kind::kill_user);
    EXPECT_EQ(c.user, "alice");
}

TEST(AdminRequest, ListRevocations) {
    EXPECT_EQ(command("GET", "/v1/revocations").kind, Kind::list_revocations);
    EXPECT_EQ(command("HEAD", "/v1/revocations").kind, Kind::list_revocations);
}

TEST(AdminRequest, RevokeWithoutUntil) {
    const auto c = command("POST", "/v1/users/alice/revoke");
    EXPECT_EQ(c.kind, Kind::revoke);
    EXPECT_EQ(c.user, "alice");
    EXPECT_EQ(c.until, std::nullopt);
    EXPECT_EQ(command("POST", "/v1/users/alice/revoke", "{}").until, std::nullopt);
    EXPECT_EQ(command("POST", "/v1/users/alice/revoke", " \r\n").until, std::nullopt);
}

TEST(AdminRequest, RevokeUntilFromQueryOrBody) {
    EXPECT_EQ(command("POST", "/v1/users/alice/revoke?until=1800000000").until, 1800000000);
    EXPECT_EQ(command("POST", "/v1/users/alice/revoke", R"({"until": 1800000000})").until,
              1800000000);
    EXPECT_EQ(command("POST", "/v1/users/alice/revoke", "\n { \"until\" :\t42 }\n").until, 42);
}

TEST(AdminRequest, LiftRevocation) {
    const auto c = command("DELETE", "/v1/users/alice/revoke");
    EXPECT_EQ(c.kind, Kind::unrevoke);
    EXPECT_EQ(c.user, "alice");
}

TEST(AdminRequest, UserNamesArePercentDecoded) {
    EXPECT_EQ(command("POST", "/v1/users/bob%20smith/revoke").user, "bob smith");
    EXPECT_EQ(command("POST", "/v1/users/1700000000%3Aalice/revoke").user, "1700000000:alice");
    EXPECT_EQ(command("DELETE", "/v1/users/x%3aalice/revoke").user, "x:alice");  // lower hex
    EXPECT_EQ(command("POST", "/v1/users/caf%C3%A9/revoke").user, "caf\xC3\xA9");
    // '+' is a space only in a query.
    EXPECT_EQ(command("POST", "/v1/users/a+b/revoke").user, "a+b");
    EXPECT_EQ(command("DELETE", "/v1/sessions?user=bob+smith").user, "bob smith");
    EXPECT_EQ(command("DELETE", "/v1/sessions?user=bob%20smith").user, "bob smith");
    EXPECT_EQ(command("GET", "/v1/sessions?user=1700000000%3Aalice").user, "1700000000:alice");
}

// ---------------------------------------------------------------------------------------------
// Refusals

TEST(AdminRequest, WrongMethodIs405) {
    EXPECT_EQ(refusal("POST", "/v1/sessions"), 405u);
    EXPECT_EQ(refusal("PUT", "/v1/sessions"), 405u);
    EXPECT_EQ(refusal("GET", "/v1/sessions/0-1"), 405u);
    EXPECT_EQ(refusal("POST", "/v1/sessions/0-1"), 405u);
    EXPECT_EQ(refusal("POST", "/v1/revocations"), 405u);
    EXPECT_EQ(refusal("DELETE", "/v1/revocations"), 405u);
    EXPECT_EQ(refusal("GET", "/v1/users/alice/revoke"), 405u);
    EXPECT_EQ(refusal("PUT", "/v1/users/alice/revoke"), 405u);
    EXPECT_EQ(refusal("get", "/v1/sessions"), 405u);  // methods are case-sensitive
}

TEST(AdminRequest, UnknownQueryParameterIs400) {
    EXPECT_EQ(refusal("GET", "/v1/sessions?bogus=1"), 400u);
    EXPECT_EQ(refusal("GET", "/v1/sessions?user=alice&users=bob"), 400u);
    EXPECT_EQ(refusal("GET", "/v1/revocations?limit=5"), 400u);
}

TEST(AdminRequest, BadEscapesAre400) {
    EXPECT_EQ(refusal("GET", "/v1/sessions?user=%zz"), 400u);
    EXPECT_EQ(refusal("GET", "/v1/sessions?user=a%2"), 400u);
    EXPECT_EQ(refusal("GET", "/v1/sessions?user=%"), 400u);
    EXPECT_EQ(refusal("POST", "/v1/users/al%g1ce/revoke"), 400u);
    EXPECT_EQ(refusal("POST", "/v1/users/alice%/revoke"), 400u);
}

TEST(AdminRequest, ControlCharactersInNamesAre400) {
    // A line break would split the revocation state file's line.
    EXPECT_EQ(refusal("POST", "/v1/users/alice%0abob/revoke"), 400u);
    EXPECT_EQ(refusal("POST", "/v1/users/alice%0A/revoke"), 400u);
    EXPECT_EQ(refusal("DELETE", "/v1/users/alice%0d/revoke"), 400u);
    EXPECT_EQ(refusal("POST", "/v1/users/%00/revoke"), 400u);
    EXPECT_EQ(refusal("POST", "/v1/users/a%7Fb/revoke"), 400u);
    EXPECT_EQ(refusal("DELETE", "/v1/sessions?user=alice%0a"), 400u);
    EXPECT_EQ(refusal("GET", "/v1/sessions?client=1.2.3.4%09"), 400u);
}

TEST(AdminRequest, EmptyUserIs400) {
    EXPECT_EQ(refusal("POST", "/v1/users//revoke"), 400u);
    EXPECT_EQ(refusal("DELETE", "/v1/users//revoke"), 400u);
}

TEST(AdminRequest, DeleteAllSessionsNeedsAUser) {
    EXPECT_EQ(refusal("DELETE", "/v1/sessions"), 400u);
    EXPECT_EQ(refusal("DELETE", "/v1/sessions?user="), 400u);
    EXPECT_EQ(refusal("DELETE", "/v1/sessions?client=1.2.3.4"), 400u);
}

TEST(AdminRequest, BadUntilInQueryIs400) {
    EXPECT_EQ(refusal("POST", "/v1/users/alice/revoke?until=soon"), 400u);
    EXPECT_EQ(refusal("POST", "/v1/users/alice/revoke?until="), 400u);
    EXPECT_EQ(refusal("POST", "/v1/users/alice/revoke?until=12x"), 400u);
    EXPECT_EQ(refusal("POST", "/v1/users/alice/revoke?until=99999999999999999999"), 400u);
}

TEST(AdminRequest, BadBodyIs400) {
    const auto revoke = [](std::string_view body) {
        return refusal("POST", "/v1/users/alice/revoke", body);
    };
    EXPECT_EQ(revoke(R"({"until": "soon"})"), 400u);
    EXPECT_EQ(revoke(R"({"until": 5, "reason": "abuse"})"), 400u);  // extra key
    EXPECT_EQ(revoke(R"({"reason": "abuse", "until": 5})"), 400u);
    EXPECT_EQ(revoke(R"({"until": 5}})"), 400u);
    EXPECT_EQ(revoke(R"({"until"})"), 400u);
    EXPECT_EQ(revoke(R"({"until": })"), 400u);
    EXPECT_EQ(revoke(R"({"until": 1.5})"), 400u);
    EXPECT_EQ(revoke(R"({"reason": "abuse"})"), 400u);
    EXPECT_EQ(revoke(R"([5])"), 400u);
    EXPECT_EQ(revoke("until=5"), 400u);
    EXPECT_EQ(revoke("{"), 400u);
}

TEST(AdminRequest, UnknownPathsAre404) {
    EXPECT_EQ(refusal("GET", "/"), 404u);
    EXPECT_EQ(refusal("GET", ""), 404u);
    EXPECT_EQ(refusal("GET", "/v1"), 404u);
    EXPECT_EQ(refusal("GET", "/v1/"), 404u);
    EXPECT_EQ(refusal("GET", "/v2/sessions"), 404u);
    EXPECT_EQ(refusal("GET", "v1/sessions"), 404u);
    EXPECT_EQ(refusal("GET", "/v1/nothing"), 404u);
    EXPECT_EQ(refusal("GET", "/v1/users/alice"), 404u);
    EXPECT_EQ(refusal("POST", "/v1/users/alice/ban"), 404u);
    EXPECT_EQ(refusal("POST", "/v1/users/alice/revoke/now"), 404u);
    EXPECT_EQ(refusal("DELETE", "/v1/sessions/0-1/x"), 404u);
}

TEST(AdminRequest, UnknownSessionIdIs404) {
    EXPECT_EQ(refusal("DELETE", "/v1/sessions/abc"), 404u);
    EXPECT_EQ(refusal("DELETE", "/v1/sessions/0-0"), 404u);
    EXPECT_EQ(refusal("DELETE", "/v1/sessions/"), 404u);
    EXPECT_EQ(refusal("DELETE", "/v1/sessions/17"), 404u);
}

// ---------------------------------------------------------------------------------------------
// Bearer token

TEST(BearerMatches, RightTokenMatches) {
    EXPECT_TRUE(bearer_matches("Bearer s3cret-token", "s3cret-token"));
}

TEST(BearerMatches, SchemeIsCaseInsensitive) {
    EXPECT_TRUE(bearer_matches("bearer s3cret-token", "s3cret-token"));
    EXPECT_TRUE(bearer_matches("BEARER s3cret-token", "s3cret-token"));
}

TEST(BearerMatches, TokenIsCaseSensitive) {
    EXPECT_FALSE(bearer_matches("Bearer S3CRET-TOKEN", "s3cret-token"));
}

TEST(BearerMatches, WrongTokenDoesNotMatch) {
    EXPECT_FALSE(bearer_matches("Bearer s3cret-tokeN", "s3cret-token"));
    EXPECT_FALSE(bearer_matches("Bearer x3cret-token", "s3cret-token"));
}

TEST(BearerMatches, PrefixOrSuffixOfTheTokenDoesNotMatch) {
    EXPECT_FALSE(bearer_matches("Bearer s3cret", "s3cret-token"));
    EXPECT_FALSE(bearer_matches("Bearer s3cret-token2", "s3cret-token"));
    EXPECT_FALSE(bearer_matches("Bearer xs3cret-token", "s3cret-token"));
    EXPECT_FALSE(bearer_matches("Bearer s3cret-token ", "s3cret-token"));
}

TEST(BearerMatches, MissingOrOtherSchemeDoesNotMatch) {
    EXPECT_FALSE(bearer_matches("s3cret-token", "s3cret-token"));
    EXPECT_FALSE(bearer_matches("Bearers3cret-token", "s3cret-token"));
    EXPECT_FALSE(bearer_matches("Bearer  s3cret-token", "s3cret-token"));
    EXPECT_FALSE(bearer_matches("Basic s3cret-token", "s3cret-token"));
    EXPECT_FALSE(bearer_matches("Basic  s3cret-token", "s3cret-token"));
    EXPECT_FALSE(bearer_matches("", "s3cret-token"));
}

TEST(BearerMatches, OnlyASpaceSeparatesSchemeAndToken) {
    // Same length as "Bearer " + token, a different separator byte.
    EXPECT_FALSE(bearer_matches("Bearer\ts3cret-token", "s3cret-token"));
    EXPECT_FALSE(bearer_matches("Bearer_s3cret-token", "s3cret-token"));
    EXPECT_FALSE(bearer_matches(std::string_view("Bearer\0s3cret-token", 19), "s3cret-token"));
}

TEST(BearerMatches, EmptyTokenNeverMatches) {
    EXPECT_FALSE(bearer_matches("Bearer ", ""));
    EXPECT_FALSE(bearer_matches("", ""));
    EXPECT_FALSE(bearer_matches("Bearer", ""));
}

// ---------------------------------------------------------------------------------------------
// Failure limiter

const std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::time_point{} + 1h;

TEST(AdminFailureLimiter, BlocksASourceAfterTenFailures) {
    AdminFailureLimiter limiter;
    for (std::size_t i = 0; i + 1 < AdminFailureLimiter::max_failures; ++i) {
        limiter.failed("192.0.2.1", t0 + std::chrono::seconds(i));
    }
    EXPECT_FALSE(limiter.blocked("192.0.2.1", t0 + 10s));
    limiter.failed("192.0.2.1", t0 + 10s);
    EXPECT_TRUE(limiter.blocked("192.0.2.1", t0 + 10s));
    // Other sources are not locked out with it.
    EXPECT_FALSE(limiter.blocked("192.0.2.2", t0 + 10s));
    EXPECT_FALSE(limiter.blocked("2001:db8::1", t0 + 10s));
}

TEST(AdminFailureLimiter, FailuresOfOtherSourcesDoNotAddUp) {
    AdminFailureLimiter limiter;
    for (int i = 0; i < 5; ++i) limiter.failed("192.0.2.1", t0);
    for (int i = 0; i < 5; ++i) limiter.failed("192.0.2.2", t0);
    EXPECT_FALSE(limiter.blocked("192.0.2.1", t0));
    EXPECT_FALSE(limiter.blocked("192.0.2.2", t0));
}

TEST(AdminFailureLimiter, UnblocksWhenTheWindowEnds) {
    AdminFailureLimiter limiter;
    for (std::size_t i = 0; i < AdminFailureLimiter::max_failures; ++i) {
        limiter.failed("192.0.2.1", t0);
    }
    EXPECT_TRUE(limiter.blocked("192.0.2.1", t0 + AdminFailureLimiter::window - 1s));
    EXPECT_FALSE(limiter.blocked("192.0.2.1", t0 + AdminFailureLimiter::window));
    // A failure after the window starts a new count: one is not a lockout.
    limiter.failed("192.0.2.1", t0 + AdminFailureLimiter::window + 1s);
    EXPECT_FALSE(limiter.blocked("192.0.2.1", t0 + AdminFailureLimiter::window + 1s));
}

TEST(AdminFailureLimiter, FailuresSpreadOverMoreThanAWindowDoNotBlock) {
    AdminFailureLimiter limiter;
    for (std::size_t i = 0; i < 3 * AdminFailureLimiter::max_failures; ++i) {
        limiter.failed("192.0.2.1", t0 + std::chrono::seconds(7 * i));
        EXPECT_FALSE(limiter.blocked("192.0.2.1", t0 + std::chrono::seconds(7 * i))) << i;
    }
}

TEST(AdminFailureLimiter, ManySourcesForgetLapsedOnesButKeepALiveLockout) {
    AdminFailureLimiter limiter;
    // A full table of sources that failed once, long ago.
    for (std::size_t i = 0; i < AdminFailureLimiter::max_sources; ++i) {
        limiter.failed("old-" + std::to_string(i), t0);
    }
    const auto later = t0 + AdminFailureLimiter::window + 1s;
    for (std::size_t i = 0; i < AdminFailureLimiter::max_failures; ++i) {
        limiter.failed("192.0.2.1", later);
    }
    EXPECT_TRUE(limiter.blocked("192.0.2.1", later));
    // More new sources than the table holds, each within the lockout's window: the lapsed
    // entries make room and the locked-out source stays locked out until the table is full of
    // live entries.
    for (std::size_t i = 0; i + 1 < AdminFailureLimiter::max_sources; ++i) {
        limiter.failed("new-" + std::to_string(i), later);
    }
    EXPECT_TRUE(limiter.blocked("192.0.2.1", later));
}

TEST(AdminFailureLimiter, AFloodOfSourcesStaysBounded) {
    AdminFailureLimiter limiter;
    for (std::size_t i = 0; i < AdminFailureLimiter::max_failures; ++i) {
        limiter.failed("192.0.2.1", t0);
    }
    // Past max_sources live entries, the table starts over rather than grow: the one lockout
    // is forgotten too, which is the price of the bound.
    for (std::size_t i = 0; i < AdminFailureLimiter::max_sources; ++i) {
        limiter.failed("flood-" + std::to_string(i), t0);
    }
    EXPECT_FALSE(limiter.blocked("192.0.2.1", t0));
    // It still counts afresh afterwards.
    for (std::size_t i = 0; i < AdminFailureLimiter::max_failures; ++i) {
        limiter.failed("192.0.2.1", t0 + 1s);
    }
    EXPECT_TRUE(limiter.blocked("192.0.2.1", t0 + 1s));
}

// ---------------------------------------------------------------------------------------------
// Session ids

TEST(SessionId, TextIsWorkerDashSerial) {
    EXPECT_EQ(session_id_text(first_allocation_id(0)), "0-1");
    EXPECT_EQ(session_id_text(first_allocation_id(3) + 16), "3-17");
    EXPECT_EQ(session_id_text(first_allocation_id(65535)), "65535-1");
}

TEST(SessionId, RoundTrips) {
    for (const std::uint64_t id :
         {first_allocation_id(0), first_allocation_id(0) + 999, first_allocation_id(7) + 41,
          first_allocation_id(65535) + ((std::uint64_t{1} << 40) - 2)}) {
        const std::string text = session_id_text(id);
        EXPECT_EQ(parse_session_id(text), id) << text;
    }
}

TEST(SessionId, RejectsMalformedAndOutOfRangeIds) {
    for (const auto* text : {"",
                             "0",
                             "0-0",
                             "-1-2",
                             "1-",
                             "-",
                             "-5",
                             "a-b",
                             "1-b",
                             "a-1",
                             "1-2-3",
                             "1--2",
                             "1-+2",
                             " 1-2",
                             "1-2 ",
                             "65536-1",
                             "0-1099511627776",
                             "99999999999999999999-1",
                             "1-99999999999999999999",
                             "18446744073709551616-1"}) {
        EXPECT_EQ(parse_session_id(text), std::nullopt) << text;
    }
    EXPECT_EQ(parse_session_id("0-1099511627775"), (std::uint64_t{1} << 40) - 1);
}

// ---------------------------------------------------------------------------------------------
// JSON

TEST(JsonQuoted, EscapesQuotesBackslashesAndControlCharacters) {
    EXPECT_EQ(json_quoted("alice"), "\"alice\"");
    EXPECT_EQ(json_quoted(""), "\"\"");
    EXPECT_EQ(json_quoted("a\"b"), "\"a\\\"b\"");
    EXPECT_EQ(json_quoted("a\\b"), "\"a\\\\b\"");
    EXPECT_EQ(json_quoted("a\nb"), "\"a\\u000ab\"");
    EXPECT_EQ(json_quoted("\t\r"), "\"\\u0009\\u000d\"");
    EXPECT_EQ(json_quoted(std::string_view("\0", 1)), "\"\\u0000\"");
    EXPECT_EQ(json_quoted("\x1f\x7f"), "\"\\u001f\\u007f\"");
    // UTF-8 passes through as it is.
    EXPECT_EQ(json_quoted("caf\xC3\xA9"), "\"caf\xC3\xA9\"");
}

TEST(JsonError, IsAnObjectWithTheMessage) {
    const HttpAnswer a = json_error(404, "no \"such\" thing");
    EXPECT_EQ(a.status, 404u);
    EXPECT_EQ(a.content_type, "application/json");
    EXPECT_EQ(a.body, "{\"error\": \"no \\\"such\\\" thing\"}\n");
}

TEST(Rfc3339, KnownTimePoints) {
    using std::chrono::system_clock;
    EXPECT_EQ(rfc3339(system_clock::time_point{}), "1970-01-01T00:00:00.000Z");
    EXPECT_EQ(rfc3339(system_clock::time_point{1796655845123ms}), "2026-12-07T15:04:05.123Z");
    EXPECT_EQ(rfc3339(system_clock::time_point{1709251199s + 999ms}), "2024-02-29T23:59:59.999Z");
    // Below a millisecond is cut, not rounded up into the next second.
    EXPECT_EQ(rfc3339(system_clock::time_point{1709251199s} + 999999us),
              "2024-02-29T23:59:59.999Z");
}

TEST(OutcomeOf, GroupsStatuses) {
    EXPECT_EQ(outcome_of(200), AdminOutcome::ok);
    EXPECT_EQ(outcome_of(204), AdminOutcome::ok);
    EXPECT_EQ(outcome_of(400), AdminOutcome::bad_request);
    EXPECT_EQ(outcome_of(405), AdminOutcome::bad_request);
    EXPECT_EQ(outcome_of(401), AdminOutcome::unauthorized);
    EXPECT_EQ(outcome_of(429), AdminOutcome::rate_limited);
    EXPECT_EQ(outcome_of(404), AdminOutcome::not_found);
    EXPECT_EQ(outcome_of(500), AdminOutcome::failed);
    EXPECT_EQ(outcome_of(503), AdminOutcome::failed);
}

class AllocationJson : public ::testing::Test {
protected:
    AllocationJson() {
        record.id = first_allocation_id(2) + 4;
        record.username = "al\"ice";
        record.tuple = allocation::FiveTuple{
            protocol::TransportAddress::parse("[::ffff:203.0.113.5]:40000").value(),
            protocol::TransportAddress::parse("198.51.100.1:3478").value(),
            protocol::Transport::tcp};
        record.relays = std::vector<protocol::TransportAddress>{
            protocol::TransportAddress::parse("198.51.100.20:50001").value(),
            protocol::TransportAddress::parse("[2001:db8::20]:50002").value()};
        record.started = clock.steady_now - 10s;
        record.expires = clock.steady_now + 590s;
        record.permissions = 3;
        record.channels = 1;
        record.usage.packets_to_peer = 11;
        record.usage.bytes_to_peer = 1234;
        record.usage.packets_to_client = 12;
        record.usage.bytes_to_client = 5678;
    }

    bool has(const std::string& json, std::string_view piece) const {
        return json.find(piece) != std::string::npos;
    }

    WallClock clock{std::chrono::steady_clock::time_point{} + 5000s,
                    std::chrono::system_clock::time_point{1796655845123ms}};
    allocation::AllocationRecord record;
};

TEST_F(AllocationJson, LiveSessionHasEveryField) {
    const std::string json = allocation_json(record, "tern.test", clock);
    EXPECT_TRUE(json.starts_with("{") && json.ends_with("}")) << json;
    EXPECT_TRUE(has(json, R"("id": "2-5")")) << json;
    EXPECT_TRUE(has(json, R"("user": "al\"ice")")) << json;
    EXPECT_TRUE(has(json, R"("realm": "tern.test")")) << json;
    // An IPv4-mapped client shows as the IPv4 address it is.
    EXPECT_TRUE(has(json, R"("client": "203.0.113.5:40000")")) << json;
    EXPECT_TRUE(has(json, R"("transport": "tcp")")) << json;
    EXPECT_TRUE(has(json, R"("relayed": ["198.51.100.20:50001", "[2001:db8::20]:50002"])")) << json;
    EXPECT_TRUE(has(json, R"("started": "2026-12-07T15:03:55.123Z")")) << json;
    EXPECT_TRUE(has(json, R"("expires": "2026-12-07T15:13:55.123Z")")) << json;
    EXPECT_TRUE(has(json, R"("permissions": 3)")) << json;
    EXPECT_TRUE(has(json, R"("channels": 1)")) << json;
    EXPECT_TRUE(has(json, R"("bytes_to_peer": 1234)")) << json;
    EXPECT_TRUE(has(json, R"("packets_to_peer": 11)")) << json;
    EXPECT_TRUE(has(json, R"("bytes_to_client": 5678)")) << json;
    EXPECT_TRUE(has(json, R"("packets_to_client": 12)")) << json;
    EXPECT_FALSE(has(json, "\"ended\"")) << json;
    EXPECT_FALSE(has(json, "\"reason\"")) << json;
}

TEST_F(AllocationJson, UsageRecordHasEndDurationAndReasonInsteadOfExpiry) {
    const std::string json =
        allocation_json(record, "tern.test", clock, allocation::EndReason::credential_expired);
    EXPECT_TRUE(has(json, R"("started": "2026-12-07T15:03:55.123Z")")) << json;
    EXPECT_TRUE(has(json, R"("ended": "2026-12-07T15:04:05.123Z")")) << json;
    EXPECT_TRUE(has(json, R"("duration_seconds": 10.000)")) << json;
    EXPECT_TRUE(has(json, R"("reason": "credential_expired")")) << json;
    EXPECT_FALSE(has(json, "\"expires\"")) << json;
    EXPECT_TRUE(has(json, R"("bytes_to_client": 5678)")) << json;
}

TEST_F(AllocationJson, NoRelaysIsAnEmptyList) {
    record.relays = {};
    const std::string json = allocation_json(record, "", clock);
    EXPECT_TRUE(has(json, R"("relayed": [])")) << json;
    EXPECT_TRUE(has(json, R"("realm": "")")) << json;
}

}  // namespace
}  // namespace tern::server
