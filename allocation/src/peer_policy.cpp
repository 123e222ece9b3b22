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

// The IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890, RFC 8190 and later
// entries), kept as data in allocation/data/iana-ipv{4,6}-special-registry.csv; the unit test
// peer_registry_test.cpp reads those files and checks that every block in them is refused here,
// so a registry refresh that adds a block fails the tests until this table covers it. RFC 8656
// §21 asks TURN servers to keep relays away from such addresses by default. A block that covers
// registry sub-entries stands for them (192.0.0.0/24 holds 192.0.0.9/32 and the others).
constexpr RangeText default_refused[] = {
    // IPv4: every registry entry (all but the five marked below are not globally reachable),
    // plus multicast, which has a registry of its own.
    {"0.0.0.0", 8},        // "this network", incl. 0.0.0.0/32
    {"10.0.0.0", 8},       // RFC 1918
    {"100.64.0.0", 10},    // CGNAT shared space, RFC 6598
    {"127.0.0.0", 8},      // loopback
    {"169.254.0.0", 16},   // link-local, incl. cloud metadata 169.254.169.254
    {"172.16.0.0", 12},    // RFC 1918
    {"192.0.0.0", 24},     // IETF protocol assignments, incl. PCP and TURN anycast (reachable)
    {"192.0.2.0", 24},     // TEST-NET-1
    {"192.31.196.0", 24},  // AS112-v4: reachable, but an anycast DNS sink, nothing to relay to
    {"192.52.193.0", 24},  // AMT relays: reachable, but a gateway into multicast
    {"192.88.99.0", 24},   // 6to4 relay anycast (deprecated) and 6a44 relay
    {"192.168.0.0", 16},   // RFC 1918
    {"192.175.48.0", 24},  // AS112 direct delegation: reachable, an anycast DNS sink
    {"198.18.0.0", 15},    // benchmarking
    {"198.51.100.0", 24},  // TEST-NET-2
    {"203.0.113.0", 24},   // TEST-NET-3
    {"224.0.0.0", 4},      // multicast
    {"240.0.0.0", 4},      // reserved, incl. limited broadcast 255.255.255.255
    // IPv6 outside 2000::/3, the only space IANA hands out as global unicast. This holds ::/128,
    // ::1/128, IPv4-compatible ::/96, SIIT ::ffff:0:0:0/96, NAT64 64:ff9b::/96 (reachable, but
    // it reaches IPv4 through a translator, private IPv4 too) and 64:ff9b:1::/48, discard-only
    // 100::/64, the dummy prefix 100:0:0:1::/64, SRv6 SIDs 5f00::/16, unique-local fc00::/7,
    // link-local fe80::/10, site-local fec0::/10 and multicast ff00::/8. ::/3 stops short of
    // ::ffff:0:0/96, where IPv4 peers live in the key space: those are judged by the IPv4
    // ranges above, as Cidr::contains judges them (see insert_default).
    {"::", 3},
    {"4000::", 2},
    {"8000::", 1},
    // Special-purpose blocks inside 2000::/3.
    {"2001::", 23},          // IETF protocol assignments, incl. Teredo 2001::/32 (embeds IPv4),
                             // PCP/TURN/SRP anycast, AMT, AS112-v6, ORCHIDv2 and DRIP DETs
    {"2001:db8::", 32},      // documentation
    {"2002::", 16},          // 6to4: the next 32 bits are an IPv4 address a relay router reaches
    {"2620:4f:8000::", 48},  // AS112 direct delegation: reachable, an anycast DNS sink
    {"3fff::", 20},          // documentation (RFC 9637)
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
    for (const auto& range : default_refused_ranges()) insert_default(range);
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

void PeerPolicy::insert_default(const protocol::Cidr& range) {
    const IpKey key = IpKey::of(range.network);
    const std::size_t length = range.network.family == protocol::AddressFamily::ipv4
                                   ? v4_offset_bits + range.prefix_length
                                   : range.prefix_length;
    // ::ffff:0.0.0.0, the first key of the IPv4 space.
    const IpKey v4_space = IpKey::of(protocol::TransportAddress::v4({0, 0, 0, 0}, 0));
    bool covers_v4_space = length <= v4_offset_bits;
    for (std::size_t bit = 0; covers_v4_space && bit < length; ++bit) {
        covers_v4_space = key.bit(bit) == v4_space.bit(bit);
    }
    if (!covers_v4_space) {
        insert(key, length, special_flag);
        return;
    }
    // The range minus ::ffff:0:0/96: the subtree beside the path to ::ffff:0:0/96 at each depth
    // below the range's prefix (at most 96 nodes, built once). A look-up walks exactly as
    // before; an IPv4 peer's path simply never meets a flag until the IPv4 ranges.
    for (std::size_t depth = length; depth < v4_offset_bits; ++depth) {
        IpKey beside = v4_space;
        beside.bytes[depth / 8] ^= static_cast<std::uint8_t>(0x80u >> (depth % 8));
        insert(beside, depth + 1, special_flag);
    }
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
