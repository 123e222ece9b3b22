#include "tern/server/request/stun_responses.hpp"

#include "tern/protocol/message_builder.hpp"

namespace tern::server {

std::span<const std::uint8_t> write_error_response(const protocol::MessageView& request,
                                                   std::uint16_t code, std::string_view reason,
                                                   std::string_view software,
                                                   std::span<std::uint8_t> out,
                                                   std::span<const std::uint16_t> unknown) {
    protocol::MessageBuilder b(out, {request.method(), protocol::MessageClass::error_response},
                               request.transaction_id());
    b.add_error_code(code, reason);
    if (!unknown.empty()) b.add_unknown_attributes(unknown);
    if (!software.empty()) b.add_text(protocol::attr::software, software);
    b.add_fingerprint();
    return b.finish();
}

}  // namespace tern::server
