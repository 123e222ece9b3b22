// The reference limit: a bare UDP forwarder doing the kernel work of a TURN relay's ChannelData
// path and nothing else. One listening socket for clients; one unconnected "relay socket" per
// client, bound to its own port, toward that client's one peer. ChannelData from a client loses
// its 4-byte header and leaves from the client's relay socket; a datagram arriving on a relay
// socket from its peer gets the header written in front of it (in place) and leaves from the
// listener to the client. Receives are recvmmsg batches per socket; sends are queued per socket
// and flushed once per loop turn (sendmmsg, UDP GSO for runs of equal size to one destination).
//
// Instead of Allocate and ChannelBind the generator sends two set-up datagrams (first byte below
// 0x40, so never ChannelData), which makes the forwarder topology-blind like a TURN server: in
// the pair topology client A's peer is simply B's relay address.
#pragma once

#include <cstdint>

#include "turn_messages.hpp"

namespace ternbench {

enum class ForwarderLoop : std::uint8_t {
    epoll,  // edge-triggered epoll, each socket registered once, ready list drained in one pass
    uring,  // io_uring: multishot recvmsg into a provided buffer ring, sends as SQEs
};

struct ForwarderOptions {
    TransportAddress listen;
    ForwarderLoop loop = ForwarderLoop::epoll;
    int busy_poll_us = 0;  // SO_BUSY_POLL + SO_PREFER_BUSY_POLL on every socket; 0 = off
    // Never sleep: poll for readiness or completions without waiting. Busy polling done in user
    // space, since SO_BUSY_POLL needs a NAPI context that loopback sockets do not have.
    bool spin = false;
    bool gso = true;  // UDP GSO on sends (ternd segments toward clients too)
};

// Set-up messages, 10 bytes: type, 3 zero bytes, an IPv4 address (4 bytes) and a port (2),
// both in network order. `fwd_allocate` (address ignored) creates the sender's relay socket and
// is answered with the same type carrying that socket's address; `fwd_bind` sets the peer and is
// answered with itself. Both are idempotent, so the generator simply retries.
inline constexpr std::uint8_t fwd_allocate = 0x01;
inline constexpr std::uint8_t fwd_bind = 0x02;
inline constexpr std::size_t fwd_message_size = 10;

// Runs until SIGTERM or SIGINT; returns the process exit code.
int run_forwarder(const ForwarderOptions& options);

// Whether this build has the io_uring loop (liburing was found).
bool forwarder_has_uring() noexcept;

}  // namespace ternbench
