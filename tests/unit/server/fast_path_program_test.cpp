// The kernel fast path's XDP program (server/io/bpf/fast_path.bpf.c), run by the kernel itself
// (bpf_prog_test_run_opts) on random and crafted Ethernet frames, each judged by the user-space
// rules the program caches: a real AllocationManager, whose KernelRoutes are the loaded program's
// maps, says whether user space would relay the same datagram and where (route_channel_data,
// route_peer_datagram, the PeerPolicy). The program may take a frame only when user space would
// relay it, to the same peer or client, as the frame user space would send (addresses, ports,
// ChannelData framing, TTL, checksums recomputed here from scratch); it hands everything else to
// user space unchanged and never drops. A frame addressed to a MAC other than the ingress
// interface's (another host's on a promiscuous link, broadcast, multicast) is not the host's to
// take: the kernel drops it (PACKET_OTHERHOST) or handles it, so the program passes it and learns
// nothing from it. One tolerance: a datagram whose UDP checksum is wrong
// (the kernel would drop it) may be relayed only as wrong as it came, so that its receiver drops
// it alike. Its counters must add up to what it relayed.
//
// Needs root (CAP_BPF): skipped when the program may not be loaded. Every failure names the seed;
// TERN_FAST_PATH_SEED=<n> replays a run, TERN_FAST_PATH_FRAMES=<n> changes its length.
#include "tern/server/io/kernel_fast_path.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "../allocation/fake_egress.hpp"
#include "../allocation/test_addresses.hpp"
#include "../allocation/test_random.hpp"
#include "fast_path_maps.h"
#include "tern/allocation/allocation_manager.hpp"
#include "tern/allocation/relay_ports.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/cidr.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"
#include "tern/protocol/message_type.hpp"

namespace tern::server {
namespace {

using namespace std::chrono_literals;
using allocation::AllocationManager;
using allocation::ClientRoute;
using allocation::FiveTuple;
using allocation::PeerPolicy;
using allocation::RelayId;
using allocation::TimePoint;
using protocol::AddressFamily;
using protocol::MessageClass;
using protocol::MessageView;
using protocol::Method;
using protocol::Transport;
using protocol::TransportAddress;
namespace attr = protocol::attr;

using Bytes = std::vector<std::uint8_t>;
using Mac = std::array<std::uint8_t, 6>;

// Every frame comes in on the loopback (the only interface a test run can name for sure); a
// second interface exists only in the program's maps, as bpf_redirect's target.
constexpr int loopback_ifindex = 1;
constexpr int other_ifindex = 77;
constexpr std::uint32_t loopback_mtu = 1500;
constexpr std::uint32_t other_mtu = 1400;
constexpr Mac our_mac{0x02, 0x00, 0x00, 0x00, 0x00, 0x01};  // ours on the loopback
constexpr Mac our_other_mac{0x02, 0x00, 0x00, 0x00, 0x77, 0x01};
constexpr Mac other_host_mac{0x02, 0x55, 0x00, 0x00, 0x00, 0x09};  // another host on the link
constexpr Mac broadcast_mac{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
constexpr Mac multicast_mac{0x01, 0x00, 0x5E, 0x00, 0x00, 0x01};
constexpr std::uint8_t udp_protocol = 17;

TransportAddress at(const char* text) {
    return allocation::testing::addr(text);
}
TransportAddress ip(const char* text) {
    auto a = TransportAddress::parse_ip(text);
    EXPECT_TRUE(a.has_value()) << text;
    return a.value_or(TransportAddress{});
}
bool is_v6(const TransportAddress& a) {
    return a.family == AddressFamily::ipv6;
}
bool same_ip(const TransportAddress& a, const TransportAddress& b) {
    return a.family == b.family && a.bytes == b.bytes;
}
bool unicast(const std::uint8_t* mac) {
    return (mac[0] & 1) == 0;
}
std::string mac_text(const std::uint8_t* m) {
    char text[18];
    std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
                  m[5]);
    return text;
}

// A fixed MAC per host, from its address.
Mac mac_of(const TransportAddress& a) {
    const std::size_t last = a.address_size() - 1;
    return {0x02,
            static_cast<std::uint8_t>(is_v6(a) ? 0x16 : 0x14),
            a.bytes[last - 3],
            a.bytes[last - 2],
            a.bytes[last - 1],
            a.bytes[last]};
}

std::uint16_t get16(std::span<const std::uint8_t> b, std::size_t at) {
    return static_cast<std::uint16_t>(b[at] << 8 | b[at + 1]);
}
void set16(Bytes& b, std::size_t at, std::uint16_t v) {
    b[at] = static_cast<std::uint8_t>(v >> 8);
    b[at + 1] = static_cast<std::uint8_t>(v);
}
void put16(Bytes& b, std::uint16_t v) {
    b.push_back(static_cast<std::uint8_t>(v >> 8));
    b.push_back(static_cast<std::uint8_t>(v));
}

// ---------------------------------------------------------------------------------------------
// Internet checksums (RFC 1071), from scratch: big-endian 16-bit words, an odd byte padded.

std::uint64_t sum_bytes(std::uint64_t sum, std::span<const std::uint8_t> b) {
    for (std::size_t i = 0; i + 1 < b.size(); i += 2) sum += get16(b, i);
    if (b.size() % 2 != 0) sum += static_cast<std::uint64_t>(b.back()) << 8;
    return sum;
}
std::uint16_t fold(std::uint64_t sum) {
    while (sum >> 16 != 0) sum = (sum & 0xFFFF) + (sum >> 16);
    return static_cast<std::uint16_t>(sum);
}
std::uint64_t pseudo_header(const TransportAddress& src, const TransportAddress& dst,
                            std::size_t udp_len) {
    std::uint64_t sum = sum_bytes(0, {src.bytes.data(), src.address_size()});
    sum = sum_bytes(sum, {dst.bytes.data(), dst.address_size()});
    return sum + udp_protocol + udp_len;
}
// True when a receiver accepts `udp` (header and payload) between these addresses.
bool udp_checksum_ok(const TransportAddress& src, const TransportAddress& dst,
                     std::span<const std::uint8_t> udp) {
    return fold(pseudo_header(src, dst, udp.size()) + sum_bytes(0, udp)) == 0xFFFF;
}

// ---------------------------------------------------------------------------------------------
// Frames: Ethernet, IPv4 or IPv6, UDP, built from a description that can also lie.

enum class Sum : std::uint8_t { valid, zero, bad, deferred };
enum class Ext : std::uint8_t { none, hop_by_hop, destination, atomic_fragment, fragment, later };

struct FrameSpec {
    TransportAddress src, dst;  // one family, with the UDP ports
    Bytes payload;              // the UDP payload
    Mac smac{}, dmac{};
    std::uint16_t ethertype = 0;  // 0: the family's
    std::uint8_t version = 0;     // 0: the family's
    std::uint8_t protocol = udp_protocol;
    std::size_t v4_options = 0;  // bytes of NOP options, a multiple of 4
    bool more_fragments = false;
    std::uint16_t fragment_offset = 0;  // 8-byte units
    Ext ext = Ext::none;
    int udp_len_delta = 0;  // the UDP length field lies by this much
    int ip_len_delta = 0;   // the IP length field lies by this much
    Sum sum = Sum::valid;
    std::uint16_t bad_xor = 0x0100;
    std::optional<std::size_t> corrupt_payload;  // a payload byte flipped after the checksum
    bool bad_ip_check = false;
    std::size_t link_padding = 0;  // random bytes after the IP packet
    std::size_t pad_to = 0;        // and zeros up to this frame size (Ethernet's 60)
    std::size_t truncate = 0;      // bytes cut off the end
    std::uint8_t ttl = 64;
    std::uint8_t tos = 0;
    std::uint16_t ip_id = 0;
    std::uint32_t flow = 0;
};

std::string describe(const FrameSpec& s) {
    std::string d = s.src.to_string() + " -> " + s.dst.to_string() + ", " +
                    std::to_string(s.payload.size()) + " B";
    if (!s.payload.empty()) {
        char head[40];
        std::snprintf(head, sizeof head, " [%02x %02x %02x %02x ...]", s.payload[0],
                      s.payload.size() > 1 ? s.payload[1] : 0,
                      s.payload.size() > 2 ? s.payload[2] : 0,
                      s.payload.size() > 3 ? s.payload[3] : 0);
        d += head;
    }
    d += ", smac " + mac_text(s.smac.data()) + " dmac " + mac_text(s.dmac.data());
    if (s.ethertype != 0) d += ", ethertype " + std::to_string(s.ethertype);
    if (s.version != 0) d += ", IP version " + std::to_string(s.version);
    if (s.protocol != udp_protocol) d += ", protocol " + std::to_string(s.protocol);
    if (s.v4_options != 0) d += ", IPv4 options " + std::to_string(s.v4_options);
    if (s.more_fragments || s.fragment_offset != 0) {
        d += ", fragment (MF " + std::to_string(s.more_fragments) + ", offset " +
             std::to_string(s.fragment_offset) + ")";
    }
    if (s.ext != Ext::none) d += ", IPv6 extension header " + std::to_string(int(s.ext));
    if (s.udp_len_delta != 0) d += ", UDP length " + std::to_string(s.udp_len_delta);
    if (s.ip_len_delta != 0) d += ", IP length " + std::to_string(s.ip_len_delta);
    static const char* sums[] = {"valid", "zero", "bad", "deferred"};
    d += std::string(", UDP checksum ") + sums[static_cast<int>(s.sum)];
    if (s.corrupt_payload) d += ", payload byte corrupted";
    if (s.bad_ip_check) d += ", bad IPv4 header checksum";
    if (s.link_padding != 0) d += ", link padding " + std::to_string(s.link_padding);
    if (s.pad_to != 0) d += ", padded to " + std::to_string(s.pad_to);
    if (s.truncate != 0) d += ", truncated by " + std::to_string(s.truncate);
    return d;
}

std::string hex(std::span<const std::uint8_t> b) {
    std::string text;
    char byte[4];
    for (std::size_t i = 0; i < b.size() && i < 96; ++i) {
        std::snprintf(byte, sizeof byte, "%02x", b[i]);
        text += byte;
        if (i % 4 == 3) text += ' ';
    }
    if (b.size() > 96) text += "... (" + std::to_string(b.size()) + " B)";
    return text;
}

Bytes build(const FrameSpec& s) {
    const bool six = is_v6(s.src);
    Bytes f(s.dmac.begin(), s.dmac.end());
    f.insert(f.end(), s.smac.begin(), s.smac.end());
    put16(f, s.ethertype != 0 ? s.ethertype : six ? 0x86DD : 0x0800);
    const std::size_t l3 = f.size();
    std::size_t ihl = 0;
    if (six) {
        f.resize(l3 + 40);
        const std::uint8_t version = s.version != 0 ? s.version : 6;
        f[l3] = static_cast<std::uint8_t>(version << 4 | s.tos >> 4);
        f[l3 + 1] = static_cast<std::uint8_t>((s.tos & 0xF) << 4 | (s.flow >> 16 & 0xF));
        f[l3 + 2] = static_cast<std::uint8_t>(s.flow >> 8);
        f[l3 + 3] = static_cast<std::uint8_t>(s.flow);
        f[l3 + 7] = s.ttl;
        std::copy_n(s.src.bytes.begin(), 16, f.begin() + static_cast<std::ptrdiff_t>(l3 + 8));
        std::copy_n(s.dst.bytes.begin(), 16, f.begin() + static_cast<std::ptrdiff_t>(l3 + 24));
        std::size_t next_at = l3 + 6;
        if (s.ext == Ext::hop_by_hop || s.ext == Ext::destination) {
            f[next_at] = s.ext == Ext::hop_by_hop ? 0 : 60;
            next_at = f.size();
            f.insert(f.end(), {0, 0, 1, 4, 0, 0, 0, 0});  // 8 bytes: PadN of 4
        } else if (s.ext != Ext::none) {
            f[next_at] = 44;
            next_at = f.size();
            const std::uint16_t offset = s.ext == Ext::later ? 185 << 3 : 0;
            const std::uint16_t more = s.ext == Ext::fragment ? 1 : 0;
            f.insert(f.end(),
                     {0, 0, static_cast<std::uint8_t>(offset >> 8),
                      static_cast<std::uint8_t>((offset & 0xFF) | more), 0x12, 0x34, 0x56, 0x78});
        }
        f[next_at] = s.protocol;
    } else {
        ihl = 20 + s.v4_options;
        f.resize(l3 + ihl, 0x01);  // options: NOPs
        const std::uint8_t version = s.version != 0 ? s.version : 4;
        f[l3] = static_cast<std::uint8_t>(version << 4 | ihl / 4);
        f[l3 + 1] = s.tos;
        set16(f, l3 + 4, s.ip_id);
        set16(f, l3 + 6,
              static_cast<std::uint16_t>((s.more_fragments ? 0x2000 : 0) | 0x4000 |
                                         (s.fragment_offset & 0x1FFF)));
        f[l3 + 8] = s.ttl;
        f[l3 + 9] = s.protocol;
        f[l3 + 10] = f[l3 + 11] = 0;
        std::copy_n(s.src.bytes.begin(), 4, f.begin() + static_cast<std::ptrdiff_t>(l3 + 12));
        std::copy_n(s.dst.bytes.begin(), 4, f.begin() + static_cast<std::ptrdiff_t>(l3 + 16));
    }
    const std::size_t udp_at = f.size();
    const long udp_len =
        std::clamp<long>(static_cast<long>(8 + s.payload.size()) + s.udp_len_delta, 0, 0xFFFF);
    put16(f, s.src.port);
    put16(f, s.dst.port);
    put16(f, static_cast<std::uint16_t>(udp_len));
    put16(f, 0);
    f.insert(f.end(), s.payload.begin(), s.payload.end());
    if (six) {
        set16(f, l3 + 4,
              static_cast<std::uint16_t>(std::clamp<long>(
                  static_cast<long>(f.size() - l3 - 40) + s.ip_len_delta, 0, 0xFFFF)));
    } else {
        set16(f, l3 + 2,
              static_cast<std::uint16_t>(
                  std::clamp<long>(static_cast<long>(f.size() - l3) + s.ip_len_delta, 0, 0xFFFF)));
    }
    // The checksum over what the UDP length claims (what a receiver checks), where it is there.
    const std::size_t covered =
        std::min<std::size_t>(static_cast<std::size_t>(udp_len), f.size() - udp_at);
    const std::span<const std::uint8_t> udp(f.data() + udp_at, covered);
    std::uint16_t valid = static_cast<std::uint16_t>(
        ~fold(pseudo_header(s.src, s.dst, static_cast<std::size_t>(udp_len)) + sum_bytes(0, udp)));
    if (valid == 0) valid = 0xFFFF;
    std::uint16_t check = valid;
    if (s.sum == Sum::zero) check = 0;
    if (s.sum == Sum::bad) {
        check = static_cast<std::uint16_t>(valid ^ s.bad_xor);
        if (check == 0) check = static_cast<std::uint16_t>(valid ^ 1);
    }
    // What a sender that leaves the checksum to its NIC (CHECKSUM_PARTIAL) puts there.
    if (s.sum == Sum::deferred) {
        check = fold(pseudo_header(s.src, s.dst, static_cast<std::size_t>(udp_len)));
    }
    set16(f, udp_at + 6, check);
    if (!six) {
        set16(f, l3 + 10, static_cast<std::uint16_t>(~fold(sum_bytes(0, {f.data() + l3, ihl}))));
        if (s.bad_ip_check) f[l3 + 10] ^= 0x01;
    }
    if (s.corrupt_payload && !s.payload.empty()) {
        f[udp_at + 8 + *s.corrupt_payload % s.payload.size()] ^= 0x10;
    }
    for (std::size_t i = 0; i < s.link_padding; ++i) f.push_back(static_cast<std::uint8_t>(i * 37));
    if (f.size() < s.pad_to) f.resize(s.pad_to, 0);
    f.resize(std::max<std::size_t>(14, f.size() - std::min(s.truncate, f.size())));
    return f;
}

// A frame as the kernel's own receive path would take it (ip_rcv, ipv6_rcv, udp_rcv): sane when
// it would reach the UDP socket of `dst` but for the UDP checksum, which checksum_ok adds.
struct KernelView {
    bool sane = false;
    bool checksum_ok = false;
    TransportAddress src, dst;  // with the ports
    std::size_t l3_len = 0;     // IP header with options or extension headers
    std::size_t udp_len = 0;
    std::uint16_t check = 0;
    Bytes payload;  // what recvmsg would return

