// Framing of STUN and ChannelData on TCP/TLS (RFC 8656 §12.5): decide each frame's size from
// its first bytes, and reject a broken stream as early as the bytes allow.
#include "tern/protocol/stream_framer.hpp"

#include <algorithm>
#include <cstring>

#include "byte_order.hpp"
#include "tern/protocol/channel_data.hpp"
#include "tern/protocol/message.hpp"

namespace tern::protocol {

using namespace wire;

namespace {

// Bytes after which the cookie can be checked.
constexpr std::size_t stun_cookie_end = 8;

}  // namespace

FrameStatus peek_frame(std::span<const std::uint8_t> buffered, std::size_t max_frame_size,
                       Frame& out) noexcept {
    if (buffered.empty()) return FrameStatus::need_more;
    const std::uint8_t first = buffered[0];
    const bool stun = looks_like_stun(first);
    if (!stun && !looks_like_channel_data(first)) return FrameStatus::invalid;
    // Each check below needs only the bytes before it, so the verdict does not depend on how
    // the stream was split into reads.
    if (buffered.size() < 4) return FrameStatus::need_more;
    const std::size_t length = load16(buffered.data() + 2);
    Frame frame;
    if (stun) {
        if (length % 4 != 0) return FrameStatus::invalid;
        frame.kind = FrameKind::stun;
        frame.size = header_size + length;
        frame.consumed = frame.size;
    } else {
        // 0x5000-0x7FFF start with 01 but are not channels (RFC 8656 §12): not ChannelData.
        if (!is_channel_data_number(load16(buffered.data()))) return FrameStatus::invalid;
        frame.kind = FrameKind::channel_data;
        frame.size = channel_data_header_size + length;
        frame.consumed = channel_data_stream_size(length);  // padding is on the stream too
    }
    if (frame.consumed > max_frame_size) return FrameStatus::too_large;
    if (stun) {
        if (buffered.size() < stun_cookie_end) return FrameStatus::need_more;
        const std::uint32_t cookie =
            (std::uint32_t{load16(buffered.data() + 4)} << 16) | load16(buffered.data() + 6);
        if (cookie != magic_cookie) return FrameStatus::invalid;
    }
    if (buffered.size() < frame.consumed) return FrameStatus::need_more;
    out = frame;
    return FrameStatus::complete;
}

StreamFramer::StreamFramer(std::size_t max_frame_size)
    // Below 4 bytes no frame size can even be read; keep room for a header so next() progresses.
    : buffer_(std::max(max_frame_size, channel_data_header_size)),
      max_frame_size_(max_frame_size) {}

std::span<std::uint8_t> StreamFramer::write_area() noexcept {
    if (failed_ != FrameStatus::complete) return {};
    if (begin_ > 0) {
        const std::size_t pending = end_ - begin_;
        if (pending > 0) std::memmove(buffer_.data(), buffer_.data() + begin_, pending);
        begin_ = 0;
        end_ = pending;
    }
    return {buffer_.data() + end_, buffer_.size() - end_};
}

void StreamFramer::commit(std::size_t n) noexcept {
    end_ += std::min(n, buffer_.size() - end_);
}

FrameStatus StreamFramer::next(std::span<const std::uint8_t>& frame, FrameKind& kind) noexcept {
    if (failed_ != FrameStatus::complete) return failed_;
    Frame found;
    const auto status =
        peek_frame({buffer_.data() + begin_, end_ - begin_}, max_frame_size_, found);
    if (status == FrameStatus::complete) {
        frame = {buffer_.data() + begin_, found.size};
        kind = found.kind;
        begin_ += found.consumed;
    } else if (status != FrameStatus::need_more) {
        failed_ = status;
    }
    return status;
}

}  // namespace tern::protocol
