// Unauthenticated request floods against a real ternd (limits.unauthenticated_rate/_burst): one
// source blasting Binding requests and unauthenticated Allocates gets about its burst plus its
// rate in answers and then silence, while a second source address and an authenticated client
// on the flooding address itself keep being answered. The same flood with the limit turned off
// is answered in full, so the cut is the limiter's doing and not lost datagrams.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <thread>

#include "support.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"

namespace tern::test {
namespace {

using protocol::MessageBuilder;
using protocol::MessageClass;
using protocol::MessageView;
using protocol::Method;
using Clock = std::chrono::steady_clock;

constexpr int rate = 20;
constexpr int burst = 40;
constexpr int bindings = 2000;
constexpr int allocates = 500;

std::string flood_yaml(std::uint16_t port, int unauthenticated_rate, int threads = 1) {
    return "realm: flood.test\n"
           "threads: " +
           std::to_string(threads) +
           "\n"
           "listen: [ \"udp://127.0.0.1:" +
           std::to_string(port) +
           "\" ]\n"
           "auth: { users: { alice: { password: wonderland } } }\n"
           "limits: { unauthenticated_rate: " +
           std::to_string(unauthenticated_rate) +
           ", unauthenticated_burst: " + std::to_string(burst) +
           ", allocation_bandwidth: 0, user_bandwidth: 0, shutdown_grace: 0 }\n"
           "log: { level: info }\n";
}

struct FloodResult {
    int sent = 0;
    int binding_answers = 0;    // Binding success responses to our transactions
    int challenge_answers = 0;  // 401 to our unauthenticated Allocates
    Clock::duration elapsed{};
};

using Key = std::array<std::uint8_t, 12>;

// Sends `count` requests made by `make` from `socket` in windows of 100, reading answers after
// each window until all of its answers are in or 30 ms pass in silence. Windows keep the
// datagrams in flight well inside the socket buffers, so with the limiter off nothing is lost
// and every request is answered; with it on, most windows end in silence.
void flood(UdpClient& socket, const TransportAddress& server, int count,
           Bytes (*make)(protocol::TransactionId), FloodResult& result) {
    constexpr int window = 100;
    std::set<Key> outstanding;
    for (int sent = 0; sent < count;) {
        const int n = std::min(window, count - sent);
        for (int i = 0; i < n; ++i) {
            const auto id = random_id();
            outstanding.insert(id.bytes);
            ASSERT_TRUE(socket.send_to(server, make(id)));
        }
        sent += n;
        result.sent += n;
        while (!outstanding.empty()) {
            const auto got = socket.receive(30ms);
            if (!got) break;
            MessageView v;
            if (MessageView::parse(*got, v) != protocol::ParseError::ok) continue;
            if (outstanding.erase(v.transaction_id().bytes) == 0) continue;
            if (v.method() == Method::binding &&
                v.message_class() == MessageClass::success_response) {
                ++result.binding_answers;
            } else if (v.method() == Method::allocate && v.error_code() &&
                       v.error_code()->code == 401) {
                ++result.challenge_answers;
            }
        }
        // What a window did not get answered stays unanswered; late answers would still match.
    }
}

Bytes make_binding(protocol::TransactionId id) {
    Bytes buf(64);
    MessageBuilder b(buf, {Method::binding, MessageClass::request}, id);
    b.add_fingerprint();
    const auto out = b.finish();
    return Bytes(out.begin(), out.end());
}

// No MESSAGE-INTEGRITY: always a 401 challenge, which costs the sender a token.
Bytes make_allocate(protocol::TransactionId id) {
    Bytes buf(128);
    MessageBuilder b(buf, {Method::allocate, MessageClass::request}, id);
    b.add_requested_transport(17);
    b.add_fingerprint();
    const auto out = b.finish();
    return Bytes(out.begin(), out.end());
}

struct FloodRun {
    FloodResult flood;
    Clock::duration since_first_token{};  // from the first answer to 127.0.0.1 to the end
    int authenticated_sent = 0;
    int authenticated_answered = 0;
    int other_source_sent = 0;
    int other_source_answered = 0;
};

// The whole scenario against one ternd: an authenticated client on 127.0.0.1 allocates (its 401
// challenge is the first token 127.0.0.1 spends), then a flood from another 127.0.0.1 port while
// that client keeps refreshing and a client on 127.0.0.2 sends an occasional Binding.
FloodRun run_flood(int unauthenticated_rate) {
    FloodRun run;
    const std::uint16_t port = free_port();
    TerndProcess ternd(flood_yaml(port, unauthenticated_rate));
    EXPECT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    const auto server = loopback4(port);

    const auto start = Clock::now();
    TurnClient authenticated(server, "alice", "wonderland", loopback4(0));
    const Reply allocated = authenticated.request(Method::allocate, TurnClient::udp_transport());
    EXPECT_EQ(allocated.code(), 0) << allocated.describe() << "\n" << ternd.output();
    if (allocated.code() != 0) return run;

    std::atomic<bool> done{false};
    std::thread flooder([&] {
        UdpClient socket(loopback4(0));
        const auto flood_start = Clock::now();
        flood(socket, server, bindings, make_binding, run.flood);
        flood(socket, server, allocates, make_allocate, run.flood);
        run.flood.elapsed = Clock::now() - flood_start;
        run.since_first_token = Clock::now() - start;
        done = true;
    });

    // 127.0.0.2 is another source: its own bucket, untouched by the flood. A Binding every
    // 50 ms stays well within its burst, so every one must be answered.
    UdpClient other(TransportAddress::v4({127, 0, 0, 2}, 0));
    auto last_other = Clock::now() - 1s;
    while (!done) {
        // One try each, no retransmission: an authenticated request that paid into the empty
        // bucket would go unanswered, and a retry must not hide that.
        const Reply refreshed = authenticated.exchange(
            authenticated.build(Method::refresh, [](MessageBuilder& b) { b.add_lifetime(600); }),
            1);
        ++run.authenticated_sent;
        if (refreshed.code() == 0) ++run.authenticated_answered;
        if (Clock::now() - last_other >= 50ms && run.other_source_sent < burst / 2) {
            last_other = Clock::now();
            protocol::TransactionId id;
            const Bytes request = binding_request(&id);
            ++run.other_source_sent;
            other.send_to(server, request);
            for (auto deadline = Clock::now() + 1s; Clock::now() < deadline;) {
                const auto got = other.receive(100ms);
                MessageView v;
                if (got && MessageView::parse(*got, v) == protocol::ParseError::ok &&
                    v.transaction_id().bytes == id.bytes) {
                    ++run.other_source_answered;
                    break;
                }
            }
        }
        std::this_thread::sleep_for(5ms);
    }
    flooder.join();
    EXPECT_TRUE(ternd.running()) << ternd.output();
    return run;
}

TEST(FloodUnauthenticated, OneSourceIsCutToItsBurstAndRateOthersAndAuthenticatedAreServed) {
    const FloodRun run = run_flood(rate);
    const auto& f = run.flood;
    const double seconds = std::chrono::duration<double>(run.since_first_token).count();
    const int answers = f.binding_answers + f.challenge_answers;
    std::printf(
        "flood (rate %d/s, burst %d): sent %d (%d Binding, %d Allocate) in %.2f s, answered %d "
        "(%d Binding, %d 401); authenticated Refresh %d/%d answered; 127.0.0.2 Binding %d/%d "
        "answered\n",
        rate, burst, f.sent, bindings, allocates, std::chrono::duration<double>(f.elapsed).count(),
        answers, f.binding_answers, f.challenge_answers, run.authenticated_answered,
        run.authenticated_sent, run.other_source_answered, run.other_source_sent);
    RecordProperty("flood_sent", f.sent);
    RecordProperty("flood_answered", answers);

    ASSERT_EQ(f.sent, bindings + allocates);
    // The bucket starts full (burst) and refills at `rate`; the authenticated client's one 401
    // challenge came out of the same bucket. +2 for the refill between our clock reads.
    const double ceiling = burst + rate * seconds + 2;
    EXPECT_LE(answers + 1, ceiling) << "seconds " << seconds;
    // At least the burst (less that one challenge) was answered: the limit is not a blanket ban.
    EXPECT_GE(answers, burst - 1);
    EXPECT_LT(answers, f.sent / 10);
    // The Allocates came after the Binding flood had emptied the bucket: only the refill
    // answers them, a handful, not 500.
    EXPECT_LE(f.challenge_answers, rate * std::chrono::duration<double>(f.elapsed).count() + 2);

    // Authenticated requests from the flooding address itself are never limited.
    EXPECT_GT(run.authenticated_sent, 10);
    EXPECT_EQ(run.authenticated_answered, run.authenticated_sent);
    // Another source address keeps its own bucket.
    EXPECT_GT(run.other_source_sent, 3);
    EXPECT_EQ(run.other_source_answered, run.other_source_sent);
}

// SO_REUSEPORT hashes each source port to a worker; the buckets are one table for the whole
// process, so spreading a flood over 16 ports and both workers does not double its share.
TEST(FloodUnauthenticated, ASourceSpreadOverWorkersStillGetsOneBucket) {
    const std::uint16_t port = free_port();
    TerndProcess ternd(flood_yaml(port, rate, 2));
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    const auto server = loopback4(port);
    FloodResult result;
    const auto start = Clock::now();
    for (int i = 0; i < 16; ++i) {
        UdpClient socket(loopback4(0));
        flood(socket, server, bindings / 16, make_binding, result);
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("flood over 16 ports, 2 workers: sent %d in %.2f s, answered %d\n", result.sent,
                seconds, result.binding_answers);
    ASSERT_EQ(result.sent, bindings / 16 * 16);
    // One bucket: a bucket per worker would answer about twice the burst.
    EXPECT_LE(result.binding_answers, burst + rate * seconds + 2);
    EXPECT_GE(result.binding_answers, burst);
    EXPECT_TRUE(ternd.running()) << ternd.output();
}

TEST(FloodUnauthenticated, WithTheLimitOffEveryRequestIsAnswered) {
    // The control for the test above: the same flood, windows and sockets, with
    // unauthenticated_rate 0. Every request is answered, so the cut above is the limiter's.
    const FloodRun run = run_flood(0);
    const auto& f = run.flood;
    std::printf("flood (limit off): sent %d in %.2f s, answered %d Binding + %d 401\n", f.sent,
                std::chrono::duration<double>(f.elapsed).count(), f.binding_answers,
                f.challenge_answers);
    EXPECT_EQ(f.sent, bindings + allocates);
    EXPECT_EQ(f.binding_answers, bindings);
    EXPECT_EQ(f.challenge_answers, allocates);
    EXPECT_EQ(run.authenticated_answered, run.authenticated_sent);
    EXPECT_EQ(run.other_source_answered, run.other_source_sent);
}

}  // namespace
}  // namespace tern::test
