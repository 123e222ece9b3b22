// The default peer filter against the IANA special-purpose registries kept as data in
// allocation/data/ (one row per registry entry, with its "Globally Reachable" value). The table
// in peer_policy.cpp is written by hand; these tests read the registry files at run time and
// check that every block in them is refused by default, at its first, middle and last address,
// and that relay.allow_peers still opens each one. A registry refresh that adds a block fails
// here until the table covers it, and one that adds a globally reachable block fails until
// someone decides whether tern relays to it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "peer_policy_fixtures.hpp"
#include "tern/allocation/peer_policy.hpp"

#ifndef TERN_REGISTRY_DIR
#error "TERN_REGISTRY_DIR must name allocation/data (see tests/CMakeLists.txt)"
#endif

namespace tern::allocation {
namespace {

using protocol::AddressFamily;
using protocol::Cidr;
using protocol::TransportAddress;

struct RegistryEntry {
    std::vector<Cidr> blocks;  // one, except the NAT64/DNS64 Discovery entry (two /32s)
    std::string block_text;
    std::string name;
    std::string globally_reachable;  // "True", "False", "N/A", or "" for a terminated entry
};

struct Registry {
    std::vector<std::string> comments;  // the '#' header, without the '#'
    std::vector<RegistryEntry> entries;
};

// One CSV line: comma-separated fields, a field in double quotes may hold commas, and "" inside
// quotes is one quote (RFC 4180).
std::vector<std::string> split_csv(const std::string& line) {
    std::vector<std::string> fields(1);
    bool quoted = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (quoted) {
            if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
                fields.back() += '"';
                ++i;
            } else if (c == '"') {
                quoted = false;
            } else {
                fields.back() += c;
            }
        } else if (c == '"') {
            quoted = true;
        } else if (c == ',') {
            fields.emplace_back();
        } else {
            fields.back() += c;
        }
    }
    return fields;
}

std::string trimmed(const std::string& s) {
    const auto first = s.find_first_not_of(' ');
    if (first == std::string::npos) return {};
    return s.substr(first, s.find_last_not_of(' ') - first + 1);
}

// "10.0.0.0/8" exactly as written: the family it is written in, no host bits.
Cidr parse_block(const std::string& text) {
    const auto slash = text.find('/');
    const auto address = TransportAddress::parse_ip(text.substr(0, slash));
    EXPECT_TRUE(address.has_value() && slash != std::string::npos) << text;
    if (!address || slash == std::string::npos) return {};
    Cidr c;
    c.network = *address;
    c.prefix_length = static_cast<std::uint8_t>(std::stoi(text.substr(slash + 1)));
    EXPECT_EQ(protocol::mask_address(c.network, c.prefix_length), c.network)
        << text << " has host bits";
    return c;
}

Registry load(const std::string& file) {
    Registry r;
    std::ifstream in(std::string(TERN_REGISTRY_DIR) + "/" + file);
    EXPECT_TRUE(in.good()) << "cannot read " << TERN_REGISTRY_DIR << "/" << file;
    std::string line;
    bool header_seen = false;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        if (line[0] == '#') {
            r.comments.push_back(line.substr(1));
            continue;
        }
        const auto fields = split_csv(line);
        EXPECT_EQ(fields.size(), 10u) << file << ": " << line;
        if (fields.size() != 10) continue;
        if (!header_seen) {
            EXPECT_EQ(fields[0], "block");
            EXPECT_EQ(fields[8], "globally_reachable");
            header_seen = true;
            continue;
        }
        RegistryEntry e;
        e.block_text = fields[0];
        e.name = fields[1];
        e.globally_reachable = fields[8];
        std::stringstream blocks(fields[0]);
        std::string one;
        while (std::getline(blocks, one, ',')) e.blocks.push_back(parse_block(trimmed(one)));
        r.entries.push_back(e);
    }
    EXPECT_TRUE(header_seen) << file;
    return r;
}

const Registry& ipv4_registry() {
    static const Registry r = load("iana-ipv4-special-registry.csv");
    return r;
}
const Registry& ipv6_registry() {
    static const Registry r = load("iana-ipv6-special-registry.csv");
    return r;
}
std::vector<const RegistryEntry*> all_entries() {
    std::vector<const RegistryEntry*> out;
    for (const auto& e : ipv4_registry().entries) out.push_back(&e);
    for (const auto& e : ipv6_registry().entries) out.push_back(&e);
    return out;
}

TransportAddress with_bit(TransportAddress a, std::size_t bit) {
    a.bytes[bit / 8] |= static_cast<std::uint8_t>(0x80u >> (bit % 8));
    return a;
}

