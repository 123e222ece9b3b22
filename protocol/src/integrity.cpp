// MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT: computed by the builder and
// verified on a view, with the header-length rules of RFC 8489 §14.5-§14.7.
#include "tern/protocol/integrity.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <array>
#include <memory>

#include "byte_order.hpp"
#include "tern/protocol/message_builder.hpp"

namespace tern::protocol {

using namespace wire;

namespace {

constexpr std::size_t sha1_size = 20;
constexpr std::size_t sha256_size = 32;
constexpr std::uint32_t fingerprint_xor = 0x5354554E;  // "STUN", RFC 8489 §14.7

constexpr std::array<std::uint32_t, 256> make_crc_table() noexcept {
    std::array<std::uint32_t, 256> table{};
    for (std::uint32_t n = 0; n < 256; ++n) {
        std::uint32_t c = n;
        for (int bit = 0; bit < 8; ++bit) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[n] = c;
    }
    return table;
}
constexpr auto crc_table = make_crc_table();

enum class Digest : std::uint8_t { sha1, sha256 };

struct MacContextFree {
    void operator()(EVP_MAC_CTX* ctx) const noexcept { EVP_MAC_CTX_free(ctx); }
};
using MacContext = std::unique_ptr<EVP_MAC_CTX, MacContextFree>;

// Fetching an algorithm takes a lock and a table lookup; do it once per process.
EVP_MAC* hmac_algorithm() noexcept {
    static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    return mac;
}

MacContext new_context(const char* digest_name) noexcept {
    EVP_MAC* mac = hmac_algorithm();
    if (mac == nullptr) return nullptr;
    MacContext ctx(EVP_MAC_CTX_new(mac));
    if (!ctx) return nullptr;
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest_name), 0),
        OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(ctx.get(), params) != 1) return nullptr;
    return ctx;
}

// One context per thread and digest, re-keyed for every message: no locks, no per-call setup
// beyond what EVP_MAC_init itself does.
EVP_MAC_CTX* thread_context(Digest digest) noexcept {
    thread_local const MacContext sha1 = new_context("SHA1");
    thread_local const MacContext sha256 = new_context("SHA256");
    return digest == Digest::sha1 ? sha1.get() : sha256.get();
}

// HMAC over `header` (20 bytes) then `body`; writes the full digest into `out`.
bool compute_hmac(Digest digest, std::span<const std::uint8_t> key,
                  std::span<const std::uint8_t, header_size> header,
                  std::span<const std::uint8_t> body,
                  std::array<std::uint8_t, sha256_size>& out) noexcept {
    EVP_MAC_CTX* ctx = thread_context(digest);
    if (ctx == nullptr) return false;
    // A null key makes EVP_MAC_init reuse the previous key, so an empty key must still point
    // somewhere.
    static const std::uint8_t empty_key = 0;
    const std::uint8_t* key_data = key.empty() ? &empty_key : key.data();
    if (EVP_MAC_init(ctx, key_data, key.size(), nullptr) != 1) return false;
    if (EVP_MAC_update(ctx, header.data(), header.size()) != 1) return false;
    if (!body.empty() && EVP_MAC_update(ctx, body.data(), body.size()) != 1) return false;
    std::size_t written = 0;
    if (EVP_MAC_final(ctx, out.data(), &written, out.size()) != 1) return false;
    return written == (digest == Digest::sha1 ? sha1_size : sha256_size);
}

// The MAC of the message bytes before the attribute at `offset`, with the header length
// rewritten to end after that attribute (RFC 8489 §14.5/§14.6). The caller's bytes are untouched.
bool mac_before(Digest digest, std::span<const std::uint8_t> key, ByteSpan message,
                std::size_t offset, std::size_t value_length,
                std::array<std::uint8_t, sha256_size>& out) noexcept {
    std::array<std::uint8_t, header_size> header{};
    std::copy_n(message.begin(), header_size, header.begin());
    store16(header.data() + 2, static_cast<std::uint16_t>(offset + attribute_header_size +
                                                          value_length - header_size));
    return compute_hmac(digest, key, header, message.subspan(header_size, offset - header_size),
                        out);
}

