// The per-user byte budgets behind limits.user_bandwidth: one pair of shared token buckets per
// user name with a live allocation, handed out at Allocate and shared by every worker.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "tern/allocation/time_point.hpp"
#include "tern/allocation/token_bucket.hpp"

namespace tern::allocation {

struct UserBuckets {
    UserBuckets(TimePoint now, const BucketRate& rate) noexcept
        : to_peer(now, rate), to_client(now, rate) {}
    SharedTokenBucket to_peer;
    SharedTokenBucket to_client;
};

class UserBandwidth {
public:
    // The buckets of `username`, made (full) if none of its allocations holds them now. Takes a
    // lock: call it per allocation, never per packet.
    std::shared_ptr<UserBuckets> attach(std::string_view username, TimePoint now,
                                        const BucketRate& rate);

    std::size_t size();  // entries held, including ones about to be purged

private:
    std::mutex mutex_;
    // Weak: the allocations own the buckets, so a user's budget ends with their last allocation.
    std::unordered_map<std::string, std::weak_ptr<UserBuckets>> users_;
    std::size_t purge_at_ = 64;  // purge dead entries when the map reaches this size
};

}  // namespace tern::allocation