// The first, middle and last address of a block (the middle one has the first host bit set).
std::vector<TransportAddress> probes(const Cidr& c) {
    const std::size_t bits = c.network.address_size() * 8;
    TransportAddress last = c.network;
    for (std::size_t b = c.prefix_length; b < bits; ++b) last = with_bit(last, b);
    std::vector<TransportAddress> out = {c.network, last};
    if (c.prefix_length < bits) out.push_back(with_bit(c.network, c.prefix_length));
    return out;
}

using testing::default_policy;
using testing::mapped;

// Registry entries that are globally reachable, and why tern still refuses each by default.
// A relay has no business sending a client's datagrams to any of them; an operator who wants one
// lists it in relay.allow_peers.
const std::map<std::string, std::string>& reachable_but_refused() {
    static const std::map<std::string, std::string> m = {
        {"192.0.0.9/32", "PCP anycast: the nearest PCP server, the operator's own NAT gateway"},
        {"192.0.0.10/32", "TURN anycast: the nearest TURN server, TURN inside TURN"},
        {"192.31.196.0/24", "AS112-v4: anycast sink for reverse-DNS junk, often run locally"},
        {"192.52.193.0/24", "AMT relays: an anycast gateway into native multicast"},
        {"192.175.48.0/24", "AS112 direct delegation: the same anycast DNS sinks"},
        {"64:ff9b::/96", "NAT64: reaches IPv4 through a translator, private IPv4 included"},
        {"2001:1::1/128", "PCP anycast (IPv6): the operator's own gateway"},
        {"2001:1::2/128", "TURN anycast (IPv6): TURN inside TURN"},
        {"2001:1::3/128", "DNS-SD SRP anycast: the nearest service registrar, a local service"},
        {"2001:3::/32", "AMT (IPv6): an anycast gateway into native multicast"},
        {"2001:4:112::/48", "AS112-v6: anycast DNS sink"},
        {"2001:20::/28", "ORCHIDv2: cryptographic identifiers, not locators; never a real peer"},
        {"2001:30::/28", "DRIP DETs: drone identifiers, not locators; never a real peer"},
        {"2620:4f:8000::/48", "AS112 direct delegation (IPv6): anycast DNS sink"},
    };
    return m;
}

// ::ffff:0:0/96 is where tern keeps IPv4 peers: CreatePermission and ChannelBind unmap a peer
// written ::ffff:a.b.c.d before anything else, and the trie files IPv4 under this prefix. A peer
// there is judged as the IPv4 address it maps, never refused or allowed for its form.
const std::set<std::string>& judged_as_ipv4() {
    static const std::set<std::string> s = {"::ffff:0:0/96"};
    return s;
}

TEST(PeerRegistry, DataFilesNameTheirSourceAndDateAndHoldTheWholeRegistry) {
    for (const auto* r : {&ipv4_registry(), &ipv6_registry()}) {
        std::string header;  // the comment lines joined by single spaces
        for (const auto& c : r->comments) header += trimmed(c) + " ";
        EXPECT_NE(header.find("https://www.iana.org/assignments/iana-ipv"), std::string::npos)
            << header;
        EXPECT_NE(header.find("Last Updated 2025-10-09"), std::string::npos) << header;
        EXPECT_NE(header.find("Copied into tern on 2026-12-06"), std::string::npos) << header;
    }
    // Entry counts of the registries as of 2025-10-09.
    EXPECT_EQ(ipv4_registry().entries.size(), 25u);
    EXPECT_EQ(ipv6_registry().entries.size(), 25u);
    for (const auto* e : all_entries()) {
        EXPECT_FALSE(e->blocks.empty()) << e->block_text;
        EXPECT_FALSE(e->name.empty()) << e->block_text;
        EXPECT_TRUE(e->globally_reachable == "True" || e->globally_reachable == "False" ||
                    e->globally_reachable == "N/A" || e->globally_reachable.empty())
            << e->block_text << ": " << e->globally_reachable;
    }
    for (const auto& e : ipv4_registry().entries) {
        for (const auto& b : e.blocks) EXPECT_EQ(b.network.family, AddressFamily::ipv4);
    }
    for (const auto& e : ipv6_registry().entries) {
        for (const auto& b : e.blocks) EXPECT_EQ(b.network.family, AddressFamily::ipv6);
    }
}

