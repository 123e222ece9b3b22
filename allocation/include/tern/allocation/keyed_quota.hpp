// A count of holders per key and in total, under a limit for each, shared by every worker behind
// one lock: taken on set-up and given back on tear-down, never per packet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>

namespace tern::allocation {

enum class QuotaVerdict : std::uint8_t { granted, key_full, total_full };

template <class Key>
class KeyedQuota {
public:
    KeyedQuota(std::size_t max_total, std::size_t max_per_key) noexcept
        : max_total_(max_total), max_per_key_(max_per_key) {}

    // Later acquisitions see the new limits; what is held stays held.
    void set_limits(std::size_t max_total, std::size_t max_per_key) {
        std::lock_guard lock(mutex_);
        max_total_ = max_total;
        max_per_key_ = max_per_key;
    }

    // The per-key limit is reported before the total one: it is the caller's own limit.
    template <class K>
    QuotaVerdict acquire(const K& key) {
        std::lock_guard lock(mutex_);
        auto it = counts_.find(key);
        if (it != counts_.end() && it->second >= max_per_key_) return QuotaVerdict::key_full;
        if (it == counts_.end() && max_per_key_ == 0) return QuotaVerdict::key_full;
        if (total_ >= max_total_) return QuotaVerdict::total_full;
        if (it == counts_.end()) it = counts_.emplace(Key(key), 0).first;
        ++it->second;
        ++total_;
        return QuotaVerdict::granted;
    }

    // Releasing a key that holds nothing changes nothing.
    template <class K>
    void release(const K& key) {
        std::lock_guard lock(mutex_);
        auto it = counts_.find(key);
        if (it == counts_.end()) return;
        if (--it->second == 0) counts_.erase(it);
        --total_;
    }

    std::size_t total() {
        std::lock_guard lock(mutex_);
        return total_;
    }

    template <class K>
    std::size_t count_for(const K& key) {
        std::lock_guard lock(mutex_);
        auto it = counts_.find(key);
        return it == counts_.end() ? 0 : it->second;
    }

private:
    std::mutex mutex_;
    std::size_t max_total_;
    std::size_t max_per_key_;
    std::size_t total_ = 0;
    std::map<Key, std::size_t, std::less<>> counts_;
};

}  // namespace tern::allocation
