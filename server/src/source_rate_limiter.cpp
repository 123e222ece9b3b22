#include "tern/server/source_rate_limiter.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace tern::server {

SourceRateLimiter::SourceRateLimiter(std::uint32_t rate, std::uint32_t burst, std::size_t slots,
                                     std::uint64_t hash_seed)
    : rate_(rate), burst_(std::max(burst, rate)), seed_(hash_seed) {
    std::size_t size = 16;
    while (size < slots) size *= 2;
    slots_.resize(size);
}

void SourceRateLimiter::set_rate(std::uint32_t rate, std::uint32_t burst) noexcept {
    rate_ = rate;
    burst_ = std::max(burst, rate);
}

std::size_t SourceRateLimiter::index_of(const allocation::IpKey& ip) const noexcept {
    // FNV-1a over the address under a per-process seed: sources pick their addresses, so the
    // slot they land in must not be predictable.
    std::uint64_t h = 0xcbf29ce484222325ull ^ seed_;
    for (const std::uint8_t b : ip.bytes) {
        h ^= b;
        h *= 0x100000001b3ull;
    }
    h ^= h >> 29;
    return static_cast<std::size_t>(h) & (slots_.size() - 1);
}

bool SourceRateLimiter::allow(const protocol::TransportAddress& source,
                              allocation::TimePoint now) noexcept {
    if (rate_ <= 0) return true;
    const auto ip = allocation::IpKey::of(source);
    const std::size_t start = index_of(ip);
    Slot* slot = nullptr;
    Slot* oldest = nullptr;
    for (std::size_t i = 0; i < probe; ++i) {
        Slot& s = slots_[(start + i) & (slots_.size() - 1)];
        if (s.used && s.ip == ip) {
            slot = &s;
            break;
        }
        if (!s.used) {
            if (oldest == nullptr || oldest->used) oldest = &s;
        } else if (oldest == nullptr || (oldest->used && s.last < oldest->last)) {
            oldest = &s;
        }
    }
    if (slot == nullptr) {  // a new source starts with a full bucket
        slot = oldest;
        slot->ip = ip;
        slot->tokens = burst_;
        slot->last = now;
        slot->used = true;
    } else if (now > slot->last) {
        const double elapsed = std::chrono::duration<double>(now - slot->last).count();
        slot->tokens = std::min(burst_, slot->tokens + elapsed * rate_);
        slot->last = now;
    }
    if (slot->tokens < 1.0) {
        ++refused_;
        return false;
    }
    slot->tokens -= 1.0;
    return true;
}

}  // namespace tern::server