    bool delivered() const { return sane && checksum_ok; }
};

KernelView kernel_view(const Bytes& f) {
    KernelView v;
    if (f.size() < 14) return v;
    const std::uint16_t type = get16(f, 12);
    std::size_t udp_at = 0;
    std::size_t ip_payload = 0;
    if (type == 0x0800) {
        if (f.size() < 34 || f[14] >> 4 != 4) return v;
        const std::size_t ihl = (f[14] & 0xFu) * 4;
        if (ihl < 20 || f.size() < 14 + ihl) return v;
        if (fold(sum_bytes(0, {f.data() + 14, ihl})) != 0xFFFF) return v;  // header checksum
        const std::size_t total = get16(f, 16);
        if (total < ihl || 14 + total > f.size()) return v;
        if ((get16(f, 20) & 0x3FFF) != 0) return v;  // a lone fragment: never reassembled
        if (f[23] != udp_protocol) return v;
        v.src = TransportAddress::v4({f[26], f[27], f[28], f[29]}, 0);
        v.dst = TransportAddress::v4({f[30], f[31], f[32], f[33]}, 0);
        udp_at = 14 + ihl;
        ip_payload = total - ihl;
    } else if (type == 0x86DD) {
        if (f.size() < 54 || f[14] >> 4 != 6) return v;
        const std::size_t length = get16(f, 18);
        if (length == 0 || 54 + length > f.size()) return v;
        std::array<std::uint8_t, 16> src{};
        std::array<std::uint8_t, 16> dst{};
        std::copy_n(f.begin() + 22, 16, src.begin());
        std::copy_n(f.begin() + 38, 16, dst.begin());
        v.src = TransportAddress::v6(src, 0);
        v.dst = TransportAddress::v6(dst, 0);
        if (v.src.is_v4_mapped()) return v;  // ipv6_rcv drops a v4-mapped source
        std::uint8_t next = f[20];
        std::size_t at = 54;
        const std::size_t end = 54 + length;
        for (bool first = true;; first = false) {
            if ((next == 0 && first) || next == 60) {
                if (at + 2 > end) return v;
                const std::size_t size = (f[at + 1] + 1u) * 8;
                next = f[at];
                at += size;
                if (at > end) return v;
            } else if (next == 44) {
                if (at + 8 > end) return v;
                if ((get16(f, at + 2) & 0xFFF9) != 0) return v;  // offset or more: incomplete
                next = f[at];
                at += 8;
            } else {
                break;
            }
        }
        if (next != udp_protocol) return v;
        udp_at = at;
        ip_payload = end - at;
    } else {
        return v;
    }
    if (ip_payload < 8) return v;
    const std::size_t udp_len = get16(f, udp_at + 4);
    if (udp_len < 8 || udp_len > ip_payload) return v;  // shorter is trimmed (udp_rcv)
    v.src.port = get16(f, udp_at);
    v.dst.port = get16(f, udp_at + 2);
    v.check = get16(f, udp_at + 6);
    v.l3_len = udp_at - 14;
    v.udp_len = udp_len;
    v.payload.assign(f.begin() + static_cast<std::ptrdiff_t>(udp_at + 8),
                     f.begin() + static_cast<std::ptrdiff_t>(udp_at + udp_len));
    v.sane = true;
    if (v.check == 0) {
        v.checksum_ok = !is_v6(v.src);  // IPv4: none; IPv6: required (RFC 8200 §8.1)
    } else {
        v.checksum_ok = udp_checksum_ok(v.src, v.dst, {f.data() + udp_at, udp_len});
    }
    return v;
}

// The frames the program's parse() takes as a plain UDP datagram: no IPv4 options, fragments or
// IPv6 extension headers, lengths that agree, a valid IPv4 header checksum, a UDP checksum on
// IPv6. Used to predict what it must relay, never to excuse what it did.
bool program_parses(const Bytes& f) {
    if (f.size() < 14) return false;
    const std::uint16_t type = get16(f, 12);
    std::size_t l3 = 0;
    std::size_t ip_payload = 0;
    if (type == 0x0800) {
        if (f.size() < 34 || f[14] != 0x45 || f[23] != udp_protocol) return false;
        if ((get16(f, 20) & 0x3FFF) != 0 || get16(f, 16) < 28) return false;
        if (fold(sum_bytes(0, {f.data() + 14, 20})) != 0xFFFF) return false;
        l3 = 20;
        ip_payload = get16(f, 16) - 20u;
    } else if (type == 0x86DD) {
        if (f.size() < 54 || f[14] >> 4 != 6 || f[20] != udp_protocol) return false;
        l3 = 40;
        ip_payload = get16(f, 18);
    } else {
        return false;
    }
    if (f.size() < 14 + l3 + 8) return false;
    const std::size_t udp_len = get16(f, 14 + l3 + 4);
    if (udp_len < 8 || udp_len != ip_payload || 14 + l3 + udp_len > f.size()) return false;
    return !(l3 == 40 && get16(f, 14 + l3 + 6) == 0);
}

// ---------------------------------------------------------------------------------------------
// The program's maps, as fast_path_maps.h lays them out.

void widen(const TransportAddress& a, __u8* out) {
    if (is_v6(a)) {
        std::memcpy(out, a.bytes.data(), 16);
        return;
    }
    std::memset(out, 0, 10);
    out[10] = out[11] = 0xFF;
    std::memcpy(out + 12, a.bytes.data(), 4);
}
TransportAddress narrow(const __u8* in, __u16 family, __be16 port) {
    if (family == TERN_FP_FAMILY_V4)
        return TransportAddress::v4({in[12], in[13], in[14], in[15]}, ntohs(port));
    std::array<std::uint8_t, 16> b{};
    std::memcpy(b.data(), in, 16);
    return TransportAddress::v6(b, ntohs(port));
}
__u16 family_of(const TransportAddress& a) {
    return is_v6(a) ? TERN_FP_FAMILY_V6 : TERN_FP_FAMILY_V4;
}
tern_fp_channel_key channel_key(const TransportAddress& client, const TransportAddress& server,
                                std::uint16_t channel) {
    tern_fp_channel_key k{};
    widen(client, k.client_ip);
    widen(server, k.server_ip);
    k.client_port = htons(client.port);
    k.server_port = htons(server.port);
    k.channel = htons(channel);
    k.family = family_of(client);
    return k;
}
tern_fp_peer_key peer_key(const TransportAddress& relay, const TransportAddress& peer) {
    tern_fp_peer_key k{};
    widen(relay, k.relay_ip);
    widen(peer, k.peer_ip);
    k.relay_port = htons(relay.port);
    k.peer_port = htons(peer.port);
    k.family = family_of(peer);
    return k;
}
template <class Key>
std::string key_bytes(const Key& k) {
    return std::string(reinterpret_cast<const char*>(&k), sizeof k);
}

// Every entry of a hash map.
template <class Key, class Value>
std::vector<std::pair<Key, Value>> entries(int fd) {
    std::vector<std::pair<Key, Value>> out;
    Key key{};
    Key next{};
    const Key* previous = nullptr;
    while (bpf_map_get_next_key(fd, previous, &next) == 0) {
        Value value{};
        if (bpf_map_lookup_elem(fd, &next, &value) == 0) out.emplace_back(next, value);
        key = next;
        previous = &key;
    }
    return out;
}

// A seeded generator (SplitMix64, the allocation tests' own) with the few shapes used here.
class Rng {
public:
    explicit Rng(std::uint64_t seed) : source_(seed) {}
    std::uint64_t next() { return source_.next(); }
    std::size_t below(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(next() % n); }
    int between(int lo, int hi) {
        return lo + static_cast<int>(below(static_cast<std::size_t>(hi - lo + 1)));
    }
    bool chance(double p) { return static_cast<double>(next() >> 11) * 0x1.0p-53 < p; }
    std::uint8_t byte() { return static_cast<std::uint8_t>(next()); }
    template <class T>
    const T& pick(const std::vector<T>& v) {
        return v[below(v.size())];
    }
    Bytes bytes(std::size_t n) {
        Bytes b(n);
        for (auto& x : b) x = byte();
        return b;
    }

private:
    allocation::testing::SeededRandom source_;
};

std::uint64_t env_number(const char* name, std::uint64_t otherwise) {
    const char* text = std::getenv(name);
    return text != nullptr && *text != '\0' ? std::strtoull(text, nullptr, 0) : otherwise;
}

// ChannelData (RFC 8656 §12.4) with a length field that may lie and any trailing bytes.
Bytes channel_data(std::uint16_t channel, std::uint16_t length_field,
                   std::span<const std::uint8_t> data, std::span<const std::uint8_t> trailing) {
    Bytes m;
    put16(m, channel);
    put16(m, length_field);
    m.insert(m.end(), data.begin(), data.end());
    m.insert(m.end(), trailing.begin(), trailing.end());
    return m;
}

// ---------------------------------------------------------------------------------------------

// What one frame did.
enum class Verdict : std::uint8_t { to_peer, to_client, passed, failed };
// The UDP checksum a relayed frame must carry: one that verifies, none (0), or a wrong one.
enum class Want : std::uint8_t { valid, none, corrupt };

struct Totals {
    std::uint64_t frames = 0;
    std::uint64_t to_peer = 0;
    std::uint64_t to_client = 0;
    std::uint64_t bytes_to_peer = 0;
    std::uint64_t bytes_to_client = 0;
    std::uint64_t passed = 0;
    std::uint64_t passed_user_space_relays = 0;  // user space relays these itself
    std::uint64_t passed_parsed = 0;             // passed after the program's parse() took it
    std::uint64_t corrupt_relayed = 0;           // bad UDP checksum in, still bad out
    std::uint64_t passed_not_our_mac = 0;        // would be relayed, but addressed to another MAC
};

// A UDP client's allocation and its channels.
struct Client {
    FiveTuple tuple;
    std::vector<std::uint16_t> bound;    // ChannelBind succeeded
    std::vector<std::uint16_t> refused;  // ChannelBind refused: nothing bound
};

class FastPathProgramTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string why;
        path_ = KernelFastPath::load_detached(1024, why);
        if (!path_) {
            if (why.rfind("no permission", 0) == 0) {
                GTEST_SKIP() << "the XDP program cannot be loaded without root (CAP_BPF, "
                                "CAP_NET_ADMIN, CAP_PERFMON): "
                             << why;
            }
            FAIL() << "the XDP program does not load: " << why;
        }
        path_->register_interface(loopback_ifindex, loopback_mtu, false, our_mac);
        path_->register_interface(other_ifindex, other_mtu, false, our_other_mac);
        channels_fd_ = path_->map_fd("channels");
        peers_fd_ = path_->map_fd("peers");
        neighbors_fd_ = path_->map_fd("neighbors");
        ASSERT_GE(channels_fd_, 0);
        ASSERT_GE(peers_fd_, 0);
        ASSERT_GE(neighbors_fd_, 0);

