// Reads the TLS ClientHello at the start of a connection (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2)
// far enough to route it: the server_name (RFC 6066 §3) and the ALPN protocols (RFC 7301).
// Nothing is decrypted or answered; the bytes stay in the caller's buffer for whichever TLS
// stack ends up owning the connection.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace tern::edge {

enum class HelloStatus : std::uint8_t {
    need_more,  // a prefix of a ClientHello so far: call again with more bytes
    complete,   // the whole ClientHello arrived and parsed; the accessors below are filled
    not_tls,    // byte 0 is not a handshake record (0x16) or byte 1 not TLS's major version 3
    malformed,  // TLS, but not a well-formed ClientHello (lengths, record types, extensions)
    too_large,  // over max_client_hello_bytes, or its records over max_hello_prefix_bytes
};

// The ClientHello handshake message, its 4-byte header included. A hello that large is already
// unusual (post-quantum key shares bring browsers to about 2 KiB).
inline constexpr std::size_t max_client_hello_bytes = 16384;
// Bytes of records (5-byte headers included) the hello may span. parse() never answers
// need_more for a prefix this long, so a caller buffering that much always gets a verdict.
inline constexpr std::size_t max_hello_prefix_bytes = 2 * max_client_hello_bytes;
// ALPN names kept for alpn_protocol(); offers() still looks at the whole list.
inline constexpr std::size_t max_alpn_protocols = 16;
// A DNS name in presentation form, without the trailing dot (RFC 1035 §2.3.4).
inline constexpr std::size_t max_server_name_bytes = 253;

// One reader per connection, fed the growing prefix of what the connection has received. It
// copies the handshake message out of its records into a member array (the hello may be split
// over several records), so it is about 17 KiB: keep it while sniffing, drop it after routing.
class ClientHelloReader {
public:
    // `prefix` is every byte the connection has received so far, from the first; each call
    // passes the previous call's bytes plus any new ones. Only the new bytes are looked at, so
    // feeding a hello one byte per call stays linear. Once the status is not need_more it is
    // final and returned again without looking at `prefix`. A prefix shorter than the bytes
    // already consumed is a different stream: the reader starts over.
    HelloStatus parse(std::span<const std::uint8_t> prefix) noexcept;
    void reset() noexcept;

    HelloStatus status() const noexcept { return status_; }
    // Bytes of the prefix taken by the records that carry the hello (complete only).
    std::size_t length() const noexcept { return status_ == HelloStatus::complete ? pos_ : 0; }

    // The SNI host_name, lowercased; empty when absent or invalid. A name is valid when it is
    // 1..253 bytes of [a-z0-9.-] (ASCII letters of either case), with no empty label and no
    // label over 63 bytes. An invalid name matches nothing, yet the client did send a name.
    bool has_server_name() const noexcept { return has_server_name_; }
    bool server_name_valid() const noexcept { return server_name_size_ > 0; }
    std::string_view server_name() const noexcept {
        return {server_name_.data(), server_name_size_};
    }

    // ALPN (RFC 7301): whether the extension came, whether it names `protocol` (byte-exact,
    // anywhere in the list), and its first max_alpn_protocols names in the client's order.
    bool offers_alpn() const noexcept { return alpn_list_size_ > 0; }
    bool offers(std::string_view protocol) const noexcept;
    std::size_t alpn_count() const noexcept { return alpn_count_; }
    std::string_view alpn_protocol(std::size_t index) const noexcept;

private:
    HelloStatus finish(HelloStatus status) noexcept {
        status_ = status;
        return status;
    }
    HelloStatus parse_body() noexcept;
    bool read_server_name(std::span<const std::uint8_t> data) noexcept;
    bool read_alpn(std::span<const std::uint8_t> data, std::size_t offset) noexcept;

    struct AlpnEntry {
        std::uint16_t offset = 0;  // into message_
        std::uint8_t size = 0;
    };

    HelloStatus status_ = HelloStatus::need_more;
    std::size_t pos_ = 0;               // bytes of the prefix consumed (records read so far)
    std::size_t record_left_ = 0;       // body bytes of the current record not yet copied
    std::size_t message_size_ = 0;      // bytes of the handshake message copied to message_
    std::size_t message_expected_ = 0;  // its total size once its header is in; 0 before

    bool has_server_name_ = false;
    std::size_t server_name_size_ = 0;
    std::size_t alpn_list_offset_ = 0;  // the ProtocolNameList's names, inside message_
    std::size_t alpn_list_size_ = 0;
    std::size_t alpn_count_ = 0;
    std::array<AlpnEntry, max_alpn_protocols> alpn_{};
    std::array<char, max_server_name_bytes> server_name_{};
    std::array<std::uint8_t, max_client_hello_bytes> message_{};
};

}  // namespace tern::edge