// Globally Reachable False, N/A (Teredo, 6to4) or empty (terminated entries): refused.
TEST(PeerRegistry, EveryBlockNotGloballyReachableIsRefused) {
    int probed = 0;
    for (const auto* e : all_entries()) {
        if (e->globally_reachable == "True" || judged_as_ipv4().count(e->block_text) != 0) {
            continue;
        }
        for (const auto& block : e->blocks) {
            for (const auto& a : probes(block)) {
                SCOPED_TRACE(e->block_text + " (" + e->name + ") at " + a.ip_string());
                EXPECT_EQ(default_policy().check(a), PeerVerdict::special_purpose);
                if (a.family == AddressFamily::ipv4) {
                    EXPECT_EQ(default_policy().check(mapped(a)), PeerVerdict::special_purpose);
                }
                ++probed;
            }
        }
    }
    EXPECT_GE(probed, 3 * 30);  // guards the loop: 35 of the 50 entries qualify
}

TEST(PeerRegistry, GloballyReachableBlocksTernRefusesAnywayAreExactlyTheNamedOnes) {
    std::set<std::string> in_data;
    for (const auto* e : all_entries()) {
        if (e->globally_reachable != "True") continue;
        in_data.insert(e->block_text);
        for (const auto& block : e->blocks) {
            for (const auto& a : probes(block)) {
                SCOPED_TRACE(e->block_text + " (" + e->name + ") at " + a.ip_string());
                EXPECT_EQ(default_policy().check(a), PeerVerdict::special_purpose);
            }
        }
    }
    std::set<std::string> named;
    for (const auto& [block, why] : reachable_but_refused()) named.insert(block);
    // A new globally reachable entry needs a decision (refuse it and say why, or allow it).
    EXPECT_EQ(in_data, named);
}

TEST(PeerRegistry, TheIpv4MappedBlockIsJudgedAsTheIpv4AddressItMaps) {
    for (const auto* e : all_entries()) {
        if (e->blocks.empty() || e->blocks[0].network.family != AddressFamily::ipv4) continue;
        for (const auto& block : e->blocks) {
            for (const auto& a : probes(block)) {
                EXPECT_EQ(default_policy().check(mapped(a)), default_policy().check(a))
                    << a.ip_string();
            }
        }
    }
    EXPECT_EQ(default_policy().check(*TransportAddress::parse_ip("::ffff:0.0.0.0")),
              PeerVerdict::special_purpose);
    EXPECT_EQ(default_policy().check(*TransportAddress::parse_ip("::ffff:8.8.8.8")),
              PeerVerdict::allowed);
    EXPECT_EQ(default_policy().check(*TransportAddress::parse_ip("::ffff:255.255.255.255")),
              PeerVerdict::special_purpose);
    // The rest of ::/3 around it is IPv6 outside 2000::/3: refused right up to its edges.
    for (const char* text : {"::fffe:ffff:ffff", "::1:0:0:0", "::ffff:0:0:0", "::ffff:0:808:808",
                             "::1:ffff:808:808"}) {
        EXPECT_EQ(default_policy().check(*TransportAddress::parse_ip(text)),
                  PeerVerdict::special_purpose)
            << text;
    }
}

// An operator can still relay to any of them: relay.allow_peers opens exactly the block listed.
TEST(PeerRegistry, AllowPeersOpensEveryRegistryBlock) {
    for (const auto* e : all_entries()) {
        for (const auto& block : e->blocks) {
            // As the config loader builds it (::ffff:0:0/96 becomes 0.0.0.0/0).
            const std::vector<Cidr> allow = {Cidr::covering(block.network, block.prefix_length)};
            const PeerPolicy p(allow, {}, {});
            for (const auto& a : probes(block)) {
                EXPECT_EQ(p.check(a), PeerVerdict::allowed)
                    << e->block_text << " allow-listed, at " << a.ip_string();
            }
        }
    }
}

TEST(PeerRegistry, GloballyReachableAddressesStayAllowed) {
    for (const char* text :
         {"8.8.8.8",        "1.1.1.1",         "9.9.9.9",      "192.31.195.255",
          "192.31.197.0",   "192.52.192.255",  "192.52.194.0", "192.175.47.255",
          "192.175.49.0",   "2606:4700::1111", "2a00:1450::1", "2001:4860:4860::8888",
          "2000::1",        "2001:200::1",     "2003::1",      "2620:4f:7fff::1",
          "2620:4f:8001::", "3ffe:ffff::1",    "3fff:1000::",  "3fff:ffff::1"}) {
        const auto a = TransportAddress::parse_ip(text);
        ASSERT_TRUE(a) << text;
        EXPECT_EQ(default_policy().check(*a), PeerVerdict::allowed) << text;
        if (a->family == AddressFamily::ipv4) {
            EXPECT_EQ(default_policy().check(mapped(*a)), PeerVerdict::allowed) << text;
        }
    }
}

}  // namespace
}  // namespace tern::allocation
