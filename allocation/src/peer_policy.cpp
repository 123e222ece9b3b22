// The peer filter's trie and the table of special-purpose ranges refused by default.
#include "tern/allocation/peer_policy.hpp"

#include <algorithm>
#include <string_view>

namespace tern::allocation {

namespace {

struct RangeText {
    std::string_view address;
    std::uint8_t prefix_length;
};

// IANA special-purpose registries (RFC 6890 and successors) plus multicast and the reserved
// block; RFC 8656 §21 asks TURN servers to keep relays away from them by default.
constexpr RangeText default_refused[] = {
    {"0.0.0.0", 8},        // "this network"
    {"10.0.0.0", 8},       // RFC 1918
    {"100.64.0.0", 10},    // CGNAT shared space, RFC 6598
    {"127.0.0.0", 8},      // loopback
    {"169.254.0.0", 16},   // link-local, incl. cloud metadata 169.254.169.254
    {"172.16.0.0", 12},    // RFC 1918
    {"192.0.0.0", 24},     // IETF protocol assignments
    {"192.0.2.0", 24},     // TEST-NET-1
    {"192.88.99.0", 24},   // 6to4 relay anycast
    {"192.168.0.0", 16},   // RFC 1918
    {"198.18.0.0", 15},    // benchmarking
    {"198.51.100.0", 24},  // TEST-NET-2
    {"203.0.113.0", 24},   // TEST-NET-3
    {"224.0.0.0", 4},      // multicast
    {"240.0.0.0", 4},      // reserved, incl. limited broadcast 255.255.255.255
    {"::", 128},           // unspecified
    {"::1", 128},          // loopback
    {"::", 96},            // IPv4-compatible ::a.b.c.d (deprecated; would smuggle IPv4)
    {"64:ff9b::", 96},     // NAT64 well-known prefix: reaches IPv4 through a translator
    {"64:ff9b:1::", 48},   // NAT64 local-use prefix (RFC 8215): the same, site-defined
    {"2001::", 23},        // IETF protocol assignments, incl. Teredo 2001::/32 (embeds IPv4)
    {"2001:db8::", 32},    // documentation
    {"2002::", 16},        // 6to4: the next 32 bits are an IPv4 address a relay router reaches
    {"100::", 64},         // discard-only
    {"fc00::", 7},         // unique local
    {"fe80::", 10},        // link-local
    {"ff00::", 8},         // multicast
};

// Where an IPv4 range's bits start in the 128-bit key space.
constexpr std::size_t v4_offset_bits = 96;

}  // namespace

const char* to_string(PeerVerdict verdict) noexcept {
    switch (verdict) {
        case PeerVerdict::allowed:
            return "allowed";
        case PeerVerdict::denied_by_config:
            return "denied_by_config";
        case PeerVerdict::special_purpose:
            return "special_purpose";
        case PeerVerdict::own_address:
            return "own_address";
    }
    return "unknown";
}

std::vector<protocol::Cidr> PeerPolicy::default_refused_ranges() {
    std::vector<protocol::Cidr> out;
    out.reserve(std::size(default_refused));
    for (const auto& r : default_refused) {
        // The table is compile-time text checked by the unit tests; a typo fails them.
        const auto address = protocol::TransportAddress::parse_ip(r.address);
        if (!address) continue;
        protocol::Cidr c;
        c.network = *address;
        c.prefix_length = r.prefix_length;
        out.push_back(c);
    }
    return out;
}

PeerPolicy::PeerPolicy(std::span<const protocol::Cidr> allow, std::span<const protocol::Cidr> deny,
                       std::span<const protocol::TransportAddress> own,
                       const OwnPeerPorts& own_ports)
    : own_first_(own_ports.first), own_last_(own_ports.last), listener_ports_(own_ports.listeners) {
    nodes_.emplace_back();
    for (const auto& range : default_refused_ranges()) insert(range, special_flag);
    for (const auto& address : own) {
        insert(IpKey::of(address), 128, own_flag);
        own_.push_back(own_ip_of(address));
    }
    std::sort(own_.begin(), own_.end());
    own_.erase(std::unique(own_.begin(), own_.end()), own_.end());
    for (const auto& range : allow) insert(range, allow_flag);
    for (const auto& range : deny) insert(range, deny_flag);
    if (own_first_ == 0 || own_first_ > own_last_) {
        own_first_ = own_last_ = 0;  // no port of an own address is open
        return;
    }
    for (const std::uint16_t port : own_ports.listeners) {
        if (port >= own_first_ && port <= own_last_) listeners_in_range_.push_back(port);
    }
}

bool PeerPolicy::own_port_open(std::uint16_t port) const noexcept {
    if (own_first_ == 0 || port < own_first_ || port > own_last_) return false;
    return std::find(listeners_in_range_.begin(), listeners_in_range_.end(), port) ==
           listeners_in_range_.end();
}

void PeerPolicy::insert(const protocol::Cidr& range, std::uint8_t flag) {
    // Same canonical space as look-ups: an IPv4 /n is the ::ffff:a.b.c.d /(96+n) subtree, and
    // a hand-written ::ffff:a.b.c.d/1xx range lands on the very same nodes.
    const bool v4 = range.network.family == protocol::AddressFamily::ipv4;
    const std::size_t max_bits = v4 ? 32 : 128;
    const std::size_t length = range.prefix_length < max_bits ? range.prefix_length : max_bits;
    insert(IpKey::of(range.network), v4 ? v4_offset_bits + length : length, flag);
}

void PeerPolicy::insert(const IpKey& key, std::size_t length, std::uint8_t flag) {
    std::uint32_t node = 0;
    for (std::size_t depth = 0; depth < length; ++depth) {
        const unsigned b = key.bit(depth) ? 1 : 0;
        if (nodes_[node].child[b] == 0) {
            nodes_[node].child[b] = static_cast<std::uint32_t>(nodes_.size());
            nodes_.emplace_back();  // may move nodes_: re-index below, never keep references
        }
        node = nodes_[node].child[b];
    }
    nodes_[node].flags |= flag;
}

PeerVerdict PeerPolicy::check(const protocol::TransportAddress& peer) const noexcept {
    const IpKey key = IpKey::of(peer);
    std::uint8_t flags = nodes_[0].flags;
    std::uint32_t node = 0;
    for (std::size_t depth = 0; depth < 128; ++depth) {
        node = nodes_[node].child[key.bit(depth) ? 1 : 0];
        if (node == 0) break;
        flags |= nodes_[node].flags;
    }
    if ((flags & deny_flag) != 0) return PeerVerdict::denied_by_config;
    if ((flags & allow_flag) != 0) return PeerVerdict::allowed;
    // An own address on a relay port is another allocation's relayed address: checked like any
    // peer from here on, so loopback or private own addresses stay special-purpose.
    if ((flags & own_flag) != 0 && !own_port_open(peer.port)) return PeerVerdict::own_address;
    if ((flags & special_flag) != 0) return PeerVerdict::special_purpose;
    return PeerVerdict::allowed;
}

}  // namespace tern::allocation
