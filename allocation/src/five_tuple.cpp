// Five-tuple hashing: a 64-bit multiply-xorshift mix, cheap enough for every request.
#include "tern/allocation/five_tuple.hpp"

#include <cstring>

namespace tern::allocation {

namespace {
// The SplitMix64 finaliser: every input bit affects every output bit.
constexpr std::uint64_t finalise(std::uint64_t z) noexcept {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

std::uint64_t mix_address(std::uint64_t h, const protocol::TransportAddress& a) noexcept {
    const std::uint8_t header[3] = {static_cast<std::uint8_t>(a.family),
                                    static_cast<std::uint8_t>(a.port >> 8),
                                    static_cast<std::uint8_t>(a.port & 0xFF)};
    h = hash_mix(h, header, sizeof header);
    return hash_mix(h, a.bytes.data(), a.address_size());
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
    std::uint64_t h = finalise(seed ^ static_cast<std::uint64_t>(tuple.transport));
    h = mix_address(h, tuple.client);
    return mix_address(h, tuple.server);
}

}  // namespace tern::allocation
