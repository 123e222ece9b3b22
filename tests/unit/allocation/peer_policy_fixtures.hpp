// Shared fixtures of the peer policy tests: the policy with no operator rules, and the
// ::ffff:a.b.c.d form of an IPv4 address.
#pragma once

#include <algorithm>
#include <array>

#include "tern/allocation/peer_policy.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::allocation::testing {

inline const PeerPolicy& default_policy() {
    static const PeerPolicy policy({}, {}, {});
    return policy;
}

inline protocol::TransportAddress mapped(const protocol::TransportAddress& v4) {
    std::array<std::uint8_t, 16> b{};
    b[10] = b[11] = 0xFF;
    std::copy_n(v4.bytes.begin(), 4, b.begin() + 12);
    return protocol::TransportAddress::v6(b, v4.port);
}

}  // namespace tern::allocation::testing
