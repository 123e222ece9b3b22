// The configuration, translated for the pure layers: allocation settings, the peer policy with
// tern's own addresses, and the auth expiry policy. One place, so reload and start agree.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "tern/allocation/allocation_manager.hpp"
#include "tern/allocation/peer_policy.hpp"
#include "tern/auth/expiry_policy.hpp"
#include "tern/config/config.hpp"

namespace tern::server {

allocation::ManagerSettings manager_settings(const config::Config& config);

// Own addresses = relay and external addresses, and the listening addresses with wildcards
// expanded to every interface address (getifaddrs). A peer on one of them is refused except on
// relay.ports (other clients' relayed addresses), and never on a listener's port.
std::shared_ptr<const allocation::PeerPolicy> make_peer_policy(
    const config::Config& config, std::span<const config::Listener> bound);

auth::ExpiryPolicy expiry_policy(config::CredentialExpiry expiry) noexcept;

}  // namespace tern::server