IntegrityResult verify_mac(const MessageView& message, std::uint16_t type, Digest digest,
                           std::span<const std::uint8_t> key) noexcept {
    const auto a = message.find(type);
    if (!a) return IntegrityResult::absent;
    std::array<std::uint8_t, sha256_size> expected{};
    if (!mac_before(digest, key, message.bytes(), a->offset, a->value.size(), expected)) {
        return IntegrityResult::mismatch;
    }
    // MESSAGE-INTEGRITY-SHA256 may be truncated: compare the bytes that were sent.
    return CRYPTO_memcmp(expected.data(), a->value.data(), a->value.size()) == 0
               ? IntegrityResult::ok
               : IntegrityResult::mismatch;
}

}  // namespace

std::uint32_t crc32(std::span<const std::uint8_t> bytes, std::uint32_t crc) noexcept {
    std::uint32_t c = ~crc;
    for (const std::uint8_t b : bytes) c = crc_table[(c ^ b) & 0xFF] ^ (c >> 8);
    return ~c;
}

IntegrityResult verify_message_integrity(const MessageView& message,
                                         std::span<const std::uint8_t> key) noexcept {
    return verify_mac(message, attr::message_integrity, Digest::sha1, key);
}

IntegrityResult verify_message_integrity_sha256(const MessageView& message,
                                                std::span<const std::uint8_t> key) noexcept {
    return verify_mac(message, attr::message_integrity_sha256, Digest::sha256, key);
}

IntegrityResult verify_fingerprint(const MessageView& message) noexcept {
    const auto a = message.find(attr::fingerprint);
    if (!a || a->value.size() != 4) return IntegrityResult::absent;
    const ByteSpan bytes = message.bytes();
    // FINGERPRINT is last, so the header length already ends after it (RFC 8489 §14.7); patch
    // it anyway so the rule does not depend on that.
    std::array<std::uint8_t, header_size> header{};
    std::copy_n(bytes.begin(), header_size, header.begin());
    store16(header.data() + 2,
            static_cast<std::uint16_t>(a->offset + attribute_header_size + 4 - header_size));
    std::uint32_t crc = crc32(header);
    crc = crc32(bytes.subspan(header_size, a->offset - header_size), crc);
    const std::uint32_t expected = crc ^ fingerprint_xor;
    const std::uint32_t received =
        (std::uint32_t{load16(a->value.data())} << 16) | load16(a->value.data() + 2);
    return expected == received ? IntegrityResult::ok : IntegrityResult::mismatch;
}

void MessageBuilder::add_message_integrity(std::span<const std::uint8_t> key) noexcept {
    std::uint8_t* value = reserve(attr::message_integrity, sha1_size);
    if (value == nullptr) return;
    const std::size_t offset = size_ - attribute_header_size - sha1_size;
    std::array<std::uint8_t, sha256_size> mac{};
    // reserve() already set the header length to end after this attribute.
    const std::span<const std::uint8_t, header_size> header(buffer_.data(), header_size);
    if (!compute_hmac(
            Digest::sha1, key, header,
            std::span<const std::uint8_t>(buffer_.data() + header_size, offset - header_size),
            mac)) {
        ok_ = false;
        return;
    }
    std::copy_n(mac.begin(), sha1_size, value);
}

void MessageBuilder::add_message_integrity_sha256(std::span<const std::uint8_t> key,
                                                  std::size_t length) noexcept {
    if (length < 16 || length > sha256_size || length % 4 != 0) {
        ok_ = false;
        return;
    }
    std::uint8_t* value = reserve(attr::message_integrity_sha256, length);
    if (value == nullptr) return;
    const std::size_t offset = size_ - attribute_header_size - length;
    std::array<std::uint8_t, sha256_size> mac{};
    const std::span<const std::uint8_t, header_size> header(buffer_.data(), header_size);
    if (!compute_hmac(
            Digest::sha256, key, header,
            std::span<const std::uint8_t>(buffer_.data() + header_size, offset - header_size),
            mac)) {
        ok_ = false;
        return;
    }
    std::copy_n(mac.begin(), length, value);
}

void MessageBuilder::add_fingerprint() noexcept {
    std::uint8_t* value = reserve(attr::fingerprint, 4);
    if (value == nullptr) return;
    const std::size_t offset = size_ - attribute_header_size - 4;
    const std::uint32_t crc = crc32(std::span<const std::uint8_t>(buffer_.data(), offset));
    store32(value, crc ^ fingerprint_xor);
}

}  // namespace tern::protocol
