// The ternd process: workers, their listeners, signals (SIGTERM/SIGINT stop, SIGHUP reload)
// and the start-up banner. main() only parses arguments and hands over.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "tern/allocation/allocation_quota.hpp"
#include "tern/allocation/random_source.hpp"
#include "tern/allocation/relay_ports.hpp"
#include "tern/allocation/user_bandwidth.hpp"
#include "tern/config/config.hpp"
#include "tern/server/connection_quota.hpp"
#include "tern/server/source_rate_limiter.hpp"
#include "tern/server/worker.hpp"

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

    // Starts the workers and blocks until SIGTERM or SIGINT; returns the exit code.
    int run();
    // Rereads the config file; an invalid one is refused and the running config kept.
    void reload();

private:
    config::Config with_runtime_secret(config::Config c);
    void log_relay_addresses() const;

    std::shared_ptr<const config::Config> config_;
    std::unique_ptr<allocation::RandomSource> random_;
    std::unique_ptr<allocation::RelayPorts> ports_;  // outlives the workers (declared before)
    std::unique_ptr<allocation::AllocationQuota> quota_;
    // Per-user byte budgets shared by every worker (limits.user_bandwidth).
    std::unique_ptr<allocation::UserBandwidth> user_bandwidth_ =
        std::make_unique<allocation::UserBandwidth>();
    std::unique_ptr<ConnectionQuota> connections_;
    std::unique_ptr<SourceRateLimiter>
        unauthenticated_;  // limits.unauthenticated_rate, all workers
    std::string config_path_;
    std::string generated_secret_;
    std::string generated_nonce_secret_;
    std::shared_ptr<boost::asio::ssl::context> tls_;
    std::vector<std::unique_ptr<Worker>> workers_;
    std::vector<config::Listener> bound_;
};

}  // namespace tern::server
