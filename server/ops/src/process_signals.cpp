#include "tern/server/ops/process_signals.hpp"

#include <csignal>
#include <utility>

namespace tern::server {

ProcessSignals::ProcessSignals(boost::asio::io_context& control, SignalHandlers handlers)
    : signals_(control, SIGINT, SIGTERM, SIGHUP), handlers_(std::move(handlers)) {
    wait();
}

void ProcessSignals::wait() {
    signals_.async_wait([this](const boost::system::error_code& ec, int signo) {
        if (ec) return;
        if (signo == SIGHUP) {
            handlers_.reload();
        } else if (signo == SIGTERM && !handlers_.draining()) {
            handlers_.drain();
        } else {
            handlers_.stop(signo == SIGTERM ? "SIGTERM" : "SIGINT");
            return;
        }
        wait();
    });
}

}  // namespace tern::server
