// When an expired TURN REST credential ("<unix-expiry>:<user>") stops working: a pure decision
// on the request's method, the credential's expiry and the current time.
#pragma once

#include <cstdint>
#include <optional>

#include "tern/protocol/message_type.hpp"

namespace tern::auth {

enum class ExpiryPolicy : std::uint8_t {
    allocate,  // only a new Allocate is refused after expiry; allocations live on (default)
    request,   // every authenticated request is refused after expiry
    strict,    // as request, and the caller tears the allocation down at expiry
};

// A credential expiring at `expiry` is expired from that second on.
constexpr bool is_expired(std::int64_t expiry, std::int64_t now_unix) noexcept {
    return now_unix >= expiry;
}

// The default ceiling on how far ahead a REST credential's expiry may lie (auth's own default;
// ternd passes auth.max_credential_lifetime, whose default is the same): three days.
inline constexpr std::int64_t default_max_credential_lifetime = 259200;

// Whether `expiry` lies more than `max_lifetime` seconds after now_unix. Exactly at the ceiling
// is still within it. Computed without overflow for every pair of int64 values.
constexpr bool exceeds_lifetime(std::int64_t expiry, std::int64_t now_unix,
                                std::int64_t max_lifetime) noexcept {
    if (expiry <= now_unix) return false;
    // expiry > now_unix, so the difference is below 2^64 and exact in unsigned arithmetic.
    const auto ahead = static_cast<std::uint64_t>(expiry) - static_cast<std::uint64_t>(now_unix);
    return max_lifetime < 0 || ahead > static_cast<std::uint64_t>(max_lifetime);
}

// Whether a request with `method` authenticated by a credential expiring at `expiry` (nullopt:
// a static user, never expires) is refused at now_unix.
bool refuses(ExpiryPolicy policy, protocol::Method method, std::optional<std::int64_t> expiry,
             std::int64_t now_unix) noexcept;

// When the caller must tear down an allocation created with that credential: the expiry under
// strict, never (nullopt) otherwise or for static users.
std::optional<std::int64_t> teardown_at(ExpiryPolicy policy,
                                        std::optional<std::int64_t> expiry) noexcept;

}  // namespace tern::auth
