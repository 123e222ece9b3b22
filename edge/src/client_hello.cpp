// ClientHelloReader: record reassembly as bytes arrive, then one pass over the whole message.
#include "tern/edge/client_hello.hpp"

#include <algorithm>
#include <cstring>

namespace tern::edge {

namespace {

constexpr std::uint8_t content_type_handshake = 22;  // RFC 8446 §5.1
constexpr std::uint8_t tls_major_version = 3;        // SSL 3.0 through TLS 1.3 records
constexpr std::size_t record_header_size = 5;
constexpr std::size_t max_record_body = 16384;  // TLSPlaintext.length ≤ 2^14 (RFC 8446 §5.1)
constexpr std::uint8_t handshake_client_hello = 1;
constexpr std::size_t handshake_header_size = 4;
constexpr std::size_t random_size = 32;
constexpr std::size_t max_session_id = 32;
constexpr std::uint16_t extension_server_name = 0;  // RFC 6066 §3
constexpr std::uint16_t extension_alpn = 16;        // RFC 7301 §3.1
constexpr std::uint8_t name_type_host_name = 0;     // RFC 6066 §3
constexpr std::size_t max_label_bytes = 63;         // RFC 1035 §2.3.4

// Bounds-checked reading of big-endian fields; every read reports whether the bytes were there.
class Cursor {
public:
    explicit Cursor(std::span<const std::uint8_t> data) noexcept : data_(data) {}

    std::size_t left() const noexcept { return data_.size() - at_; }

