// auth.max_credential_lifetime against a real ternd: a TURN REST username whose expiry lies
// further ahead than the ceiling is refused as an expired one is (401, and no allocation), a
// timestamp that is no int64 is refused as an unknown user (401), a normal one is accepted, and
// the ceiling follows the config file, on reload too. Each refusal sits beside a control that
// succeeds with the same secret, so the 401 cannot come from a client mistake.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"
#include "tern/protocol/message_builder.hpp"

namespace tern::test {
namespace {

using protocol::MessageBuilder;
using protocol::Method;

constexpr const char* secret = "lifetime-secret-0123456789";
constexpr std::int64_t hour = 3600;
constexpr std::int64_t day = 86400;
constexpr std::int64_t year = 365 * day;
constexpr const char* reloaded = "SIGHUP: configuration reloaded from";

// One UDP listener on loopback and one worker, so that once one request sees a reload every
// later one does; `auth_extra` goes into the auth section as written.
std::string lifetime_yaml(std::uint16_t port, const std::string& auth_extra) {
    return "realm: lifetime.test\n"
           "threads: 1\n"
           "listen: [ \"udp://127.0.0.1:" +
           std::to_string(port) +
           "\" ]\n"
           "auth:\n"
           "  secrets: [ \"" +
           std::string(secret) + "\" ]\n" + auth_extra +
           "relay: { ports: 47000-47499 }\n"
           "limits: { shutdown_grace: 0 }\n";
}

struct Ternd {
    std::uint16_t port = free_port();
    std::unique_ptr<TerndProcess> process;

    explicit Ternd(const std::string& auth_extra = {})
        : process(std::make_unique<TerndProcess>(lifetime_yaml(port, auth_extra))) {}
    bool ready() const { return process->wait_for_output("is listening on", 10s); }