        key_.fill(0x11);
        settings_.relay_addresses = {relay4_, relay6_};
        policy_ = policy({});
        ports_ = std::make_unique<allocation::RelayPorts>(50000, 50099, port_random_);
        manager_ = std::make_unique<AllocationManager>(settings_, policy_, *ports_, egress_,
                                                       0x5EED5EED5EED5EEDull);
        manager_->set_kernel_routes(path_.get());
        open_allocations();
        if (HasFatalFailure()) return;
        teach_neighbors();
        verify_maps();
    }

    // The default rules (special-purpose ranges refused), 9.9.9.0/24 denied by configuration,
    // the listener and relay addresses own; and `deny`, `allow`.
    std::shared_ptr<const PeerPolicy> policy(std::vector<protocol::Cidr> deny,
                                             const std::vector<protocol::Cidr>& allow = {}) {
        deny.push_back(protocol::Cidr::covering(ip("9.9.9.0"), 24));
        const std::vector<TransportAddress> own{server4_, server6_, relay4_, relay6_};
        return std::make_shared<const PeerPolicy>(allow, deny, own,
                                                  allocation::OwnPeerPorts{50000, 50099, {3478}});
    }

    struct Answer {
        bool success = false;
        std::uint16_t error = 0;
    };
    Answer ask(const FiveTuple& t, Method method,
               const std::function<void(protocol::MessageBuilder&)>& attributes) {
        Bytes buffer(2048);
        protocol::TransactionId id{};
        id.bytes.fill(0x5A);
        const std::uint32_t serial = ++serial_;
        std::memcpy(id.bytes.data(), &serial, sizeof serial);
        protocol::MessageBuilder b(buffer, protocol::MessageType{method, MessageClass::request},
                                   id);
        attributes(b);
        b.add_message_integrity(key_);
        b.add_fingerprint();
        MessageView request;
        EXPECT_EQ(MessageView::parse(b.finish(), request), protocol::ParseError::ok);
        Bytes out(4096);
        const ClientRoute route =
            t.transport == Transport::udp ? ClientRoute::listener(0) : ClientRoute::connection(5);
        const allocation::Requester who{"alice", key_, false, std::nullopt};
        const auto answer = manager_->handle_request(request, t, route, who, now_, out);
        const Bytes copy(answer.begin(), answer.end());
        MessageView response;
        Answer a;
        if (MessageView::parse(copy, response) != protocol::ParseError::ok) return a;
        a.success = response.message_class() == MessageClass::success_response;
        if (const auto e = response.error_code()) a.error = e->code;
        return a;
    }
    Answer allocate(const FiveTuple& t, std::optional<std::uint8_t> family,
                    std::optional<std::uint8_t> additional = std::nullopt) {
        return ask(t, Method::allocate, [&](protocol::MessageBuilder& b) {
            b.add_requested_transport(udp_protocol);
            if (family) {
                const std::array<std::uint8_t, 4> v{*family, 0, 0, 0};
                b.add_bytes(attr::requested_address_family, v);
            }
            if (additional) {
                const std::array<std::uint8_t, 4> v{*additional, 0, 0, 0};
                b.add_bytes(attr::additional_address_family, v);
            }
        });
    }
    Answer bind(const FiveTuple& t, std::uint16_t channel, const TransportAddress& peer) {
        return ask(t, Method::channel_bind, [&](protocol::MessageBuilder& b) {
            b.add_channel_number(channel);
            b.add_xor_address(attr::xor_peer_address, peer);
        });
    }
    Answer permit(const FiveTuple& t, const TransportAddress& peer) {
        return ask(t, Method::create_permission, [&](protocol::MessageBuilder& b) {
            b.add_xor_address(attr::xor_peer_address, peer);
        });
    }
    Answer refresh(const FiveTuple& t, std::uint32_t lifetime) {
        return ask(t, Method::refresh,
                   [&](protocol::MessageBuilder& b) { b.add_lifetime(lifetime); });
    }

