// Decides whether tern may relay to a peer address (RFC 8656 §21): special-purpose ranges and
// tern's own addresses are refused unless allow-listed, and a configured deny always wins. On
// tern's own addresses only the relay port range is open, where other clients' relayed
// addresses live, so two clients of one server can relay to each other.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "tern/allocation/ip_key.hpp"
#include "tern/protocol/cidr.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::allocation {

enum class PeerVerdict : std::uint8_t {
    allowed,
    denied_by_config,  // covered by a `deny` range
    special_purpose,   // an IANA special-purpose block, multicast, or IPv6 outside 2000::/3,
                       // and not allow-listed
    own_address,       // one of tern's own addresses, on a port outside the relay range
};

const char* to_string(PeerVerdict verdict) noexcept;

// The ports of tern's own addresses where peers may be: relay.ports, where relay sockets live.
// The default (first 0) is no port at all.
struct OwnPeerPorts {
    std::uint16_t first = 0;
    std::uint16_t last = 0;
    // Ports tern listens on (STUN/TURN listeners). Refused even inside [first, last], in case a
    // listener was configured inside the relay range.
    std::vector<std::uint16_t> listeners;
};

class PeerPolicy {
public:
    // `own` are matched by IP (their ports are ignored). A peer on one of them is refused unless
    // its port is in `own_ports` (and not a listener's): other ports of tern's host reach its
    // listeners (TURN inside TURN, looping through the server) or services meant to be local.
    // Inside the range, a peer is checked like any other (deny, allow, special-purpose ranges).
    // Wildcard listening addresses (0.0.0.0, ::) must be expanded to interface addresses by the
    // caller.
    PeerPolicy(std::span<const protocol::Cidr> allow, std::span<const protocol::Cidr> deny,
               std::span<const protocol::TransportAddress> own, const OwnPeerPorts& own_ports = {});

    // No heap allocation; at most 129 trie steps. The port matters for own addresses only.
    PeerVerdict check(const protocol::TransportAddress& peer) const noexcept;
    bool permits(const protocol::TransportAddress& peer) const noexcept {
        return check(peer) == PeerVerdict::allowed;
    }

    // For a Send indication to a peer whose IP holds a permission. Permissions are per IP
    // (RFC 8656 §9), so one installed for an own address on a relay port would otherwise also
    // carry Send indications to its listener ports. False for an own address that check()
    // refuses on this port; true for every other peer without looking further (the permission
    // already checked it). For peers that are not own it costs a few integer compares against
    // the own addresses (a binary search when there are many), no trie walk, no allocation.
    bool permits_send(const protocol::TransportAddress& peer) const noexcept {
        if (own_.empty() || !is_own(peer)) return true;
        return permits(peer);
    }
    // True when the peer's IP is one of tern's own addresses (any port).
    bool is_own(const protocol::TransportAddress& peer) const noexcept {
        const OwnIp key = own_ip_of(peer);
        if (own_.size() <= 8) return std::find(own_.begin(), own_.end(), key) != own_.end();
        return std::binary_search(own_.begin(), own_.end(), key);
    }

    // A source on one of tern's listeners (own IP, a listener port): a datagram a relay socket
    // receives from there is tern answering a spoofed request, never a peer, so it is dropped.
    // Per peer datagram: a compare per listener port, and is_own only on a match.
    bool is_own_listener(const protocol::TransportAddress& source) const noexcept {
        return std::find(listener_ports_.begin(), listener_ports_.end(), source.port) !=
                   listener_ports_.end() &&
               is_own(source);
    }

    // The ranges refused unless allow-listed, as written in the source (for tests and docs). An
    // IPv6 range among them never covers the IPv4 space ::ffff:0:0/96 (::/3 would): a peer
    // there is an IPv4 peer, judged by the IPv4 ranges only, as Cidr::contains sees it.
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
    // A default-refused range as special_flag, leaving out ::ffff:0:0/96 if it covers it.
    void insert_default(const protocol::Cidr& range);
    // Whether a peer on an own address may use `port`.
    bool own_port_open(std::uint16_t port) const noexcept;

    // A binary trie over 128-bit keys. The rules are "is the peer covered by any range of kind
    // X", so a look-up ORs the flags of every prefix on the peer's path; that is the
    // longest-prefix walk without needing to pick a single winner.
    std::vector<Node> nodes_;
    // The own addresses again as two words each, sorted and unique, for is_own() without a
    // trie walk: a handful of integer compares.
    struct OwnIp {
        std::uint64_t high = 0;
        std::uint64_t low = 0;
        friend bool operator==(const OwnIp&, const OwnIp&) noexcept = default;
        // clang-tidy 14 reads the literal 0 of a defaulted <=> as a null pointer.
        friend auto operator<=>(const OwnIp&,
                                const OwnIp&) noexcept = default;  // NOLINT(modernize-use-nullptr)
    };
    // The canonical key of IpKey (IPv4 and ::ffff:a.b.c.d alike) in two words; only equality
    // and a consistent order matter, so the words' byte order does not.
    static OwnIp own_ip_of(const protocol::TransportAddress& address) noexcept {
        OwnIp out;
        if (address.family == protocol::AddressFamily::ipv4) {
            const std::array<std::uint8_t, 8> low = {0,
                                                     0,
                                                     0xFF,
                                                     0xFF,
                                                     address.bytes[0],
                                                     address.bytes[1],
                                                     address.bytes[2],
                                                     address.bytes[3]};
            std::memcpy(&out.low, low.data(), sizeof out.low);
        } else {
            std::memcpy(&out.high, address.bytes.data(), sizeof out.high);
            std::memcpy(&out.low, address.bytes.data() + sizeof out.high, sizeof out.low);
        }
        return out;
    }
    std::vector<OwnIp> own_;
    std::uint16_t own_first_ = 0;
    std::uint16_t own_last_ = 0;
    std::vector<std::uint16_t> listeners_in_range_;  // usually empty
    std::vector<std::uint16_t> listener_ports_;      // every listener's port
};

}  // namespace tern::allocation
