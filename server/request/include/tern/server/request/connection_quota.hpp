// The TCP/TLS connection limits of the whole process, in total and per source
// (limits.max_connections, limits.max_connections_per_ip): taken on accept, given back on close.
// A source is an IPv4 address or an IPv6 prefix of limits.ipv6_source_prefix bits.
#pragma once

#include <atomic>
#include <cstddef>

#include "tern/allocation/ip_key.hpp"
#include "tern/allocation/keyed_quota.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::server {

class ConnectionQuota {
public:
    ConnectionQuota(std::size_t max_total, std::size_t max_per_ip,
                    unsigned ipv6_prefix = 64) noexcept
        : counts_(max_total, max_per_ip), ipv6_prefix_(ipv6_prefix) {}

    // A reload: later connections see the new limits and prefix; those open stay, and give
    // back the source key they took.
    void set_limits(std::size_t max_total, std::size_t max_per_ip, unsigned ipv6_prefix) {
        counts_.set_limits(max_total, max_per_ip);
        ipv6_prefix_.store(ipv6_prefix, std::memory_order_relaxed);
    }

    // The key `client` counts under now. An IPv4 address and its IPv4-mapped IPv6 form are one
    // source; IPv6 addresses of one prefix are one source.
    allocation::IpKey source_of(const protocol::TransportAddress& client) const noexcept {
        return allocation::IpKey::source_of(client, ipv6_prefix_.load(std::memory_order_relaxed));
    }

    // Which limit refused, if any: key_full = per source, total_full = in total. The caller
    // keeps `source` and releases that same key on close.
    allocation::QuotaVerdict acquire(const allocation::IpKey& source) {
        return counts_.acquire(source);
    }
    void release(const allocation::IpKey& source) { counts_.release(source); }

    // For callers that hold no key of their own (tests): the key of `client` now.
    bool try_acquire(const protocol::TransportAddress& client) {
        return acquire(source_of(client)) == allocation::QuotaVerdict::granted;
    }
    void release(const protocol::TransportAddress& client) { release(source_of(client)); }

    std::size_t total() { return counts_.total(); }
    std::size_t count_for(const protocol::TransportAddress& client) {
        return counts_.count_for(source_of(client));
    }

private:
    allocation::KeyedQuota<allocation::IpKey> counts_;
    std::atomic<unsigned> ipv6_prefix_;
};

}  // namespace tern::server
