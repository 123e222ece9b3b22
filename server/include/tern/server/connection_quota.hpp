// The TCP/TLS connection limits of the whole process, in total and per source IP
// (limits.max_connections, limits.max_connections_per_ip): taken on accept, given back on close.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>

#include "tern/allocation/ip_key.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::server {

class ConnectionQuota {
public:
    ConnectionQuota(std::size_t max_total, std::size_t max_per_ip) noexcept
        : max_total_(max_total), max_per_ip_(max_per_ip) {}

    // A reload: later connections see the new limits; those open stay.
    void set_limits(std::size_t max_total, std::size_t max_per_ip);

    // False when either limit is reached; the caller then closes the connection at once.
    bool try_acquire(const protocol::TransportAddress& client);
    void release(const protocol::TransportAddress& client);

    std::size_t total();
    std::size_t count_for(const protocol::TransportAddress& client);

private:
    std::mutex mutex_;
    std::size_t max_total_;
    std::size_t max_per_ip_;
    std::size_t total_ = 0;
    std::map<allocation::IpKey, std::size_t> per_ip_;  // IPv4-mapped folded with IPv4
};

}  // namespace tern::server