    bool u8(std::size_t& out) noexcept {
        if (left() < 1) return false;
        out = data_[at_++];
        return true;
    }
    bool u16(std::size_t& out) noexcept {
        if (left() < 2) return false;
        out = static_cast<std::size_t>(data_[at_]) << 8 | data_[at_ + 1];
        at_ += 2;
        return true;
    }
    bool bytes(std::size_t n, std::span<const std::uint8_t>& out) noexcept {
        if (left() < n) return false;
        out = data_.subspan(at_, n);
        at_ += n;
        return true;
    }
    bool skip(std::size_t n) noexcept {
        if (left() < n) return false;
        at_ += n;
        return true;
    }

private:
    std::span<const std::uint8_t> data_;
    std::size_t at_ = 0;
};

bool is_name_byte(std::uint8_t c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

}  // namespace

void ClientHelloReader::reset() noexcept {
    // Field by field: message_ holds no meaning past message_size_, so it is not cleared.
    status_ = HelloStatus::need_more;
    pos_ = 0;
    record_left_ = 0;
    message_size_ = 0;
    message_expected_ = 0;
    has_server_name_ = false;
    server_name_size_ = 0;
    alpn_list_offset_ = 0;
    alpn_list_size_ = 0;
    alpn_count_ = 0;
}

HelloStatus ClientHelloReader::parse(std::span<const std::uint8_t> prefix) noexcept {
    if (status_ != HelloStatus::need_more) return status_;
    if (prefix.size() < pos_) reset();
    while (true) {
        if (record_left_ == 0) {
            // At a record boundary. No room for another record is too_large whatever comes
            // next; checked first so the verdict does not depend on how the bytes were split.
            if (pos_ + record_header_size > max_hello_prefix_bytes) {
                return finish(HelloStatus::too_large);
            }
            // Judge the header bytes already here before waiting for the rest: a wrong type or
            // version is known from its first two bytes.
            const std::size_t have = prefix.size() - pos_;
            const HelloStatus wrong = pos_ == 0 ? HelloStatus::not_tls : HelloStatus::malformed;
            if (have >= 1 && prefix[pos_] != content_type_handshake) return finish(wrong);
            if (have >= 2 && prefix[pos_ + 1] != tls_major_version) return finish(wrong);
            if (have < record_header_size) return HelloStatus::need_more;
            const std::size_t length =
                static_cast<std::size_t>(prefix[pos_ + 3]) << 8 | prefix[pos_ + 4];
            // Zero-length handshake fragments are forbidden (RFC 8446 §5.1, RFC 5246 §6.2.1).
            if (length == 0 || length > max_record_body) return finish(HelloStatus::malformed);
            if (pos_ + record_header_size + length > max_hello_prefix_bytes) {
                return finish(HelloStatus::too_large);
            }
            pos_ += record_header_size;
            record_left_ = length;
        }

        const std::size_t available = std::min(record_left_, prefix.size() - pos_);
        if (available == 0) return HelloStatus::need_more;
        // Up to the end of the handshake header first, to learn the message size.
        const std::size_t target =
            message_expected_ == 0 ? handshake_header_size : message_expected_;
        const std::size_t n = std::min(available, target - message_size_);
        std::memcpy(message_.data() + message_size_, prefix.data() + pos_, n);
        message_size_ += n;
        pos_ += n;
        record_left_ -= n;

        if (message_[0] != handshake_client_hello) return finish(HelloStatus::malformed);
        if (message_expected_ == 0 && message_size_ == handshake_header_size) {
            const std::size_t body = static_cast<std::size_t>(message_[1]) << 16 |
                                     static_cast<std::size_t>(message_[2]) << 8 | message_[3];
            if (body > max_client_hello_bytes - handshake_header_size) {
                return finish(HelloStatus::too_large);
            }
            message_expected_ = handshake_header_size + body;
        }
        if (message_size_ == message_expected_) {
            // A client sends nothing after its ClientHello until the server answers, so the
            // hello's last record ends where the hello does.
            if (record_left_ != 0) return finish(HelloStatus::malformed);
            const HelloStatus body = parse_body();
            if (body != HelloStatus::complete) {
                // No half-read name or ALPN list is left behind for a caller that skips the status.
                has_server_name_ = false;
                server_name_size_ = 0;
                alpn_list_size_ = 0;
                alpn_count_ = 0;
            }
            return finish(body);
        }
    }
}

HelloStatus ClientHelloReader::parse_body() noexcept {
    Cursor c(std::span<const std::uint8_t>(message_).subspan(
        handshake_header_size, message_size_ - handshake_header_size));
    std::size_t version = 0;
    std::size_t session_id = 0;
    std::size_t suites = 0;
    std::size_t compression = 0;
    if (!c.u16(version) || (version >> 8) != tls_major_version) return HelloStatus::malformed;
    if (!c.skip(random_size)) return HelloStatus::malformed;
    if (!c.u8(session_id) || session_id > max_session_id || !c.skip(session_id)) {
        return HelloStatus::malformed;
    }
    // CipherSuite cipher_suites<2..2^16-2>; opaque legacy_compression_methods<1..2^8-1>.
    if (!c.u16(suites) || suites < 2 || suites % 2 != 0 || !c.skip(suites)) {
        return HelloStatus::malformed;
    }
    if (!c.u8(compression) || compression < 1 || !c.skip(compression)) {
        return HelloStatus::malformed;
    }
    // A TLS 1.2 hello may end here, without an extensions block (RFC 5246 §7.4.1.2).
    if (c.left() == 0) return HelloStatus::complete;

    std::size_t extensions_size = 0;
    if (!c.u16(extensions_size) || extensions_size != c.left()) return HelloStatus::malformed;
    bool seen_server_name = false;
    bool seen_alpn = false;
    while (c.left() > 0) {
        std::size_t type = 0;
        std::size_t size = 0;
        std::span<const std::uint8_t> data;
        if (!c.u16(type) || !c.u16(size) || !c.bytes(size, data)) return HelloStatus::malformed;
        // A repeated extension is forbidden (RFC 8446 §4.2). The two that routing reads are
        // refused here, so no TLS stack behind us can act on a different copy than routing did.
        if (type == extension_server_name) {
            if (seen_server_name) return HelloStatus::malformed;
            seen_server_name = true;
            if (!read_server_name(data)) return HelloStatus::malformed;
        } else if (type == extension_alpn) {
            if (seen_alpn) return HelloStatus::malformed;
            seen_alpn = true;
            if (!read_alpn(data, static_cast<std::size_t>(data.data() - message_.data()))) {
                return HelloStatus::malformed;
            }
        }
    }
    return HelloStatus::complete;
}

bool ClientHelloReader::read_server_name(std::span<const std::uint8_t> data) noexcept {
    // ServerName server_name_list<1..2^16-1>, each entry a name_type byte and a 16-bit length.
    Cursor c(data);
    std::size_t list_size = 0;
    if (!c.u16(list_size) || list_size != c.left() || list_size == 0) return false;
    std::span<const std::uint8_t> host;
    while (c.left() > 0) {
        std::size_t type = 0;
        std::size_t size = 0;
        std::span<const std::uint8_t> name;
        if (!c.u8(type) || !c.u16(size) || size == 0 || !c.bytes(size, name)) return false;
        // Other name types are skipped (none is defined); two host_names are forbidden.
        if (type != name_type_host_name) continue;
        if (!host.empty()) return false;
        host = name;
    }
    if (host.empty()) return true;
    has_server_name_ = true;

    // Lowercased into server_name_ as it is checked; any failure leaves the name invalid.
    if (host.size() > max_server_name_bytes) return true;
    std::size_t label = 0;
    for (std::size_t i = 0; i < host.size(); ++i) {
        std::uint8_t c8 = host[i];
        if (c8 >= 'A' && c8 <= 'Z') c8 = static_cast<std::uint8_t>(c8 - 'A' + 'a');
        if (!is_name_byte(c8)) return true;
        if (c8 == '.') {
            if (label == 0) return true;  // leading dot or ".."
            label = 0;
        } else if (++label > max_label_bytes) {
            return true;
        }
        server_name_[i] = static_cast<char>(c8);
    }
    if (label == 0) return true;  // trailing dot: RFC 6066 sends names without one
    server_name_size_ = host.size();
    return true;
}

bool ClientHelloReader::read_alpn(std::span<const std::uint8_t> data, std::size_t offset) noexcept {
    // ProtocolName protocol_name_list<2..2^16-1>, each name opaque<1..2^8-1>.
    Cursor c(data);
    std::size_t list_size = 0;
    if (!c.u16(list_size) || list_size != c.left() || list_size < 2) return false;
    std::size_t at = offset + 2;
    while (c.left() > 0) {
        std::size_t size = 0;
        if (!c.u8(size) || size == 0 || !c.skip(size)) return false;
        if (alpn_count_ < alpn_.size()) {
            // The message is at most 16 KiB, so an offset into it fits 16 bits.
            alpn_[alpn_count_++] = {static_cast<std::uint16_t>(at + 1),
                                    static_cast<std::uint8_t>(size)};
        }
        at += 1 + size;
    }
    alpn_list_offset_ = offset + 2;
    alpn_list_size_ = list_size;
    return true;
}

bool ClientHelloReader::offers(std::string_view protocol) const noexcept {
    // The list was checked when it was read: every length byte lies inside it.
    std::size_t at = alpn_list_offset_;
    const std::size_t end = alpn_list_offset_ + alpn_list_size_;
    while (at < end) {
        const std::size_t size = message_[at];
        if (size == protocol.size() &&
            std::memcmp(message_.data() + at + 1, protocol.data(), size) == 0) {
            return true;
        }
        at += 1 + size;
    }
    return false;
}

std::string_view ClientHelloReader::alpn_protocol(std::size_t index) const noexcept {
    if (index >= alpn_count_) return {};
    const AlpnEntry& entry = alpn_[index];
    return {reinterpret_cast<const char*>(message_.data() + entry.offset), entry.size};
}

}  // namespace tern::edge
