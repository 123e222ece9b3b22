// What both forwarder loops share: the listening socket, the client table (source address to
// client, one relay socket each) and the set-up messages. Nothing here runs per packet except
// find(), the 5-tuple look-up a TURN server does too.
#pragma once

#include <netinet/in.h>

#include <csignal>
#include <cstdint>
#include <functional>
#include <unordered_map>
#include <vector>

#include "forwarder.hpp"

namespace ternbench::forwarder_detail {

inline constexpr std::uint16_t channel = 0x4000;  // every client binds this one (turn_messages)

struct Client {
    int relay_fd = -1;
    sockaddr_in address{};  // the client, as the listener sees it
    sockaddr_in peer{};     // set by fwd_bind; port 0 until then
};

extern volatile std::sig_atomic_t stopping;

class Core {
public:
    // Opens and binds the listener; throws std::runtime_error naming the failure.
    explicit Core(const ForwarderOptions& options);
    ~Core();
    Core(const Core&) = delete;
    Core& operator=(const Core&) = delete;

    int listener() const noexcept { return listener_; }
    const ForwarderOptions& options() const noexcept { return options_; }
    std::vector<Client>& clients() noexcept { return clients_; }

    // The client a datagram from `source` belongs to, or -1.
    std::int64_t find(const sockaddr_in& source) const noexcept {
        const auto it = by_source_.find(key_of(source));
        return it == by_source_.end() ? -1 : static_cast<std::int64_t>(it->second);
    }

    // A set-up message from `source`; answers it with a plain sendto. A new relay socket is
    // handed to `on_new_relay(client index, fd)` so the loop can register it.
    void handle_setup(const std::uint8_t* bytes, std::size_t size, const sockaddr_in& source,
                      const std::function<void(std::size_t, int)>& on_new_relay);

private:
    static std::uint64_t key_of(const sockaddr_in& s) noexcept {
        return (std::uint64_t{s.sin_addr.s_addr} << 16) | s.sin_port;
    }
    int open_socket(const sockaddr_in& at, int receive_buffer) const;

    ForwarderOptions options_;
    sockaddr_in listen_at_{};
    int listener_ = -1;
    std::unordered_map<std::uint64_t, std::size_t> by_source_;
    std::vector<Client> clients_;
};

// Writes a ChannelData header (channel, length) into the 4 bytes at `at`.
inline void write_header(std::uint8_t* at, std::uint32_t length) noexcept {
    at[0] = static_cast<std::uint8_t>(channel >> 8);
    at[1] = static_cast<std::uint8_t>(channel);
    at[2] = static_cast<std::uint8_t>(length >> 8);
    at[3] = static_cast<std::uint8_t>(length);
}

// The payload length of a ChannelData datagram of `size` bytes (0: not ChannelData). Over UDP
// the header's length counts and any padding after it is ignored, as RFC 8656 says.
inline std::size_t channel_data_length(const std::uint8_t* bytes, std::size_t size) noexcept {
    if (size < 4 || (bytes[0] & 0xC0) != 0x40) return 0;
    const std::size_t length = (std::size_t{bytes[2]} << 8) | bytes[3];
    return length <= size - 4 ? length : 0;
}

inline bool same_address(const sockaddr_in& a, const sockaddr_in& b) noexcept {
    return a.sin_port == b.sin_port && a.sin_addr.s_addr == b.sin_addr.s_addr;
}

int run_epoll(Core& core);
#ifdef TERNBENCH_HAVE_URING
int run_uring(Core& core);
#endif

}  // namespace ternbench::forwarder_detail