    // Four UDP allocations (one with relayed addresses of both families) and a TCP one; bound
    // channels, a permission without a channel, and peers the policy refuses.
    void open_allocations() {
        const auto v6 = std::uint8_t{0x02};
        clients_ = {
            {{at("203.0.113.5:40000"), server4_, Transport::udp}, {}, {}},
            {{at("203.0.113.6:40001"), server4_, Transport::udp}, {}, {}},
            {{at("[2001:db8:5::5]:40000"), server6_, Transport::udp}, {}, {}},
            {{at("[2001:db8:5::6]:40002"), server6_, Transport::udp}, {}, {}},
        };
        ASSERT_TRUE(allocate(clients_[0].tuple, std::nullopt).success);
        ASSERT_TRUE(allocate(clients_[1].tuple, std::nullopt, v6).success);
        ASSERT_TRUE(allocate(clients_[2].tuple, v6).success);
        ASSERT_TRUE(allocate(clients_[3].tuple, v6).success);
        ASSERT_TRUE(allocate(tcp_client_, std::nullopt).success);

        const auto must_bind = [&](Client& c, std::uint16_t channel, const char* peer) {
            const Answer a = bind(c.tuple, channel, at(peer));
            ASSERT_TRUE(a.success) << peer << ": " << a.error;
            c.bound.push_back(channel);
        };
        const auto must_refuse = [&](Client& c, std::uint16_t channel, const char* peer) {
            const Answer a = bind(c.tuple, channel, at(peer));
            ASSERT_EQ(a.error, 403) << "the policy must refuse " << peer;
            c.refused.push_back(channel);
        };
        must_bind(clients_[0], 0x4000, "8.8.8.8:5000");
        must_bind(clients_[0], 0x4001, "1.1.1.1:6000");
        must_refuse(clients_[0], 0x4002, "10.1.2.3:5000");
        must_refuse(clients_[0], 0x4003, "9.9.9.9:53");
        ASSERT_TRUE(permit(clients_[0].tuple, at("8.8.4.4:7000")).success);
        must_bind(clients_[1], 0x4000, "8.8.8.8:5001");
        // A v6 peer of a v4 client: user space relays it, the kernel (one family) does not.
        must_bind(clients_[1], 0x4005, "[2606:4700::1111]:6000");
        must_refuse(clients_[1], 0x4006, "192.0.2.7:5000");
        must_bind(clients_[2], 0x4000, "[2001:4860::8888]:5000");
        must_bind(clients_[2], 0x4FFF, "[2606:4700::1111]:6000");
        must_refuse(clients_[2], 0x4001, "[fd00::7]:5000");
        must_refuse(clients_[2], 0x4002, "[2001:db8:99::7]:5000");
        must_bind(clients_[3], 0x4ABC, "[2001:4860::8888]:5001");
        ASSERT_TRUE(permit(clients_[3].tuple, at("[2606:4700::2222]:7000")).success);
        // A TCP client's channel: its peer's datagrams go to user space, which frames them
        // for the connection.
        ASSERT_TRUE(bind(tcp_client_, 0x4000, at("8.8.8.8:5000")).success);

        for (const auto& o : egress_.opens) {
            if (o.status == allocation::OpenRelayStatus::opened) relays_.push_back(o.address);
        }
        ASSERT_EQ(relays_.size(), 6u);
        for (const char* p :
             {"8.8.8.8:5000", "1.1.1.1:6000", "8.8.8.8:5001", "8.8.4.4:7000", "8.8.8.8:5002",
              "10.1.2.3:5000", "9.9.9.9:53", "192.0.2.7:5000", "4.4.4.4:1234"}) {
            peers4_.push_back(at(p));
        }
        for (const char* p :
             {"[2001:4860::8888]:5000", "[2606:4700::1111]:6000", "[2001:4860::8888]:5001",
              "[2606:4700::2222]:7000", "[fd00::7]:5000", "[2001:db8:99::7]:5000",
              "[2001:4860::4444]:1234", "[2001:4860::8888]:5002"}) {
            peers6_.push_back(at(p));
        }
        // Six channels of UDP clients with a peer of their own family: six entries each way.
        EXPECT_EQ((entries<tern_fp_channel_key, tern_fp_channel_value>(channels_fd_).size()), 6u);
        EXPECT_EQ((entries<tern_fp_peer_key, tern_fp_peer_value>(peers_fd_).size()), 6u);
    }

    // Hosts the program knows the way to; one client and one peer it must learn first, two
    // peers behind the other interface (a smaller MTU, bpf_redirect).
    void teach_neighbors() {
        for (const auto& c : clients_) {
            if (c.tuple.client != at("[2001:db8:5::6]:40002")) {
                set_neighbor(c.tuple.client, loopback_ifindex, mac_of(c.tuple.client), our_mac);
            }
        }
        for (const auto* list : {&peers4_, &peers6_}) {
            for (const auto& p : *list) {
                if (same_ip(p, ip("8.8.4.4"))) continue;
                const bool other = same_ip(p, ip("1.1.1.1")) || same_ip(p, ip("2606:4700::1111"));
                set_neighbor(p, other ? other_ifindex : loopback_ifindex, mac_of(p),
                             other ? our_other_mac : our_mac);
            }
        }
    }

    static tern_fp_neighbor_key neighbor_key(const TransportAddress& a) {
        tern_fp_neighbor_key k{};
        widen(a, k.ip);
        k.family = family_of(a);
        return k;
    }
    void set_neighbor(const TransportAddress& a, int ifindex, const Mac& remote, const Mac& local) {
        const tern_fp_neighbor_key k = neighbor_key(a);
        tern_fp_neighbor_value v{};
        v.ifindex = static_cast<__u32>(ifindex);
        std::memcpy(v.remote_mac, remote.data(), 6);
        std::memcpy(v.local_mac, local.data(), 6);
        ASSERT_EQ(bpf_map_update_elem(neighbors_fd_, &k, &v, BPF_ANY), 0);
    }
    void forget_neighbor(const TransportAddress& a) {
        const tern_fp_neighbor_key k = neighbor_key(a);
        bpf_map_delete_elem(neighbors_fd_, &k);
    }
    std::optional<tern_fp_neighbor_value> neighbor(const TransportAddress& a) const {
        const tern_fp_neighbor_key k = neighbor_key(a);
        tern_fp_neighbor_value v{};
        if (bpf_map_lookup_elem(neighbors_fd_, &k, &v) != 0) return std::nullopt;
        return v;
    }
    static bool same_way(const std::optional<tern_fp_neighbor_value>& a,
                         const std::optional<tern_fp_neighbor_value>& b) {
        return a.has_value() == b.has_value() && (!a || std::memcmp(&*a, &*b, sizeof *a) == 0);
    }
    std::uint32_t mtu_of(__u32 ifindex) const {
        return ifindex == loopback_ifindex ? mtu_ : ifindex == other_ifindex ? other_mtu : 0;
    }

    std::optional<RelayId> relay_id(const TransportAddress& address) const {
        for (const auto& o : egress_.opens) {
            if (o.status == allocation::OpenRelayStatus::opened && o.address == address) {
                return o.id;
            }
        }
        return std::nullopt;
    }
    std::optional<TransportAddress> relay_address(RelayId id) const {
        for (const auto& o : egress_.opens) {
            if (o.status == allocation::OpenRelayStatus::opened && o.id == id) return o.address;
        }
        return std::nullopt;
    }
    TransportAddress relay_of(const FiveTuple& t, AddressFamily family) const {
        const allocation::Allocation* a = manager_->find(t, now_);
        if (a != nullptr) {
            for (const auto& r : a->relays) {
                if (r.family == family) return r;
            }
        }
        ADD_FAILURE() << "no relay of that family for " << t.client.to_string();
        return {};
    }

    // Every entry in the maps is one the user-space rules allow now: a live allocation of a UDP
    // client with the channel bound to that peer, a live permission, a peer the policy
    // permits, one address family; and each direction's entry has its mirror.
    void verify_maps() {
        const auto channels = entries<tern_fp_channel_key, tern_fp_channel_value>(channels_fd_);
        const auto peers = entries<tern_fp_peer_key, tern_fp_peer_value>(peers_fd_);
        EXPECT_EQ(channels.size(), peers.size());
        for (const auto& [k, v] : channels) {
            const TransportAddress client = narrow(k.client_ip, k.family, k.client_port);
            const TransportAddress server = narrow(k.server_ip, k.family, k.server_port);
            const TransportAddress relay = narrow(v.relay_ip, k.family, v.relay_port);
            const TransportAddress peer = narrow(v.peer_ip, k.family, v.peer_port);
            const std::uint16_t channel = ntohs(k.channel);
            const std::string what = "entry " + client.to_string() + " channel " +
                                     std::to_string(channel) + " -> " + peer.to_string();
            const allocation::Allocation* a =
                manager_->find(FiveTuple{client, server, Transport::udp}, now_);
            if (a == nullptr) {
                ADD_FAILURE() << what << ": no live UDP allocation";
                continue;
            }
            EXPECT_EQ(a->channels.peer_for(channel, now_), peer) << what;
            EXPECT_TRUE(a->permissions.allowed(peer, now_)) << what << ": no permission";
            EXPECT_TRUE(policy_->permits(peer)) << what << ": the policy refuses the peer";
            EXPECT_EQ(relay, relay_of(a->tuple, peer.family)) << what;
            const tern_fp_peer_key pk = peer_key(relay, peer);
            tern_fp_peer_value pv{};
            ASSERT_EQ(bpf_map_lookup_elem(peers_fd_, &pk, &pv), 0) << what << ": no mirror";
            EXPECT_EQ(narrow(pv.client_ip, k.family, pv.client_port), client) << what;
            EXPECT_EQ(narrow(pv.server_ip, k.family, pv.server_port), server) << what;
            EXPECT_EQ(ntohs(pv.channel), channel) << what;
        }
    }

    struct Run {
        int action = -1;
        Bytes out;
    };
    Run run(const Bytes& frame) {
        Run r;
        r.out.assign(frame.size() + 512, 0);
        xdp_md ctx{};
        ctx.data_end = static_cast<__u32>(frame.size());
        ctx.ingress_ifindex = loopback_ifindex;
        xdp_md ctx_out{};
        bpf_test_run_opts opts{};
        opts.sz = sizeof opts;
        opts.data_in = frame.data();
        opts.data_size_in = static_cast<__u32>(frame.size());
        opts.data_out = r.out.data();
        opts.data_size_out = static_cast<__u32>(r.out.size());
        opts.ctx_in = &ctx;
        opts.ctx_size_in = sizeof ctx;
        opts.ctx_out = &ctx_out;
        opts.ctx_size_out = sizeof ctx_out;
        opts.repeat = 1;
        const int rc = bpf_prog_test_run_opts(path_->program_fd(), &opts);
        if (rc != 0) {
            ADD_FAILURE() << "bpf_prog_test_run_opts: " << std::strerror(errno);
            return r;
        }
        r.action = static_cast<int>(opts.retval);
        r.out.resize(opts.data_size_out);
        EXPECT_EQ(ctx_out.data_end - ctx_out.data, opts.data_size_out);
        return r;
    }

