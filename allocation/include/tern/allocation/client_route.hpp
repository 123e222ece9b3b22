// How the I/O layer reaches a client's control channel: a UDP listener of the worker (by index)
// or a TCP/TLS connection (by id). The state machine stores it with the allocation and hands it
// back with every delivery; it never looks inside.
#pragma once

#include <cstdint>

namespace tern::allocation {

class ClientRoute {
public:
    constexpr ClientRoute() noexcept = default;
    static constexpr ClientRoute listener(std::uint32_t index) noexcept {
        return ClientRoute(index);
    }
    static constexpr ClientRoute connection(std::uint64_t id) noexcept {
        return ClientRoute(connection_bit | id);
    }

    constexpr bool is_listener() const noexcept { return (value_ & connection_bit) == 0; }
    constexpr bool is_connection() const noexcept { return !is_listener(); }
    constexpr std::uint32_t listener_index() const noexcept {
        return static_cast<std::uint32_t>(value_);
    }
    constexpr std::uint64_t connection_id() const noexcept { return value_ & ~connection_bit; }

    friend constexpr bool operator==(ClientRoute, ClientRoute) noexcept = default;

private:
    // Eight bytes, as the allocation pays for it: the top bit says which kind.
    static constexpr std::uint64_t connection_bit = std::uint64_t{1} << 63;
    explicit constexpr ClientRoute(std::uint64_t value) noexcept : value_(value) {}
    std::uint64_t value_ = 0;
};

}  // namespace tern::allocation
