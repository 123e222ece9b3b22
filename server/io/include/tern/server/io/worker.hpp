// One worker thread with its own io_context, dispatcher, allocations and relay sockets.
// Everything a packet touches lives on one worker, so the packet path takes no locks and makes
// no cross-thread hops. The worker builds and wires the parts; relayed data passes through
// ClientToPeer and PeerToClient, which its UDP readiness loop calls.
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "tern/allocation/allocation_manager.hpp"
#include "tern/allocation/relay_ports.hpp"
#include "tern/config/config.hpp"
#include "tern/server/io/client_to_peer.hpp"
#include "tern/server/io/fleet_gate.hpp"
#include "tern/server/io/fleet_store.hpp"
#include "tern/server/io/peer_to_client.hpp"
#include "tern/server/io/relay_sockets.hpp"
#include "tern/server/io/stream_clients.hpp"
#include "tern/server/io/stream_listener.hpp"
#include "tern/server/io/udp_listener.hpp"
#include "tern/server/io/udp_readiness.hpp"
#include "tern/server/request/request_dispatcher.hpp"
#include "tern/server/request/source_rate_limiter.hpp"

namespace tern::server {

// What every worker shares: the relay port pools, the allocation quotas and the connection
// limits (each locked only on set-up and tear-down, never per packet).
struct SharedRelayState {
    allocation::RelayPorts& ports;
    allocation::AllocationQuota& quota;
    allocation::UserBandwidth& user_bandwidth;
    SourceRateLimiter& unauthenticated;
    ConnectionQuota& connections;
    ConnectionQuota& fallback_connections;  // edge.fallback_max_connections(_per_ip)
    std::uint64_t hash_seed;
    allocation::UsageSink* usage = nullptr;  // ended allocations (usage_records); may be null
    FleetStore* fleet = nullptr;             // the fleet's store (fleet.redis); may be null
};

class Worker final : private UdpReadinessHandler {
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

    // The operator's requests (the admin API), carried out on the worker's thread; each `done`
    // runs there too, so the caller posts its result back to its own thread.
    using SessionsDone =
        std::function<void(std::vector<allocation::AllocationRecord> records, TimePoint now)>;
    void list_sessions(SessionsDone done);
    // Ends allocation `id` if this worker holds it; done(false) otherwise.
    void end_session(std::uint64_t id, std::function<void(bool ended)> done);
    // Ends every allocation of `user` (its own name, or REST usernames with that user part).
    void end_user(std::string user, allocation::EndReason reason,
                  std::function<void(std::size_t ended)> done);
    // Requests from now on check credentials against `revocations`.
    void set_revocations(std::shared_ptr<const auth::RevocationList> revocations);

    // Before start() only: bound channels of UDP clients go to the kernel fast path too.
    void set_kernel_routes(allocation::KernelRoutes* routes) { manager_.set_kernel_routes(routes); }

    // Before start() only: the policy once the bound listening addresses are known.
    void set_peer_policy(std::shared_ptr<const allocation::PeerPolicy> peers);

    // Any thread: the tallies only this worker writes, read lock-free (the metrics snapshot).
    const allocation::RelayCounters& relay_counters() const noexcept { return manager_.counters(); }
    const DispatchCounters& dispatch_counters() const noexcept { return dispatcher_.counters(); }
    const StreamCounters& stream_counters() const noexcept { return stream_counters_; }
    // Any thread: how late the worker's once-a-second timer is (or last was); it keeps growing
    // while the worker's loop is stuck.
    std::chrono::steady_clock::duration loop_lag() const noexcept;

private:
    // UdpReadinessHandler: a ready socket goes to its relay direction.
    bool on_readable(UdpToken token, TimePoint now) noexcept override;
    bool end_of_pass() noexcept override;

    void tick();

    // Declared before io_: connections still queued in io_ at destruction count their close.
    StreamCounters stream_counters_;
    allocation::Tally lag_ns_;       // of the last tick
    allocation::Tally tick_due_ns_;  // steady-clock time the next tick is due

    unsigned index_;
    boost::asio::io_context io_;  // declared early: destroyed after the sockets
    boost::asio::steady_timer timer_;
    UdpReadiness readiness_;
    // Built in this order; RelaySockets only keeps references to the two directions.
    RelaySockets relays_;
    allocation::AllocationManager manager_;
    RequestDispatcher dispatcher_;
    std::vector<std::unique_ptr<UdpListener>> udp_;
    StreamClients stream_clients_;
    ClientToPeer client_to_peer_;
    PeerToClient peer_to_client_;
    std::vector<std::unique_ptr<StreamListener>> streams_;
    ConnectionQuota& connections_quota_;
    ConnectionQuota& fallback_quota_;
    // With a fleet: its quota leases and redirects, and where held Allocates are answered.
    std::unique_ptr<FleetGate> fleet_gate_;
    std::vector<std::uint8_t> rerun_buffer_;
    std::thread thread_;
};

}  // namespace tern::server
