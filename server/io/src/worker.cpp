#include "tern/server/io/worker.hpp"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <chrono>
#include <string>

#include "tern/server/request/relay_settings.hpp"

namespace tern::server {

namespace asio = boost::asio;

namespace {
// Lifetimes are whole seconds (RFC 8656), so a one-second sweep is exact enough and costs one
// timer per worker instead of one per allocation, permission and channel.
constexpr auto tick_interval = std::chrono::seconds(1);
// Room for any answer the dispatcher writes (a STUN response is far below this).
constexpr std::size_t max_answer_size = 2048;

StreamLimits stream_limits(const config::Config& c) {
    StreamLimits limits;
    limits.idle_timeout = std::chrono::seconds(c.limits.connection_idle_timeout);
    limits.handshake_timeout = std::chrono::seconds(c.limits.handshake_timeout);
    limits.unauthenticated_timeout = std::chrono::seconds(c.limits.unauthenticated_timeout);
    limits.max_pending_output = c.limits.max_pending_output;
    return limits;
}

// Null when no connection needs its first bytes read (no trusted proxies, no shared port).
std::shared_ptr<const ConnectionSorting> connection_sorting(const config::Config& c) {
    if (c.proxy_protocol.trusted.empty() && !c.edge.fallback) return nullptr;
    auto sorting = std::make_shared<ConnectionSorting>();
    sorting->trusted_proxies = c.proxy_protocol.trusted;
    if (c.edge.fallback) {
        sorting->fallback = FallbackRoute{*c.edge.fallback,
                                          c.edge.fallback_proxy_protocol == config::ProxyHeader::v2,
                                          std::chrono::seconds(c.edge.fallback_connect_timeout),
                                          std::chrono::seconds(c.edge.fallback_idle_timeout)};
    }
    sorting->turn_names = c.edge.turn_names;
    return sorting;
}
}  // namespace

Worker::Worker(unsigned index, std::shared_ptr<const config::Config> config,
               std::shared_ptr<const allocation::PeerPolicy> peers, const SharedRelayState& shared)
    : index_(index),
      io_(1),
      timer_(io_),
      readiness_(io_, *this),
      relays_(readiness_, client_to_peer_, peer_to_client_),
      manager_(manager_settings(*config), std::move(peers), shared.ports, relays_,
               shared.hash_seed + index, &shared.quota, &shared.user_bandwidth),
      dispatcher_(std::move(config), &manager_, shared.hash_seed ^ (index * 0x9E3779B97F4A7C15ull),
                  &shared.unauthenticated),
      stream_clients_(manager_),
      client_to_peer_(dispatcher_, manager_, relays_),
      peer_to_client_(manager_, relays_, udp_, stream_clients_),
      connections_quota_(shared.connections),
      fallback_quota_(shared.fallback_connections) {
    manager_.set_usage_sink(shared.usage);
    // The admin API's session ids carry the worker, so a kill goes straight to its owner.
    manager_.set_id_base(allocation::first_allocation_id(index));
    if (shared.fleet != nullptr) {
        rerun_buffer_.resize(max_answer_size);
        fleet_gate_ = std::make_unique<FleetGate>(
            io_, [this] { readiness_.wake(); }, *shared.fleet, dispatcher_.config(),
            [this](std::span<const std::uint8_t> packet, PacketContext context) {
                const auto reply = dispatcher_.handle(packet, context, rerun_buffer_);
                if (reply.empty()) return;
                peer_to_client_.deliver({context.source, context.local, context.transport},
                                        context.client, reply);
                // A TCP/TLS reply is an Asio write, which the next pass runs.
                readiness_.wake();
            });
        manager_.set_fleet(fleet_gate_.get());
        dispatcher_.set_deferrals(fleet_gate_.get());
    }
}

Worker::~Worker() {
    stop();
    join();
    // Allocations end while both relay directions still exist (closing a relay socket flushes
    // what ClientToPeer holds); then the manager's destructor has nothing left to release.
    manager_.clear();
    streams_.clear();
    udp_.clear();
}

std::error_code Worker::add_listener(const config::Listener& listener,
                                     const protocol::TransportAddress& address,
                                     std::shared_ptr<asio::ssl::context> tls,
                                     protocol::TransportAddress& bound) {
    if (listener.transport == protocol::Transport::udp) {
        const auto index = static_cast<std::uint32_t>(udp_.size());
        auto l = std::make_unique<UdpListener>(index);
        if (auto ec = l->open(address)) return ec;
        if (auto ec = readiness_.add(l->native_handle(), {UdpToken::Kind::listener, index})) {
            return ec;
        }
        bound = l->local_address();
        udp_.push_back(std::move(l));
        return {};
    }
    auto l = std::make_unique<StreamListener>(io_, dispatcher_, listener.transport,
                                              stream_limits(dispatcher_.config()), &stream_clients_,
                                              &connections_quota_, &stream_counters_);
    if (auto ec = l->open(address)) return ec;
    l->set_tls_context(std::move(tls));
    l->set_sorting(connection_sorting(dispatcher_.config()), &fallback_quota_);
    bound = l->local_address();
    streams_.push_back(std::move(l));
    return {};
}

void Worker::set_peer_policy(std::shared_ptr<const allocation::PeerPolicy> peers) {
    manager_.reconfigure(manager_.settings(), std::move(peers));
}

void Worker::start() {
    readiness_.start();
    for (auto& l : streams_) l->start();
    tick();
    thread_ = std::thread([this] {
        const std::string name = "tern-w" + std::to_string(index_);
        pthread_setname_np(pthread_self(), name.c_str());
        try {
            readiness_.run();
        } catch (const std::exception& e) {
            // Nothing on the packet path throws; reaching here is a bug worth a loud line.
            spdlog::critical("worker {} stopped on an exception: {}", index_, e.what());
        }
    });
}

void Worker::tick() {
    timer_.expires_after(tick_interval);
    tick_due_ns_.set(static_cast<std::uint64_t>(timer_.expiry().time_since_epoch().count()));
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec) return;
        const auto now = std::chrono::steady_clock::now();
        lag_ns_.set(static_cast<std::uint64_t>(std::max(now - timer_.expiry(), {}).count()));
        manager_.expire(now);
        tick();
    });
}

