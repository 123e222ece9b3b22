// The TURN requests a benchmark client sends, built with tern's own MessageBuilder, and the
// TURN REST credential it signs them with (username "<expiry>:<name>", password from the secret).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "tern/auth/credential_store.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"

namespace ternbench {

using tern::protocol::TransportAddress;

struct Credential {
    std::string username;
    std::string password;
    tern::auth::LongTermKey key;  // derived once the realm is known
};

Credential rest_credential(const std::string& secret, const std::string& name);

tern::protocol::TransactionId random_transaction_id();

// What a request needs beyond its method; nonce empty = unauthenticated.
struct Signing {
    const Credential* credential = nullptr;
    std::string_view realm;
    std::string_view nonce;
};

// Every builder writes into `out` and returns the bytes written (empty on overflow).
std::span<const std::uint8_t> allocate_request(std::span<std::uint8_t> out,
                                               const tern::protocol::TransactionId& id,
                                               const Signing& signing);
std::span<const std::uint8_t> create_permission_request(std::span<std::uint8_t> out,
                                                        const tern::protocol::TransactionId& id,
                                                        const TransportAddress& peer,
                                                        const Signing& signing);
std::span<const std::uint8_t> channel_bind_request(std::span<std::uint8_t> out,
                                                   const tern::protocol::TransactionId& id,
                                                   std::uint16_t channel,
                                                   const TransportAddress& peer,
                                                   const Signing& signing);
std::span<const std::uint8_t> refresh_request(std::span<std::uint8_t> out,
                                              const tern::protocol::TransactionId& id,
                                              std::uint32_t lifetime, const Signing& signing);
// A Send indication whose DATA value is `payload_size` bytes; data_offset receives where the
// value starts, so a sender can rewrite the payload in place.
std::span<const std::uint8_t> send_indication(std::span<std::uint8_t> out,
                                              const TransportAddress& peer,
                                              std::size_t payload_size, std::size_t& data_offset);

// The payload of a Data indication (what the peer sent), or nothing.
std::optional<std::span<const std::uint8_t>> data_indication_payload(
    std::span<const std::uint8_t> message);

inline constexpr std::uint16_t bench_channel = 0x4000;

}  // namespace ternbench
