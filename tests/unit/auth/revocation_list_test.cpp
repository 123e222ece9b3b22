// RevocationList: which verified usernames a revocation refuses (a REST username by its user
// part, never by a look-alike), until when, and the state file's round trip and its errors.
#include "tern/auth/revocation_list.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

namespace tern::auth {
namespace {

constexpr std::int64_t now = 1'800'000'000;
constexpr std::int64_t later = now + 3600;

RevocationList alice_revoked() {
    RevocationList list;
    list.revoke("alice", later);
    return list;
}

TEST(UserOf, RestUsernameNamesItsUserPartAnyOtherNameItself) {
    EXPECT_EQ(user_of("1700000000:alice"), "alice");
    EXPECT_EQ(user_of("alice"), "alice");
    // Only the first colon separates: the user part may hold more.
    EXPECT_EQ(user_of("1700000000:a:b"), "a:b");
    // Not a timestamp before the colon: no REST username, so the whole name is the user.
    EXPECT_EQ(user_of("x:alice"), "x:alice");
    EXPECT_EQ(user_of("-5:alice"), "-5:alice");
    EXPECT_EQ(user_of(":alice"), ":alice");
}

TEST(RevocationList, RefusesTheExactName) {
    const RevocationList list = alice_revoked();
    EXPECT_TRUE(list.refuses("alice", now));
}

TEST(RevocationList, RefusesRestUsernamesOfTheUser) {
    const RevocationList list = alice_revoked();
    EXPECT_TRUE(list.refuses("1700000000:alice", now));
    // Any expiry: a fresh credential minted for alice is refused as well.
    EXPECT_TRUE(list.refuses("1900000000:alice", now));
}

TEST(RevocationList, LeavesOtherUsersAndLookAlikesAlone) {
    const RevocationList list = alice_revoked();
    EXPECT_FALSE(list.refuses("alicex", now));
    EXPECT_FALSE(list.refuses("xalice", now));
    EXPECT_FALSE(list.refuses("Alice", now));
    EXPECT_FALSE(list.refuses("1700000000:bob", now));
    EXPECT_FALSE(list.refuses("1700000000:alicex", now));
    EXPECT_FALSE(list.refuses("bob", now));
    // A prefix that is no timestamp makes the whole string a name of its own.
    EXPECT_FALSE(list.refuses("x:alice", now));
    EXPECT_FALSE(list.refuses("17a:alice", now));
}

TEST(RevocationList, ANameWithAColonIsRevokedAsItself) {
    RevocationList list;
    list.revoke("x:alice", later);
    EXPECT_TRUE(list.refuses("x:alice", now));
    EXPECT_FALSE(list.refuses("alice", now));
    EXPECT_FALSE(list.refuses("1700000000:alice", now));
}

TEST(RevocationList, RevokingTheRestUsernameItselfRefusesOnlyThatOne) {
    RevocationList list;
    list.revoke("1700000000:alice", later);
    EXPECT_TRUE(list.refuses("1700000000:alice", now));
    EXPECT_FALSE(list.refuses("1700000001:alice", now));
    EXPECT_FALSE(list.refuses("alice", now));
}

TEST(RevocationList, RefusesOnlyUntilTheGivenTime) {
    const RevocationList list = alice_revoked();
    EXPECT_TRUE(list.refuses("alice", later - 1));
    EXPECT_FALSE(list.refuses("alice", later));
    EXPECT_FALSE(list.refuses("1700000000:alice", later + 1));

    RevocationList lapsed;
    lapsed.revoke("bob", now - 1);
    EXPECT_FALSE(lapsed.refuses("bob", now));
    EXPECT_FALSE(lapsed.refuses("1700000000:bob", now));
}

TEST(RevocationList, RevokeReplacesTheEarlierUntil) {
    RevocationList list = alice_revoked();
    list.revoke("alice", now + 10);
    EXPECT_EQ(list.size(), 1u);
    EXPECT_EQ(list.until("alice"), now + 10);
    EXPECT_FALSE(list.refuses("alice", now + 10));
}

TEST(RevocationList, LiftEndsTheRevocation) {
    RevocationList list = alice_revoked();
    list.revoke("bob", later);
    EXPECT_TRUE(list.lift("alice"));
    EXPECT_FALSE(list.refuses("alice", now));
    EXPECT_FALSE(list.refuses("1700000000:alice", now));
    EXPECT_EQ(list.until("alice"), std::nullopt);
    EXPECT_FALSE(list.lift("alice"));  // already lifted
    EXPECT_FALSE(list.lift("carol"));  // never revoked
    EXPECT_TRUE(list.refuses("bob", now));
    EXPECT_EQ(list.size(), 1u);
}

TEST(RevocationList, ForgetLapsedDropsOnlyEntriesThatNoLongerRefuse) {
    RevocationList list;
    list.revoke("gone", now - 1);
    list.revoke("ends-now", now);
    list.revoke("stays", now + 1);
    list.forget_lapsed(now);
    EXPECT_EQ(list.size(), 1u);
    EXPECT_EQ(list.until("gone"), std::nullopt);
    EXPECT_EQ(list.until("ends-now"), std::nullopt);
    EXPECT_EQ(list.until("stays"), now + 1);
    EXPECT_TRUE(list.refuses("stays", now));
}

TEST(RevocationList, EmptyListRefusesNobody) {
    const RevocationList list;
    EXPECT_FALSE(list.refuses("alice", now));
    EXPECT_FALSE(list.refuses("", now));
    EXPECT_TRUE(list.to_text().starts_with("#"));
}

TEST(RevocationList, TextRoundTripKeepsAwkwardNames) {
    RevocationList list;
    list.revoke("alice", later);
    list.revoke("bob smith", now + 5);
    list.revoke("x:alice", now + 6);
    list.revoke("1700000000:carol", now + 7);
    list.revoke(" leading space", now + 8);
    list.revoke("#not-a-comment", now + 9);
    list.revoke("neg", -42);
    list.revoke("big", std::numeric_limits<std::int64_t>::max());

    const std::string text = list.to_text();
    const auto parsed = RevocationList::parse(text);
    EXPECT_TRUE(parsed.errors.empty()) << parsed.errors.front();
    EXPECT_EQ(parsed.list.entries(), list.entries());
    EXPECT_EQ(parsed.list.until("bob smith"), now + 5);
    EXPECT_EQ(parsed.list.until(" leading space"), now + 8);
    // Written again, the same bytes: nothing is lost or reordered.
    EXPECT_EQ(parsed.list.to_text(), text);
}

TEST(RevocationList, ParseSkipsCommentsAndBlankLinesAndTakesTheLastOfADuplicate) {
    const auto parsed =
        RevocationList::parse("# header\n\n100 alice\n# 200 bob\n300 alice\n400 carol");
    EXPECT_TRUE(parsed.errors.empty());
    EXPECT_EQ(parsed.list.size(), 2u);
    EXPECT_EQ(parsed.list.until("alice"), 300);
    EXPECT_EQ(parsed.list.until("bob"), std::nullopt);
    EXPECT_EQ(parsed.list.until("carol"), 400);  // no final newline
}

TEST(RevocationList, ParseErrorsNameTheLineAndSkipIt) {
    const auto parsed = RevocationList::parse(
        "# header\n"
        "100 alice\n"
        "soon bob\n"                   // 3: no number
        "200\n"                        // 4: no user
        "300 \n"                       // 5: empty user
        "12x carol\n"                  // 6: trailing junk in the number
        "99999999999999999999 dave\n"  // 7: does not fit
        "+5 erin\n"                    // 8: a sign from_chars does not take
        "500 frank\n");
    EXPECT_EQ(parsed.list.size(), 2u);
    EXPECT_EQ(parsed.list.until("alice"), 100);
    EXPECT_EQ(parsed.list.until("frank"), 500);
    ASSERT_EQ(parsed.errors.size(), 6u);
    const char* const lines[] = {"line 3:", "line 4:", "line 5:", "line 6:", "line 7:", "line 8:"};
    for (std::size_t i = 0; i < parsed.errors.size(); ++i) {
        EXPECT_TRUE(parsed.errors[i].starts_with(lines[i])) << parsed.errors[i];
    }
    for (const auto* user : {"bob", "carol", "dave", "erin", ""}) {
        EXPECT_EQ(parsed.list.until(user), std::nullopt) << user;
    }
}

}  // namespace
}  // namespace tern::auth
