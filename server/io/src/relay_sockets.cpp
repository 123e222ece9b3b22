#include "tern/server/io/relay_sockets.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>

#include "tern/server/io/client_to_peer.hpp"
#include "tern/server/io/peer_to_client.hpp"
#include "tern/server/io/udp_readiness.hpp"

namespace tern::server {

namespace {
constexpr auto failure_log_interval = std::chrono::seconds(10);
}

RelaySockets::RelaySockets(UdpReadiness& readiness, ClientToPeer& to_peers,
                           PeerToClient& to_clients)
    : readiness_(readiness), to_peers_(to_peers), to_clients_(to_clients) {}

RelaySockets::~RelaySockets() = default;

allocation::OpenRelayResult RelaySockets::open_relay(const protocol::TransportAddress& address,
                                                     bool dont_fragment) {
    RelaySocket socket;
    std::error_code ec = socket.open(address, dont_fragment);
    allocation::RelayId id = 0;
    if (!ec) {
        if (!free_.empty()) {
            id = free_.back();
        } else {
            id = static_cast<allocation::RelayId>(sockets_.size());
        }
        ec = readiness_.add(socket.native_handle(), {UdpToken::Kind::relay, id});
    }
    if (ec) {
        if (ec.value() == EADDRINUSE) return {allocation::OpenRelayStatus::address_in_use, 0};
        // The Allocate gets 508. Out of file descriptors, every Allocate fails the same way, so
        // one line per interval says it without letting clients fill the log.
        const auto now = std::chrono::steady_clock::now();
        if (failures_logged_at_ == std::chrono::steady_clock::time_point{} ||
            now - failures_logged_at_ >= failure_log_interval) {
            spdlog::warn(
                "relay: cannot open a socket on {}: {}{} (answering 508; {} more since "
                "the last such line)",
                address.to_string(), ec.message(),
                ec.value() == EMFILE || ec.value() == ENFILE ? ", the open-files limit is reached"
                                                             : "",
                failures_unlogged_);
            failures_logged_at_ = now;
            failures_unlogged_ = 0;
        } else {
            ++failures_unlogged_;
        }
        return {allocation::OpenRelayStatus::failed, 0};
    }
    if (!free_.empty()) {
        free_.pop_back();
        sockets_[id] = std::move(socket);
    } else {
        sockets_.push_back(std::move(socket));
    }
    return {allocation::OpenRelayStatus::opened, id};
}

void RelaySockets::close_relay(allocation::RelayId id) noexcept {
    if (id >= sockets_.size() || !sockets_[id].is_open()) return;
    // Datagrams queued for this socket leave first: once closed, its descriptor number may
    // belong to the next socket opened.
    to_peers_.flush();
    sockets_[id].close();  // also leaves the readiness set
    free_.push_back(id);
}

bool RelaySockets::send_to_peer(allocation::RelayId id, const protocol::TransportAddress& peer,
                                std::span<const std::uint8_t> payload) noexcept {
    return id < sockets_.size() && sockets_[id].is_open() &&
           to_peers_.send_to_peer(sockets_[id].native_handle(), peer, payload);
}

bool RelaySockets::send_to_client(const allocation::FiveTuple& tuple,
                                  allocation::ClientRoute client,
                                  std::span<const std::uint8_t> message) noexcept {
    return to_clients_.deliver(tuple, client, message);
}

}  // namespace tern::server
