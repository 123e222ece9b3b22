// One worker's side of the fleet (allocation::FleetAdmission): asks the store for a quota lease
// per Allocate and holds the request until the answer or fleet.allocate_wait_ms, whichever comes
// first, then hands it to the dispatcher again; keeps each allocation's lease until it ends; and
// picks the node a redirected Allocate goes to. Runs on the worker's thread only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tern/allocation/fleet_admission.hpp"
#include "tern/config/config.hpp"
#include "tern/server/io/fleet_store.hpp"
#include "tern/server/request/deferred_requests.hpp"

namespace tern::server {

class FleetGate final : public allocation::FleetAdmission, public DeferredRequests {
public:
    // `rerun` hands a held request to the dispatcher again and sends its reply.
    using Rerun = std::function<void(std::span<const std::uint8_t> packet, PacketContext context)>;
    // `io` and `store` must outlive the gate; `wake` makes the worker's loop run what was
    // posted to `io` (UdpReadiness::wake).
    FleetGate(boost::asio::io_context& io, std::function<void()> wake, FleetStore& store,
              const config::Config& config, Rerun rerun);
    ~FleetGate() override;
    FleetGate(const FleetGate&) = delete;
    FleetGate& operator=(const FleetGate&) = delete;

    void configure(const config::Config& config);  // a reload: the quota and the policy

    allocation::FleetVerdict admit(const allocation::TransactionKey& key, std::string_view username,
                                   allocation::TimePoint now) override;
    void admitted(const allocation::TransactionKey& key, std::uint64_t id) override;
    void withdrawn(const allocation::TransactionKey& key) override;
    void ended(std::uint64_t id) override;
    std::optional<allocation::Alternate> redirect(protocol::AddressFamily family,
                                                  protocol::Transport transport,
                                                  bool draining) override;

    void hold(std::span<const std::uint8_t> packet, const PacketContext& context) override;

    std::size_t waiting() const noexcept { return pending_.size(); }

private:
    struct Lease {
        std::string username;
        std::string member;
        bool registered = false;  // the store granted it (else it is written when kept)
    };
    struct Pending {
        Lease lease;
        std::vector<std::uint8_t> packet;  // empty until hold()
        PacketContext context;
        std::unique_ptr<boost::asio::steady_timer> timer;
        std::optional<allocation::FleetVerdict> verdict;  // set once answered
    };
    // A worker holds few waiting Allocates; past this many the store counts as slow.
    static constexpr std::size_t max_pending = 1024;

    allocation::FleetVerdict without_store(const std::string& key, Lease lease);
    void answered(const std::string& key, const Lease& lease, FleetStore::LeaseAnswer answer,
                  bool timed_out);

    boost::asio::io_context& io_;
    std::function<void()> wake_;
    FleetStore& store_;
    Rerun rerun_;
    std::uint32_t limit_ = 0;
    std::chrono::milliseconds wait_{50};
    config::StoreFailure on_failure_ = config::StoreFailure::local;
    std::uint32_t redirect_above_ = 0;
    std::map<std::string, Pending> pending_;  // by request key
    std::string last_new_;                    // the request admit() just started asking for
    std::map<std::string, Lease> admitting_;  // admitted, not yet an allocation
    std::unordered_map<std::uint64_t, Lease> leases_;  // by allocation id
    // Cleared by the destructor: store answers posted after the gate died do nothing.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tern::server
