#include "tern/server/ops/drain.hpp"

#include <spdlog/spdlog.h>

#include <utility>

namespace tern::server {

Drain::Drain(boost::asio::io_context& control, const ServiceNotifier& notifier, DrainHooks hooks)
    : timer_(control), notifier_(notifier), hooks_(std::move(hooks)) {}

void Drain::begin(std::string_view cause, std::chrono::seconds grace) {
    if (active_) return;
    const std::size_t live = hooks_.live_allocations();
    if (grace.count() == 0 || live == 0) {
        spdlog::info("{}, stopping", cause);
        notifier_.stopping("stopping");
        hooks_.stop();
        return;
    }
    active_ = true;
    spdlog::info("{}, draining {} allocations for up to {} s (send SIGTERM again to stop now)",
                 cause, live, grace.count());
    notifier_.stopping("draining");
    hooks_.drain_workers();
    deadline_ = std::chrono::steady_clock::now() + grace;
    watch();
}

// Stop once the last allocation is gone or the grace period is over.
void Drain::watch() {
    const std::size_t live = hooks_.live_allocations();
    if (live == 0 || std::chrono::steady_clock::now() >= deadline_) {
        if (live > 0) spdlog::info("grace period over, {} allocations end now", live);
        hooks_.stop();
        return;
    }
    timer_.expires_after(std::chrono::milliseconds(200));
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) watch();
    });
}

}  // namespace tern::server
