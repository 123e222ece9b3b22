// Remembers the response sent for (client 5-tuple, transaction ID) so a retransmitted request
// gets the identical answer without being processed twice (RFC 8489 §6.3.1, RFC 8656 §7.2).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "tern/allocation/five_tuple.hpp"
#include "tern/allocation/time_point.hpp"

namespace tern::allocation {

struct TransactionKey {
    FiveTuple tuple;
    std::array<std::uint8_t, 12> transaction_id{};
    friend bool operator==(const TransactionKey&, const TransactionKey&) noexcept = default;
};

class TransactionCache {
public:
    // A client following RFC 8489 §6.2.1 with the default RTO (500 ms) and Rc (7) gives up
    // 39.5 s after its first send; RFC 8656 §7.2 accordingly suggests remembering Allocate
    // transactions for 40 s. Later retransmissions can no longer arrive from that client.
    static constexpr Duration default_lifetime = std::chrono::seconds(40);

    // All storage is allocated here: `max_entries` slots of `max_response_size` bytes each.
    // When full, the oldest entry is overwritten. `hash_seed` should be random per process.
    TransactionCache(std::size_t max_entries, std::size_t max_response_size,
                     std::uint64_t hash_seed, Duration lifetime = default_lifetime);

    // The stored bytes, valid until the next store(); nullopt if unknown or older than the
    // lifetime (an entry stored at t answers on [t, t + lifetime)). No allocation.
    std::optional<std::span<const std::uint8_t>> find(const TransactionKey& key,
                                                      TimePoint now) const noexcept;

    // Returns false (and caches nothing) for a response larger than max_response_size or a
    // zero-capacity cache. Storing an existing key replaces its bytes. No allocation.
    bool store(const TransactionKey& key, std::span<const std::uint8_t> response,
               TimePoint now) noexcept;

    std::size_t size() const noexcept { return used_; }  // includes lapsed, not yet overwritten
    std::size_t capacity() const noexcept { return entries_.size(); }
    std::size_t max_response_size() const noexcept { return slot_size_; }

private:
    struct Entry {
        TransactionKey key;
        std::uint64_t hash = 0;
        TimePoint stored;
        std::uint32_t length = 0;
        bool used = false;
    };
    static constexpr std::uint32_t empty = 0;  // index cells hold slot + 1

    std::uint64_t hash(const TransactionKey& key) const noexcept;
    std::size_t lookup(const TransactionKey& key, std::uint64_t h) const noexcept;  // cell or npos
    void index_insert(std::uint32_t slot) noexcept;
    void index_erase(std::size_t cell) noexcept;

    std::size_t slot_size_;
    std::uint64_t seed_;
    Duration lifetime_;
    std::vector<Entry> entries_;        // a ring in insertion order: next_ is the oldest
    std::vector<std::uint8_t> arena_;   // entries_.size() * slot_size_ bytes
    std::vector<std::uint32_t> index_;  // open addressing, linear probing, power-of-two size
    std::size_t next_ = 0;
    std::size_t used_ = 0;
};

}  // namespace tern::allocation
