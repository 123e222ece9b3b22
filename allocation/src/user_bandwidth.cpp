#include "tern/allocation/user_bandwidth.hpp"

#include <algorithm>

namespace tern::allocation {

std::shared_ptr<UserBuckets> UserBandwidth::attach(std::string_view username, TimePoint now,
                                                   const BucketRate& rate) {
    const std::lock_guard lock(mutex_);
    std::string key(username);
    if (const auto it = users_.find(key); it != users_.end()) {
        if (auto live = it->second.lock()) return live;
    }
    if (users_.size() >= purge_at_) {  // amortised: the map stays within twice the live users
        std::erase_if(users_, [](const auto& entry) { return entry.second.expired(); });
        purge_at_ = std::max<std::size_t>(64, users_.size() * 2);
    }
    auto buckets = std::make_shared<UserBuckets>(now, rate);
    users_[std::move(key)] = buckets;
    return buckets;
}

std::size_t UserBandwidth::size() {
    const std::lock_guard lock(mutex_);
    return users_.size();
}

}  // namespace tern::allocation
