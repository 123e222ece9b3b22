// The admin API carried out (admin_api.hpp has its rules): on the main thread, each command is
// posted to the workers that own the allocations it concerns, and the answer is written when
// the last of them has replied. Workers do the work between packets; nothing here takes a lock
// a packet could wait on.
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tern/config/config.hpp"
#include "tern/server/io/fleet_store.hpp"
#include "tern/server/io/worker.hpp"
#include "tern/server/ops/admin_api.hpp"
#include "tern/server/ops/metrics_endpoint.hpp"
#include "tern/server/ops/revocation_store.hpp"

namespace tern::server {

class AdminService {
public:
    // A revocation without `until` lasts this long: ternctl refuses to mint a REST credential
    // for longer without --force, so by then every credential of the user has lapsed.
    static constexpr std::chrono::seconds default_revocation{7 * 24 * 3600};

    // `workers` and `revocations` must outlive the service; `control` is the endpoint's thread.
    AdminService(boost::asio::io_context& control, std::vector<Worker*> workers,
                 RevocationStore& revocations, const config::Config& config);

    // With a fleet (may be null): the session list covers every node, and kills and
    // revocations are published to every node. `fleet` must outlive the service.
    void set_fleet(FleetStore* fleet) noexcept { fleet_ = fleet; }
    // A command another node published (on any thread): applied here, not published again.
    void apply_published(std::string message);
    // The fleet's revocations as the store holds them (on any thread): taken into ours; with
    // `send_ours`, ours it lacks are sent to it and to every node, and ours lifted since the
    // last such merge are lifted there.
    void merge_revocations(FleetStore::Revocations revocations, bool send_ours);
    // This node's sessions to the store, for the other nodes' lists (once a second).
    void publish_sessions();

    void handle(AdminRequest request, std::function<void(HttpAnswer)> reply);
    // A reload: the token and realm may change.
    void configure(const config::Config& config);

    const std::array<std::uint64_t, admin_outcome_names.size()>& requests() const noexcept {
        return requests_;
    }

private:
    void run(const AdminCommand& command, std::function<void(HttpAnswer)> reply);
    void list_sessions(const AdminCommand& command, std::function<void(HttpAnswer)> reply);
    void kill_session(const AdminCommand& command, std::function<void(HttpAnswer)> reply);
    void apply_revocation(const std::string& user, std::int64_t until);
    void apply_lift(const std::string& user);
    // A decision from the fleet (until 0: lifted), taken unless this node's is newer.
    void take_decision(const std::string& user, std::int64_t until, std::int64_t decided);
    std::string node_id() const { return fleet_ != nullptr ? fleet_->node_id() : std::string(); }
    void end_user(const std::string& user, allocation::EndReason reason,
                  std::function<void(std::size_t)> done);
    void revoke(const AdminCommand& command, std::function<void(HttpAnswer)> reply);
    void unrevoke(const AdminCommand& command, const std::function<void(HttpAnswer)>& reply);
    HttpAnswer revocations_json() const;
    // `reply` with the outcome counted.
    std::function<void(HttpAnswer)> counted(std::function<void(HttpAnswer)> reply);

    boost::asio::io_context& control_;
    std::vector<Worker*> workers_;
    RevocationStore& revocations_;
    std::string token_;
    std::string realm_;
    AdminFailureLimiter limiter_;
    FleetStore* fleet_ = nullptr;
    // When this node's revocation state of each user was decided (unix ms; users not listed:
    // before this process started): where nodes disagree the later decision wins.
    std::map<std::string, std::int64_t, std::less<>> decided_;
    std::array<std::uint64_t, admin_outcome_names.size()> requests_{};
};

}  // namespace tern::server
