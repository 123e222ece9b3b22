#include "tern/server/request/fleet_directory.hpp"

#include <charconv>

namespace tern::server {

namespace {

std::string joined(const std::vector<protocol::TransportAddress>& addresses) {
    std::string out;
    for (const auto& a : addresses) {
        if (!out.empty()) out += ',';
        out += a.to_string();
    }
    return out;
}

std::vector<protocol::TransportAddress> split_addresses(std::string_view text) {
    std::vector<protocol::TransportAddress> out;
    while (!text.empty()) {
        const auto comma = text.find(',');
        const auto item = text.substr(0, comma);
        if (auto a = protocol::TransportAddress::parse(item)) out.push_back(*a);
        if (comma == std::string_view::npos) break;
        text.remove_prefix(comma + 1);
    }
    return out;
}

template <class T>
T number(std::string_view text) {
    T value{};
    std::from_chars(text.data(), text.data() + text.size(), value);
    return value;
}

}  // namespace

FieldList node_fields(const FleetNode& node) {
    return {{"id", node.id},
            {"draining", node.draining ? "1" : "0"},
            {"allocations", std::to_string(node.allocations)},
            {"redirect_above", std::to_string(node.redirect_above)},
            {"advertise", joined(node.advertise)},
            {"advertise_tls", joined(node.advertise_tls)},
            {"tls_domain", node.tls_domain}};
}

std::optional<FleetNode> node_from_fields(const FieldList& fields) {
    FleetNode node;
    for (const auto& [name, value] : fields) {
        if (name == "id") {
            node.id = value;
        } else if (name == "draining") {
            node.draining = value == "1";
        } else if (name == "allocations") {
            node.allocations = number<std::uint64_t>(value);
        } else if (name == "redirect_above") {
            node.redirect_above = number<std::uint64_t>(value);
        } else if (name == "advertise") {
            node.advertise = split_addresses(value);
        } else if (name == "advertise_tls") {
            node.advertise_tls = split_addresses(value);
        } else if (name == "tls_domain") {
            node.tls_domain = value;
        } else if (name == "updated_ms") {
            node.updated_ms = number<std::int64_t>(value);
        }
    }
    if (node.id.empty()) return std::nullopt;
    return node;
}

std::optional<allocation::Alternate> FleetDirectory::pick(protocol::AddressFamily family,
                                                          protocol::Transport transport) const {
    const bool tls = transport == protocol::Transport::tls;
    const FleetNode* best = nullptr;
    const protocol::TransportAddress* best_address = nullptr;
    for (const auto& node : nodes_) {
        if (node.id == self_ || !node.accepting()) continue;
        // RFC 8489 §14.15: the alternate is of the family the request came from.
        const auto& addresses = tls ? node.advertise_tls : node.advertise;
        const protocol::TransportAddress* address = nullptr;
        for (const auto& a : addresses) {
            if (a.family == family) {
                address = &a;
                break;
            }
        }
        if (address == nullptr) continue;
        if (best == nullptr || node.allocations < best->allocations ||
            (node.allocations == best->allocations && node.id < best->id)) {
            best = &node;
            best_address = address;
        }
    }
    if (best == nullptr) return std::nullopt;
    return allocation::Alternate{*best_address, tls ? best->tls_domain : std::string()};
}

std::size_t FleetDirectory::accepting() const noexcept {
    std::size_t n = 0;
    for (const auto& node : nodes_) n += node.accepting() ? 1 : 0;
    return n;
}

}  // namespace tern::server
