#include "tern/server/ops/service_notifier.hpp"

#include <systemd/sd-daemon.h>

#include <cstdint>
#include <ctime>
#include <string>

namespace tern::server {

ServiceNotifier::ServiceNotifier() {
    std::uint64_t usec = 0;
    // > 0 only when WATCHDOG_USEC is set (and WATCHDOG_PID, if set, is this process).
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        watchdog_ = std::chrono::microseconds(usec);
    }
}

void ServiceNotifier::send(std::string_view state) const {
    const std::string text(state);
    sd_notify(0, text.c_str());
}

void ServiceNotifier::ready(std::string_view status) const {
    send("READY=1\nSTATUS=" + std::string(status));
}

void ServiceNotifier::reloading() const {
    // MONOTONIC_USEC lets newer systemd (253+) match the reload to its request; older ignores it.
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const auto usec = static_cast<std::uint64_t>(ts.tv_sec) * 1000000u +
                      static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
    send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

void ServiceNotifier::stopping(std::string_view status) const {
    send("STOPPING=1\nSTATUS=" + std::string(status));
}

void ServiceNotifier::status(std::string_view status) const {
    send("STATUS=" + std::string(status));
}

void ServiceNotifier::alive() const {
    send("WATCHDOG=1");
}

}  // namespace tern::server
