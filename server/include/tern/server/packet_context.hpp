// Where a packet came from and over what: the facts the request path needs besides the bytes.
// Filled in by the listeners; read by the pure dispatcher.
#pragma once

#include "tern/config/config.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::server {

struct PacketContext {
    protocol::TransportAddress source;  // the client's address as the server sees it
    protocol::TransportAddress local;   // the listener's bound address
    config::Transport transport = config::Transport::udp;
};

}  // namespace tern::server
