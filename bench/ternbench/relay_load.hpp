// Relayed traffic through a TURN server (or the bare forwarder), closed loop or at a fixed
// open-loop rate, in one of three topologies:
//   single: every client's peer is one UDP echo socket (the old `make bench` cases);
//   peers:  client i's peer is an echo socket of its own on its own address (127.20.x.y);
//   pairs:  clients 2k and 2k+1 are each other's peer: A's packet goes A → server → A's relay →
//           B's relay → server → B, and B sends it back the same way. No echo sockets.
//
// What is counted: every packet a client receives was relayed twice by the server (a client to
// peer leg on one allocation and a peer to client leg on the same or, in pairs, the partner's
// allocation), so relayed packets/s = 2 × packets received by clients per second, in every
// topology. A round trip is 2 relayed packets with an echo peer and 4 in pairs.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "link.hpp"
#include "server_probe.hpp"
#include "turn_messages.hpp"

namespace ternbench {

struct RelayPlan {
    bool indications = false;  // Send/Data indications instead of ChannelData
    bool pairs = false;        // clients echo each other's packets (the pair topology)
    std::size_t size = 100;    // application payload bytes per packet (at least 16)
    std::size_t window = 8;    // closed loop: own packets in flight per client
    double rate = 0;           // open loop: own packets per second, all clients; 0 = closed loop
    double warmup_s = 1;
    double duration_s = 5;
};

struct RelayResult {
    std::uint64_t sent = 0;                // datagrams or frames sent by clients (echoes too)
    std::uint64_t received = 0;            // packets clients received
    std::uint64_t received_in_window = 0;  // ... within the measured window
    double window_s = 0;
    double server_cpu_s = 0;
    std::uint64_t udp_drops = 0;
    std::uint64_t rss_kib = 0;
    double rtt_p50_us = 0;  // own packets back at their sender (pairs: through both allocations)
    double rtt_p99_us = 0;
    std::uint64_t refills = 0;  // closed loop: times a client's window was re-primed after loss
};

// targets[i]: where link i's packets go (its peer, or its partner's relayed address); the echo
// sockets (bound to `echo_peers`, none in pairs) are opened here and return every datagram.
RelayResult run_relay_load(std::vector<std::unique_ptr<Link>>& links,
                           const std::vector<TransportAddress>& targets,
                           const std::vector<TransportAddress>& echo_peers, const RelayPlan& plan,
                           const ServerProbe& probe);

}  // namespace ternbench
