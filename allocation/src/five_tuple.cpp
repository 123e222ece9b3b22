// Five-tuple hashing: the tuple packed into fixed 64-bit words, mixed with seeded folded
// multiplies.
#include "tern/allocation/five_tuple.hpp"

#include <bit>
#include <cstring>

namespace tern::allocation {

namespace {
// The SplitMix64 finaliser: every input bit affects every output bit.
constexpr std::uint64_t finalise(std::uint64_t z) noexcept {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Both halves of the 128-bit product folded together (as in wyhash/foldhash): unlike a
// 64-bit multiply, high input bits reach the low output bits in one round.
inline std::uint64_t fold_mul(std::uint64_t a, std::uint64_t b) noexcept {
    __extension__ using u128 = unsigned __int128;
    const u128 product = static_cast<u128>(a) * b;
    return static_cast<std::uint64_t>(product) ^ static_cast<std::uint64_t>(product >> 64);
}

// Arbitrary odd constants (hex digits of pi) so that each word meets a different key.
constexpr std::uint64_t k0 = 0x243F6A8885A308D3ull;
constexpr std::uint64_t k1 = 0x13198A2E03707345ull;
constexpr std::uint64_t k2 = 0xA4093822299F31D1ull;
constexpr std::uint64_t k3 = 0x082EFA98EC4E6C89ull;
constexpr std::uint64_t k4 = 0x452821E638D01377ull;
constexpr std::uint64_t k5 = 0xBE5466CF34E90C6Dull;
constexpr std::uint64_t k6 = 0xC0AC29B7C97C50DDull;

std::uint64_t load64(const std::uint8_t* p) noexcept {
    std::uint64_t word;
    std::memcpy(&word, p, sizeof word);
    return word;
}

std::uint64_t load32(const std::uint8_t* p) noexcept {
    std::uint32_t word;
    std::memcpy(&word, p, sizeof word);
    return word;
}

struct AddressWords {
    std::uint64_t lo;
    std::uint64_t hi;
};

// Only the bytes operator== can tell apart matter, and IPv4 compares its zero tail too, so
// reading just the first 4 bytes keeps equal tuples hashing equal.
AddressWords address_words(const protocol::TransportAddress& a) noexcept {
    if (a.family == protocol::AddressFamily::ipv4) return {load32(a.bytes.data()), 0};
    return {load64(a.bytes.data()), load64(a.bytes.data() + 8)};
}
}  // namespace

std::uint64_t hash_mix(std::uint64_t h, const std::uint8_t* bytes, std::size_t size) noexcept {
    // Length first so that ("ab","c") and ("a","bc") differ.
    h = finalise(h ^ (size + 0x9E3779B97F4A7C15ull));
    while (size >= 8) {
        std::uint64_t word;
        std::memcpy(&word, bytes, 8);
        h = finalise(h ^ word);
        bytes += 8;
        size -= 8;
    }
    if (size > 0) {
        std::uint64_t word = 0;
        std::memcpy(&word, bytes, size);
        h = finalise(h ^ word ^ (std::uint64_t{size} << 59));
    }
    return h;
}

std::uint64_t hash_value(const FiveTuple& tuple, std::uint64_t seed) noexcept {
    const auto& client = tuple.client;
    const auto& server = tuple.server;
    // Families fix how the address words below are laid out, so the packing is unambiguous.
    const std::uint64_t header = static_cast<std::uint64_t>(tuple.transport) |
                                 std::uint64_t{static_cast<std::uint8_t>(client.family)} << 8 |
                                 std::uint64_t{static_cast<std::uint8_t>(server.family)} << 16 |
                                 std::uint64_t{client.port} << 32 |
                                 std::uint64_t{server.port} << 48;
    // Both operands of every multiply are keyed, so no chosen input can zero a product, and
    // differently (the rotation), so swapping the two operands is no seed-independent collision.
    const std::uint64_t s0 = seed ^ k0;
    const std::uint64_t s1 = std::rotl(seed, 32) ^ k1;
    std::uint64_t h = 0;
    if (client.family == protocol::AddressFamily::ipv4 &&
        server.family == protocol::AddressFamily::ipv4) {
        const std::uint64_t addresses = load32(client.bytes.data()) | load32(server.bytes.data())
                                                                          << 32;
        h = fold_mul(header ^ s0, addresses ^ s1);
    } else {
        const auto c = address_words(client);
        const auto s = address_words(server);
        h = fold_mul(header ^ s0, c.lo ^ s1) ^ fold_mul(c.hi ^ s0 ^ k2, s.lo ^ s1 ^ k3) ^
            fold_mul(s.hi ^ s0 ^ k4, s1 ^ k5);
    }
    // The products' low bits depend only on the inputs' low bits; one more round spreads them
    // (odd multiplier: never zero, whatever the seed).
    return fold_mul(h ^ k6, s0 | 1);
}

}  // namespace tern::allocation
