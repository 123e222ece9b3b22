// libFuzzer target: StreamFramer fed in fuzzer-chosen read sizes must cut exactly the frames
// that peek_frame finds on the whole stream, and end in the same state.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "tern/protocol/stream_framer.hpp"

namespace {

using namespace tern::protocol;

void require(bool condition) {
    if (!condition) __builtin_trap();
}

struct Cut {
    FrameKind kind;
    std::size_t offset;
    std::size_t size;
};

constexpr std::size_t max_cuts = 4096;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    // Byte 0 seeds the read sizes, byte 1 picks the frame cap, the rest is the stream.
    std::uint32_t read_seed = data[0] | 1u;
    constexpr std::array<std::size_t, 8> caps{2, 8, 20, 28, 64, 100, 1024, max_stream_frame_size};
    const std::size_t cap = caps[data[1] % caps.size()];
    const std::span<const std::uint8_t> stream(data + 2, size - 2);

    // Reference: peek_frame over the whole stream, frame after frame.
    static std::array<Cut, max_cuts> expected;
    std::size_t expected_count = 0;
    std::size_t offset = 0;
    FrameStatus expected_end = FrameStatus::need_more;
    while (expected_count < max_cuts) {
        Frame frame;
        expected_end = peek_frame(stream.subspan(offset), cap, frame);
        if (expected_end != FrameStatus::complete) break;
        require(frame.size <= frame.consumed && frame.consumed <= cap);
        require(frame.consumed > 0);
        expected[expected_count++] = {frame.kind, offset, frame.size};
        offset += frame.consumed;
    }
    if (expected_count == max_cuts) return 0;

    StreamFramer framer(cap);
    std::size_t received = 0;
    std::size_t sent = 0;
    FrameStatus status = FrameStatus::need_more;
    while (true) {
        std::span<const std::uint8_t> frame;
        FrameKind kind{};
        status = framer.next(frame, kind);
        if (status == FrameStatus::complete) {
            require(received < expected_count);
            const Cut& cut = expected[received++];
            require(kind == cut.kind && frame.size() == cut.size);
            require(std::memcmp(frame.data(), stream.data() + cut.offset, cut.size) == 0);
            continue;
        }
        if (status != FrameStatus::need_more || sent == stream.size()) break;
        const auto area = framer.write_area();
        require(!area.empty());
        read_seed = read_seed * 1103515245u + 12345u;
        const std::size_t want = 1 + (read_seed >> 16) % 97;
        const std::size_t n = std::min({want, area.size(), stream.size() - sent});
        std::memcpy(area.data(), stream.data() + sent, n);
        framer.commit(n);
        sent += n;
    }
    require(received == expected_count);
    require(status == expected_end);
    if (status == FrameStatus::need_more) require(framer.buffered() == stream.size() - offset);
    return 0;
}
