// The TURN server state machine (RFC 8656) for one worker: Allocate, Refresh, CreatePermission
// and ChannelBind answered in full, Send/Data indications and ChannelData relayed both ways.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tern/allocation/allocation_quota.hpp"
#include "tern/allocation/allocation_record.hpp"
#include "tern/allocation/allocation_table.hpp"
#include "tern/allocation/client_route.hpp"
#include "tern/allocation/five_tuple.hpp"
#include "tern/allocation/fleet_admission.hpp"
#include "tern/allocation/kernel_routes.hpp"
#include "tern/allocation/peer_policy.hpp"
#include "tern/allocation/relay_egress.hpp"
#include "tern/allocation/relay_ports.hpp"
#include "tern/allocation/tally.hpp"
#include "tern/allocation/time_point.hpp"
#include "tern/allocation/token_bucket.hpp"
#include "tern/allocation/transaction_cache.hpp"
#include "tern/allocation/user_bandwidth.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::allocation {

// Which family an Allocate without REQUESTED-ADDRESS-FAMILY gets.
enum class DefaultFamily : std::uint8_t {
    ipv4,    // RFC 8656 §7.2
    client,  // the family of the server address the client reached
};

struct ExternalMapping {
    // The address relay sockets bind (port ignored); the unspecified address of a family
    // stands for every address of that family.
    protocol::TransportAddress internal;
    protocol::TransportAddress external;  // what XOR-RELAYED-ADDRESS advertises (port ignored)
};

struct ManagerSettings {
    AllocationLimits limits;
    // At most one per family is used. A family without one relays on the server address the
    // client reached, when that is of the family.
    std::vector<protocol::TransportAddress> relay_addresses;
    std::vector<ExternalMapping> external_addresses;
    DefaultFamily default_family = DefaultFamily::ipv4;
    // Also bind 0x5000-0x7FFF, which RFC 5766 allowed (RFC 8656 §12 reserves them).
    bool rfc5766_channels = false;
    std::string software;
    // Responses remembered for retransmissions (40 s each, oldest overwritten first); fixed at
    // construction.
    std::size_t transaction_slots = 4096;  // SOFTWARE in responses; empty = none
};

// Who sent a request, as the caller's authentication established it.
struct Requester {
    std::string_view username;
    std::span<const std::uint8_t> key;  // the long-term key that verified the request
    bool sha256 = false;  // sign responses with MESSAGE-INTEGRITY-SHA256 instead of -INTEGRITY
    std::optional<TimePoint> teardown_at;  // auth.expiry strict: the allocation ends then
};

// Per-worker tallies: the worker's thread writes them, the metrics endpoint reads them.
struct RelayCounters {
    static constexpr std::size_t transports = 3;  // protocol::Transport: udp, tcp, tls
    static constexpr std::size_t families = 2;    // relayed address family: ipv4, ipv6
    using ByKind = std::array<std::array<Tally, families>, transports>;
    Tally allocations_created;
    Tally allocations_removed;
    // By the client's transport and the first relayed address's family; active = created -
    // removed.
    ByKind created_by_kind;
    ByKind removed_by_kind;
    Tally packets_to_peer;
    Tally bytes_to_peer;
    Tally packets_to_client;
    Tally bytes_to_client;
    Tally dropped_no_allocation;  // ChannelData / Send from an unknown 5-tuple
    Tally dropped_no_permission;  // either direction
    Tally dropped_no_channel;     // ChannelData on an unbound channel
    Tally dropped_send_failed;
    Tally dropped_bandwidth;          // over limits.allocation_bandwidth or user_bandwidth
    Tally rejected_allocation_quota;  // 486/508 for limits.max_allocations
    Tally rejected_user_quota;        // 486 for limits.max_allocations_per_user
    // Live permissions and channels, as counted by the last expire() sweep (once a second).
    Tally permissions_active;
    Tally channels_active;
    // Channels the kernel fast path relays now (set by the sweep). What it relays is counted by
    // the program itself (KernelFastPath::stats), not here.
    Tally kernel_channels;
};

class AllocationManager {
public:
    // `ports`, `egress`, `quota` and `users` must outlive the manager. `hash_seed` should be
    // random per process. With a `quota` shared by several managers, the allocation limits of
    // `settings` are enforced process-wide through it; without one, per manager. The same holds
    // for `users` and limits.user_bandwidth.
    AllocationManager(ManagerSettings settings, std::shared_ptr<const PeerPolicy> peers,
                      RelayPorts& ports, RelayEgress& egress, std::uint64_t hash_seed,
                      AllocationQuota* quota = nullptr, UserBandwidth* users = nullptr);
    ~AllocationManager();
    AllocationManager(const AllocationManager&) = delete;
    AllocationManager& operator=(const AllocationManager&) = delete;