    // One frame through the program, judged. `context` names the seed or the case.
    Verdict check(const FrameSpec& spec, const std::string& context) {
        const Bytes frame = build(spec);
        ++totals_.frames;
        const KernelView k = kernel_view(frame);
        const bool plain = program_parses(frame);
        // Every frame comes in on the loopback: only one addressed to its MAC is the host's.
        const bool to_our_mac = std::equal(our_mac.begin(), our_mac.end(), frame.begin());
        // The entry the frame matches, if any, and the way to where it would go: read before
        // the run, which learns the sender's.
        std::optional<tern_fp_channel_value> to_peer;
        std::optional<tern_fp_peer_value> to_client;
        std::optional<std::uint16_t> channel;
        if (k.sane) {
            if (k.payload.size() >= 4 && (k.payload[0] & 0xC0) == 0x40) {
                channel = get16(k.payload, 0);
                const tern_fp_channel_key key = channel_key(k.src, k.dst, *channel);
                tern_fp_channel_value v{};
                if (bpf_map_lookup_elem(channels_fd_, &key, &v) == 0) to_peer = v;
            }
            if (!to_peer) {
                const tern_fp_peer_key key = peer_key(k.dst, k.src);
                tern_fp_peer_value v{};
                if (bpf_map_lookup_elem(peers_fd_, &key, &v) == 0) to_client = v;
            }
        }
        const __u16 family = family_of(k.src);
        std::optional<tern_fp_neighbor_value> way;
        if (to_peer) way = neighbor(narrow(to_peer->peer_ip, family, to_peer->peer_port));
        if (to_client) way = neighbor(narrow(to_client->client_ip, family, to_client->client_port));
        const std::optional<tern_fp_neighbor_value> sender_before =
            k.sane ? neighbor(k.src) : std::nullopt;

        // What the program is meant to take: everything of a bound channel that user space
        // would relay, unless it needs user space (padding > 3, a grown frame over the MTU, a
        // deferred-looking checksum, an unknown way).
        std::string must_take;
        const bool deferred_looking =
            k.sane && k.check != 0 && k.check == fold(pseudo_header(k.src, k.dst, k.udp_len));
        if (plain && k.delivered() && !deferred_looking && way && mtu_of(way->ifindex) != 0) {
            const std::size_t mtu = mtu_of(way->ifindex);
            if (to_peer) {
                const std::size_t length = get16(k.payload, 2);
                const std::size_t data = k.payload.size() - 4;
                if (length <= data && data - length <= 3 && k.l3_len + 8 + length <= mtu) {
                    must_take = "ChannelData of a bound channel";
                }
            } else if (to_client && k.l3_len + 8 + 4 + k.payload.size() <= mtu) {
                must_take = "a datagram of a bound peer";
            }
        }
        // ... and addressed to us: another MAC's frame is the kernel's to drop or handle.
        const bool bound_not_ours = !to_our_mac && !must_take.empty();
        if (!to_our_mac) must_take.clear();

        const Run r = run(frame);
        const auto fail = [&](const std::string& what) {
            ADD_FAILURE() << what << "\n  " << context << "\n  frame: " << describe(spec)
                          << "\n  bytes: " << hex(frame) << "\n  out:   " << hex(r.out);
            ++failures_;
            return Verdict::failed;
        };
        if (r.action == XDP_PASS) {
            ++totals_.passed;
            if (plain) ++totals_.passed_parsed;
            if (r.out != frame) return fail("XDP_PASS changed the frame");
            if (!must_take.empty()) return fail("passed to user space: " + must_take);
            if (!to_our_mac && k.sane && !same_way(neighbor(k.src), sender_before)) {
                return fail("learned a way from a frame addressed to another MAC");
            }
            if (bound_not_ours) ++totals_.passed_not_our_mac;
            if (k.delivered() && (to_peer || to_client)) ++totals_.passed_user_space_relays;
            return Verdict::passed;
        }
        if (r.action != XDP_TX && r.action != XDP_REDIRECT) {
            return fail("action " + std::to_string(r.action) + " (only PASS, TX, REDIRECT)");
        }

        // Relayed. User space, handed the same datagram, would have relayed it the same way.
        if (!k.sane) return fail("relayed a frame the kernel would not deliver to a socket");
        if (!to_peer && !to_client) return fail("relayed a frame that matches no entry");
        // Counted per entry (payload bytes), as ternd reads them back, whatever is wrong below.
        if (to_peer) {
            const std::size_t length = get16(k.payload, 2);
            ++totals_.to_peer;
            totals_.bytes_to_peer += length;
            auto& t = counted_[key_bytes(channel_key(k.src, k.dst, *channel))];
            ++t.first;
            t.second += length;
        } else {
            ++totals_.to_client;
            totals_.bytes_to_client += k.payload.size();
            auto& t = counted_[key_bytes(peer_key(k.dst, k.src))];
            ++t.first;
            t.second += k.payload.size();
        }
        if (!to_our_mac) {
            return fail("relayed a frame addressed to " + mac_text(frame.data()) +
                        ", not to the interface's MAC");
        }
        if (!way) return fail("relayed without a known way to the destination");
        const std::size_t mtu = mtu_of(way->ifindex);
        const int expected_action = way->ifindex == loopback_ifindex ? XDP_TX : XDP_REDIRECT;
        if (r.action != expected_action) return fail("relayed with the wrong action");
        // The UDP checksum the relayed datagram must carry. IPv4 without one stays without one,
        // and so leaves a deferred one on loopback (nothing there can corrupt it). One the
        // kernel would have refused may only be carried as corrupt as it came, so that the
        // receiver drops it alike.
        Want want = Want::valid;
        if (!is_v6(k.src) && (k.check == 0 || (deferred_looking && loopback_))) {
            want = Want::none;
        } else if (!k.checksum_ok) {
            want = Want::corrupt;
            ++totals_.corrupt_relayed;
        }
        TransportAddress from;
        TransportAddress to;
        Bytes payload;
        Verdict verdict = Verdict::passed;
        if (to_peer) {
            const FiveTuple tuple{k.src, k.dst, Transport::udp};
            const auto route = manager_->route_channel_data(k.payload, tuple, now_);
            if (!route) return fail("relayed ChannelData that user space would drop");
            const auto relay = relay_address(route->relay);
            if (!relay) return fail("user space routes through an unknown relay");
            if (!policy_->permits(route->peer)) return fail("relayed to a peer the policy refuses");
            if (narrow(to_peer->peer_ip, family, to_peer->peer_port) != route->peer ||
                narrow(to_peer->relay_ip, family, to_peer->relay_port) != *relay) {
                return fail("the entry and user space disagree on where it goes");
            }
            from = *relay;
            to = route->peer;
            payload.assign(route->payload.begin(), route->payload.end());
            if (k.l3_len + 8 + payload.size() > mtu) return fail("relayed over the MTU");
            verdict = Verdict::to_peer;
        } else {
            const auto id = relay_id(k.dst);
            if (!id) return fail("relayed a datagram to no relay of ours");
            const auto route = manager_->route_peer_datagram(*id, k.src, k.payload.size(), now_);
            if (!route) return fail("relayed a peer datagram that user space would drop");
            if (route->channel == 0)
                return fail("relayed what user space sends as a Data indication");
            if (!policy_->permits(k.src)) return fail("relayed from a peer the policy refuses");
            if (route->tuple->transport != Transport::udp)
                return fail("relayed to a stream client");
            if (ntohs(to_client->channel) != route->channel ||
                narrow(to_client->client_ip, family, to_client->client_port) !=
                    route->tuple->client ||
                narrow(to_client->server_ip, family, to_client->server_port) !=
                    route->tuple->server) {
                return fail("the entry and user space disagree on where it goes");
            }
            from = route->tuple->server;
            to = route->tuple->client;
            put16(payload, route->channel);
            put16(payload, static_cast<std::uint16_t>(k.payload.size()));
            payload.insert(payload.end(), k.payload.begin(), k.payload.end());
            if (k.l3_len + 8 + payload.size() > mtu) return fail("relayed over the MTU");
            verdict = Verdict::to_client;
        }
        if (const std::string problem = wrong_in(r.out, from, to, payload, *way, want);
            !problem.empty()) {
            return fail("relayed frame: " + problem);
        }
        // The program learns the way back to the sender from a unicast frame only.
        const auto sender = neighbor(k.src);
        const bool learnable = unicast(spec.smac.data()) && unicast(spec.dmac.data());
        if (learnable) {
            if (!sender || sender->ifindex != loopback_ifindex ||
                std::memcmp(sender->remote_mac, spec.smac.data(), 6) != 0 ||
                std::memcmp(sender->local_mac, spec.dmac.data(), 6) != 0) {
                return fail("the way back to the sender was not learned");
            }
        } else if (!same_way(sender, sender_before)) {
            return fail("learned a way from a broadcast or multicast frame");
        }
        return verdict;
    }

    // What is wrong with `out` as the frame user space would send from `from` to `to` with
    // `payload`; empty when nothing is.
    static std::string wrong_in(const Bytes& out, const TransportAddress& from,
                                const TransportAddress& to, const Bytes& payload,
                                const tern_fp_neighbor_value& way, Want want) {
        const bool six = is_v6(from);
        const std::size_t l3 = six ? 40 : 20;
        if (out.size() != 14 + l3 + 8 + payload.size()) {
            return "size " + std::to_string(out.size()) + ", not " +
                   std::to_string(14 + l3 + 8 + payload.size());
        }
        if (std::memcmp(out.data(), way.remote_mac, 6) != 0) return "destination MAC";
        if (std::memcmp(out.data() + 6, way.local_mac, 6) != 0) return "source MAC";
        if (!unicast(out.data()) || !unicast(out.data() + 6)) return "a multicast MAC";
        const std::span<const std::uint8_t> o(out);
        std::size_t udp_at = 14 + l3;
        if (six) {
            if (get16(o, 12) != 0x86DD || out[14] >> 4 != 6) return "not IPv6";
            if (get16(o, 18) != 8 + payload.size()) return "IPv6 payload length";
            if (out[20] != udp_protocol) return "IPv6 next header";
            if (out[21] != 64) return "hop limit " + std::to_string(out[21]);
            if (!std::equal(from.bytes.begin(), from.bytes.end(), out.begin() + 22))
                return "source";
            if (!std::equal(to.bytes.begin(), to.bytes.end(), out.begin() + 38))
                return "destination";
        } else {
            if (get16(o, 12) != 0x0800 || out[14] != 0x45) return "not IPv4 without options";
            if (get16(o, 16) != 20 + 8 + payload.size()) return "IPv4 total length";
            if ((get16(o, 20) & 0x3FFF) != 0) return "IPv4 fragment bits";
            if (out[22] != 64) return "TTL " + std::to_string(out[22]);
            if (out[23] != udp_protocol) return "IPv4 protocol";
            if (fold(sum_bytes(0, o.subspan(14, 20))) != 0xFFFF) return "IPv4 header checksum";
            if (!std::equal(from.bytes.begin(), from.bytes.begin() + 4, out.begin() + 26)) {
                return "source";
            }
            if (!std::equal(to.bytes.begin(), to.bytes.begin() + 4, out.begin() + 30)) {
                return "destination";
            }
        }
        if (get16(o, udp_at) != from.port || get16(o, udp_at + 2) != to.port) return "ports";
        if (get16(o, udp_at + 4) != 8 + payload.size()) return "UDP length";
        if (!std::equal(payload.begin(), payload.end(),
                        out.begin() + static_cast<std::ptrdiff_t>(udp_at + 8))) {
            return "payload";
        }
        const std::uint16_t check = get16(o, udp_at + 6);
        if (want == Want::none) return check == 0 ? "" : "a UDP checksum where none belongs";
        if (check == 0) return "no UDP checksum";
        const bool valid = udp_checksum_ok(from, to, o.subspan(udp_at));
        if (want == Want::valid && !valid) return "UDP checksum";
        if (want == Want::corrupt && valid) return "a valid UDP checksum on a corrupt datagram";
        return "";
    }

