// Private to the manager's sources: the one answer to a TURN request (Reply), and the request
// readings more than one method file needs.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "tern/allocation/allocation_manager.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"
#include "tern/protocol/message_type.hpp"

namespace tern::allocation {

// UNKNOWN-ATTRIBUTES in a 420 lists at most this many types.
inline constexpr std::size_t unknown_listed_max = 8;

// Builds the one response to a request: success or error, always signed with the requester's key
// (RFC 8489 §9.2.4: responses to authenticated requests carry MESSAGE-INTEGRITY, errors too).
struct AllocationManager::Reply {
    const protocol::MessageView& request;
    const Requester& requester;
    const std::string& software;
    std::span<std::uint8_t> out;

    protocol::MessageBuilder success() const noexcept {
        return protocol::MessageBuilder(
            out, protocol::MessageType{request.method(), protocol::MessageClass::success_response},
            request.transaction_id());
    }
    std::span<const std::uint8_t> finish(protocol::MessageBuilder& b) const noexcept {
        if (!software.empty()) b.add_text(protocol::attr::software, software);
        if (requester.sha256) {
            b.add_message_integrity_sha256(requester.key);
        } else {
            b.add_message_integrity(requester.key);
        }
        b.add_fingerprint();
        return b.finish();
    }
    protocol::MessageBuilder error_builder() const noexcept {
        return protocol::MessageBuilder(
            out, protocol::MessageType{request.method(), protocol::MessageClass::error_response},
            request.transaction_id());
    }
    std::span<const std::uint8_t> error(std::uint16_t code,
                                        std::string_view reason) const noexcept {
        protocol::MessageBuilder b = error_builder();
        b.add_error_code(code, reason);
        return finish(b);
    }
    std::span<const std::uint8_t> bad_request() const noexcept { return error(400, "Bad Request"); }
    // RFC 8489 §6.3.1.1: 420 listing the unknown comprehension-required attributes (at most
    // unknown_listed_max of them, to keep the answer small).
    std::span<const std::uint8_t> unknown_attributes() const noexcept {
        std::array<std::uint16_t, unknown_listed_max> unknown{};
        const std::size_t n = request.unknown_comprehension_required(unknown);
        protocol::MessageBuilder b = error_builder();
        b.add_error_code(420, "Unknown Attribute");
        b.add_unknown_attributes(
            std::span<const std::uint16_t>(unknown.data(), std::min(n, unknown.size())));
        return finish(b);
    }
    std::span<const std::uint8_t> forbidden() const noexcept { return error(403, "Forbidden"); }
    // RFC 8489 §10: a 300 only answers an authenticated request, and is signed like any other.
    std::span<const std::uint8_t> try_alternate(const Alternate& to) const noexcept {
        protocol::MessageBuilder b = error_builder();
        b.add_error_code(300, "Try Alternate");
        b.add_address(protocol::attr::alternate_server, to.address);
        if (!to.domain.empty()) b.add_text(protocol::attr::alternate_domain, to.domain);
        return finish(b);
    }
    std::span<const std::uint8_t> mismatch() const noexcept {
        return error(437, "Allocation Mismatch");
    }
    std::span<const std::uint8_t> family_unsupported() const noexcept {
        return error(440, "Address Family not Supported");
    }
    std::span<const std::uint8_t> wrong_credentials() const noexcept {
        return error(441, "Wrong Credentials");
    }
    std::span<const std::uint8_t> peer_family_mismatch() const noexcept {
        return error(443, "Peer Address Family Mismatch");
    }
    std::span<const std::uint8_t> insufficient_capacity() const noexcept {
        return error(508, "Insufficient Capacity");
    }
};

// REQUESTED-ADDRESS-FAMILY's raw byte (RFC 8656 §18.6); nullopt for a family TURN lacks.
inline std::optional<protocol::AddressFamily> family_of(std::uint8_t raw) noexcept {
    if (raw == 0x01) return protocol::AddressFamily::ipv4;
    if (raw == 0x02) return protocol::AddressFamily::ipv6;
    return std::nullopt;
}

// LIFETIME as asked for; the table applies the default and the bounds.
inline std::optional<Duration> requested_lifetime(const protocol::MessageView& request) noexcept {
    if (const auto l = request.lifetime()) return std::chrono::seconds(*l);
    return std::nullopt;
}

// A lifetime as LIFETIME carries it: whole seconds, none left as 0.
inline std::uint32_t seconds_of(Duration d) noexcept {
    const auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
    return s <= 0 ? 0 : static_cast<std::uint32_t>(s);
}

// The created_by_kind / removed_by_kind cell of an allocation.
// Keeps the most permissions or channels an allocation held at once, for its usage record.
inline void note_most(std::uint32_t& most, std::size_t now_held) noexcept {
    if (now_held > most) most = static_cast<std::uint32_t>(now_held);
}

inline Tally& kind_tally(RelayCounters::ByKind& by_kind, const Allocation& a) noexcept {
    const auto transport = static_cast<std::size_t>(a.tuple.transport);
    const auto family =
        a.relays.size() > 0 && a.relays[0].family == protocol::AddressFamily::ipv6 ? 1 : 0;
    return by_kind[transport][family];
}

}  // namespace tern::allocation