    // A reload: new requests see the new limits, addresses and peer policy, and the new
    // bandwidth caps apply at once; live allocations, permissions and channels keep relaying.
    void reconfigure(ManagerSettings settings, std::shared_ptr<const PeerPolicy> peers);

    // Allocate, Refresh, CreatePermission or ChannelBind from an authenticated requester (so
    // unknown comprehension-required attributes are checked here, RFC 8489 §6.3): writes
    // the full response (MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT included) into `out` and
    // returns it; empty for other methods. A retransmission (same 5-tuple and transaction ID
    // within 40 s) gets the same bytes again without being processed twice.
    std::span<const std::uint8_t> handle_request(const protocol::MessageView& request,
                                                 const FiveTuple& tuple, ClientRoute client,
                                                 const Requester& requester, TimePoint now,
                                                 std::span<std::uint8_t> out);

    // The relay rules, for the I/O layer's two relay directions. Each decides one datagram:
    // where it goes, or nothing (the drop is counted). Bandwidth is taken when a route is
    // given; the caller reports what the kernel then accepted with count_to_*.
    //
    // ChannelData (§12.5) or a Send indication (§11.2) from a client: out of which relay
    // socket, to which peer; `payload` views the caller's bytes.
    struct ToPeer {
        RelayId relay = 0;
        protocol::TransportAddress peer;
        std::span<const std::uint8_t> payload;
    };
    std::optional<ToPeer> route_channel_data(std::span<const std::uint8_t> message,
                                             const FiveTuple& tuple, TimePoint now) noexcept;
    std::optional<ToPeer> route_send_indication(const protocol::MessageView& indication,
                                                const FiveTuple& tuple, TimePoint now) noexcept;
    // A datagram of `payload_size` bytes that `peer` sent to relay socket `relay` (§11.3,
    // §12.6): to which client, and framed how (see ClientFrame).
    struct ToClient {
        const FiveTuple* tuple = nullptr;  // the allocation's; valid until it is removed
        ClientRoute route;
        std::uint16_t channel = 0;            // bound channel, or 0 for a Data indication
        std::uint64_t indication_serial = 0;  // a Data indication's transaction ID
    };
    std::optional<ToClient> route_peer_datagram(RelayId relay,
                                                const protocol::TransportAddress& peer,
                                                std::size_t payload_size, TimePoint now) noexcept;
    // What the kernel took (sent) and refused (failed) of routed datagrams; bytes are payload.
    void count_to_peer(std::uint64_t sent, std::uint64_t bytes, std::uint64_t failed) noexcept {
        counters_.packets_to_peer += sent;
        counters_.bytes_to_peer += bytes;
        counters_.dropped_send_failed += failed;
    }
    void count_to_client(std::uint64_t sent, std::uint64_t bytes, std::uint64_t failed) noexcept {
        counters_.packets_to_client += sent;
        counters_.bytes_to_client += bytes;
        counters_.dropped_send_failed += failed;
    }

    // The rules above and a send through RelayEgress, for stream clients and tests.
    // Send indication from the client (RFC 8656 §11.2): relayed or silently dropped.
    void on_send_indication(const protocol::MessageView& indication, const FiveTuple& tuple,
                            TimePoint now) noexcept;
    // ChannelData from the client (RFC 8656 §12.5): relayed or silently dropped.
    void on_channel_data(std::span<const std::uint8_t> message, const FiveTuple& tuple,
                         TimePoint now) noexcept;
    // A datagram a peer sent to relay socket `relay` (RFC 8656 §11.3, §12.6): to the client as
    // ChannelData when a channel is bound to the peer, else as a Data indication; dropped
    // without a permission.
    void on_peer_datagram(RelayId relay, const protocol::TransportAddress& peer,
                          std::span<const std::uint8_t> payload, TimePoint now) noexcept;

    // True when `source` is one of tern's relayed transport addresses (an own IP and a port
    // some worker's relay holds): a request from there is spoofed, and its answer would land
    // in that client's relay session as data. Takes the port pools' lock only for sources on
    // an own IP (local clients), never for relayed data.
    bool is_own_relayed_address(const protocol::TransportAddress& source) const;

