// Cuts STUN messages and ChannelData frames out of a TCP/TLS byte stream (RFC 8656 §12.5).
// peek_frame is the pure rule; StreamFramer adds a fixed buffer allocated once per connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace tern::protocol {

enum class FrameKind : std::uint8_t { stun, channel_data };
enum class FrameStatus : std::uint8_t {
    complete,   // a whole frame is at the front of the buffer
    need_more,  // the front frame is not complete yet
    invalid,    // not STUN or ChannelData (bad leading bits, bad cookie, bad length): close
    too_large,  // the frame's declared size exceeds the cap: close
};

struct Frame {
    FrameKind kind = FrameKind::stun;
    std::size_t size = 0;      // bytes of the message itself (ChannelData: header + payload)
    std::size_t consumed = 0;  // bytes to drop from the stream, including ChannelData padding
};

// Largest frame either kind can declare: STUN 20 + 65532 (ChannelData tops out at 4 + 65536).
inline constexpr std::size_t max_stream_frame_size = 20 + 65532;

FrameStatus peek_frame(std::span<const std::uint8_t> buffered, std::size_t max_frame_size,
                       Frame& out) noexcept;

class StreamFramer {
public:
    explicit StreamFramer(std::size_t max_frame_size = max_stream_frame_size);

    // Free space to read into; compacts consumed bytes to the front first. Never empty while
    // next() can still report need_more, because the buffer holds one whole max-size frame.
    std::span<std::uint8_t> write_area() noexcept;
    void commit(std::size_t n) noexcept;  // n bytes were written into write_area()

    // On complete, `frame` points at the message (valid until the next write_area()) and the
    // frame is consumed. Once invalid or too_large is returned the framer stays in that state.
    FrameStatus next(std::span<const std::uint8_t>& frame, FrameKind& kind) noexcept;

    std::size_t buffered() const noexcept { return end_ - begin_; }

private:
    std::vector<std::uint8_t> buffer_;
    std::size_t max_frame_size_;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
    FrameStatus failed_ = FrameStatus::complete;  // complete = not failed
};

}  // namespace tern::protocol
