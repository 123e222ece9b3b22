// The relay port pools of the whole process, one per address family, shared by every worker.
// Only allocation set-up and tear-down take its lock; relayed packets never touch it.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>

#include "tern/allocation/random_source.hpp"
#include "tern/allocation/relay_port_pool.hpp"
#include "tern/allocation/time_point.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::allocation {

struct ClaimedPort {
    protocol::AddressFamily family = protocol::AddressFamily::ipv4;
    std::uint16_t port = 0;
};

class RelayPorts {
public:
    // `random` must outlive this and be safe to call under this object's lock.
    RelayPorts(std::uint16_t first, std::uint16_t last, RandomSource& random);

    std::optional<std::uint16_t> acquire(protocol::AddressFamily family);
    std::optional<EvenPortGrant> acquire_even(protocol::AddressFamily family, bool reserve_next,
                                              TimePoint now);
    // A RESERVATION-TOKEN from any worker's earlier EVEN-PORT grant.
    std::optional<ClaimedPort> claim(std::uint64_t token, TimePoint now);
    void release(protocol::AddressFamily family, std::uint16_t port);
    void mark_unusable(protocol::AddressFamily family, std::uint16_t port, TimePoint now);
    void expire(TimePoint now);

    std::size_t available(protocol::AddressFamily family);
    // True while `port` is bound by a relay (reserved and unusable ports are not).
    bool in_use(protocol::AddressFamily family, std::uint16_t port);

private:
    RelayPortPool& pool(protocol::AddressFamily family) noexcept {
        return family == protocol::AddressFamily::ipv4 ? v4_ : v6_;
    }

    std::mutex mutex_;
    RelayPortPool v4_;
    RelayPortPool v6_;
};

}  // namespace tern::allocation
