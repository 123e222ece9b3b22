#include "tern/server/ops/drain.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <string>
#include <vector>

#include "tern/server/ops/process_signals.hpp"

namespace tern::server {
namespace {

using namespace std::chrono_literals;

struct Calls {
    std::size_t live = 0;
    int drained = 0;
    int stopped = 0;
};

DrainHooks hooks(boost::asio::io_context& io, Calls& c) {
    return {[&c] { return c.live; }, [&c] { ++c.drained; },
            [&io, &c] {
                ++c.stopped;
                io.stop();
            }};
}

TEST(Drain, NothingLiveOrNoGraceStopsAtOnce) {
    boost::asio::io_context io;
    const ServiceNotifier notifier;
    Calls c;
    Drain drain(io, notifier, hooks(io, c));
    drain.begin("test", 30s);  // nothing live
    EXPECT_EQ(c.stopped, 1);
    c.live = 3;
    drain.begin("test", 0s);  // no grace
    EXPECT_EQ(c.stopped, 2);
    EXPECT_EQ(c.drained, 0);
    EXPECT_FALSE(drain.active());
}

TEST(Drain, StopsOnceTheLastAllocationIsGone) {
    boost::asio::io_context io;
    const ServiceNotifier notifier;
    Calls c;
    c.live = 2;
    Drain drain(io, notifier, hooks(io, c));
    drain.begin("test", 30s);
    EXPECT_TRUE(drain.active());
    EXPECT_EQ(c.drained, 1);
    drain.begin("again", 30s);  // ignored: one drain at a time
    EXPECT_EQ(c.drained, 1);
    io.run_for(500ms);
    EXPECT_EQ(c.stopped, 0);  // still live: keeps waiting
    c.live = 0;
    io.restart();
    const auto start = std::chrono::steady_clock::now();
    io.run_for(5s);
    EXPECT_EQ(c.stopped, 1);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);  // within a poll or two (200 ms)
}

TEST(Drain, StopsWhenTheGraceIsOverWithAllocationsLeft) {
    boost::asio::io_context io;
    const ServiceNotifier notifier;
    Calls c;
    c.live = 1;
    Drain drain(io, notifier, hooks(io, c));
    const auto start = std::chrono::steady_clock::now();
    drain.begin("test", 1s);
    io.run_for(5s);
    EXPECT_EQ(c.stopped, 1);
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_GE(took, 1s);
    EXPECT_LT(took, 3s);
}

// Signals raised at this process: SIGHUP reloads, a first SIGTERM drains, a SIGTERM while
// draining and SIGINT stop.
TEST(ProcessSignals, EachSignalHasItsAction) {
    boost::asio::io_context io;
    std::vector<std::string> seen;
    bool draining = false;
    SignalHandlers on;
    on.reload = [&] { seen.emplace_back("reload"); };
    on.drain = [&] {
        seen.emplace_back("drain");
        draining = true;
    };
    on.stop = [&](std::string_view signal) { seen.emplace_back("stop " + std::string(signal)); };
    on.draining = [&] { return draining; };
    const ProcessSignals signals(io, std::move(on));
    // Asio may take more than one handler to hand a signal over, so run until it is seen.
    const auto deliver = [&](int signo) {
        const auto before = seen.size();
        std::raise(signo);
        const auto deadline = std::chrono::steady_clock::now() + 2s;
        while (seen.size() == before && std::chrono::steady_clock::now() < deadline) {
            io.restart();
            io.run_one_for(100ms);
        }
    };
    deliver(SIGHUP);
    deliver(SIGHUP);
    deliver(SIGTERM);
    deliver(SIGTERM);
    EXPECT_EQ(seen, (std::vector<std::string>{"reload", "reload", "drain", "stop SIGTERM"}));

    // After a stop nothing is caught any more: a fresh set for SIGINT.
    std::vector<std::string> second;
    SignalHandlers on2;
    on2.reload = [] {};
    on2.drain = [] {};
    on2.stop = [&](std::string_view signal) { second.emplace_back(signal); };
    on2.draining = [] { return false; };
    boost::asio::io_context io2;
    const ProcessSignals signals2(io2, std::move(on2));
    std::raise(SIGINT);
    for (int i = 0; i < 20 && second.empty(); ++i) {
        io2.restart();
        io2.run_one_for(100ms);
    }
    EXPECT_EQ(second, std::vector<std::string>{"SIGINT"});
}

}  // namespace
}  // namespace tern::server
