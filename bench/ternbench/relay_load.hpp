// Relayed traffic through a TURN server (or the bare forwarder): each client sends to one UDP
// peer that echoes, so a round trip is two relayed packets. Closed loop or a fixed open-loop rate.
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
    std::size_t size = 100;    // application payload bytes per packet (at least 16)
    std::size_t window = 8;    // closed loop: packets in flight per client
    double rate = 0;           // open loop: packets per second sent by all clients; 0 = closed
    double warmup_s = 1;
    double duration_s = 5;
};

struct RelayResult {
    std::uint64_t sent = 0;
    std::uint64_t received = 0;
    std::uint64_t received_in_window = 0;
    double window_s = 0;
    double server_cpu_s = 0;
    std::uint64_t udp_drops = 0;
    std::uint64_t rss_kib = 0;
    double rtt_p50_us = 0;
    double rtt_p99_us = 0;
    std::uint64_t refills = 0;  // closed loop: times a client's window was re-primed after loss
};

// The peer socket (bound to `peer`) is opened here and echoes every datagram to its source.
RelayResult run_relay_load(std::vector<std::unique_ptr<Link>>& links, const TransportAddress& peer,
                           const RelayPlan& plan, const ServerProbe& probe);

}  // namespace ternbench
