// Tells systemd (Type=notify) how ternd is doing: ready, reloading, stopping, and alive for
// WatchdogSec. Uses libsystemd's sd_notify; does nothing when not started by systemd.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace tern::server {

class ServiceNotifier {
public:
    ServiceNotifier();

    void ready(std::string_view status) const;
    void reloading() const;
    void stopping(std::string_view status) const;
    void status(std::string_view status) const;
    void alive() const;  // WATCHDOG=1

    // The unit's WatchdogSec, when systemd asked for keep-alives from this process.
    std::optional<std::chrono::microseconds> watchdog_timeout() const { return watchdog_; }

private:
    void send(std::string_view state) const;
    std::optional<std::chrono::microseconds> watchdog_;
};

}  // namespace tern::server
