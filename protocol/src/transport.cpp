#include "tern/protocol/transport.hpp"

#include <array>

namespace tern::protocol {

namespace {
constexpr std::array<Transport, 3> transports = {Transport::udp, Transport::tcp, Transport::tls};
}  // namespace

const char* to_string(Transport t) noexcept {
    switch (t) {
        case Transport::udp:
            return "udp";
        case Transport::tcp:
            return "tcp";
        case Transport::tls:
            return "tls";
    }
    return "unknown";
}

std::optional<Transport> parse_transport(std::string_view text) noexcept {
    for (const Transport t : transports) {
        if (text == to_string(t)) return t;
    }
    return std::nullopt;
}

}  // namespace tern::protocol