    // The per-entry counters hold what was relayed through each entry; the program's totals too.
    void verify_counts() {
        for (const auto& [k, v] :
             entries<tern_fp_channel_key, tern_fp_channel_value>(channels_fd_)) {
            const auto it = counted_.find(key_bytes(k));
            const auto want =
                it == counted_.end() ? std::pair<std::uint64_t, std::uint64_t>{} : it->second;
            EXPECT_EQ(v.packets, want.first) << "channel " << ntohs(k.channel);
            EXPECT_EQ(v.bytes, want.second) << "channel " << ntohs(k.channel);
        }
        for (const auto& [k, v] : entries<tern_fp_peer_key, tern_fp_peer_value>(peers_fd_)) {
            const auto it = counted_.find(key_bytes(k));
            const auto want =
                it == counted_.end() ? std::pair<std::uint64_t, std::uint64_t>{} : it->second;
            EXPECT_EQ(v.packets, want.first) << "peer entry of channel " << ntohs(v.channel);
            EXPECT_EQ(v.bytes, want.second) << "peer entry of channel " << ntohs(v.channel);
        }
        const KernelFastPathStats s = path_->stats();
        EXPECT_EQ(s.to_peer, totals_.to_peer);
        EXPECT_EQ(s.to_client, totals_.to_client);
        EXPECT_EQ(s.bytes_to_peer, totals_.bytes_to_peer);
        EXPECT_EQ(s.bytes_to_client, totals_.bytes_to_client);
        EXPECT_EQ(s.dropped_bandwidth, 0u);
        // Every pass is counted under a reason, but for frames that are no plain UDP datagram.
        EXPECT_EQ(s.passed_no_entry + s.passed_no_neighbor + s.passed_other, totals_.passed_parsed);
        // KernelFastPath::counts, which the manager's sweep reads, says the same per route.
        for (const auto& c : clients_) {
            for (const auto& kc : manager_->find(c.tuple, now_)->kernel) {
                const allocation::KernelRoute& route = kc.route;
                const allocation::KernelRouteCounts got = path_->counts(route);
                const auto up =
                    counted_[key_bytes(channel_key(route.client, route.server, route.channel))];
                const auto down = counted_[key_bytes(peer_key(route.relay, route.peer))];
                EXPECT_EQ(got, (allocation::KernelRouteCounts{up.first, up.second, down.first,
                                                              down.second}))
                    << route.client.to_string() << " channel " << route.channel;
            }
        }
    }

    void expect_verdict(const FrameSpec& spec, Verdict want, const std::string& context) {
        const Verdict got = check(spec, context);
        EXPECT_EQ(static_cast<int>(got), static_cast<int>(want))
            << context << ": " << describe(spec);
    }

    // Plain frames, as a well-behaved client or peer sends them.
    FrameSpec from_client(const FiveTuple& t, std::uint16_t channel, const Bytes& data,
                          std::size_t padding = 0) const {
        FrameSpec s;
        s.src = t.client;
        s.dst = t.server;
        s.payload =
            channel_data(channel, static_cast<std::uint16_t>(data.size()), data, Bytes(padding, 0));
        s.smac = mac_of(t.client);
        s.dmac = our_mac;
        return s;
    }
    FrameSpec from_peer(const TransportAddress& peer, const TransportAddress& relay,
                        const Bytes& data) const {
        FrameSpec s;
        s.src = peer;
        s.dst = relay;
        s.payload = data;
        s.smac = mac_of(peer);
        s.dmac = our_mac;
        return s;
    }

    // -----------------------------------------------------------------------------------------
    // Random frames.

    static std::size_t random_size(Rng& rng) {
        switch (rng.below(5)) {
            case 0:
                return rng.below(4);
            case 1:
                return static_cast<std::size_t>(rng.between(4, 64));
            case 2:
                return static_cast<std::size_t>(rng.between(65, 600));
            case 3:
                return static_cast<std::size_t>(rng.between(601, 1400));
            default:
                return static_cast<std::size_t>(rng.between(1401, 1480));
        }
    }

    void random_client_frame(Rng& rng, FrameSpec& s) const {
        const Client& c = rng.pick(clients_);
        s.src = c.tuple.client;
        s.dst = c.tuple.server;
        const std::size_t who = rng.below(100);
        if (who < 6) {
            s.src.port = static_cast<std::uint16_t>(s.src.port + 1);  // the client's IP, not port
        } else if (who < 10) {
            s.src = is_v6(s.src) ? at("[2001:db8:5::99]:40000") : at("203.0.113.99:40000");
        } else if (who < 13 && !is_v6(s.src)) {
            s.src = tcp_client_.client;  // its UDP twin has no allocation
        }
        const std::size_t where = rng.below(100);
        if (where < 5) {
            s.dst.port = 3479;
        } else if (where < 10) {
            s.dst = relay_of(c.tuple, s.dst.family);  // ChannelData sent to the relayed address
        }
        std::uint16_t channel = 0;
        const std::size_t which = rng.below(100);
        if (which < 60 && !c.bound.empty()) {
            channel = rng.pick(c.bound);
        } else if (which < 70 && !c.refused.empty()) {
            channel = rng.pick(c.refused);
        } else if (which < 80) {
            const Client& other = rng.pick(clients_);
            channel = other.bound.empty() ? 0x4000 : rng.pick(other.bound);
        } else if (which < 92) {
            channel = static_cast<std::uint16_t>(rng.between(0x4000, 0x7FFF));
        } else {
            channel = static_cast<std::uint16_t>(rng.between(0x4000, 0x4010));
        }
        const std::size_t length = random_size(rng);
        const Bytes data = rng.bytes(length);
        long field = static_cast<long>(length);
        const std::size_t lie = rng.below(100);
        if (lie >= 75 && lie < 85) {
            field += rng.between(1, 8);
        } else if (lie >= 85 && lie < 95) {
            field -= rng.between(1, 8);
        } else if (lie >= 95) {
            field = static_cast<long>(rng.below(0x10000));
        }
        field = std::clamp<long>(field, 0, 0xFFFF);
        Bytes trailing;
        const std::size_t pad = rng.below(100);
        if (pad >= 50 && pad < 75) {
            trailing.assign((4 - length % 4) % 4, 0);
        } else if (pad >= 75 && pad < 90) {
            trailing = rng.bytes(static_cast<std::size_t>(rng.between(1, 3)));
        } else if (pad >= 90) {
            trailing = rng.bytes(static_cast<std::size_t>(rng.between(4, 40)));
        }
        s.payload = channel_data(channel, static_cast<std::uint16_t>(field), data, trailing);
    }

    void random_peer_frame(Rng& rng, FrameSpec& s) const {
        s.dst = rng.pick(relays_);
        if (rng.chance(0.04)) s.dst.port = 49999;  // no relay socket there
        const auto& peers = is_v6(s.dst) ? peers6_ : peers4_;
        // Mostly the peers bound somewhere (the first three of each list).
        s.src = rng.chance(0.55) ? peers[rng.below(3)] : rng.pick(peers);
        s.payload = rng.bytes(random_size(rng));
        const std::size_t look = rng.below(100);
        if (look < 10 && s.payload.size() >= 20) {
            // A STUN-looking datagram: type, length, magic cookie.
            s.payload[0] = 0x00;
            s.payload[1] = 0x01;
            s.payload[4] = 0x21;
            s.payload[5] = 0x12;
            s.payload[6] = 0xA4;
            s.payload[7] = 0x42;
        } else if (look < 25 && !s.payload.empty()) {
            s.payload[0] = static_cast<std::uint8_t>(0x40 | (s.payload[0] & 0x3F));
        }
    }

    void random_stun_frame(Rng& rng, FrameSpec& s) const {
        const Client& c = rng.pick(clients_);
        s.src = c.tuple.client;
        s.dst = c.tuple.server;
        s.payload = rng.bytes(20 + 4 * rng.below(20));
        s.payload[0] = rng.chance(0.5) ? 0x00 : 0x01;  // 0b00: STUN, never ChannelData
        s.payload[1] = 0x01;
        set16(s.payload, 2, static_cast<std::uint16_t>(s.payload.size() - 20));
        s.payload[4] = 0x21;
        s.payload[5] = 0x12;
        s.payload[6] = 0xA4;
        s.payload[7] = 0x42;
    }

    // Whatever a link and its senders do to frames.
    void mutate(Rng& rng, FrameSpec& s) const {
        const bool six = is_v6(s.src);
        s.ttl = rng.chance(0.1) ? static_cast<std::uint8_t>(rng.below(2)) : rng.byte();
        s.tos = rng.byte();
        s.ip_id = static_cast<std::uint16_t>(rng.next());
        s.flow = static_cast<std::uint32_t>(rng.next() & 0xFFFFF);
        s.smac = mac_of(s.src);
        if (rng.chance(0.05)) s.smac = {0x02, 0x99, 0, 0, 0, rng.byte()};  // a gateway, a move
        if (rng.chance(0.01)) s.smac = multicast_mac;
        // Mostly to us; now and then to everyone, to a group, to another host (a promiscuous
        // interface, a switch flooding, a stale ARP entry), to our MAC on the other interface.
        s.dmac = our_mac;
        const std::size_t to = rng.below(100);
        if (to < 3) {
            s.dmac = broadcast_mac;
        } else if (to < 5) {
            s.dmac = multicast_mac;
        } else if (to < 8) {
            s.dmac = other_host_mac;
        } else if (to < 9) {
            s.dmac = our_other_mac;
        } else if (to < 10) {
            s.dmac = {0x02, 0x66, 0, 0, rng.byte(), rng.byte()};
        }
        if (rng.chance(0.04)) {
            if (six) {
                s.ext = static_cast<Ext>(rng.between(1, 5));
            } else {
                s.v4_options = 4 * static_cast<std::size_t>(rng.between(1, 10));
            }
        }
        if (!six && rng.chance(0.03)) {
            s.more_fragments = rng.chance(0.6);
            s.fragment_offset =
                rng.chance(0.5) ? static_cast<std::uint16_t>(rng.between(1, 200)) : 0;
        }
        if (rng.chance(0.04))
            s.udp_len_delta = rng.chance(0.5) ? rng.between(1, 12) : -rng.between(1, 12);
        if (rng.chance(0.04))
            s.ip_len_delta = rng.chance(0.5) ? rng.between(1, 12) : -rng.between(1, 12);
        if (rng.chance(0.02)) s.udp_len_delta = s.ip_len_delta = -rng.between(1, 8);  // agreeing
        if (rng.chance(0.04)) s.truncate = static_cast<std::size_t>(rng.between(1, 40));
        if (rng.chance(0.08)) s.link_padding = static_cast<std::size_t>(rng.between(1, 30));
        if (rng.chance(0.3)) s.pad_to = 60;
        const std::size_t sum = rng.below(100);
        if (sum < 4) {
            s.sum = Sum::zero;
        } else if (sum < 10) {
            s.sum = Sum::bad;
            s.bad_xor = static_cast<std::uint16_t>(rng.between(1, 0xFFFF));
        } else if (sum < 13) {
            s.sum = Sum::deferred;
        }
        if (rng.chance(0.03)) s.corrupt_payload = rng.below(2000);
        if (!six && rng.chance(0.03)) s.bad_ip_check = true;
        if (rng.chance(0.02)) s.protocol = 6;
        if (rng.chance(0.01)) s.version = six ? 4 : 6;
        if (rng.chance(0.01)) {
            static constexpr std::array<std::uint16_t, 4> types{0x0806, 0x8100, 0x88CC, 0x0800};
            s.ethertype = types[rng.below(types.size())];
            if (s.ethertype == 0x0800 && !six) s.ethertype = 0x86DD;
        }
        if (!six && rng.chance(0.01)) {
            // The same datagram in IPv6 with v4-mapped addresses: another family's entry.
            std::array<std::uint8_t, 16> b{};
            b[10] = b[11] = 0xFF;
            std::copy_n(s.src.bytes.begin(), 4, b.begin() + 12);
            s.src = TransportAddress::v6(b, s.src.port);
            std::copy_n(s.dst.bytes.begin(), 4, b.begin() + 12);
            s.dst = TransportAddress::v6(b, s.dst.port);
        }
    }

