// Batched UDP sends for the forwarder and the load generator: datagrams are queued (as one or
// more iovecs each, pointing at the caller's memory) and leave with one sendmmsg; a run of
// equal-size datagrams to one destination becomes one UDP GSO message (UDP_SEGMENT), which is
// what ternd's listener does toward clients, so neither side of a comparison pays per-datagram
// send costs the other does not.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace ternbench {

// Linux caps a GSO send at 64 segments and one IP datagram's worth of payload.
inline constexpr std::size_t gso_max_segments = 64;
inline constexpr std::size_t gso_max_bytes = 65507;

// Sets SO_BUSY_POLL (µs) and SO_PREFER_BUSY_POLL on a socket; false if the kernel refused.
bool set_busy_poll(int fd, int microseconds) noexcept;

class SendQueue {
public:
    // `datagrams`: how many may be queued before flush() must run; `parts`: iovecs per datagram.
    explicit SendQueue(std::size_t datagrams, std::size_t parts = 1);

    std::size_t size() const noexcept { return queued_; }
    bool empty() const noexcept { return queued_ == 0; }
    bool full() const noexcept { return queued_ == entries_.size(); }
    void set_gso(bool on) noexcept { gso_ = on; }
    bool gso() const noexcept { return gso_; }

    // `to` may be null for a connected socket; it must stay valid until flush().
    void add(std::span<const iovec> parts, const sockaddr_in* to) noexcept;
    void add(const void* bytes, std::size_t size, const sockaddr_in* to) noexcept {
        const iovec one{const_cast<void*>(bytes), size};
        add({&one, 1}, to);
    }

    // Groups the queue into messages (GSO runs where allowed) and returns them; the headers
    // point into this queue, so they stay valid until the next add() or clear().
    std::span<mmsghdr> build() noexcept;
    // build() and sendmmsg until done or the socket is full; returns the datagrams sent (the rest
    // are dropped, as a full UDP socket drops) and empties the queue.
    std::size_t flush(int fd) noexcept;
    void clear() noexcept {
        queued_ = 0;
        iov_used_ = 0;
    }

    // After build(): how many datagrams message m carries.
    std::size_t datagrams_in(std::size_t m) const noexcept { return message_datagrams_[m]; }

private:
    struct Entry {
        std::size_t first_iov;
        std::size_t iov_count;
        std::size_t bytes;
        const sockaddr_in* to;
    };
    static bool same_destination(const sockaddr_in* a, const sockaddr_in* b) noexcept;

    std::vector<Entry> entries_;
    std::vector<iovec> iov_;
    std::vector<mmsghdr> headers_;
    std::vector<std::size_t> message_datagrams_;
    // One UDP_SEGMENT control message per GSO message.
    std::vector<std::uint64_t> control_;
    std::size_t queued_ = 0;
    std::size_t iov_used_ = 0;
    bool gso_ = true;
};

}  // namespace ternbench
