// Decides whether tern may relay to a peer address (RFC 8656 §21): special-purpose ranges and
// tern's own addresses are refused unless allow-listed, and a configured deny always wins.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "tern/allocation/ip_key.hpp"
#include "tern/protocol/cidr.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::allocation {

enum class PeerVerdict : std::uint8_t {
    allowed,
    denied_by_config,  // covered by a `deny` range
    special_purpose,   // loopback, private, link-local, multicast, ... and not allow-listed
    own_address,       // one of tern's listening or relay addresses and not allow-listed
};

const char* to_string(PeerVerdict verdict) noexcept;

class PeerPolicy {
public:
    // `own` are compared by IP only: a peer on another port of tern's own host can still reach
    // its other listeners, the metrics endpoint or the relay sockets of other users. Wildcard
    // listening addresses (0.0.0.0, ::) must be expanded to interface addresses by the caller.
    PeerPolicy(std::span<const protocol::Cidr> allow, std::span<const protocol::Cidr> deny,
               std::span<const protocol::TransportAddress> own);

    // No heap allocation; at most 129 trie steps. The port is ignored.
    PeerVerdict check(const protocol::TransportAddress& peer) const noexcept;
    bool permits(const protocol::TransportAddress& peer) const noexcept {
        return check(peer) == PeerVerdict::allowed;
    }

    // The ranges refused unless allow-listed, as written in the source (for tests and docs).
    static std::vector<protocol::Cidr> default_refused_ranges();

private:
    enum Flag : std::uint8_t { allow_flag = 1, deny_flag = 2, special_flag = 4, own_flag = 8 };
    struct Node {
        std::uint32_t child[2] = {0, 0};  // 0 = none; the root is node 0 and never a child
        std::uint8_t flags = 0;
    };

    // Marks the prefix of `length` bits of `key`; IPv4 ranges arrive already shifted to /96+.
    void insert(const IpKey& key, std::size_t length, std::uint8_t flag);
    void insert(const protocol::Cidr& range, std::uint8_t flag);

    // A binary trie over 128-bit keys. The rules are "is the peer covered by any range of kind
    // X", so a look-up ORs the flags of every prefix on the peer's path; that is the
    // longest-prefix walk without needing to pick a single winner.
    std::vector<Node> nodes_;
};

}  // namespace tern::allocation