    // A TCP/TLS control connection closed: its allocation goes with it (RFC 8656 §3.1).
    void on_client_closed(const FiveTuple& tuple);

    // The coarse timer: removes lapsed allocations (and strict-expiry ones), frees their relay
    // sockets and ports, and sweeps lapsed permissions and channels.
    void expire(TimePoint now);

    // Removes every allocation (shutdown; a drain's end).
    void clear();

    // The operator's view (the admin API), on the worker's thread; none of it runs per packet.
    // Live allocations now (what the kernel fast path relayed included, read first).
    std::vector<AllocationRecord> records(TimePoint now);
    // Ends the allocation with this id now (ports freed, a later Refresh gets 437); false when
    // there is none here.
    bool end_allocation(std::uint64_t id, EndReason reason);
    // Ends every allocation whose username `belongs`; returns how many.
    std::size_t end_allocations_of(const std::function<bool(std::string_view username)>& belongs,
                                   EndReason reason);
    // Ended allocations go to `sink` (may be null: none); it must outlive the manager.
    void set_usage_sink(UsageSink* sink) noexcept { usage_ = sink; }
    // Ids of this manager's allocations start here; give each manager of a process its own.
    void set_id_base(std::uint64_t base) noexcept { next_id_ = base; }

    // Shutting down gracefully: live allocations keep working, new Allocates get 508 so
    // clients try another server (or a 300 to one, with a fleet).
    void set_draining(bool draining) noexcept { draining_ = draining; }
    bool draining() const noexcept { return draining_; }

    // The kernel fast path (may be null: none); it must outlive the manager. Bound channels of
    // UDP clients are handed to it (kernel_sync.cpp).
    void set_kernel_routes(KernelRoutes* routes) noexcept { kernel_ = routes; }

    // The fleet's quota and redirection (may be null: none); it must outlive the manager.
    void set_fleet(FleetAdmission* fleet) noexcept { fleet_ = fleet; }
    // True once after handle_request returned nothing because the fleet was asked (`wait`):
    // the caller keeps the request and hands it in again when the fleet has answered.
    bool take_deferred() noexcept { return std::exchange(deferred_, false); }

    std::size_t allocation_count() const noexcept { return table_.size(); }
    const Allocation* find(const FiveTuple& tuple, TimePoint now) const noexcept {
        return table_.find(tuple, now);
    }
    const RelayCounters& counters() const noexcept { return counters_; }
    const ManagerSettings& settings() const noexcept { return settings_; }

private:
    struct Reply;  // request_reply.hpp
    // An error response to send, or nothing: go on.
    using Refusal = std::optional<std::span<const std::uint8_t>>;

    // Allocate (allocate.cpp), in the order of RFC 8656 §7.2. Each refusal gives back what the
    // steps before it took.
    std::span<const std::uint8_t> allocate(const protocol::MessageView& request,
                                           const FiveTuple& tuple, ClientRoute client,
                                           const Requester& requester, TimePoint now, Reply& r);
    struct AllocateAsk;
    struct OpenedRelays;
    Refusal read_allocate(const protocol::MessageView& request, const FiveTuple& tuple,
                          AllocateAsk& ask, Reply& r) const noexcept;
    Refusal admit_allocation(const TransactionKey& key, std::string_view username,
                             const AllocateAsk& ask, TimePoint now, Reply& r);
    bool open_relays(const protocol::TransportAddress& ip, const protocol::TransportAddress& server,
                     const AllocateAsk& ask, OpenedRelays& out, TimePoint now);
    const Allocation* create_allocation(const protocol::MessageView& request,
                                        const FiveTuple& tuple, ClientRoute client,
                                        const Requester& requester, const OpenedRelays& relays,
                                        TimePoint now);
    std::span<const std::uint8_t> allocated(const Allocation& a, const OpenedRelays& relays,
                                            TimePoint now, Reply& r) const;
    void give_back_reserved(const AllocateAsk& ask);
    void give_back_quota(std::string_view username, const TransactionKey& key);
    void close_relays(const OpenedRelays& relays);

    // Refresh (refresh.cpp), CreatePermission (create_permission.cpp) and ChannelBind
    // (channel_bind.cpp), for the requester's own live allocation only.
    std::span<const std::uint8_t> refresh(const protocol::MessageView& request,
                                          const FiveTuple& tuple, Allocation& a,
                                          const Requester& requester, TimePoint now, Reply& r);
    std::span<const std::uint8_t> create_permission(const protocol::MessageView& request,
                                                    Allocation& a, TimePoint now, Reply& r);
    std::span<const std::uint8_t> channel_bind(const protocol::MessageView& request, Allocation& a,
                                               TimePoint now, Reply& r);