    // Now and then a way moves, is forgotten, or goes behind the other interface.
    void churn_neighbors(Rng& rng) {
        std::vector<TransportAddress> hosts;
        for (const auto& c : clients_) hosts.push_back(c.tuple.client);
        hosts.insert(hosts.end(), peers4_.begin(), peers4_.end());
        hosts.insert(hosts.end(), peers6_.begin(), peers6_.end());
        const TransportAddress& h = rng.pick(hosts);
        switch (rng.below(4)) {
            case 0:
                forget_neighbor(h);
                break;
            case 1:
                set_neighbor(h, loopback_ifindex, mac_of(h), our_mac);
                break;
            case 2:
                set_neighbor(h, other_ifindex, mac_of(h), our_other_mac);
                break;
            default:
                set_neighbor(h, loopback_ifindex, {0x02, 0x98, 0, 0, 0, rng.byte()}, our_mac);
        }
    }

    FrameSpec random_frame(Rng& rng) const {
        FrameSpec s;
        const std::size_t kind = rng.below(100);
        if (kind < 50) {
            random_client_frame(rng, s);
        } else if (kind < 94) {
            random_peer_frame(rng, s);
        } else {
            random_stun_frame(rng, s);
        }
        mutate(rng, s);
        return s;
    }

    // Declared first: the manager (last) hands its entries back to it when it goes.
    std::unique_ptr<KernelFastPath> path_;
    int channels_fd_ = -1;
    int peers_fd_ = -1;
    int neighbors_fd_ = -1;
    std::uint32_t mtu_ = loopback_mtu;  // the loopback's, as registered
    bool loopback_ = false;             // ... and whether as a loopback

    const TransportAddress server4_ = at("198.51.100.1:3478");
    const TransportAddress server6_ = at("[2001:db8::1]:3478");
    const TransportAddress relay4_ = ip("198.51.100.20");
    const TransportAddress relay6_ = ip("2001:db8::20");
    const FiveTuple tcp_client_{at("203.0.113.7:40003"), at("198.51.100.1:3478"), Transport::tcp};
    std::vector<Client> clients_;
    std::vector<TransportAddress> relays_;
    std::vector<TransportAddress> peers4_;  // the first three bound, then the others
    std::vector<TransportAddress> peers6_;

    std::array<std::uint8_t, 16> key_{};
    std::uint32_t serial_ = 0;
    TimePoint now_ = allocation::testing::t0 + 5s;
    allocation::ManagerSettings settings_;
    std::shared_ptr<const PeerPolicy> policy_;
    allocation::testing::SeededRandom port_random_{7};
    allocation::testing::FakeEgress egress_;
    std::unique_ptr<allocation::RelayPorts> ports_;
    std::unique_ptr<AllocationManager> manager_;

    Totals totals_;
    std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> counted_;  // packets, bytes
    int failures_ = 0;
};

// ---------------------------------------------------------------------------------------------

TEST_F(FastPathProgramTest, RandomFramesAreRelayedOnlyAsUserSpaceWould) {
    const std::uint64_t seed = env_number("TERN_FAST_PATH_SEED", std::random_device{}());
    const std::uint64_t frames = env_number("TERN_FAST_PATH_FRAMES", 100000);
    const std::string context = "seed " + std::to_string(seed) +
                                " (TERN_FAST_PATH_SEED=" + std::to_string(seed) + " replays it)";
    SCOPED_TRACE(context);
    Rng rng(seed);
    for (std::uint64_t i = 0; i < frames && failures_ < 20; ++i) {
        if (rng.chance(0.01)) churn_neighbors(rng);
        check(random_frame(rng), context + ", frame " + std::to_string(i));
    }
    // A fifth more with the interface registered as a loopback, where deferred IPv4 checksums
    // are relayed (as none).
    path_->register_interface(loopback_ifindex, loopback_mtu, true, our_mac);
    loopback_ = true;
    for (std::uint64_t i = 0; i < frames / 5 && failures_ < 20; ++i) {
        if (rng.chance(0.01)) churn_neighbors(rng);
        check(random_frame(rng), context + ", loopback frame " + std::to_string(i));
    }
    verify_counts();
    verify_maps();
    // ternd's sweep reads the entries' counters back into each allocation's usage, which the
    // model's own routing of every relayed frame above counted once already.
    const auto usage = [&] {
        allocation::AllocationUsage sum;
        for (const auto& c : clients_) {
            const allocation::AllocationUsage& u = manager_->find(c.tuple, now_)->usage;
            sum.packets_to_peer += u.packets_to_peer;
            sum.bytes_to_peer += u.bytes_to_peer;
            sum.packets_to_client += u.packets_to_client;
            sum.bytes_to_client += u.bytes_to_client;
        }
        return sum;
    };
    const allocation::AllocationUsage before = usage();
    manager_->expire(now_);
    const allocation::AllocationUsage after = usage();
    EXPECT_EQ(before.packets_to_peer, totals_.to_peer);
    EXPECT_EQ(after.packets_to_peer, 2 * totals_.to_peer);
    EXPECT_EQ(after.bytes_to_peer, 2 * totals_.bytes_to_peer);
    EXPECT_EQ(after.packets_to_client, 2 * totals_.to_client);
    EXPECT_EQ(after.bytes_to_client, 2 * totals_.bytes_to_client);
    EXPECT_EQ(manager_->counters().kernel_channels.value(), 6u);
    // The run must have exercised both ways, and passed plenty to user space.
    EXPECT_GT(totals_.to_peer, frames / 20);
    EXPECT_GT(totals_.to_client, frames / 20);
    EXPECT_GT(totals_.passed, frames / 4);
    EXPECT_GT(totals_.passed_not_our_mac, frames / 500) << "the MAC rule was hardly exercised";
    std::printf(
        "[ fast path ] %s: %llu frames, %llu relayed to peers, %llu to clients "
        "(%llu of them with a corrupt checksum, kept corrupt), %llu passed (%llu of "
        "them relayed by user space, %llu of them bound but to another MAC)\n",
        context.c_str(), static_cast<unsigned long long>(totals_.frames),
        static_cast<unsigned long long>(totals_.to_peer),
        static_cast<unsigned long long>(totals_.to_client),
        static_cast<unsigned long long>(totals_.corrupt_relayed),
        static_cast<unsigned long long>(totals_.passed),
        static_cast<unsigned long long>(totals_.passed_user_space_relays),
        static_cast<unsigned long long>(totals_.passed_not_our_mac));
}

// Every payload size a 1500-byte link carries, both ways, both families: relayed while the grown
// or shrunk frame fits the MTU, with checksums that verify; then all of them on a 9000-byte link.
TEST_F(FastPathProgramTest, EverySizeFrom1To1472RelaysWithChecksumsThatVerify) {
    Rng rng(1472);
    for (const std::uint32_t mtu : {loopback_mtu, 9000u}) {
        mtu_ = mtu;
        path_->register_interface(loopback_ifindex, mtu, false, our_mac);
        for (const std::size_t index : {0u, 2u}) {  // a v4 and a v6 client, channel 0x4000
            const FiveTuple& t = clients_[index].tuple;
            const TransportAddress peer = *manager_->find(t, now_)->channels.peer_for(0x4000, now_);
            const TransportAddress relay = relay_of(t, t.client.family);
            set_neighbor(peer, loopback_ifindex, mac_of(peer), our_mac);
            set_neighbor(t.client, loopback_ifindex, mac_of(t.client), our_mac);
            const std::size_t l3 = is_v6(peer) ? 40 : 20;
            for (std::size_t size = 1; size <= 1472 && failures_ < 20; ++size) {
                const std::string context =
                    "MTU " + std::to_string(mtu) + ", size " + std::to_string(size);
                FrameSpec up = from_client(t, 0x4000, rng.bytes(size), (4 - size % 4) % 4);
                up.pad_to = 60;
                up.ip_id = static_cast<std::uint16_t>(size);
                expect_verdict(up, l3 + 8 + size <= mtu ? Verdict::to_peer : Verdict::passed,
                               context);
                FrameSpec down = from_peer(peer, relay, rng.bytes(size));
                down.pad_to = 60;
                expect_verdict(down, l3 + 12 + size <= mtu ? Verdict::to_client : Verdict::passed,
                               context);
            }
        }
    }
    mtu_ = loopback_mtu;
    verify_counts();
}

