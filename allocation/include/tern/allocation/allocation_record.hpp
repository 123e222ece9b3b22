// What an allocation did, for the operator: the admin API's session list and the usage record
// written when it ends. The manager fills these in on its worker's thread; the sink and the
// list's caller turn steady times into wall-clock ones (the state machine reads no clock).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "tern/allocation/allocation_table.hpp"
#include "tern/allocation/time_point.hpp"

namespace tern::allocation {

// Why an allocation ended, as the usage record says it.
enum class EndReason : std::uint8_t {
    expired,             // its lifetime lapsed without a Refresh
    deleted,             // Refresh with LIFETIME 0 (RFC 8656 §8)
    closed,              // its TCP/TLS control connection closed (RFC 8656 §3.1)
    credential_expired,  // auth.expiry strict: the REST credential's expiry ended it
    killed,              // DELETE /v1/sessions/{id}
    revoked,             // POST /v1/users/{user}/revoke
    drained,             // still live when a drain's grace period ran out
    shutdown,            // ternd stopped (SIGINT, a second SIGTERM) without a drain
};
inline constexpr std::string_view end_reason_names[] = {
    "expired", "deleted", "closed",  "credential_expired",
    "killed",  "revoked", "drained", "shutdown",
};
constexpr std::string_view name_of(EndReason r) noexcept {
    return end_reason_names[static_cast<std::size_t>(r)];
}

// Allocation ids of a process: the worker that owns one in the bits from here up, a serial
// below, so an operator's kill goes straight to the owner.
inline constexpr unsigned allocation_id_worker_shift = 40;
constexpr std::uint64_t first_allocation_id(unsigned worker) noexcept {
    return (std::uint64_t{worker} << allocation_id_worker_shift) + 1;
}
constexpr unsigned worker_of_allocation(std::uint64_t id) noexcept {
    return static_cast<unsigned>(id >> allocation_id_worker_shift);
}

// One allocation as the operator sees it. `relays` are the advertised addresses (what
// XOR-RELAYED-ADDRESS told the client).
struct AllocationRecord {
    std::uint64_t id = 0;
    std::string username;
    FiveTuple tuple;
    RelayAddresses relays;
    TimePoint started{};
    TimePoint expires{};
    std::size_t permissions = 0;  // live now (the session list) or the most at once (a record)
    std::size_t channels = 0;
    AllocationUsage usage;
};

// Where ended allocations go (the I/O shell writes them out, reading the clock for the end
// time). Called on the owning worker's thread when an allocation is removed, never per packet.
class UsageSink {
public:
    virtual ~UsageSink() = default;
    virtual void allocation_ended(const AllocationRecord& record, EndReason reason) noexcept = 0;
};

}  // namespace tern::allocation
