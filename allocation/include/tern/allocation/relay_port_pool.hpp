// The relay ports of one relay address (RFC 8656 §7.2): random choice over [first, last], even
// ports with the next one held under a RESERVATION-TOKEN (EVEN-PORT R bit), and token claims.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "tern/allocation/random_source.hpp"
#include "tern/allocation/time_point.hpp"

namespace tern::allocation {

struct EvenPortGrant {
    std::uint16_t port = 0;
    std::optional<std::uint64_t> reservation_token;  // set when the next port was reserved
};

class RelayPortPool {
public:
    // RFC 8656 §7.2 asks to hold a reserved port for about 30 seconds.
    static constexpr Duration default_reservation_lifetime = std::chrono::seconds(30);
    // How long a port the OS refused to bind stays out of rotation before it is tried again.
    static constexpr Duration default_unusable_cooldown = std::chrono::seconds(60);

    // An inverted range (first > last) yields an empty pool. `random` must outlive the pool.
    RelayPortPool(std::uint16_t first, std::uint16_t last, RandomSource& random,
                  Duration reservation_lifetime = default_reservation_lifetime,
                  Duration unusable_cooldown = default_unusable_cooldown);

    // Any free port, chosen at random; nullopt = exhausted (508 Insufficient Capacity).
    std::optional<std::uint16_t> acquire() noexcept;

    // EVEN-PORT: an even free port; with `reserve_next` also port+1, held under a fresh random
    // token until now + reservation lifetime. nullopt = no suitable port (508), or the random
    // source produced no usable token (all zero / repeats), which only a broken source does.
    std::optional<EvenPortGrant> acquire_even(bool reserve_next, TimePoint now);

    // Allocate with RESERVATION-TOKEN: the reserved port, now in use; nullopt for an unknown,
    // already claimed or lapsed token (the caller answers 508, RFC 8656 §7.2).
    std::optional<std::uint16_t> claim(std::uint64_t token, TimePoint now) noexcept;

    // Returns an in-use port to the pool. Ports outside the range, free, reserved or unusable
    // ports are left alone, so a double release cannot free someone else's reservation.
    void release(std::uint16_t port) noexcept;

    // The OS refused to bind this acquired port (someone else holds it): keep it out of
    // rotation until now + cooldown instead of handing it out again at once.
    void mark_unusable(std::uint16_t port, TimePoint now);

    // Frees lapsed reservations and finished cool-downs; returns how many ports came back.
    std::size_t expire(TimePoint now) noexcept;

    std::size_t capacity() const noexcept { return size_; }
    std::size_t available() const noexcept { return free_; }
    bool in_use(std::uint16_t port) const noexcept;
    std::size_t reservations() const noexcept;

private:
    enum class HoldKind : std::uint8_t { reservation, unusable };
    struct Hold {
        std::uint16_t port;
        HoldKind kind;
        std::uint64_t token;  // reservations only
        TimePoint until;
    };

    bool busy(std::size_t index) const noexcept { return (busy_[index / 64] >> (index % 64)) & 1u; }
    void set_busy(std::size_t index) noexcept;
    void clear_busy(std::size_t index) noexcept;
    bool held(std::uint16_t port) const noexcept;
    std::optional<std::uint64_t> fresh_token() noexcept;
    bool even_candidate(std::size_t index, bool reserve_next) const noexcept;

    std::uint16_t first_;
    std::size_t size_;
    std::size_t free_;
    RandomSource& random_;
    Duration reservation_lifetime_;
    Duration unusable_cooldown_;
    std::vector<std::uint64_t> busy_;  // one bit per port: in use, reserved or unusable
    // Reservations and cool-downs. Few at a time (each needs an explicit client request or a
    // bind failure), so a flat vector searched linearly beats a map; bounded by the range size.
    std::vector<Hold> holds_;
};

}  // namespace tern::allocation
