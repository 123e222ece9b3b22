// The graceful stop (SIGTERM or POST /drain): new allocations are refused, live ones get up to
// limits.shutdown_grace, then the process stops. Runs on the control thread, which polls the
// live count every 200 ms; the workers are told through a hook, so this knows no sockets.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <string_view>

#include "tern/server/ops/service_notifier.hpp"

namespace tern::server {

struct DrainHooks {
    std::function<std::size_t()> live_allocations;  // any thread's count, read on this one
    std::function<void()> drain_workers;            // refuse new allocations, close listeners
    std::function<void()> stop;                     // end the process's loop
};

class Drain {
public:
    Drain(boost::asio::io_context& control, const ServiceNotifier& notifier, DrainHooks hooks);

    // Stops at once when nothing is live or `grace` is zero; a second call while draining is
    // ignored (a second SIGTERM stops through ProcessSignals instead).
    void begin(std::string_view cause, std::chrono::seconds grace);
    bool active() const noexcept { return active_; }

private:
    void watch();

    boost::asio::steady_timer timer_;
    const ServiceNotifier& notifier_;
    DrainHooks hooks_;
    std::chrono::steady_clock::time_point deadline_;
    bool active_ = false;
};

}  // namespace tern::server
