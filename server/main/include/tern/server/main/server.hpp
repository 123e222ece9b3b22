// The ternd process: workers, their listeners, signals (SIGTERM drain, SIGINT stop, SIGHUP
// reload), the metrics endpoint and systemd notifications. main() only parses arguments.
#pragma once

#include <atomic>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <string_view>

#include "tern/allocation/allocation_quota.hpp"
#include "tern/allocation/random_source.hpp"
#include "tern/allocation/relay_ports.hpp"
#include "tern/allocation/user_bandwidth.hpp"
#include "tern/config/config.hpp"
#include "tern/server/io/kernel_fast_path.hpp"
#include "tern/server/io/worker.hpp"
#include "tern/server/ops/admin_service.hpp"
#include "tern/server/ops/drain.hpp"
#include "tern/server/ops/metrics_endpoint.hpp"
#include "tern/server/ops/metrics_snapshot.hpp"
#include "tern/server/ops/revocation_store.hpp"
#include "tern/server/ops/service_notifier.hpp"
#include "tern/server/ops/usage_record_log.hpp"
#include "tern/server/request/connection_quota.hpp"
#include "tern/server/request/source_rate_limiter.hpp"

namespace tern::server {

class Server {
public:
    // `config_path` empty = running on the embedded default (SIGHUP then has nothing to read).
    Server(config::Config config, std::string config_path);
    ~Server();

    // Binds every listener on every worker; logs and returns false when one cannot be bound.
    bool open();
    // The listeners with the ports actually bound (differs from config for port 0).
    const std::vector<config::Listener>& bound_listeners() const { return bound_; }
    // The secret generated because none was configured; empty otherwise.
    const std::string& generated_secret() const { return generated_secret_; }
    const config::Config& config() const { return *config_; }

    // The metrics endpoint's bound address, when metrics.listen is set.
    std::optional<protocol::TransportAddress> metrics_address() const;

    // Starts the workers and blocks until SIGTERM or SIGINT; returns the exit code.
    int run();
    // Rereads the config file; an invalid one is refused and the running config kept.
    void reload();

    // Every worker's tallies, summed (any thread).
    MetricsSnapshot snapshot() const;

private:
    config::Config with_runtime_secret(config::Config c);
    void log_relay_addresses() const;
    // Usage records and revocations, before the workers start; false when start must fail.
    bool open_operator_state();
    // SIGTERM or POST /drain, with limits.shutdown_grace.
    void begin_drain(std::string_view cause);
    void keep_watchdog_fed(std::chrono::microseconds timeout);
    // fleet.redis: the store, its heartbeat and the operator commands other nodes publish.
    void open_fleet();
    // relay.kernel_fast_path, once the listeners are bound; false when `on` cannot be had.
    bool open_kernel_fast_path();
    void publish_sessions_every_second();

    std::shared_ptr<const config::Config> config_;
    std::unique_ptr<allocation::RandomSource> random_;
    std::unique_ptr<allocation::RelayPorts> ports_;  // outlives the workers (declared before)
    std::unique_ptr<allocation::AllocationQuota> quota_;
    // Per-user byte budgets shared by every worker (limits.user_bandwidth).
    std::unique_ptr<allocation::UserBandwidth> user_bandwidth_ =
        std::make_unique<allocation::UserBandwidth>();
    std::unique_ptr<ConnectionQuota> connections_;
    std::unique_ptr<ConnectionQuota> fallback_connections_;  // edge.fallback_max_connections
    std::unique_ptr<SourceRateLimiter>
        unauthenticated_;  // limits.unauthenticated_rate, all workers
    std::string config_path_;
    std::string generated_secret_;
    std::string generated_nonce_secret_;
    std::shared_ptr<boost::asio::ssl::context> tls_;
    // fleet.redis: the shared store; outlives the workers, whose leases it gives back as they
    // close.
    std::unique_ptr<FleetStore> fleet_;
    // relay.kernel_fast_path: the XDP program and its maps; outlives the workers' managers.
    std::unique_ptr<KernelFastPath> fast_path_;
    std::atomic<bool> draining_{false};             // read by the fleet's heartbeat thread
    std::atomic<std::uint32_t> redirect_above_{0};  // fleet.redirect_above, as last loaded
    // Both outlive the workers, which write records until they stop.
    std::unique_ptr<UsageRecordLog> usage_ = std::make_unique<UsageRecordLog>();
    std::unique_ptr<RevocationStore> revocations_;
    std::vector<std::unique_ptr<Worker>> workers_;
    std::vector<config::Listener> bound_;

    // The main thread's loop: signals, drain, watchdog and the metrics endpoint.
    boost::asio::io_context control_{1};
    boost::asio::steady_timer watchdog_timer_{control_};
    boost::asio::steady_timer fleet_timer_{control_};  // this node's session snapshot
    std::unique_ptr<AdminService> admin_;              // admin.token_file set
    std::unique_ptr<MetricsEndpoint> metrics_;
    ServiceNotifier notifier_;
    Drain drain_{control_, notifier_,
                 DrainHooks{[this] { return quota_->total(); },
                            [this] {
                                for (auto& w : workers_) w->drain();
                            },
                            [this] { control_.stop(); }}};
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    bool watchdog_withheld_ = false;
};

}  // namespace tern::server
