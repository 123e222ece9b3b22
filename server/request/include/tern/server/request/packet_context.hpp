// Where a packet came from and over what: the facts the request path needs besides the bytes.
// Filled in by the listeners (which read the clock once per batch); read by the pure dispatcher.
#pragma once

#include <cstdint>

#include "tern/allocation/relay_egress.hpp"
#include "tern/allocation/time_point.hpp"
#include "tern/config/config.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::server {

struct PacketContext {
    protocol::TransportAddress source;  // the client's address as the server sees it
    protocol::TransportAddress local;   // the address the client reached
    protocol::Transport transport = protocol::Transport::udp;
    allocation::ClientRoute client;  // how the worker reaches this listener or connection
    allocation::TimePoint now{};     // steady time, for lifetimes
    std::int64_t unix_now = 0;       // wall-clock seconds, for nonces and REST expiry
};

}  // namespace tern::server