std::chrono::steady_clock::duration Worker::loop_lag() const noexcept {
    using D = std::chrono::steady_clock::duration;
    const auto due = std::chrono::steady_clock::time_point(D(tick_due_ns_.value()));
    const auto overdue = std::chrono::steady_clock::now() - due;
    return std::max(D(lag_ns_.value()), overdue);
}

void Worker::drain() {
    asio::post(io_, [this] {
        for (auto& l : streams_) l->close();
        manager_.set_draining(true);
    });
    readiness_.wake();
}

void Worker::stop() {
    asio::post(io_, [this] {
        timer_.cancel();
        readiness_.stop();
        for (auto& l : udp_) l->close();
        for (auto& l : streams_) l->close();
        manager_.clear();
        io_.stop();
    });
    readiness_.wake();
}

void Worker::list_sessions(SessionsDone done) {
    asio::post(io_, [this, done = std::move(done)] {
        const auto now = std::chrono::steady_clock::now();
        done(manager_.records(now), now);
    });
    readiness_.wake();
}

void Worker::end_session(std::uint64_t id, std::function<void(bool)> done) {
    asio::post(io_, [this, id, done = std::move(done)] {
        done(manager_.end_allocation(id, allocation::EndReason::killed));
    });
    readiness_.wake();
}

void Worker::end_user(std::string user, allocation::EndReason reason,
                      std::function<void(std::size_t)> done) {
    asio::post(io_, [this, user = std::move(user), reason, done = std::move(done)] {
        done(manager_.end_allocations_of(
            [&user](std::string_view username) {
                return username == user || auth::user_of(username) == user;
            },
            reason));
    });
    readiness_.wake();
}

void Worker::set_revocations(std::shared_ptr<const auth::RevocationList> revocations) {
    asio::post(io_, [this, revocations = std::move(revocations)]() mutable {
        dispatcher_.set_revocations(std::move(revocations));
    });
    readiness_.wake();
}

void Worker::join() {
    if (thread_.joinable()) thread_.join();
}

void Worker::apply(std::shared_ptr<const config::Config> config,
                   std::shared_ptr<const allocation::PeerPolicy> peers,
                   std::shared_ptr<asio::ssl::context> tls) {
    asio::post(io_, [this, config = std::move(config), peers = std::move(peers),
                     tls = std::move(tls)]() mutable {
        manager_.reconfigure(manager_settings(*config), std::move(peers));
        const auto sorting = connection_sorting(*config);
        for (auto& l : streams_) {
            l->set_limits(stream_limits(*config));
            l->set_sorting(sorting, &fallback_quota_);
        }
        if (fleet_gate_) fleet_gate_->configure(*config);
        dispatcher_.set_config(std::move(config));
        if (tls) {
            for (auto& l : streams_) l->set_tls_context(tls);
        }
    });
    readiness_.wake();
}

bool Worker::on_readable(UdpToken token, TimePoint now) noexcept {
    if (token.kind == UdpToken::Kind::relay) return peer_to_client_.relay(token.index, now);
    return token.index >= udp_.size() || client_to_peer_.relay(*udp_[token.index], now);
}

bool Worker::end_of_pass() noexcept {
    peer_to_client_.flush();
    return peer_to_client_.take_stream_writes();
}

}  // namespace tern::server
