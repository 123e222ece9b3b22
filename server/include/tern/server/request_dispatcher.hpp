// The request path in one place: classifies a packet (ChannelData, STUN, junk), validates it and
// hands it to the responder for its method. Pure: no sockets, clock or logging per packet.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "tern/config/config.hpp"
#include "tern/server/packet_context.hpp"

namespace tern::server {

// Per-worker tallies, summed when scraped; plain integers because one thread owns them.
struct DispatchCounters {
    std::uint64_t requests = 0;
    std::uint64_t success_responses = 0;
    std::uint64_t error_responses = 0;
    std::uint64_t indications = 0;
    std::uint64_t dropped_malformed = 0;
    std::uint64_t dropped_other = 0;  // responses, ChannelData without a channel, junk
};

class RequestDispatcher {
public:
    explicit RequestDispatcher(std::shared_ptr<const config::Config> config);

    // Swaps in a reloaded configuration; in-flight state is kept.
    void set_config(std::shared_ptr<const config::Config> config);
    const config::Config& config() const noexcept { return *config_; }

    // Returns the reply written into `out`, or an empty span when nothing is to be sent
    // (malformed input, indications, responses, unknown junk).
    std::span<const std::uint8_t> handle(std::span<const std::uint8_t> packet,
                                         const PacketContext& context,
                                         std::span<std::uint8_t> out) noexcept;

    const DispatchCounters& counters() const noexcept { return counters_; }

private:
    std::shared_ptr<const config::Config> config_;
    DispatchCounters counters_;
};

}  // namespace tern::server
