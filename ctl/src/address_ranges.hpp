// coturn writes peer ranges as "first-last"; tern as CIDRs. Private to ctl/src.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "tern/protocol/cidr.hpp"

namespace tern::ctl {

// An inclusive range of addresses of one family; IPv4 values use the low 32 bits.
struct AddressRange {
    protocol::AddressFamily family = protocol::AddressFamily::ipv4;
    unsigned __int128 first = 0;
    unsigned __int128 last = 0;
};

// "192.0.2.1", "10.0.0.0-10.255.255.255", "2001:db8::-2001:db8::ff"; a CIDR is accepted too.
// nullopt for anything else, for a range whose ends differ in family, or whose first end lies
// after its last. ::ffff:a.b.c.d is read as the IPv4 address, as tern's peer rules do.
std::optional<AddressRange> parse_address_range(std::string_view text);

// The parts of `ranges` outside every range of `removed` (coturn lets an allowed peer through a
// denied range; tern refuses a peer in both lists, so the denied ranges are cut instead).
std::vector<AddressRange> subtract_ranges(const std::vector<AddressRange>& ranges,
                                          const std::vector<AddressRange>& removed);

// The fewest CIDRs that cover exactly `range`, lowest first.
std::vector<protocol::Cidr> cidrs_of(const AddressRange& range);

}  // namespace tern::ctl