    // The relay path (data_path.cpp).
    std::optional<ToPeer> route_to_peer(Allocation& a, const protocol::TransportAddress& peer,
                                        std::span<const std::uint8_t> payload,
                                        TimePoint now) noexcept;
    void send_to_peer(const std::optional<ToPeer>& route) noexcept;
    // Takes `bytes` from the allocation's and its user's budgets for one direction; false (and
    // nothing taken) when either is short.
    bool within_budget(TokenBucket& own, SharedTokenBucket* user, std::size_t bytes,
                       TimePoint now) noexcept;

    // The kernel fast path's entries for one allocation (kernel_sync.cpp).
    void sync_kernel(Allocation& a, TimePoint now) noexcept;
    void withdraw_kernel(Allocation& a) noexcept;
    std::optional<KernelRoute> kernel_route(const Allocation& a, std::uint16_t channel,
                                            const protocol::TransportAddress& peer,
                                            TimePoint now) const noexcept;
    // Adds what the kernel relayed to the allocation's usage.
    void count_kernel(Allocation& a, const KernelRouteCounts& relayed) noexcept;
    void read_kernel_counts(Allocation& a) noexcept;
    // A reload: withdraws the routes to peers the new policy refuses, at once.
    void prune_kernel(Allocation& a) noexcept;
    // The allocation's bandwidth caps as kernel budgets, before its first route; false when
    // the kernel has no room for them.
    bool open_kernel_budgets(Allocation& a) noexcept;
    void close_kernel_budgets(Allocation& a) noexcept;

    void apply_rates() noexcept;
    // The relay IP for `family` for a client that reached `server`; nullopt = 440.
    std::optional<protocol::TransportAddress> relay_ip(
        protocol::AddressFamily family, const protocol::TransportAddress& server) const noexcept;
    protocol::TransportAddress advertised(const protocol::TransportAddress& bound) const noexcept;
    // Opens a relay socket on `ip` at a port from the pool (or `fixed`); 0 ports = failure.
    struct OpenedRelay {
        protocol::TransportAddress address;
        RelayId id = 0;
    };
    // How often a busy port is skipped before the Allocate fails with 508.
    static constexpr int max_bind_attempts = 16;
    std::optional<OpenedRelay> open_relay(const protocol::TransportAddress& ip, bool dont_fragment,
                                          std::optional<std::uint16_t> fixed_port, TimePoint now);
    void release(Allocation& allocation, EndReason reason);
    static EndReason lapsed_reason(const Allocation& a) noexcept;
    // `now` set: a live list's entry; null: the usage record of an allocation that ended.
    AllocationRecord record_of(const Allocation& a, const TimePoint* now) const;
    AllocationLimits table_limits() const noexcept;  // the table's own, unbounded with quota_
    // The allocation's relay address of `family`, if it has one.
    static const protocol::TransportAddress* relay_of(const Allocation& a,
                                                      protocol::AddressFamily family) noexcept;

    ManagerSettings settings_;
    std::shared_ptr<const PeerPolicy> peers_;
    RelayPorts& ports_;
    RelayEgress& egress_;
    AllocationQuota* quota_;
    std::unique_ptr<UserBandwidth> own_users_;  // when no shared one was given
    UserBandwidth* users_;
    BucketRate allocation_rate_;
    BucketRate user_rate_;
    AllocationTable table_;
    TransactionCache transactions_;
    // Indexed by RelayId (the egress hands out small reused indexes): 8 bytes per relay socket
    // and one load per peer datagram. Table nodes do not move, so the pointers stay valid.
    std::vector<Allocation*> by_relay_;
    static constexpr RelayId max_relay_index = RelayId{1} << 22;
    void index_relay(RelayId id, Allocation& a);
    // Where on_peer_datagram frames messages for clients; one thread uses it.
    std::vector<std::uint8_t> client_buffer_;
    RelayCounters counters_;
    std::uint64_t data_indications_ = 0;  // transaction IDs of Data indications
    bool draining_ = false;
    FleetAdmission* fleet_ = nullptr;
    KernelRoutes* kernel_ = nullptr;
    TimePoint last_sweep_{};  // the latest time the kernel routes were reconciled at
    bool deferred_ = false;
    UsageSink* usage_ = nullptr;
    std::uint64_t next_id_ = 1;
};

}  // namespace tern::allocation
