#include "tern/server/main/server.hpp"

#include <dirent.h>
#include <sodium.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <thread>
#include <utility>

#include "tern/config/config_changes.hpp"
#include "tern/config/config_warnings.hpp"
#include "tern/server/io/tls_context.hpp"
#include "tern/server/main/capabilities.hpp"
#include "tern/server/main/start_summary.hpp"
#include "tern/server/ops/logging.hpp"
#include "tern/server/ops/process_signals.hpp"
#include "tern/server/request/relay_settings.hpp"

namespace tern::server {

namespace asio = boost::asio;

namespace {

unsigned worker_count(const config::Config& c) {
    if (c.threads != 0) return c.threads;
    const unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : n;
}

bool has_tls_listener(const config::Config& c) {
    for (const auto& l : c.listen) {
        if (l.transport == protocol::Transport::tls) return true;
    }
    return false;
}

std::string random_secret() {
    unsigned char raw[24];
    randombytes_buf(raw, sizeof raw);
    char hex[sizeof raw * 2 + 1];
    sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
    return hex;
}

// Entries of /proc/self/fd, less the one the count itself opens; nullopt without /proc.
std::optional<std::uint64_t> count_open_fds() {
    DIR* dir = opendir("/proc/self/fd");
    if (dir == nullptr) return std::nullopt;
    std::uint64_t n = 0;
    while (const dirent* e = readdir(dir)) {  // NOLINT(concurrency-mt-unsafe): one reader
        if (e->d_name[0] != '.') ++n;
    }
    closedir(dir);
    return n > 0 ? n - 1 : 0;
}

// Relay ports and tokens must not be predictable (RFC 8656 §7.2, §21): libsodium's CSPRNG.
class SodiumRandom final : public allocation::RandomSource {
public:
    std::uint64_t next() noexcept override {
        std::uint64_t v = 0;
        randombytes_buf(&v, sizeof v);
        return v;
    }
};

}  // namespace

Server::Server(config::Config config, std::string config_path)
    : random_(std::make_unique<SodiumRandom>()), config_path_(std::move(config_path)) {
    config_ = std::make_shared<const config::Config>(with_runtime_secret(std::move(config)));
    ports_ = std::make_unique<allocation::RelayPorts>(config_->relay.ports.first,
                                                      config_->relay.ports.last, *random_);
    quota_ = std::make_unique<allocation::AllocationQuota>(
        config_->limits.max_allocations, config_->limits.max_allocations_per_user);
    connections_ = std::make_unique<ConnectionQuota>(config_->limits.max_connections,
                                                     config_->limits.max_connections_per_ip,
                                                     config_->limits.ipv6_source_prefix);
    fallback_connections_ = std::make_unique<ConnectionQuota>(
        config_->edge.fallback_max_connections, config_->edge.fallback_max_connections_per_ip,
        config_->limits.ipv6_source_prefix);
}

Server::~Server() {
    for (auto& w : workers_) w->stop();
    for (auto& w : workers_) w->join();
    if (fleet_) {
        // The workers give their leases back as they close; the store sends that and leaves
        // the registry before anything its threads call into (admin_, the atomics) is gone.
        workers_.clear();
        fleet_->stop();
    }
}

config::Config Server::with_runtime_secret(config::Config c) {
    // A TURN server must never run open: with no credentials configured, mint a random secret
    // that lives as long as the process and is shown once on stdout.
    if (c.auth.secrets.empty() && c.auth.users.empty()) {
        if (generated_secret_.empty()) generated_secret_ = random_secret();
        c.auth.secrets.push_back(generated_secret_);
    }
    // Every worker (and every reload) must accept the nonces the others issued.
    if (!c.auth.nonce_secret) {
        if (generated_nonce_secret_.empty()) generated_nonce_secret_ = random_secret();
        c.auth.nonce_secret = generated_nonce_secret_;
    }
    return c;
}

bool Server::open_operator_state() {
    if (auto error = usage_->configure(config_->usage_records, config_->realm); !error.empty()) {
        spdlog::error("{}", error);
        return false;
    }
    if (config_->usage_records.file) {
        spdlog::info("usage records to {}", *config_->usage_records.file);
    }
    revocations_ = std::make_unique<RevocationStore>(config_->admin.revocations_file);
    const auto now_unix = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    for (const auto& problem : revocations_->load(now_unix)) {
        spdlog::warn("admin.revocations_file: {}", problem);
    }
    if (revocations_->current()->size() > 0) {
        spdlog::info("{} user(s) revoked, from {}", revocations_->current()->size(),
                     revocations_->path());
    }
    return true;
}

bool Server::open() {
    if (!open_operator_state()) return false;
    // The config layer guarantees a tls section wherever a tls:// listener exists.
    if (has_tls_listener(*config_) && config_->tls) {
        auto tls = make_tls_context(*config_->tls, config_path_.empty()
                                                       ? std::string_view("<embedded default>")
                                                       : std::string_view(config_path_));
        if (!tls.context) {
            spdlog::error("{}", tls.error);
            return false;
        }
        tls_ = std::move(tls.context);
    }
    const unsigned n = worker_count(*config_);
    std::uint64_t seed = 0;
    randombytes_buf(&seed, sizeof seed);
    // A first policy without the listening addresses; completed below once they are bound.
    auto peers = make_peer_policy(*config_, {});
    // 8192 sources per worker, as one table: a source cannot multiply its rate by the workers.
    unauthenticated_ = std::make_unique<SourceRateLimiter>(
        config_->limits.unauthenticated_rate, config_->limits.unauthenticated_burst,
        std::size_t{8192} * n, seed ^ 0x243F6A8885A308D3ull, config_->limits.ipv6_source_prefix);
    if (config_->fleet.redis) {
        fleet_ = std::make_unique<FleetStore>(config_->fleet);
        usage_->set_fleet(fleet_.get());
    }
    for (unsigned i = 0; i < n; ++i) {
        workers_.push_back(std::make_unique<Worker>(
            i, config_, peers,
            SharedRelayState{*ports_, *quota_, *user_bandwidth_, *unauthenticated_, *connections_,
                             *fallback_connections_, seed, usage_.get(), fleet_.get()}));
        if (revocations_->current()->size() > 0) {
            workers_.back()->set_revocations(revocations_->current());
        }
    }

    for (const auto& listener : config_->listen) {
        // The first worker's bind fixes the port (the kernel picks one for port 0); the other
        // workers join it through SO_REUSEPORT.
        protocol::TransportAddress address = listener.address;
        for (auto& w : workers_) {
            protocol::TransportAddress bound;
            if (auto ec = w->add_listener(listener, address, tls_, bound)) {
                spdlog::error("listen: cannot bind {}: {}", listener.to_url(), ec.message());
                return false;
            }
            address = bound;
        }
        bound_.push_back({listener.transport, address});
        spdlog::info("listening on {} ({} workers)", bound_.back().to_url(), n);
    }
    peers = make_peer_policy(*config_, bound_);
    for (auto& w : workers_) w->set_peer_policy(peers);
    log_relay_addresses();
    if (!open_kernel_fast_path()) return false;
    // A fleet node applies the other nodes' kills and revocations even with no API of its own.
    if (config_->admin.token_file || fleet_) {
        std::vector<Worker*> workers;
        for (auto& w : workers_) workers.push_back(w.get());
        admin_ =
            std::make_unique<AdminService>(control_, std::move(workers), *revocations_, *config_);
    }
    if (fleet_) open_fleet();
    if (config_->metrics.listen) {
        EndpointHandlers handlers{[this] { return snapshot().to_prometheus(); },
                                  [this] { return drain_.active(); },
                                  [this] { begin_drain("POST /drain"); }, nullptr};
        if (config_->admin.token_file) {
            handlers.admin = [this](AdminRequest request, std::function<void(HttpAnswer)> reply) {
                admin_->handle(std::move(request), std::move(reply));
            };
        }
        metrics_ = std::make_unique<MetricsEndpoint>(control_, std::move(handlers));
        if (auto ec = metrics_->open(*config_->metrics.listen)) {
            spdlog::error("metrics.listen: cannot bind {}: {}",
                          config_->metrics.listen->to_string(), ec.message());
            return false;
        }
        spdlog::info("metrics on http://{}/metrics", metrics_->local_address().to_string());
        if (config_->admin.token_file) {
            spdlog::info("admin API on http://{}/v1/ (token from {})",
                         metrics_->local_address().to_string(), *config_->admin.token_file);
        }
    }
    return true;
}

void Server::log_relay_addresses() const {
    for (const auto& line : relay_address_lines(*config_)) spdlog::info("{}", line);
}

int Server::run() {
    // Signals are caught before the first packet can be answered, so a test that sees a reply
    // may send SIGTERM at once.
    SignalHandlers on;
    on.reload = [this] {
        notifier_.reloading();
        reload();
        notifier_.ready("serving");
    };
    on.drain = [this] { begin_drain("received SIGTERM"); };
    on.stop = [this](std::string_view signal) {
        spdlog::info("received {}, stopping", signal);
        notifier_.stopping("stopping");
        control_.stop();
    };
    on.draining = [this] { return drain_.active(); };
    const ProcessSignals signals(control_, std::move(on));
    for (auto& w : workers_) w->start();
    if (fleet_) {
        fleet_->start();
        publish_sessions_every_second();
    }
    if (metrics_) metrics_->start();
    started_ = std::chrono::steady_clock::now();
    if (const auto timeout = notifier_.watchdog_timeout()) keep_watchdog_fed(*timeout);
    notifier_.ready("serving");
    control_.run();

    if (metrics_) metrics_->close();
    for (auto& w : workers_) w->stop();
    for (auto& w : workers_) w->join();
    spdlog::info("stopped");
    return 0;
}

void Server::begin_drain(std::string_view cause) {
    draining_ = true;  // the fleet's registry says so at the next heartbeat: no 300 points here
    drain_.begin(cause, std::chrono::seconds(config_->limits.shutdown_grace));
}

bool Server::open_kernel_fast_path() {
    const auto mode = config_->relay.kernel_fast_path;
    if (mode == config::KernelFastPath::off) {
        drop_fast_path_capabilities(false);
        return true;
    }
    KernelFastPathOptions options;
    options.interfaces = config_->relay.kernel_fast_path_interfaces;
    options.max_channels = config_->relay.kernel_fast_path_max_channels;
    for (const auto& l : bound_) {
        if (l.transport == protocol::Transport::udp) options.addresses.push_back(l.address);
    }
    for (const auto& a : config_->relay.addresses) options.addresses.push_back(a);
    std::string why;
    fast_path_ = KernelFastPath::open(options, why);
    if (!fast_path_) {
        if (mode == config::KernelFastPath::on) {
            spdlog::error("relay.kernel_fast_path: on, but {}", why);
            return false;
        }
        spdlog::warn("kernel fast path unavailable ({}); relaying in user space", why);
        drop_fast_path_capabilities(false);
        return true;
    }
    drop_fast_path_capabilities(true);
    spdlog::info("kernel fast path: {}", fast_path_->describe());
    for (auto& w : workers_) w->set_kernel_routes(fast_path_.get());
    return true;
}

void Server::open_fleet() {
    admin_->set_fleet(fleet_.get());
    redirect_above_ = config_->fleet.redirect_above;
    // The registry entry, on the store's thread: only atomics and the start-time settings.
    fleet_->on_heartbeat([this] {
        FleetNode self;
        self.draining = draining_.load();
        self.allocations = quota_->total();
        self.redirect_above = redirect_above_.load();
        self.advertise = fleet_->settings().advertise;
        self.advertise_tls = fleet_->settings().advertise_tls;
        self.tls_domain = fleet_->settings().tls_domain;
        return self;
    });
    fleet_->on_control(
        [this](std::string message) { admin_->apply_published(std::move(message)); });
    fleet_->on_revocations([this](FleetStore::Revocations list, bool reconnected) {
        admin_->merge_revocations(std::move(list), reconnected);
    });
    spdlog::info("fleet: node {} with Redis at {} (on_store_failure: {}, leases {} s)",
                 config_->fleet.node_id, config_->fleet.redis_url,
                 config::to_string(config_->fleet.on_store_failure), config_->fleet.lease_seconds);
}

void Server::publish_sessions_every_second() {
    admin_->publish_sessions();
    fleet_timer_.expires_after(std::chrono::seconds(1));
    fleet_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) publish_sessions_every_second();
    });
}