    // Rewrites the config with `auth_extra`, sends SIGHUP and waits for reload number `n`.
    bool reload(const std::string& auth_extra, std::size_t n) const {
        process->rewrite_config(lifetime_yaml(port, auth_extra));
        process->send_signal(SIGHUP);
        for (const auto deadline = std::chrono::steady_clock::now() + 5s;
             std::chrono::steady_clock::now() < deadline;) {
            if (count_of(process->output(), reloaded) >= n) return true;
            std::this_thread::sleep_for(10ms);
        }
        return false;
    }
};

// A client holding the credential `username` that the backend with `secret` would hand out.
std::unique_ptr<TurnClient> client_for(const Ternd& server, const std::string& username) {
    return std::make_unique<TurnClient>(loopback4(server.port), username,
                                        rest_password(secret, username));
}

// The result code of an Allocate (UDP relay) made with `username` from a fresh client.
int allocate_code(const Ternd& server, const std::string& username, std::string* detail = nullptr) {
    auto client = client_for(server, username);
    const Reply reply = client->request(Method::allocate, TurnClient::udp_transport());
    if (detail != nullptr) *detail = reply.describe();
    // A refusal must not carry a relayed address.
    if (reply.code() != 0) {
        EXPECT_FALSE(reply.view.xor_relayed_address()) << username;
    }
    return reply.code();
}

// Retries `check` for a while: a reload is applied on each worker's own thread, so the log line
// may come a moment before the last worker has it.
bool eventually(const std::function<bool()>& check) {
    for (const auto deadline = std::chrono::steady_clock::now() + 3s;
         std::chrono::steady_clock::now() < deadline;) {
        if (check()) return true;
        std::this_thread::sleep_for(50ms);
    }
    return check();
}

TEST(CredentialLifetime, FarFutureUsernamesGet401LikeExpiredOnesUnderTheDefaultCeiling) {
    Ternd server;
    ASSERT_TRUE(server.ready()) << server.process->output();
    const std::int64_t now = unix_now();
    std::string detail;

    // The control: a one-hour credential from the same secret allocates.
    EXPECT_EQ(allocate_code(server, rest_username(now + hour, "alice"), &detail), 0)
        << detail << "\n"
        << server.process->output();
    // What an expired credential gets, for comparison.
    EXPECT_EQ(allocate_code(server, rest_username(now - hour, "alice"), &detail), 401) << detail;

    // Ten years, a hundred years and the last int64 second: refused the same way.
    for (const std::int64_t expiry :
         {now + 10 * year, now + 100 * year, std::numeric_limits<std::int64_t>::max()}) {
        EXPECT_EQ(allocate_code(server, rest_username(expiry, "alice"), &detail), 401)
            << expiry << ": " << detail;
    }
    // Four days is past the default three.
    EXPECT_EQ(allocate_code(server, rest_username(now + 4 * day, "alice"), &detail), 401) << detail;
    // Two days is within it.
    EXPECT_EQ(allocate_code(server, rest_username(now + 2 * day, "alice"), &detail), 0) << detail;
}

TEST(CredentialLifetime, TimestampsThatAreNoInt64Get401) {
    Ternd server;
    ASSERT_TRUE(server.ready()) << server.process->output();
    std::string detail;
    std::vector<std::string> timestamps = {"9223372036854775808",
                                           "18446744073709551616",
                                           "99999999999999999999",
                                           "-1",
                                           "-0",
                                           "1e10",
                                           "+"};
    // Appended, not "+" + to_string(): g++ 12 raises a false -Wrestrict on that.
    timestamps.back() += std::to_string(unix_now() + hour);
    for (const auto& timestamp : timestamps) {
        EXPECT_EQ(allocate_code(server, timestamp + ":alice", &detail), 401)
            << timestamp << ": " << detail;
    }
    EXPECT_EQ(allocate_code(server, rest_username(unix_now() + hour, "alice"), &detail), 0)
        << detail;
}

TEST(CredentialLifetime, TheCeilingComesFromTheConfig) {
    // The most the config allows: one year.
    Ternd server("  max_credential_lifetime: 31536000\n");
    ASSERT_TRUE(server.ready()) << server.process->output();
    const std::int64_t now = unix_now();
    std::string detail;
    EXPECT_EQ(allocate_code(server, rest_username(now + 200 * day, "alice"), &detail), 0)
        << detail << "\n"
        << server.process->output();
    EXPECT_EQ(allocate_code(server, rest_username(now + year - hour, "alice"), &detail), 0)
        << detail;
    // Still refused: beyond even the largest ceiling.
    EXPECT_EQ(allocate_code(server, rest_username(now + 10 * year, "alice"), &detail), 401)
        << detail;
    EXPECT_EQ(allocate_code(server, rest_username(now + year + day, "alice"), &detail), 401)
        << detail;
}

TEST(CredentialLifetime, AReloadAppliesANewCeiling) {
    Ternd server;
    ASSERT_TRUE(server.ready()) << server.process->output();
    const std::string two_hundred_days = rest_username(unix_now() + 200 * day, "alice");
    EXPECT_EQ(allocate_code(server, two_hundred_days), 401);

    ASSERT_TRUE(server.reload("  max_credential_lifetime: 31536000\n", 1))
        << server.process->output();
    EXPECT_TRUE(eventually([&] { return allocate_code(server, two_hundred_days) == 0; }))
        << server.process->output();

    // Down to ten minutes: even a one-hour credential is now too far ahead.
    ASSERT_TRUE(server.reload("  max_credential_lifetime: 600\n", 2)) << server.process->output();
    const std::string one_hour = rest_username(unix_now() + hour, "alice");
    EXPECT_TRUE(eventually([&] { return allocate_code(server, one_hour) == 401; }))
        << server.process->output();
    EXPECT_EQ(allocate_code(server, rest_username(unix_now() + 300, "alice")), 0);
}

// "As if expired" all the way: under the default auth.expiry (allocate) an expired credential
// may still refresh the allocation it made, so a credential that a lowered ceiling now refuses
// may too; it never allocates again. Under `request`, neither.
void refresh_after_the_ceiling_drops(const std::string& expiry_policy, int refresh_code) {
    Ternd server("  max_credential_lifetime: 31536000\n" + expiry_policy);
    ASSERT_TRUE(server.ready()) << server.process->output();
    const std::string username = rest_username(unix_now() + 200 * day, "alice");
    auto first = client_for(server, username);
    const Reply granted = first->request(Method::allocate, TurnClient::udp_transport());
    ASSERT_EQ(granted.code(), 0) << granted.describe() << "\n" << server.process->output();

    ASSERT_TRUE(server.reload(expiry_policy, 1)) << server.process->output();  // default ceiling
    EXPECT_TRUE(eventually([&] { return allocate_code(server, username) == 401; }))
        << server.process->output();
    const Reply refreshed =
        first->request(Method::refresh, [](MessageBuilder& b) { b.add_lifetime(600); });
    EXPECT_EQ(refreshed.code(), refresh_code) << refreshed.describe();
}

TEST(CredentialLifetime, UnderExpiryAllocateALiveAllocationStillRefreshes) {
    refresh_after_the_ceiling_drops("", 0);
}

TEST(CredentialLifetime, UnderExpiryRequestALiveAllocationCannotRefresh) {
    refresh_after_the_ceiling_drops("  expiry: request\n", 401);
}

}  // namespace
}  // namespace tern::test
