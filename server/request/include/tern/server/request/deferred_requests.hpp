// Where the request path puts a request it cannot answer yet: an Allocate whose fleet lease is
// being asked for (allocation::FleetVerdict::wait). The holder copies the bytes and hands them
// to the dispatcher again once the fleet has answered, and sends that reply itself.
#pragma once

#include <cstdint>
#include <span>

#include "tern/server/request/packet_context.hpp"

namespace tern::server {

class DeferredRequests {
public:
    virtual ~DeferredRequests() = default;
    // `packet` is valid only during the call.
    virtual void hold(std::span<const std::uint8_t> packet, const PacketContext& context) = 0;
};

}  // namespace tern::server
