// ChannelData decoding and the TCP/TLS stream framer: split delivery, several frames per read,
// padding, oversized and invalid frames.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "tern/protocol/channel_data.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"
#include "tern/protocol/stream_framer.hpp"

namespace tern::protocol {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes channel_data(std::uint16_t channel, const Bytes& payload, bool pad) {
    Bytes out(pad ? channel_data_stream_size(payload.size())
                  : channel_data_header_size + payload.size());
    write_channel_data_header(std::span<std::uint8_t, channel_data_header_size>(out.data(), 4),
                              channel, static_cast<std::uint16_t>(payload.size()));
    std::copy(payload.begin(), payload.end(), out.begin() + channel_data_header_size);
    return out;
}

// Concatenation by size-then-copy (vector::insert trips a GCC 12 -Wstringop-overflow false alarm).
Bytes concat(std::initializer_list<Bytes> parts) {
    std::size_t total = 0;
    for (const auto& p : parts) total += p.size();
    Bytes out(total);
    auto at = out.begin();
    for (const auto& p : parts) at = std::copy(p.begin(), p.end(), at);
    return out;
}

Bytes stun_message(std::uint32_t lifetime) {
    std::array<std::uint8_t, 128> buffer{};
    MessageBuilder b(buffer, {Method::refresh, MessageClass::request},
                     TransactionId{{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}});
    b.add_lifetime(lifetime);
    b.add_text(attr::software, "abc");
    EXPECT_TRUE(b.ok());
    return {b.finish().begin(), b.finish().end()};
}

Bytes payload_of(std::size_t n) {
    Bytes p(n);
    for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(i * 7 + 1);
    return p;
}

TEST(ChannelData, ParsesHeaderAndPayload) {
    const auto bytes = channel_data(0x4001, {'h', 'e', 'l', 'l', 'o'}, false);
    ASSERT_EQ(bytes, (Bytes{0x40, 0x01, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o'}));
    ChannelDataView view;
    ASSERT_EQ(parse_channel_data(bytes, view), ParseError::ok);
    EXPECT_EQ(view.channel, 0x4001);
    EXPECT_EQ(Bytes(view.payload.begin(), view.payload.end()), (Bytes{'h', 'e', 'l', 'l', 'o'}));
}

// RFC 8656 §12.4: channel number then length, both in network byte order.
TEST(ChannelData, HeaderIsChannelThenLengthBigEndian) {
    std::array<std::uint8_t, channel_data_header_size> header{};
    write_channel_data_header(header, 0x7FFE, 0x1234);
    EXPECT_EQ(Bytes(header.begin(), header.end()), (Bytes{0x7F, 0xFE, 0x12, 0x34}));
}

TEST(ChannelData, TrailingPaddingAllowed) {
    const auto bytes = channel_data(0x4FFF, {1, 2, 3, 4, 5}, true);
    ASSERT_EQ(bytes.size(), 12u);
    ChannelDataView view;
    ASSERT_EQ(parse_channel_data(bytes, view), ParseError::ok);
    EXPECT_EQ(view.channel, 0x4FFF);
    EXPECT_EQ(view.payload.size(), 5u);
}

TEST(ChannelData, EmptyPayload) {
    const Bytes bytes{0x40, 0x00, 0x00, 0x00};
    ChannelDataView view;
    ASSERT_EQ(parse_channel_data(bytes, view), ParseError::ok);
    EXPECT_EQ(view.channel, 0x4000);
    EXPECT_TRUE(view.payload.empty());
}

TEST(ChannelData, Errors) {
    ChannelDataView view;
    EXPECT_EQ(parse_channel_data(Bytes{0x40, 0x00, 0x00}, view), ParseError::truncated_header);
    EXPECT_EQ(parse_channel_data(Bytes{}, view), ParseError::truncated_header);
    for (const std::uint16_t channel : {0x0000, 0x3FFF, 0x8000, 0xFFFF}) {
        const auto bytes = channel_data(channel, {1}, false);
        EXPECT_EQ(parse_channel_data(bytes, view), ParseError::bad_channel_number) << channel;
    }
    // RFC 5766's range still parses: whether it may be bound is the server's policy.
    for (const std::uint16_t channel : {0x5000, 0x7FFF}) {
        const auto bytes = channel_data(channel, {1}, false);
        EXPECT_EQ(parse_channel_data(bytes, view), ParseError::ok) << channel;
        EXPECT_EQ(view.channel, channel);
    }
    auto truncated = channel_data(0x4000, {1, 2, 3, 4, 5}, false);
    truncated.pop_back();
    EXPECT_EQ(parse_channel_data(truncated, view), ParseError::truncated_channel_data);
    EXPECT_EQ(parse_channel_data(Bytes{0x40, 0x00, 0xFF, 0xFF, 0}, view),
              ParseError::truncated_channel_data);
}

TEST(ChannelData, Demultiplexing) {
    EXPECT_TRUE(looks_like_stun(0x00));
    EXPECT_TRUE(looks_like_stun(0x3F));
    EXPECT_FALSE(looks_like_stun(0x40));
    EXPECT_TRUE(looks_like_channel_data(0x40));
    EXPECT_TRUE(looks_like_channel_data(0x7F));
    EXPECT_FALSE(looks_like_channel_data(0x80));
    EXPECT_FALSE(looks_like_channel_data(0x3F));
    EXPECT_EQ(channel_data_stream_size(0), 4u);
    EXPECT_EQ(channel_data_stream_size(1), 8u);
    EXPECT_EQ(channel_data_stream_size(4), 8u);
    EXPECT_EQ(channel_data_stream_size(65535), 4u + 65536u);
}

TEST(PeekFrame, StunFrame) {
    const auto stun = stun_message(600);
    Frame frame;
    ASSERT_EQ(peek_frame(stun, max_stream_frame_size, frame), FrameStatus::complete);
    EXPECT_EQ(frame.kind, FrameKind::stun);
    EXPECT_EQ(frame.size, stun.size());
    EXPECT_EQ(frame.consumed, stun.size());
    for (std::size_t n = 0; n < stun.size(); ++n) {
        EXPECT_EQ(peek_frame(std::span(stun).first(n), max_stream_frame_size, frame),
                  FrameStatus::need_more)
            << n;
    }
}

TEST(PeekFrame, ChannelDataFrameIncludesPadding) {
    const auto cd = channel_data(0x4002, payload_of(5), true);
    Frame frame;
    ASSERT_EQ(peek_frame(cd, max_stream_frame_size, frame), FrameStatus::complete);
    EXPECT_EQ(frame.kind, FrameKind::channel_data);
    EXPECT_EQ(frame.size, 9u);
    EXPECT_EQ(frame.consumed, 12u);
    // The payload is complete at 9 bytes, but the frame waits for its padding.
    EXPECT_EQ(peek_frame(std::span(cd).first(9), max_stream_frame_size, frame),
              FrameStatus::need_more);
}

TEST(PeekFrame, Invalid) {
    Frame frame;
    for (const std::uint8_t first : {0x80, 0xC0, 0xFF}) {
        EXPECT_EQ(peek_frame(Bytes{first}, max_stream_frame_size, frame), FrameStatus::invalid);
    }
    // STUN with a length that is not a multiple of 4, seen from the first 4 bytes.
    EXPECT_EQ(peek_frame(Bytes{0x00, 0x01, 0x00, 0x02}, max_stream_frame_size, frame),
              FrameStatus::invalid);
    // STUN with a bad cookie, seen as soon as 8 bytes are there.
    const Bytes bad_cookie{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x43};
    EXPECT_EQ(peek_frame(std::span(bad_cookie).first(7), max_stream_frame_size, frame),
              FrameStatus::need_more);
    EXPECT_EQ(peek_frame(bad_cookie, max_stream_frame_size, frame), FrameStatus::invalid);
    // Leading bits 01 are always ChannelData: RFC 5766 numbers (0x5000-0x7FFF) frame too.
    EXPECT_EQ(peek_frame(Bytes{0x50, 0x00, 0x00, 0x00}, max_stream_frame_size, frame),
              FrameStatus::complete);
}

TEST(PeekFrame, TooLarge) {
    Frame frame;
    // STUN declaring 20 + 1000 bytes against a 1000-byte cap; decided from 4 bytes.
    EXPECT_EQ(peek_frame(Bytes{0x00, 0x01, 0x03, 0xE8}, 1000, frame), FrameStatus::too_large);
    EXPECT_EQ(peek_frame(Bytes{0x00, 0x01, 0x03, 0xD4}, 1000, frame), FrameStatus::need_more);
    // ChannelData: 4 + 997 padded to 1004 does not fit 1003, does fit 1004.
    EXPECT_EQ(peek_frame(Bytes{0x40, 0x00, 0x03, 0xE5}, 1003, frame), FrameStatus::too_large);
    EXPECT_EQ(peek_frame(Bytes{0x40, 0x00, 0x03, 0xE5}, 1004, frame), FrameStatus::need_more);
    // The largest frames of both kinds fit the default cap.
    EXPECT_EQ(peek_frame(Bytes{0x00, 0x01, 0xFF, 0xFC, 0x21, 0x12, 0xA4, 0x42},
                         max_stream_frame_size, frame),
              FrameStatus::need_more);
    EXPECT_EQ(peek_frame(Bytes{0x40, 0x00, 0xFF, 0xFF}, max_stream_frame_size, frame),
              FrameStatus::need_more);
}

struct Received {
    FrameKind kind;
    Bytes bytes;
    friend bool operator==(const Received&, const Received&) = default;
};

// Feeds `stream` in reads of `chunk` bytes and collects every complete frame.
std::vector<Received> feed(StreamFramer& framer, const Bytes& stream, std::size_t chunk,
                           FrameStatus& last) {
    std::vector<Received> frames;
    std::size_t sent = 0;
    last = FrameStatus::need_more;
    while (true) {
        std::span<const std::uint8_t> frame;
        FrameKind kind{};
        last = framer.next(frame, kind);
        if (last == FrameStatus::complete) {
            frames.push_back({kind, Bytes(frame.begin(), frame.end())});
            continue;
        }
        if (last != FrameStatus::need_more || sent == stream.size()) break;
        auto area = framer.write_area();
        if (area.empty()) {
            ADD_FAILURE() << "no room to read while the framer needs more";
            break;
        }
        const std::size_t n = std::min({chunk, area.size(), stream.size() - sent});
        std::copy_n(stream.begin() + static_cast<long>(sent), n, area.begin());
        framer.commit(n);
        sent += n;
    }
    return frames;
}

TEST(StreamFramer, SplitDeliveryByteByByteAndAllAtOnce) {
    const auto stun = stun_message(600);
    const auto cd_padded = channel_data(0x4001, payload_of(5), true);
    const auto cd_aligned = channel_data(0x4002, payload_of(8), true);
    const auto cd_empty = channel_data(0x4003, {}, true);
    const Bytes stream = concat({stun, cd_padded, stun, cd_aligned, cd_empty, stun});
    const std::vector<Received> expected{
        {FrameKind::stun, stun},
        {FrameKind::channel_data, channel_data(0x4001, payload_of(5), false)},
        {FrameKind::stun, stun},
        {FrameKind::channel_data, cd_aligned},
        {FrameKind::channel_data, cd_empty},
        {FrameKind::stun, stun},
    };
    for (const std::size_t chunk :
         {std::size_t{1}, std::size_t{3}, std::size_t{7}, std::size_t{64}, stream.size()}) {
        StreamFramer framer;
        FrameStatus last{};
        EXPECT_EQ(feed(framer, stream, chunk, last), expected) << "chunk " << chunk;
        EXPECT_EQ(last, FrameStatus::need_more);
        EXPECT_EQ(framer.buffered(), 0u) << "padding consumed";
    }
}

TEST(StreamFramer, PartialFrameStaysBuffered) {
    const auto stun = stun_message(1);
    const Bytes stream = concat({stun, Bytes(stun.begin(), stun.begin() + 10)});
    StreamFramer framer;
    FrameStatus last{};
    const auto frames = feed(framer, stream, stream.size(), last);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(last, FrameStatus::need_more);
    EXPECT_EQ(framer.buffered(), 10u);
}

TEST(StreamFramer, SmallBufferCompactsBetweenFrames) {
    // A cap just big enough for one frame forces compaction for every frame after the first.
    const auto stun = stun_message(7);
    Bytes stream;
    for (int i = 0; i < 20; ++i) stream = concat({stream, stun});
    StreamFramer framer(stun.size());
    FrameStatus last{};
    const auto frames = feed(framer, stream, 5, last);
    EXPECT_EQ(frames.size(), 20u);
    EXPECT_EQ(last, FrameStatus::need_more);
    for (const auto& f : frames) EXPECT_EQ(f.bytes, stun);
}

TEST(StreamFramer, TooLargeIsSticky) {
    const auto stun = stun_message(7);
    StreamFramer framer(stun.size() - 4);
    FrameStatus last{};
    EXPECT_TRUE(feed(framer, stun, 1, last).empty());
    EXPECT_EQ(last, FrameStatus::too_large);
    std::span<const std::uint8_t> frame;
    FrameKind kind{};
    EXPECT_EQ(framer.next(frame, kind), FrameStatus::too_large);
    EXPECT_TRUE(framer.write_area().empty());
}

TEST(StreamFramer, InvalidAfterGoodFramesIsSticky) {
    const auto cd = channel_data(0x4001, payload_of(3), true);
    const Bytes stream = concat({cd, Bytes{0x80}, cd});  // 0x80: neither STUN nor ChannelData
    StreamFramer framer;
    FrameStatus last{};
    const auto frames = feed(framer, stream, 2, last);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].kind, FrameKind::channel_data);
    EXPECT_EQ(last, FrameStatus::invalid);
    std::span<const std::uint8_t> frame;
    FrameKind kind{};
    EXPECT_EQ(framer.next(frame, kind), FrameStatus::invalid);
}

TEST(StreamFramer, StunAfterChannelDataParses) {
    const auto cd = channel_data(0x4ABC, payload_of(13), true);
    const auto stun = stun_message(321);
    const Bytes stream = concat({cd, stun});
    StreamFramer framer;
    FrameStatus last{};
    const auto frames = feed(framer, stream, 6, last);
    ASSERT_EQ(frames.size(), 2u);
    ChannelDataView view;
    ASSERT_EQ(parse_channel_data(frames[0].bytes, view), ParseError::ok);
    EXPECT_EQ(view.channel, 0x4ABC);
    EXPECT_EQ(Bytes(view.payload.begin(), view.payload.end()), payload_of(13));
    MessageView m;
    ASSERT_EQ(frames[1].kind, FrameKind::stun);
    ASSERT_EQ(MessageView::parse(frames[1].bytes, m), ParseError::ok);
    EXPECT_EQ(m.lifetime(), 321u);
}

TEST(StreamFramer, MaximumChannelDataFrame) {
    const auto cd = channel_data(0x4000, payload_of(65535), true);
    StreamFramer framer;
    FrameStatus last{};
    const auto frames = feed(framer, cd, 4096, last);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].bytes.size(), 4u + 65535u);
    EXPECT_EQ(framer.buffered(), 0u);
}

TEST(StreamFramer, TinyCapStillMakesProgress) {
    StreamFramer framer(2);
    FrameStatus last{};
    EXPECT_TRUE(feed(framer, stun_message(1), 1, last).empty());
    EXPECT_EQ(last, FrameStatus::too_large);
}

}  // namespace
}  // namespace tern::protocol
