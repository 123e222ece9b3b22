// Calls through a TURN server (or the bare forwarder), for the capacity report (bench/capacity.py):
// each call is one allocation with channel 0x4000 bound to a peer of its own, and the generator
// plays both ends. Client i is 10.222.x.y:PORT (the i-th address of --client-base), its peer the
// i-th address of --peer-base. One UDP socket per side carries every call: it is bound to the
// wildcard address on that side's port and picks each datagram's source with IP_PKTINFO, so sends
// leave in sendmmsg batches across calls and receives arrive in recvmmsg batches (the addresses
// are local through an "AnyIP" route, `ip route add local BASE/16 dev lo`, that the caller sets
// up). During set-up each call has its own connected socket (Link) on its own address, closed
// once its channel is bound. The two sides may live in network namespaces of their own
// (--client-netns, --peer-netns): sockets are opened inside them with setns(2).
//
// Three modes:
//   flood  closed loop, as `ternbench throughput --topology peers`: each call keeps --window
//          packets of --size bytes in flight; the peer returns each one to the relayed address
//          it came from. relayed_pps = 2 x packets back at clients per second.
//   fixed  --calls N calls of media (below) for one measured window.
//   search the largest number of calls that passes (loss < --max-loss and p99 one-way delay <
//          --max-p99-ms): doubling from --min-calls, then bisection, within --budget seconds.
// Media per call, both ways: an audio stream (50 packets/s of 160 B) and a video stream (90/s of
// 960 B) from the client to its peer through ChannelData, and the same two streams from the peer
// back, paced independently (random phase per stream, 1 ms timer wheel). Each payload carries a
// send timestamp (CLOCK_REALTIME); the receiver takes the kernel's receive timestamp
// (SO_TIMESTAMPNS), so the one-way delay is the relay's plus both kernels', not the generator's
// own receive lag (reported apart, as app_p99_ms).
//
// CPU: /proc/stat (every CPU) and /proc/PID/stat of the server's processes (--server-pids), of
// the generator itself and of --generator-pids (the generator side's NAPI threads) are sampled at
// the edges of each measured window.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "turn_messages.hpp"

namespace ternbench {

enum class CallMode : std::uint8_t { flood, fixed, search };

struct CallPlan {
    TransportAddress server;
    std::string secret;
    bool forwarder = false;    // set-up through the forwarder's two datagrams, not TURN
    std::string client_netns;  // names under /run/netns; empty = this process's namespace
    std::string peer_netns;
    std::uint32_t client_base = 0;  // host order: call i's address is base + offset(i)
    std::uint32_t peer_base = 0;
    std::uint16_t client_port = 20000;
    std::uint16_t peer_port = 20000;
    CallMode mode = CallMode::fixed;
    std::size_t calls = 50;      // flood, fixed
    std::size_t window = 8;      // flood: own packets in flight per call
    std::size_t size = 100;      // flood: payload bytes (at least 24)
    std::size_t min_calls = 64;  // search
    std::size_t max_calls = 16384;
    double budget_s = 90;      // search: no step starts that would end later
    double resolution = 0.05;  // search: stop when (fail - pass) <= this x pass (or 8 calls)
    double warmup_s = 1;
    double duration_s = 3;
    double max_loss = 0.001;  // 0.1 %
    double max_p99_ms = 5;
    // Before each measured window, wait up to this long for the machine to be quiet (under
    // quiet_below cores busy over 250 ms: nothing else running while the calls are idle).
    double quiet_wait_s = 0;
    double quiet_below = 0.10;
    bool confirm_failures = true;       // search: a failing step is measured again before it counts
    std::vector<pid_t> server_pids;     // the server and its NAPI threads
    std::vector<pid_t> generator_pids;  // the generator side's NAPI threads
};

// Runs the plan; prints JSON objects (one line each: one per search step, then the result) to
// stdout and progress to stderr. Returns the process exit code.
int run_call_load(const CallPlan& plan);

// The i-th address of a /16 (host order): .0.1 ... .0.250, .1.1 ... (64,000 in all).
std::uint32_t call_address(std::uint32_t base, std::size_t i);

}  // namespace ternbench
