// The TCP/TLS connection limits of the whole process, in total and per source IP
// (limits.max_connections, limits.max_connections_per_ip): taken on accept, given back on close.
#pragma once

#include <cstddef>

#include "tern/allocation/ip_key.hpp"
#include "tern/allocation/keyed_quota.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::server {

class ConnectionQuota {
public:
    ConnectionQuota(std::size_t max_total, std::size_t max_per_ip) noexcept
        : counts_(max_total, max_per_ip) {}

    // A reload: later connections see the new limits; those open stay.
    void set_limits(std::size_t max_total, std::size_t max_per_ip) {
        counts_.set_limits(max_total, max_per_ip);
    }

    // False when either limit is reached; the caller then closes the connection at once. An
    // IPv4 address and its IPv4-mapped IPv6 form count as one source.
    bool try_acquire(const protocol::TransportAddress& client) {
        return acquire(client) == allocation::QuotaVerdict::granted;
    }
    // The same, saying which limit refused: key_full = per IP, total_full = in total.
    allocation::QuotaVerdict acquire(const protocol::TransportAddress& client) {
        return counts_.acquire(allocation::IpKey::of(client));
    }
    void release(const protocol::TransportAddress& client) {
        counts_.release(allocation::IpKey::of(client));
    }

    std::size_t total() { return counts_.total(); }
    std::size_t count_for(const protocol::TransportAddress& client) {
        return counts_.count_for(allocation::IpKey::of(client));
    }

private:
    allocation::KeyedQuota<allocation::IpKey> counts_;
};

}  // namespace tern::server
