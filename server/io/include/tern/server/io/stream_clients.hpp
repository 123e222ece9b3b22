// The worker's live TCP/TLS client connections, so relayed data can find its client by the
// route the allocation stored, and an allocation ends with its connection (RFC 8656 §3.1).
#pragma once

#include <cstdint>
#include <unordered_map>

#include "tern/allocation/allocation_manager.hpp"
#include "tern/server/io/stream_listener.hpp"
#include "tern/server/request/relay_settings.hpp"

namespace tern::server {

class StreamClients final : public ConnectionRegistry {
public:
    explicit StreamClients(allocation::AllocationManager& manager) : manager_(manager) {}

    allocation::ClientRoute attach(ClientConnection& connection) override {
        const auto route = allocation::ClientRoute::connection(next_id_++);
        connections_.emplace(route.connection_id(), &connection);
        return route;
    }
    void detach(allocation::ClientRoute route, const PacketContext& context) noexcept override {
        connections_.erase(route.connection_id());
        manager_.on_client_closed({context.source, context.local, context.transport});
    }
    ClientConnection* find(allocation::ClientRoute route) const noexcept {
        const auto it = connections_.find(route.connection_id());
        return it == connections_.end() ? nullptr : it->second;
    }

private:
    allocation::AllocationManager& manager_;
    std::unordered_map<std::uint64_t, ClientConnection*> connections_;
    std::uint64_t next_id_ = 1;
};

}  // namespace tern::server