// WATCHDOG=1 only while every worker's loop turns: a stuck worker gets ternd restarted
// (Restart=on-failure) instead of silently dropping its share of the clients.
void Server::keep_watchdog_fed(std::chrono::microseconds timeout) {
    const auto limit = timeout / 2;
    std::optional<std::size_t> stuck;
    for (std::size_t i = 0; i < workers_.size(); ++i) {
        if (workers_[i]->loop_lag() > limit) stuck = i;
    }
    if (!stuck) {
        notifier_.alive();
        watchdog_withheld_ = false;
    } else if (!watchdog_withheld_) {
        watchdog_withheld_ = true;
        spdlog::error(
            "worker {} has not run its loop for {} ms; withholding the systemd watchdog", *stuck,
            std::chrono::duration_cast<std::chrono::milliseconds>(workers_[*stuck]->loop_lag())
                .count());
    }
    watchdog_timer_.expires_after(timeout / 4);
    watchdog_timer_.async_wait([this, timeout](const boost::system::error_code& ec) {
        if (!ec) keep_watchdog_fed(timeout);
    });
}

std::optional<protocol::TransportAddress> Server::metrics_address() const {
    if (!metrics_) return std::nullopt;
    return metrics_->local_address();
}

MetricsSnapshot Server::snapshot() const {
    MetricsSnapshot s;
    s.version = TERN_VERSION;
    s.draining = drain_.active();
    s.uptime_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    for (const auto& w : workers_) {
        s.add(w->relay_counters());
        s.add(w->dispatch_counters());
        s.add(w->stream_counters());
        s.worker_lag_seconds.push_back(std::chrono::duration<double>(w->loop_lag()).count());
    }
    s.open_fds = count_open_fds();
    if (rlimit limit{}; getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
        s.max_fds = limit.rlim_cur;
    }
    s.relay_ports_free = {ports_->available(protocol::AddressFamily::ipv4),
                          ports_->available(protocol::AddressFamily::ipv6)};
    if (revocations_) s.revoked_users = revocations_->current()->size();
    if (admin_) s.admin_requests = admin_->requests();
    if (fleet_) {
        auto& f = fleet_->counters();
        s.fleet = true;
        s.fleet_store_up = fleet_->up();
        s.fleet_store_failures = f.store_failures.load();
        s.fleet_leases = {f.granted.load(), f.quota_full.load(), f.timeout.load(),
                          f.store_down.load()};
        s.fleet_redirects = f.redirects.load();
        if (const auto d = fleet_->directory()) s.fleet_nodes = d->accepting();
    }
    if (fast_path_) {
        s.add(fast_path_->stats());
        s.kernel_fast_path_interfaces = fast_path_->interface_count();
    }
    s.usage_records_written = usage_->written();
    s.usage_records_failed = usage_->failed();
    return s;
}

