// The state import-coturn gathers from a turnserver.conf (coturn_import.cpp) and writes out
// as tern.yaml (coturn_yaml.cpp). Private to ctl/src.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "address_ranges.hpp"
#include "tern/config/parse.hpp"
#include "tern/ctl/coturn_import.hpp"

namespace tern::ctl {

using protocol::AddressFamily;
using protocol::TransportAddress;

struct Option {
    int line = 0;
    std::string name;
    std::string value;
    bool has_value = false;
};

// A YAML double-quoted scalar: safe for any byte of a secret or a path.
std::string quoted(std::string_view text);
// An IP as a listener URL's host: "192.0.2.1", "[2001:db8::1]".
std::string host_of(const TransportAddress& a);

// A number and the line it came from, for notes written after the whole file is read.
struct Numbered {
    int line = 0;
    std::uint64_t value = 0;
};

struct PeerRange {
    int line = 0;
    std::string text;
    AddressRange range;
};

class Importer {
public:
    // Used once: takes every option of `text`, then writes the YAML.
    CoturnImport run(std::string_view text);

private:
    void note(const Option& o, std::string reason) { note(o.line, o.name, std::move(reason)); }
    void note(int line, std::string option, std::string reason) {
        notes_.push_back({line, std::move(option), std::move(reason)});
    }

    // true when `o` is a boolean that is on; a malformed value is noted and ignored.
    bool on(const Option& o);
    // The value as a number up to `max`, or nullopt after a note.
    std::optional<std::uint64_t> number(const Option& o, std::uint64_t max);
    std::optional<Numbered> numbered(const Option& o, std::uint64_t max) {
        const auto n = number(o, max);
        return n ? std::optional<Numbered>({o.line, *n}) : std::nullopt;
    }
    // The value as an IP address (::ffff:a.b.c.d as a.b.c.d), or nullopt after a note.
    std::optional<TransportAddress> ip(const Option& o, std::string_view text);

    void take(const Option& o);
    void take_user(const Option& o);
    void take_external_ip(const Option& o);
    void take_peer_range(const Option& o, std::vector<PeerRange>& out);
    std::string yaml();
    void write_listen(std::string& y);
    void write_auth(std::string& y);
    void write_relay(std::string& y);
    void write_limits(std::string& y);
    void write_peers(std::string& y);

    std::vector<ImportNote> notes_;
    std::uint16_t port_ = 3478, tls_port_ = 5349;
    std::vector<TransportAddress> listening_ips_, relay_ips_;
    std::vector<std::pair<Option, TransportAddress>> external_alone_;      // without /private
    std::vector<std::pair<TransportAddress, TransportAddress>> external_;  // private -> public
    std::optional<Numbered> min_port_, max_port_;
    std::optional<std::string> realm_;
    std::optional<Option> use_auth_secret_, prometheus_, verbose_;
    std::vector<std::pair<Option, std::string>> secrets_;
    std::vector<std::string> user_lines_;  // YAML lines under auth.users
    std::set<std::string> user_names_;
    bool keyed_users_ = false;
    std::optional<Option> cert_, pkey_;
    std::vector<PeerRange> denied_, allowed_;
    bool no_udp_ = false, no_tcp_ = false, no_tls_ = false;
    std::optional<Option> no_auth_;
    bool allow_loopback_ = false, no_software_ = false;
    std::optional<Numbered> user_quota_, total_quota_, max_bps_, lifetime_, stale_nonce_;
    std::optional<std::uint16_t> prometheus_port_;
    std::optional<TransportAddress> prometheus_address_;
    std::optional<std::string> default_family_;
};

}  // namespace tern::ctl
