#include "tern/server/request/source_rate_limiter.hpp"

#include <algorithm>
#include <chrono>

namespace tern::server {

SourceRateLimiter::SourceRateLimiter(std::uint32_t rate, std::uint32_t burst, std::size_t slots,
                                     std::uint64_t hash_seed, unsigned ipv6_prefix)
    : rate_(rate), burst_(std::max(burst, rate)), ipv6_prefix_(ipv6_prefix), seed_(hash_seed) {
    std::size_t per_shard = 16;
    while (per_shard * shard_count < slots) per_shard *= 2;
    for (auto& shard : shards_) shard.slots.resize(per_shard);
}

void SourceRateLimiter::set_rate(std::uint32_t rate, std::uint32_t burst,
                                 unsigned ipv6_prefix) noexcept {
    rate_.store(rate, std::memory_order_relaxed);
    ipv6_prefix_.store(ipv6_prefix, std::memory_order_relaxed);
    burst_.store(std::max(burst, rate), std::memory_order_relaxed);
}

std::uint64_t SourceRateLimiter::hash(const allocation::IpKey& ip) const noexcept {
    // FNV-1a over the address under a per-process seed: sources pick their addresses, so the
    // slot they land in must not be predictable.
    std::uint64_t h = 0xcbf29ce484222325ull ^ seed_;
    for (const std::uint8_t b : ip.bytes) {
        h ^= b;
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

bool SourceRateLimiter::allow(const protocol::TransportAddress& source,
                              allocation::TimePoint now) noexcept {
    const double rate = rate_.load(std::memory_order_relaxed);
    if (rate <= 0) return true;
    const double burst = burst_.load(std::memory_order_relaxed);
    const auto ip =
        allocation::IpKey::source_of(source, ipv6_prefix_.load(std::memory_order_relaxed));
    const std::uint64_t h = hash(ip);
    Shard& shard = shards_[(h >> 32) % shard_count];
    const std::size_t mask = shard.slots.size() - 1;
    const std::size_t start = static_cast<std::size_t>(h) & mask;

    const std::lock_guard lock(shard.mutex);
    Slot* slot = nullptr;
    Slot* oldest = nullptr;
    for (std::size_t i = 0; i < probe; ++i) {
        Slot& s = shard.slots[(start + i) & mask];
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
        slot->tokens = burst;
        slot->last = now;
        slot->used = true;
    } else if (now > slot->last) {
        const double elapsed = std::chrono::duration<double>(now - slot->last).count();
        slot->tokens = std::min(burst, slot->tokens + elapsed * rate);
        slot->last = now;
    }
    if (slot->tokens < 1.0) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    slot->tokens -= 1.0;
    return true;
}

}  // namespace tern::server
