// Drives many benchmark clients through TURN allocation set-up at once: Allocate (401), Allocate,
// CreatePermission, ChannelBind, and in cycle mode Refresh 0 and round again. While recording it
// keeps two latencies per set-up: the authenticated Allocate (request first sent to its success
// response, retransmissions included) and the whole set-up (the first, unauthenticated Allocate
// sent to the ChannelBind's success response).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "link.hpp"
#include "turn_messages.hpp"

namespace ternbench {

using Clock = std::chrono::steady_clock;

class SetupEngine;

struct SetupPlan {
    std::string secret;
    TransportAddress peer;  // the permission and the channel point here, unless ...
    // ... this names link i's own peer; nothing yet means the link waits, allocated, until it
    // does (the pair topology: a partner's relayed address is known once it has allocated).
    std::function<std::optional<TransportAddress>(const SetupEngine&, std::size_t)> peer_of;
    bool cycle = false;                 // false: stop once every link holds a bound channel
    std::size_t max_in_progress = 256;  // links mid-set-up at once (hold mode)
    // Cycle mode: a fresh link (new source port) for client i after each Refresh 0. Servers
    // differ on reusing a 5-tuple right after its deletion (coturn answers 437 for a while).
    std::function<std::unique_ptr<Link>(std::size_t)> reopen;
};

class SetupEngine {
public:
    SetupEngine(std::vector<std::unique_ptr<Link>>& links, SetupPlan plan);
    ~SetupEngine();
    SetupEngine(const SetupEngine&) = delete;
    SetupEngine& operator=(const SetupEngine&) = delete;

    // Hold mode: returns once every link is set up; throws on a failure or after `deadline`.
    // Cycle mode: runs until `deadline`.
    void run(Clock::time_point deadline);

    // Latencies from now on only (the measured window): forgets what was kept before.
    void start_recording();
    // The q-quantile (0..1) in microseconds of what was kept since start_recording; 0 if none.
    double allocate_latency_us(double q);
    double setup_latency_us(double q);
    std::size_t latency_samples() const noexcept { return setup_ns_.size(); }

    std::uint64_t cycles_completed() const noexcept { return completed_; }
    std::uint64_t errors() const noexcept { return errors_; }
    TransportAddress relayed(std::size_t link) const;

private:
    struct State;
    void start_waiting(Clock::time_point now);
    void start(std::size_t i, Clock::time_point now);
    void send_step(std::size_t i, Clock::time_point now, bool fresh);
    void on_message(std::size_t i, std::span<const std::uint8_t> bytes, Clock::time_point now);
    void check_retransmits(Clock::time_point now);

    std::vector<std::unique_ptr<Link>>& links_;
    SetupPlan plan_;
    std::vector<State> states_;
    int epoll_ = -1;
    std::size_t next_to_start_ = 0;
    std::size_t in_progress_ = 0;
    std::size_t done_ = 0;
    std::size_t waiting_ = 0;  // links allocated and waiting for peer_of
    std::uint64_t completed_ = 0;
    std::uint64_t errors_ = 0;
    bool recording_ = false;
    std::vector<std::uint32_t> allocate_ns_;  // bounded: see max_latency_samples
    std::vector<std::uint32_t> setup_ns_;
};

}  // namespace ternbench
