// The retransmission cache: a ring of fixed-size slots plus an open-addressing index whose
// load factor stays at or below one half, so probes are short and nothing allocates.
#include "tern/allocation/transaction_cache.hpp"

#include <algorithm>
#include <bit>

namespace tern::allocation {

namespace {
constexpr std::size_t npos = static_cast<std::size_t>(-1);
}

TransactionCache::TransactionCache(std::size_t max_entries, std::size_t max_response_size,
                                   std::uint64_t hash_seed, Duration lifetime)
    : slot_size_(max_response_size),
      seed_(hash_seed),
      lifetime_(lifetime),
      entries_(max_entries),
      arena_(max_entries * max_response_size),
      index_(max_entries == 0 ? 0 : std::bit_ceil(max_entries * 2), empty) {}

std::uint64_t TransactionCache::hash(const TransactionKey& key) const noexcept {
    return hash_mix(hash_value(key.tuple, seed_), key.transaction_id.data(),
                    key.transaction_id.size());
}

std::size_t TransactionCache::lookup(const TransactionKey& key, std::uint64_t h) const noexcept {
    if (index_.empty()) return npos;
    const std::size_t mask = index_.size() - 1;
    for (std::size_t cell = h & mask;; cell = (cell + 1) & mask) {
        const std::uint32_t v = index_[cell];
        if (v == empty) return npos;
        const Entry& e = entries_[v - 1];
        if (e.hash == h && e.key == key) return cell;
    }
}

void TransactionCache::index_insert(std::uint32_t slot) noexcept {
    const std::size_t mask = index_.size() - 1;
    std::size_t cell = entries_[slot].hash & mask;
    while (index_[cell] != empty) cell = (cell + 1) & mask;
    index_[cell] = slot + 1;
}

void TransactionCache::index_erase(std::size_t cell) noexcept {
    // Backward-shift deletion: pull later members of the probe run into the hole so that no
    // tombstones accumulate and look-ups stay short forever.
    const std::size_t mask = index_.size() - 1;
    std::size_t hole = cell;
    for (std::size_t next = (hole + 1) & mask; index_[next] != empty; next = (next + 1) & mask) {
        const std::size_t home = entries_[index_[next] - 1].hash & mask;
        // Move `next` into the hole unless its home lies cyclically in (hole, next].
        const bool home_after_hole =
            hole <= next ? (hole < home && home <= next) : (hole < home || home <= next);
        if (!home_after_hole) {
            index_[hole] = index_[next];
            hole = next;
        }
    }
    index_[hole] = empty;
}

std::optional<std::span<const std::uint8_t>> TransactionCache::find(const TransactionKey& key,
                                                                    TimePoint now) const noexcept {
    const std::size_t cell = lookup(key, hash(key));
    if (cell == npos) return std::nullopt;
    const std::size_t slot = index_[cell] - 1;
    const Entry& e = entries_[slot];
    if (now >= e.stored + lifetime_) return std::nullopt;
    return std::span<const std::uint8_t>(arena_.data() + slot * slot_size_, e.length);
}

bool TransactionCache::store(const TransactionKey& key, std::span<const std::uint8_t> response,
                             TimePoint now) noexcept {
    if (entries_.empty() || response.size() > slot_size_) return false;
    const std::uint64_t h = hash(key);
    std::size_t slot;
    const std::size_t existing = lookup(key, h);
    if (existing != npos) {
        slot = index_[existing] - 1;  // replace in place; it keeps its place in the ring
    } else {
        slot = next_;
        next_ = (next_ + 1) % entries_.size();
        Entry& victim = entries_[slot];
        if (victim.used) {
            index_erase(lookup(victim.key, victim.hash));
            --used_;
        }
        victim.key = key;
        victim.hash = h;
        victim.used = true;
        ++used_;
        index_insert(static_cast<std::uint32_t>(slot));
    }
    Entry& e = entries_[slot];
    e.stored = now;
    e.length = static_cast<std::uint32_t>(response.size());
    std::copy(response.begin(), response.end(), arena_.begin() + slot * slot_size_);
    return true;
}

}  // namespace tern::allocation
