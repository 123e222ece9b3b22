// What ternd does on each signal, on the control thread: SIGHUP reloads, a first SIGTERM drains,
// SIGINT or a SIGTERM during a drain stops at once.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <functional>
#include <string_view>

namespace tern::server {

struct SignalHandlers {
    std::function<void()> reload;
    std::function<void()> drain;
    std::function<void(std::string_view signal)> stop;
    std::function<bool()> draining;
};

class ProcessSignals {
public:
    // Catches SIGHUP, SIGTERM and SIGINT from here on, so a caller that answers packets only
    // after constructing this cannot be killed by a signal sent after a first reply.
    ProcessSignals(boost::asio::io_context& control, SignalHandlers handlers);

private:
    void wait();

    boost::asio::signal_set signals_;
    SignalHandlers handlers_;
};

}  // namespace tern::server
