// One worker thread with its own io_context, dispatcher, allocations and relay sockets.
// Everything a packet touches lives on one worker, so the packet path takes no locks and makes
// no cross-thread hops.
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tern/allocation/allocation_manager.hpp"
#include "tern/allocation/relay_ports.hpp"
#include "tern/config/config.hpp"
#include "tern/server/metrics_snapshot.hpp"
#include "tern/server/relay_socket.hpp"
#include "tern/server/request_dispatcher.hpp"
#include "tern/server/source_rate_limiter.hpp"
#include "tern/server/stream_listener.hpp"
#include "tern/server/udp_listener.hpp"

namespace tern::server {

// What every worker shares: the relay port pools, the allocation quotas and the connection
// limits (each locked only on set-up and tear-down, never per packet).
struct SharedRelayState {
    allocation::RelayPorts& ports;
    allocation::AllocationQuota& quota;
    allocation::UserBandwidth& user_bandwidth;
    SourceRateLimiter& unauthenticated;
    ConnectionQuota& connections;
    std::uint64_t hash_seed;
};

class Worker final : public allocation::RelayEgress, public RelaySink, public ConnectionRegistry {
public:
    Worker(unsigned index, std::shared_ptr<const config::Config> config,
           std::shared_ptr<const allocation::PeerPolicy> peers, const SharedRelayState& shared);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Binds one socket for `listener` at `address` (whose port may be 0 on the first worker);
    // `bound` receives the address actually bound. Call before start().
    std::error_code add_listener(const config::Listener& listener,
                                 const protocol::TransportAddress& address,
                                 std::shared_ptr<boost::asio::ssl::context> tls,
                                 protocol::TransportAddress& bound);

    void start();
    // Graceful shutdown, first step: stop accepting TCP/TLS connections and refuse new
    // allocations; live ones (and their UDP or TCP/TLS control channels) keep working.
    void drain();
    void stop();  // returns at once; join() waits
    void join();

    // Runs on the worker's own thread: new requests see the new config, peer policy and TLS
    // context; live allocations keep relaying.
    void apply(std::shared_ptr<const config::Config> config,
               std::shared_ptr<const allocation::PeerPolicy> peers,
               std::shared_ptr<boost::asio::ssl::context> tls);

    // Before start() only: the policy once the bound listening addresses are known.
    void set_peer_policy(std::shared_ptr<const allocation::PeerPolicy> peers);

    // Any thread: adds this worker's tallies to `snapshot`. Lock-free reads of counters only
    // this worker writes.
    void collect(MetricsSnapshot& snapshot) const;
    // Any thread: how late the worker's once-a-second timer is (or last was); it keeps growing
    // while the worker's loop is stuck.
    std::chrono::steady_clock::duration loop_lag() const noexcept;

private:
    // RelayEgress
    allocation::OpenRelayResult open_relay(const protocol::TransportAddress& address,
                                           bool dont_fragment) override;
    void close_relay(allocation::RelayId id) noexcept override;
    bool send_to_peer(allocation::RelayId id, const protocol::TransportAddress& peer,
                      std::span<const std::uint8_t> payload) noexcept override;
    bool send_to_client(const allocation::FiveTuple& tuple, allocation::ClientId client,
                        std::span<const std::uint8_t> message) noexcept override;
    // RelaySink
    void on_peer_datagram(RelaySocket& socket, const protocol::TransportAddress& peer,
                          std::span<const std::uint8_t> payload) override;
    // ConnectionRegistry
    allocation::ClientId attach(ClientConnection& connection) override;
    void detach(allocation::ClientId id, const PacketContext& context) noexcept override;

    void tick();
    void flush_client_queues() noexcept;

    // Memory of the one pending flush handler (see send_to_client): outlives io_, which may
    // still hold that handler when it is destroyed.
    struct FlushBlock {
        alignas(std::max_align_t) std::array<unsigned char, 256> bytes{};
        bool in_use = false;
    };
    template <typename T>
    struct FlushAllocator;
    struct FlushHandler;
    FlushBlock flush_block_;
    // Declared before io_: connections still queued in io_ at destruction count their close.
    StreamCounters stream_counters_;
    allocation::Tally lag_ns_;       // of the last tick
    allocation::Tally tick_due_ns_;  // steady-clock time the next tick is due

    unsigned index_;
    boost::asio::io_context io_;  // declared early: destroyed after the sockets
    boost::asio::steady_timer timer_;
    RelayReceiveBuffers relay_buffers_;
    std::vector<std::unique_ptr<RelaySocket>> relays_;  // indexed by RelayId
    std::vector<allocation::RelayId> free_relay_ids_;
    std::unordered_map<allocation::ClientId, ClientConnection*> connections_;
    allocation::ClientId next_connection_id_ = allocation::ClientId{1} << 32;
    allocation::AllocationManager manager_;
    RequestDispatcher dispatcher_;
    std::vector<std::unique_ptr<UdpListener>> udp_;
    bool flush_posted_ = false;  // a flush of the listeners' relayed-data queues is pending
    std::vector<std::unique_ptr<StreamListener>> streams_;
    ConnectionQuota& connections_quota_;
    // Relay sockets that failed to open (EMFILE, say): logged at most once per interval.
    std::chrono::steady_clock::time_point relay_failures_logged_at_{};
    std::uint64_t relay_failures_unlogged_ = 0;
    std::thread thread_;
};

}  // namespace tern::server
