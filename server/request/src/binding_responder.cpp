#include "tern/server/request/binding_responder.hpp"

#include "tern/protocol/message_builder.hpp"

namespace tern::server {

std::span<const std::uint8_t> BindingResponder::respond(const protocol::MessageView& request,
                                                        const PacketContext& context,
                                                        std::string_view software,
                                                        std::span<std::uint8_t> out) {
    protocol::MessageBuilder b(
        out, {protocol::Method::binding, protocol::MessageClass::success_response},
        request.transaction_id());
    b.add_xor_address(protocol::attr::xor_mapped_address, context.source);
    if (!software.empty()) b.add_text(protocol::attr::software, software);
    b.add_fingerprint();
    return b.finish();
}

std::size_t BindingResponder::unsupported_attributes(const protocol::MessageView& request,
                                                     std::span<std::uint16_t> out) noexcept {
    std::size_t n = 0;
    auto note = [&](std::uint16_t type) {
        if (n < out.size()) out[n] = type;
        ++n;
    };
    // A CHANGE-REQUEST with no flags set asks for nothing we cannot do.
    if (const auto flags = request.change_request(); flags && (*flags & 0x6) != 0) {
        note(protocol::attr::change_request);
    }
    if (request.has(protocol::attr::response_port)) note(protocol::attr::response_port);
    if (request.has(protocol::attr::padding)) note(protocol::attr::padding);
    return n;
}

}  // namespace tern::server