void Server::reload() {
    if (config_path_.empty()) {
        spdlog::info("SIGHUP: running on the embedded default config, nothing to reload");
        return;
    }
    auto loaded = config::load_config_file(config_path_);
    if (!loaded.config) {
        spdlog::error("SIGHUP: {} is invalid, keeping the running configuration:", config_path_);
        for (const auto& e : loaded.errors) spdlog::error("  {}", e.to_string());
        return;
    }
    if (loaded.config->auth.secrets.empty() && loaded.config->auth.users.empty()) {
        // Never open: only the secret this process generated (shown at start, if any) works.
        spdlog::warn(
            "SIGHUP: {} configures no auth.secrets or auth.users; only this process's "
            "generated secret is accepted",
            config_path_);
    }
    config::Config next = with_runtime_secret(std::move(*loaded.config));

    // Sockets and threads are fixed at start; say so rather than pretend.
    if (next.listen != config_->listen) {
        spdlog::warn("SIGHUP: listen changed; restart ternd to apply it");
        next.listen = config_->listen;
    }
    if (next.threads != config_->threads) {
        spdlog::warn("SIGHUP: threads changed; restart ternd to apply it");
        next.threads = config_->threads;
    }
    if (next.metrics != config_->metrics) {
        spdlog::warn("SIGHUP: metrics changed; restart ternd to apply it");
        next.metrics = config_->metrics;
    }
    if (next.admin.token_file.has_value() != config_->admin.token_file.has_value()) {
        spdlog::warn("SIGHUP: admin.token_file added or removed; restart ternd to apply it");
        next.admin = config_->admin;
    }
    {
        // The store's connection, identity, registry entry and lease lifetime are fixed at
        // start; the wait, the failure policy and the redirect threshold reload.
        config::Fleet kept = config_->fleet;
        kept.allocate_wait_ms = next.fleet.allocate_wait_ms;
        kept.on_store_failure = next.fleet.on_store_failure;
        kept.redirect_above = next.fleet.redirect_above;
        if (next.fleet != kept) {
            spdlog::warn(
                "SIGHUP: fleet changed beyond allocate_wait_ms, on_store_failure and "
                "redirect_above; restart ternd to apply the rest");
            next.fleet = kept;
        }
    }
    if (next.relay.ports != config_->relay.ports) {
        spdlog::warn("SIGHUP: relay.ports changed; restart ternd to apply it");
        next.relay.ports = config_->relay.ports;
    }
    if (next.relay.kernel_fast_path != config_->relay.kernel_fast_path ||
        next.relay.kernel_fast_path_interfaces != config_->relay.kernel_fast_path_interfaces ||
        next.relay.kernel_fast_path_max_channels != config_->relay.kernel_fast_path_max_channels) {
        spdlog::warn(
            "SIGHUP: relay.kernel_fast_path settings changed; restart ternd to apply them");
        next.relay.kernel_fast_path = config_->relay.kernel_fast_path;
        next.relay.kernel_fast_path_interfaces = config_->relay.kernel_fast_path_interfaces;
        next.relay.kernel_fast_path_max_channels = config_->relay.kernel_fast_path_max_channels;
    }
    std::shared_ptr<asio::ssl::context> tls;
    if (has_tls_listener(next) && next.tls) {
        // A pair OpenSSL refuses is named by its key and line; the running contexts stay.
        auto made = make_tls_context(*next.tls, config_path_);
        if (!made.context) {
            spdlog::error("SIGHUP: {}; keeping the running configuration", made.error);
            return;
        }
        tls = std::move(made.context);
    }
    configure_logging(next.log);
    // After logrotate moved the file: records go to a new one from here on.
    if (auto error = usage_->configure(next.usage_records, next.realm); !error.empty()) {
        spdlog::error("SIGHUP: {}; records are not written until it can be opened", error);
    }
    if (admin_) admin_->configure(next);
    const auto before = config_;  // for the log line of what changed
    config_ = std::make_shared<const config::Config>(std::move(next));
    if (tls) tls_ = tls;
    quota_->set_limits(config_->limits.max_allocations, config_->limits.max_allocations_per_user);
    redirect_above_ = config_->fleet.redirect_above;
    connections_->set_limits(config_->limits.max_connections,
                             config_->limits.max_connections_per_ip,
                             config_->limits.ipv6_source_prefix);
    fallback_connections_->set_limits(config_->edge.fallback_max_connections,
                                      config_->edge.fallback_max_connections_per_ip,
                                      config_->limits.ipv6_source_prefix);
    auto peers = make_peer_policy(*config_, bound_);
    for (auto& w : workers_) w->apply(config_, peers, tls);
    for (const auto& w : config::config_warnings(*config_)) {
        spdlog::warn("SIGHUP: {}",
                     config::ConfigError{config_path_, w.line, w.key, w.message}.to_string());
    }
    std::string changed;
    for (const auto& c : config::describe_changes(*before, *config_)) {
        if (!changed.empty()) changed += ", ";
        changed += c;
    }
    spdlog::info("SIGHUP: configuration reloaded from {}; {}", config_path_,
                 changed.empty() ? std::string("nothing changed") : "changed " + changed);
}

}  // namespace tern::server
