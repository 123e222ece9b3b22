// The client 5-tuple (client address, server address, transport) that names an allocation
// (RFC 8656 §2) and keys the retransmission cache, with a seedable hash.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tern/protocol/transport.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::allocation {

struct FiveTuple {
    protocol::TransportAddress client;  // as seen on the socket, not canonicalised
    protocol::TransportAddress server;  // the listening address the client reached
    protocol::Transport transport = protocol::Transport::udp;

    friend bool operator==(const FiveTuple&, const FiveTuple&) noexcept = default;
};

// Mixes every field under `seed`. Clients pick their ports and transaction IDs, so tables that
// hash them should use a per-process random seed to keep collision floods expensive.
std::uint64_t hash_value(const FiveTuple& tuple, std::uint64_t seed = 0) noexcept;

// Folds `bytes` into `h`, for keys built on top of the five-tuple hash.
std::uint64_t hash_mix(std::uint64_t h, const std::uint8_t* bytes, std::size_t size) noexcept;

struct FiveTupleHash {
    std::uint64_t seed = 0;
    std::size_t operator()(const FiveTuple& t) const noexcept {
        return static_cast<std::size_t>(hash_value(t, seed));
    }
};

}  // namespace tern::allocation
