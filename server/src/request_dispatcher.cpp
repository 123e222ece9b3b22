#include "tern/server/request_dispatcher.hpp"

#include <array>

#include "tern/protocol/integrity.hpp"
#include "tern/protocol/message.hpp"
#include "tern/server/binding_responder.hpp"
#include "tern/server/stun_responses.hpp"

namespace tern::server {

using protocol::MessageClass;
using protocol::MessageView;

namespace {
// UNKNOWN-ATTRIBUTES lists at most this many types; enough to tell the client what to drop
// while keeping the error small for an unauthenticated sender.
constexpr std::size_t max_unknown_listed = 8;
}  // namespace

RequestDispatcher::RequestDispatcher(std::shared_ptr<const config::Config> config)
    : config_(std::move(config)) {}

void RequestDispatcher::set_config(std::shared_ptr<const config::Config> config) {
    config_ = std::move(config);
}

std::span<const std::uint8_t> RequestDispatcher::handle(std::span<const std::uint8_t> packet,
                                                        const PacketContext& context,
                                                        std::span<std::uint8_t> out) noexcept {
    if (packet.empty() || !protocol::looks_like_stun(packet[0])) {
        // ChannelData needs an allocation to go anywhere; until then it is dropped like junk.
        ++counters_.dropped_other;
        return {};
    }
    MessageView msg;
    if (MessageView::parse(packet, msg) != protocol::ParseError::ok) {
        ++counters_.dropped_malformed;  // RFC 8489 §6.3: malformed messages are discarded
        return {};
    }
    // A FINGERPRINT that does not match means this is not a STUN message at all (§14.7).
    if (protocol::verify_fingerprint(msg) == protocol::IntegrityResult::mismatch) {
        ++counters_.dropped_malformed;
        return {};
    }
    switch (msg.message_class()) {
        case MessageClass::indication:
            ++counters_.indications;  // Binding indications are keepalives: no reply
            return {};
        case MessageClass::success_response:
        case MessageClass::error_response:
            ++counters_.dropped_other;
            return {};
        case MessageClass::request:
            break;
    }
    ++counters_.requests;
    const std::string_view software = config_->software;

    // RFC 8489 §6.3.1.1: unknown comprehension-required attributes get 420 listing them.
    std::array<std::uint16_t, max_unknown_listed> unknown{};
    std::size_t n_unknown = msg.unknown_comprehension_required(unknown);
    if (msg.method() == protocol::Method::binding) {
        std::array<std::uint16_t, max_unknown_listed> unsupported{};
        const std::size_t n_unsupported =
            BindingResponder::unsupported_attributes(msg, unsupported);
        for (std::size_t i = 0; i < n_unsupported && i < unsupported.size(); ++i) {
            if (n_unknown < unknown.size()) unknown[n_unknown] = unsupported[i];
            ++n_unknown;
        }
    }
    if (n_unknown > 0) {
        ++counters_.error_responses;
        const std::size_t listed = n_unknown < unknown.size() ? n_unknown : unknown.size();
        return write_error_response(msg, 420, "Unknown Attribute", software, out,
                                    std::span<const std::uint16_t>(unknown.data(), listed));
    }

    if (msg.method() == protocol::Method::binding) {
        ++counters_.success_responses;
        return BindingResponder::respond(msg, context, software, out);
    }
    // TURN methods arrive with the allocation layer; until then they are refused plainly.
    ++counters_.error_responses;
    return write_error_response(msg, 400, "Unsupported method", software, out);
}

}  // namespace tern::server
