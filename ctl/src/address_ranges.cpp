// Address ranges as 128-bit integers: parse, cut, and cover with CIDRs.
#include "address_ranges.hpp"

#include <string>

namespace tern::ctl {

namespace {

using u128 = unsigned __int128;
using protocol::AddressFamily;
using protocol::TransportAddress;

int bits_of(AddressFamily family) {
    return family == AddressFamily::ipv4 ? 32 : 128;
}

// The low `k` bits set (all 128 for k = 128, where a shift would overflow).
u128 low_bits(int k) {
    return k >= 128 ? ~u128{0} : (u128{1} << k) - 1;
}

std::optional<TransportAddress> ip_of(std::string_view text) {
    auto address = TransportAddress::parse_ip(text);
    if (!address) return std::nullopt;
    return address->unmapped();
}

u128 value_of(const TransportAddress& address) {
    u128 value = 0;
    for (std::size_t i = 0; i < address.address_size(); ++i)
        value = (value << 8) | address.bytes[i];
    return value;
}

TransportAddress address_of(AddressFamily family, u128 value) {
    TransportAddress address;
    address.family = family;
    const std::size_t size = address.address_size();
    for (std::size_t i = 0; i < size; ++i) {
        address.bytes[size - 1 - i] = static_cast<std::uint8_t>(value & 0xFF);
        value >>= 8;
    }
    return address;
}

}  // namespace

std::optional<AddressRange> parse_address_range(std::string_view text) {
    if (const auto slash = text.find('/'); slash != std::string_view::npos) {
        const auto network = ip_of(text.substr(0, slash));
        const std::string length(text.substr(slash + 1));
        if (!network || length.empty() || length.size() > 3 ||
            length.find_first_not_of("0123456789") != std::string::npos) {
            return std::nullopt;
        }
        const int prefix = std::stoi(length);
        const int bits = bits_of(network->family);
        if (prefix > bits) return std::nullopt;
        const u128 host = low_bits(bits - prefix);
        const u128 first = value_of(*network) & ~host;
        return AddressRange{network->family, first, first | host};
    }
    const auto dash = text.find('-');
    const auto first = ip_of(text.substr(0, dash));
    const auto last = dash == std::string_view::npos ? first : ip_of(text.substr(dash + 1));
    if (!first || !last || first->family != last->family) return std::nullopt;
    AddressRange range{first->family, value_of(*first), value_of(*last)};
    if (range.first > range.last) return std::nullopt;
    return range;
}

std::vector<AddressRange> subtract_ranges(const std::vector<AddressRange>& ranges,
                                          const std::vector<AddressRange>& removed) {
    std::vector<AddressRange> out = ranges;
    for (const auto& cut : removed) {
        std::vector<AddressRange> next;
        for (const auto& r : out) {
            if (r.family != cut.family || cut.last < r.first || cut.first > r.last) {
                next.push_back(r);
                continue;
            }
            if (cut.first > r.first) next.push_back({r.family, r.first, cut.first - 1});
            if (cut.last < r.last) next.push_back({r.family, cut.last + 1, r.last});
        }
        out = std::move(next);
    }
    return out;
}

std::vector<protocol::Cidr> cidrs_of(const AddressRange& range) {
    std::vector<protocol::Cidr> out;
    const int bits = bits_of(range.family);
    u128 first = range.first;
    while (true) {
        // The largest aligned block that starts at `first` and ends inside the range.
        int host_bits = 0;
        while (host_bits < bits && (first & low_bits(host_bits + 1)) == 0 &&
               range.last - first >= low_bits(host_bits + 1)) {
            ++host_bits;
        }
        out.push_back(protocol::Cidr::covering(address_of(range.family, first),
                                               static_cast<std::size_t>(bits - host_bits)));
        const u128 block_last = first + low_bits(host_bits);
        if (block_last >= range.last) break;  // compared before adding 1: last may be all ones
        first = block_last + 1;
    }
    return out;
}

}  // namespace tern::ctl
