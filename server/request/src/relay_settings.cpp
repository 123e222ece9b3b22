#include "tern/server/request/relay_settings.hpp"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "tern/server/request/socket_address.hpp"

namespace tern::server {

allocation::ManagerSettings manager_settings(const config::Config& config) {
    allocation::ManagerSettings s;
    s.limits.max_lifetime = std::chrono::seconds(config.limits.max_lifetime);
    s.limits.max_allocations = config.limits.max_allocations;
    s.limits.max_allocations_per_user = config.limits.max_allocations_per_user;
    s.limits.max_permissions_per_allocation = config.limits.max_permissions_per_allocation;
    s.limits.max_channels_per_allocation = config.limits.max_channels_per_allocation;
    s.limits.allocation_bandwidth = config.limits.allocation_bandwidth;
    s.limits.user_bandwidth = config.limits.user_bandwidth;
    s.relay_addresses = config.relay.addresses;
    for (const auto& e : config.relay.external_addresses) {
        s.external_addresses.push_back({e.internal, e.external});
    }
    s.default_family = config.relay.default_family == config::RelayFamily::client
                           ? allocation::DefaultFamily::client
                           : allocation::DefaultFamily::ipv4;
    s.rfc5766_channels = config.relay.channel_numbers == config::ChannelNumbers::rfc5766;
    s.software = config.software;
    return s;
}

namespace {

bool is_wildcard(const protocol::TransportAddress& a) {
    for (std::size_t i = 0; i < a.address_size(); ++i) {
        if (a.bytes[i] != 0) return false;
    }
    return true;
}

void add_interface_addresses(protocol::AddressFamily family,
                             std::vector<protocol::TransportAddress>& out) {
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) return;
    for (const ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
        if (i->ifa_addr == nullptr) continue;
        const int f = i->ifa_addr->sa_family;
        if ((f == AF_INET && family == protocol::AddressFamily::ipv4) ||
            (f == AF_INET6 && family == protocol::AddressFamily::ipv6)) {
            out.push_back(from_sockaddr(i->ifa_addr));
        }
    }
    ::freeifaddrs(list);
}

}  // namespace

std::shared_ptr<const allocation::PeerPolicy> make_peer_policy(
    const config::Config& config, std::span<const config::Listener> bound) {
    std::vector<protocol::TransportAddress> own = config.relay.addresses;
    for (const auto& e : config.relay.external_addresses) {
        // relay.external_address maps from the unspecified address, which is no address of ours.
        if (!is_wildcard(e.internal)) own.push_back(e.internal);
        own.push_back(e.external);
    }
    for (const auto& l : bound) {
        if (is_wildcard(l.address)) {
            add_interface_addresses(l.address.family, own);
        } else {
            own.push_back(l.address);
        }
    }
    // Relay sockets live on the relay port range: there an own address is another client's
    // relayed address, and two clients of this server may relay to each other.
    allocation::OwnPeerPorts ports;
    ports.first = config.relay.ports.first;
    ports.last = config.relay.ports.last;
    for (const auto& l : bound) ports.listeners.push_back(l.address.port);
    return std::make_shared<const allocation::PeerPolicy>(config.relay.allow_peers,
                                                          config.relay.deny_peers, own, ports);
}

auth::ExpiryPolicy expiry_policy(config::CredentialExpiry expiry) noexcept {
    switch (expiry) {
        case config::CredentialExpiry::request:
            return auth::ExpiryPolicy::request;
        case config::CredentialExpiry::strict:
            return auth::ExpiryPolicy::strict;
        case config::CredentialExpiry::allocate:
            break;
    }
    return auth::ExpiryPolicy::allocate;
}

}  // namespace tern::server