// Refresh with LIFETIME 0 takes the allocation's entries away at once; a lapsed permission at
// the next sweep; the same frames then go to user space. A new ChannelBind brings them back.
TEST_F(FastPathProgramTest, WithdrawnEntriesPassTheSameFrames) {
    const FiveTuple& a4 = clients_[0].tuple;
    const FiveTuple& a6 = clients_[2].tuple;
    const TransportAddress peer4 = at("8.8.8.8:5000");
    const TransportAddress peer6 = at("[2001:4860::8888]:5000");
    const TransportAddress relay4 = relay_of(a4, AddressFamily::ipv4);
    const TransportAddress relay6 = relay_of(a6, AddressFamily::ipv6);
    const Bytes data{1, 2, 3, 4, 5, 6, 7};
    const FrameSpec up4 = from_client(a4, 0x4000, data);
    const FrameSpec down4 = from_peer(peer4, relay4, data);
    const FrameSpec up6 = from_client(a6, 0x4000, data);
    const FrameSpec down6 = from_peer(peer6, relay6, data);
    expect_verdict(up4, Verdict::to_peer, "bound");
    expect_verdict(down4, Verdict::to_client, "bound");
    expect_verdict(up6, Verdict::to_peer, "bound");
    expect_verdict(down6, Verdict::to_client, "bound");

    ASSERT_TRUE(refresh(a4, 0).success);
    verify_maps();
    EXPECT_FALSE(manager_->route_channel_data(up4.payload, a4, now_)) << "user space too";
    expect_verdict(up4, Verdict::passed, "after Refresh 0");
    expect_verdict(down4, Verdict::passed, "after Refresh 0");
    expect_verdict(up6, Verdict::to_peer, "another allocation");

    // The permission lapses at 300 s; the channel (600 s) and the allocation (600 s) live on.
    now_ += 301s;
    manager_->expire(now_);
    verify_maps();
    EXPECT_EQ((entries<tern_fp_channel_key, tern_fp_channel_value>(channels_fd_).size()), 0u)
        << "every permission was made at the start";
    expect_verdict(up6, Verdict::passed, "permission lapsed");
    expect_verdict(down6, Verdict::passed, "permission lapsed");

    ASSERT_TRUE(bind(a6, 0x4000, peer6).success);  // refreshes the binding and the permission
    verify_maps();
    expect_verdict(up6, Verdict::to_peer, "bound again");
    expect_verdict(down6, Verdict::to_client, "bound again");
}

// A reload whose policy refuses a bound peer: user space keeps relaying the live channel, but the
// kernel's entries to that peer go at the reload itself and the program relays nothing more to or
// from it. The bandwidth caps did not change, so every other entry stays through the reload.
TEST_F(FastPathProgramTest, APeerThePolicyNowRefusesIsNotRelayedByTheKernel) {
    const FiveTuple& a4 = clients_[0].tuple;
    const TransportAddress refused = at("8.8.8.8:5000");
    const TransportAddress kept = at("1.1.1.1:6000");
    set_neighbor(kept, loopback_ifindex, mac_of(kept), our_mac);
    const TransportAddress relay = relay_of(a4, AddressFamily::ipv4);
    const Bytes data(100, 0xAB);
    expect_verdict(from_client(a4, 0x4000, data), Verdict::to_peer, "before the reload");
    expect_verdict(from_peer(refused, relay, data), Verdict::to_client, "before the reload");

    policy_ = policy({protocol::Cidr::covering(ip("8.8.8.0"), 24)});
    manager_->reconfigure(settings_, policy_);
    for (const char* when : {"at the reload", "after the next sweep"}) {
        verify_maps();
        // 8.8.8.8:5000 (client 0) and 8.8.8.8:5001 (client 1) went, the other four stayed.
        EXPECT_EQ((entries<tern_fp_channel_key, tern_fp_channel_value>(channels_fd_).size()), 4u)
            << when;
        EXPECT_EQ(manager_->counters().kernel_channels.value(), 4u) << when;
        expect_verdict(from_client(a4, 0x4000, data), Verdict::passed,
                       std::string("refused now, ") + when);
        expect_verdict(from_peer(refused, relay, data), Verdict::passed,
                       std::string("refused now, ") + when);
        expect_verdict(from_client(a4, 0x4001, data), Verdict::to_peer,
                       std::string("another peer, ") + when);
        expect_verdict(from_peer(kept, relay, data), Verdict::to_client,
                       std::string("another peer, ") + when);
        manager_->expire(now_);
    }
    verify_counts();
}

// A reload that changes a bandwidth cap takes every entry out at once (the kernel's budgets are
// remade at the new rate); the next sweep installs them again, with budgets, and the program
// relays again.
TEST_F(FastPathProgramTest, AReloadThatChangesACapWithdrawsEveryEntryUntilTheNextSweep) {
    const FiveTuple& a4 = clients_[0].tuple;
    const FiveTuple& a6 = clients_[2].tuple;
    const TransportAddress peer4 = at("8.8.8.8:5000");
    const TransportAddress peer6 = at("[2001:4860::8888]:5000");
    const TransportAddress relay4 = relay_of(a4, AddressFamily::ipv4);
    const TransportAddress relay6 = relay_of(a6, AddressFamily::ipv6);
    const Bytes data(100, 0xCD);
    const auto all_ways = [&](Verdict up, Verdict down, const std::string& when) {
        expect_verdict(from_client(a4, 0x4000, data), up, when);
        expect_verdict(from_peer(peer4, relay4, data), down, when);
        expect_verdict(from_client(a6, 0x4000, data), up, when);
        expect_verdict(from_peer(peer6, relay6, data), down, when);
    };
    all_ways(Verdict::to_peer, Verdict::to_client, "before the reload");

    settings_.limits.allocation_bandwidth = 1000000;
    manager_->reconfigure(settings_, policy_);
    verify_maps();
    EXPECT_EQ((entries<tern_fp_channel_key, tern_fp_channel_value>(channels_fd_).size()), 0u);
    EXPECT_EQ(manager_->counters().kernel_channels.value(), 0u);
    counted_.clear();  // the entries installed again count from 0
    all_ways(Verdict::passed, Verdict::passed, "at the reload (a new cap)");

    manager_->expire(now_);
    verify_maps();
    const auto channels = entries<tern_fp_channel_key, tern_fp_channel_value>(channels_fd_);
    EXPECT_EQ(channels.size(), 6u);
    for (const auto& [k, v] : channels) {
        EXPECT_NE(v.allocation_budget, TERN_FP_NO_BUDGET) << "channel " << ntohs(k.channel);
    }
    all_ways(Verdict::to_peer, Verdict::to_client, "after the next sweep");
    verify_counts();
}

// A listener of ours is never a peer (user space drops what comes from one: tern answering a
// request spoofed from the relayed address), even where the allow list lets a channel be bound
// to it: no entry, so the program passes both ways though it knows the way there.
TEST_F(FastPathProgramTest, AChannelToAnOwnListenerIsNotInstalled) {
    const FiveTuple& a4 = clients_[0].tuple;
    const TransportAddress listener = server4_;  // 198.51.100.1:3478
    const TransportAddress relay = relay_of(a4, AddressFamily::ipv4);
    policy_ = policy({}, {protocol::Cidr::covering(listener, 32)});
    manager_->reconfigure(settings_, policy_);
    const Answer a = bind(a4, 0x4004, listener);
    ASSERT_TRUE(a.success) << "the allow list permits the listener: " << a.error;
    set_neighbor(listener, loopback_ifindex, mac_of(listener), our_mac);
    const Bytes data(40, 0x5C);
    for (const char* when : {"at ChannelBind", "after the next sweep"}) {
        verify_maps();
        EXPECT_EQ((entries<tern_fp_channel_key, tern_fp_channel_value>(channels_fd_).size()), 6u)
            << when << ": none for the listener";
        expect_verdict(from_client(a4, 0x4004, data), Verdict::passed,
                       std::string("ChannelData to the listener, ") + when);
        expect_verdict(from_peer(listener, relay, data), Verdict::passed,
                       std::string("from the listener, ") + when);
        EXPECT_FALSE(manager_->route_peer_datagram(*relay_id(relay), listener, data.size(), now_))
            << "user space drops it too";
        manager_->expire(now_);
    }
    verify_counts();
}

// The rule behind the interface's MAC: a bound, valid datagram addressed to another host's MAC
// (a promiscuous interface, a switch flooding, an address that moved) is the kernel's to drop,
// and teaches the program nothing; the same frame to our MAC is relayed. Both ways, both
// families; a group address or our MAC on the other interface is no better.
TEST_F(FastPathProgramTest, AFrameToAnotherHostsMacIsPassedTheSameFrameToOursRelayed) {
    for (const std::size_t index : {0u, 2u}) {  // a v4 and a v6 client, channel 0x4000
        const FiveTuple& t = clients_[index].tuple;
        const TransportAddress peer = *manager_->find(t, now_)->channels.peer_for(0x4000, now_);
        const TransportAddress relay = relay_of(t, t.client.family);
        const Bytes data{0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90};
        for (const bool up : {true, false}) {
            FrameSpec spec = up ? from_client(t, 0x4000, data) : from_peer(peer, relay, data);
            const TransportAddress sender = up ? t.client : peer;
            const std::string context = (up ? "from client " : "from peer ") + sender.to_string();
            // The sender's way is unknown: only the frame to our MAC may teach it.
            forget_neighbor(sender);
            for (const Mac& other : {other_host_mac, our_other_mac, broadcast_mac, multicast_mac}) {
                spec.dmac = other;
                const std::string to = context + " to " + mac_text(other.data());
                const std::uint64_t before = path_->stats().passed_other;
                expect_verdict(spec, Verdict::passed, to);
                EXPECT_EQ(path_->stats().passed_other, before + 1) << to;
                EXPECT_FALSE(neighbor(sender).has_value()) << to << ": learned a way";
            }
            spec.dmac = our_mac;
            expect_verdict(spec, up ? Verdict::to_peer : Verdict::to_client, context + " to us");
            const auto learned = neighbor(sender);
            ASSERT_TRUE(learned.has_value()) << context;
            EXPECT_EQ(std::memcmp(learned->local_mac, our_mac.data(), 6), 0) << context;
            // Known now: another host's frame still passes and changes nothing.
            spec.dmac = other_host_mac;
            expect_verdict(spec, Verdict::passed, context + " to another host, after");
            EXPECT_TRUE(same_way(neighbor(sender), learned)) << context;
        }
    }
    verify_counts();
}

// A checksum the sender left to its NIC (the folded pseudo header) is no checksum yet: passed,
// except on an interface registered as loopback, where the kernel never checks one.
TEST_F(FastPathProgramTest, DeferredChecksumsPassExceptOnLoopback) {
    const FiveTuple& a4 = clients_[0].tuple;
    FrameSpec up = from_client(a4, 0x4000, Bytes(64, 0x11));
    up.sum = Sum::deferred;
    FrameSpec down = from_peer(at("8.8.8.8:5000"), relay_of(a4, AddressFamily::ipv4), Bytes(64, 1));
    down.sum = Sum::deferred;
    expect_verdict(up, Verdict::passed, "deferred");
    expect_verdict(down, Verdict::passed, "deferred");
    path_->register_interface(loopback_ifindex, loopback_mtu, true, our_mac);
    loopback_ = true;
    expect_verdict(up, Verdict::to_peer, "deferred on loopback");
    expect_verdict(down, Verdict::to_client, "deferred on loopback");
}

}  // namespace
}  // namespace tern::server
