// Answers STUN Binding requests (RFC 8489 §6.3): XOR-MAPPED-ADDRESS of the source, SOFTWARE and
// FINGERPRINT. Pure: the caller hands in the parsed request and a buffer for the reply.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "tern/protocol/message.hpp"
#include "tern/server/request/packet_context.hpp"

namespace tern::server {

class BindingResponder {
public:
    // `request` is a Binding request whose comprehension-required attributes were checked.
    static std::span<const std::uint8_t> respond(const protocol::MessageView& request,
                                                 const PacketContext& context,
                                                 std::string_view software,
                                                 std::span<std::uint8_t> out);

    // RFC 5780 attributes we parse but do not serve: no alternate address, and no reflection to
    // another port. A request carrying them gets 420 (RFC 5780 §7.2) instead of a silent
    // partial answer. Writes the offending types into `out` and returns how many.
    static std::size_t unsupported_attributes(const protocol::MessageView& request,
                                              std::span<std::uint16_t> out) noexcept;
};

}  // namespace tern::server
