// One lock around two port pools: set-up and tear-down are rare next to relayed packets, so a
// plain mutex costs less than partitioning the range and forwarding reservations between workers.
#include "tern/allocation/relay_ports.hpp"

namespace tern::allocation {

using protocol::AddressFamily;

RelayPorts::RelayPorts(std::uint16_t first, std::uint16_t last, RandomSource& random)
    : v4_(first, last, random), v6_(first, last, random) {}

std::optional<std::uint16_t> RelayPorts::acquire(AddressFamily family) {
    std::lock_guard lock(mutex_);
    return pool(family).acquire();
}

std::optional<EvenPortGrant> RelayPorts::acquire_even(AddressFamily family, bool reserve_next,
                                                      TimePoint now) {
    std::lock_guard lock(mutex_);
    return pool(family).acquire_even(reserve_next, now);
}

std::optional<ClaimedPort> RelayPorts::claim(std::uint64_t token, TimePoint now) {
    std::lock_guard lock(mutex_);
    if (auto port = v4_.claim(token, now)) return ClaimedPort{AddressFamily::ipv4, *port};
    if (auto port = v6_.claim(token, now)) return ClaimedPort{AddressFamily::ipv6, *port};
    return std::nullopt;
}

void RelayPorts::release(AddressFamily family, std::uint16_t port) {
    std::lock_guard lock(mutex_);
    pool(family).release(port);
}

void RelayPorts::mark_unusable(AddressFamily family, std::uint16_t port, TimePoint now) {
    std::lock_guard lock(mutex_);
    pool(family).mark_unusable(port, now);
}

void RelayPorts::expire(TimePoint now) {
    std::lock_guard lock(mutex_);
    v4_.expire(now);
    v6_.expire(now);
}

std::size_t RelayPorts::available(AddressFamily family) {
    std::lock_guard lock(mutex_);
    return pool(family).available();
}

bool RelayPorts::in_use(AddressFamily family, std::uint16_t port) {
    std::lock_guard lock(mutex_);
    return pool(family).in_use(port);
}

}  // namespace tern::allocation
