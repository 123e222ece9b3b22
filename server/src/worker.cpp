#include "tern/server/worker.hpp"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <chrono>
#include <string>

#include "tern/server/relay_settings.hpp"

namespace tern::server {

namespace asio = boost::asio;

// The flush handler runs after every handler already ready in this event-loop turn. Its memory
// is one block owned by the worker (one flush is pending at most), so posting it never allocates.
template <typename T>
struct Worker::FlushAllocator {
    using value_type = T;
    FlushBlock* block;

    explicit FlushAllocator(FlushBlock* b) noexcept : block(b) {}
    template <typename U>
    FlushAllocator(const FlushAllocator<U>& other) noexcept : block(other.block) {}
    T* allocate(std::size_t n) {
        // Asio allocates through a rebound copy, never through FlushAllocator<void>.
        // cppcheck-suppress sizeofVoid
        if (!block->in_use && n * sizeof(T) <= sizeof block->bytes) {
            block->in_use = true;
            return reinterpret_cast<T*>(block->bytes.data());
        }
        return std::allocator<T>().allocate(n);
    }
    void deallocate(T* p, std::size_t n) noexcept {
        if (reinterpret_cast<unsigned char*>(p) == block->bytes.data()) {
            block->in_use = false;
        } else {
            std::allocator<T>().deallocate(p, n);
        }
    }
    template <typename U>
    bool operator==(const FlushAllocator<U>& other) const noexcept {
        return block == other.block;
    }
    template <typename U>
    bool operator!=(const FlushAllocator<U>& other) const noexcept {
        return block != other.block;
    }
};

struct Worker::FlushHandler {
    Worker* worker;
    using allocator_type = FlushAllocator<void>;
    allocator_type get_allocator() const noexcept { return allocator_type(&worker->flush_block_); }
    void operator()() const { worker->flush_client_queues(); }
};

namespace {
// Lifetimes are whole seconds (RFC 8656), so a one-second sweep is exact enough and costs one
// timer per worker instead of one per allocation, permission and channel.
constexpr auto tick_interval = std::chrono::seconds(1);
constexpr auto relay_failure_log_interval = std::chrono::seconds(10);

StreamLimits stream_limits(const config::Config& c) {
    StreamLimits limits;
    limits.idle_timeout = std::chrono::seconds(c.limits.connection_idle_timeout);
    limits.handshake_timeout = std::chrono::seconds(c.limits.handshake_timeout);
    limits.unauthenticated_timeout = std::chrono::seconds(c.limits.unauthenticated_timeout);
    limits.max_pending_output = c.limits.max_pending_output;
    return limits;
}
}  // namespace

Worker::Worker(unsigned index, std::shared_ptr<const config::Config> config,
               std::shared_ptr<const allocation::PeerPolicy> peers, const SharedRelayState& shared)
    : index_(index),
      io_(1),
      timer_(io_),
      manager_(manager_settings(*config), std::move(peers), shared.ports, *this,
               shared.hash_seed + index, &shared.quota, &shared.user_bandwidth),
      dispatcher_(std::move(config), &manager_, shared.hash_seed ^ (index * 0x9E3779B97F4A7C15ull),
                  &shared.unauthenticated),
      connections_quota_(shared.connections) {}

Worker::~Worker() {
    stop();
    join();
    // Relay sockets close before the manager would try to: the manager's destructor then only
    // returns ports.
    udp_.clear();
    streams_.clear();
}

std::error_code Worker::add_listener(const config::Listener& listener,
                                     const protocol::TransportAddress& address,
                                     std::shared_ptr<asio::ssl::context> tls,
                                     protocol::TransportAddress& bound) {
    if (listener.transport == config::Transport::udp) {
        auto l = std::make_unique<UdpListener>(io_, dispatcher_, udp_.size());
        if (auto ec = l->open(address)) return ec;
        bound = l->local_address();
        udp_.push_back(std::move(l));
        return {};
    }
    auto l = std::make_unique<StreamListener>(io_, dispatcher_, listener.transport,
                                              stream_limits(dispatcher_.config()), this,
                                              &connections_quota_, &stream_counters_);
    if (auto ec = l->open(address)) return ec;
    l->set_tls_context(std::move(tls));
    bound = l->local_address();
    streams_.push_back(std::move(l));
    return {};
}

void Worker::set_peer_policy(std::shared_ptr<const allocation::PeerPolicy> peers) {
    manager_.reconfigure(manager_.settings(), std::move(peers));
}

void Worker::start() {
    for (auto& l : udp_) l->start();
    for (auto& l : streams_) l->start();
    tick();
    thread_ = std::thread([this] {
        const std::string name = "tern-w" + std::to_string(index_);
        pthread_setname_np(pthread_self(), name.c_str());
        auto guard = asio::make_work_guard(io_);
        try {
            io_.run();
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

void Worker::collect(MetricsSnapshot& snapshot) const {
    snapshot.add(manager_.counters());
    snapshot.add(dispatcher_.counters());
    snapshot.add(stream_counters_);
    snapshot.worker_lag_seconds.push_back(std::chrono::duration<double>(loop_lag()).count());
}

void Worker::drain() {
    asio::post(io_, [this] {
        for (auto& l : streams_) l->close();
        manager_.set_draining(true);
    });
}

void Worker::stop() {
    asio::post(io_, [this] {
        timer_.cancel();
        for (auto& l : udp_) l->close();
        for (auto& l : streams_) l->close();
        manager_.clear();
        io_.stop();
    });
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
        for (auto& l : streams_) l->set_limits(stream_limits(*config));
        dispatcher_.set_config(std::move(config));
        if (tls) {
            for (auto& l : streams_) l->set_tls_context(tls);
        }
    });
}

allocation::OpenRelayResult Worker::open_relay(const protocol::TransportAddress& address,
                                               bool dont_fragment) {
    auto socket = std::make_unique<RelaySocket>(io_, *this, relay_buffers_);
    if (const auto ec = socket->open(address, dont_fragment)) {
        if (ec.value() == EADDRINUSE) return {allocation::OpenRelayStatus::address_in_use, 0};
        // The Allocate gets 508. Out of file descriptors, every Allocate fails the same way, so
        // one line per interval says it without letting clients fill the log.
        const auto now = std::chrono::steady_clock::now();
        if (relay_failures_logged_at_ == std::chrono::steady_clock::time_point{} ||
            now - relay_failures_logged_at_ >= relay_failure_log_interval) {
            spdlog::warn(
                "relay: cannot open a socket on {}: {}{} (answering 508; {} more since "
                "the last such line)",
                address.to_string(), ec.message(),
                ec.value() == EMFILE || ec.value() == ENFILE ? ", the open-files limit is reached"
                                                             : "",
                relay_failures_unlogged_);
            relay_failures_logged_at_ = now;
            relay_failures_unlogged_ = 0;
        } else {
            ++relay_failures_unlogged_;
        }
        return {allocation::OpenRelayStatus::failed, 0};
    }
    allocation::RelayId id = 0;
    if (!free_relay_ids_.empty()) {
        id = free_relay_ids_.back();
        free_relay_ids_.pop_back();
        relays_[id] = std::move(socket);
    } else {
        id = static_cast<allocation::RelayId>(relays_.size());
        relays_.push_back(std::move(socket));
    }
    relays_[id]->set_id(id);
    relays_[id]->start();
    return {allocation::OpenRelayStatus::opened, id};
}

void Worker::close_relay(allocation::RelayId id) noexcept {
    if (id >= relays_.size() || !relays_[id]) return;
    auto socket = std::move(relays_[id]);
    socket->close();
    free_relay_ids_.push_back(id);
    // Destroyed after its cancelled wait has run: it may be mid-drain right now.
    asio::post(io_, [socket = std::move(socket)] {});
}

bool Worker::send_to_peer(allocation::RelayId id, const protocol::TransportAddress& peer,
                          std::span<const std::uint8_t> payload) noexcept {
    if (id >= relays_.size() || !relays_[id]) return false;
    return relays_[id]->send_to(peer, payload);
}

bool Worker::send_to_client(const allocation::FiveTuple& tuple, allocation::ClientId client,
                            std::span<const std::uint8_t> message) noexcept {
    if (tuple.transport == allocation::Transport::udp) {
        if (client >= udp_.size()) return false;
        // Queued, and flushed once this event-loop turn's ready sockets are drained: a burst
        // from many relay sockets leaves in one sendmmsg.
        UdpListener& listener = *udp_[client];
        if (!flush_posted_) {
            flush_posted_ = true;
            asio::post(io_, FlushHandler{this});
        }
        return listener.queue_to(tuple.client, tuple.server, message);
    }
    const auto it = connections_.find(client);
    return it != connections_.end() && it->second->send(message);
}

void Worker::flush_client_queues() noexcept {
    flush_posted_ = false;
    for (auto& l : udp_) {
        if (l->has_queued()) l->flush();
    }
}

void Worker::on_peer_datagram(RelaySocket& socket, const protocol::TransportAddress& peer,
                              std::span<const std::uint8_t> payload) {
    manager_.on_peer_datagram(socket.id(), peer, payload, std::chrono::steady_clock::now());
}

allocation::ClientId Worker::attach(ClientConnection& connection) {
    const allocation::ClientId id = next_connection_id_++;
    connections_.emplace(id, &connection);
    return id;
}

void Worker::detach(allocation::ClientId id, const PacketContext& context) noexcept {
    connections_.erase(id);
    manager_.on_client_closed({context.source, context.local, to_allocation(context.transport)});
}

}  // namespace tern::server
