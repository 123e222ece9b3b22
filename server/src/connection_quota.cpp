#include "tern/server/connection_quota.hpp"

namespace tern::server {

void ConnectionQuota::set_limits(std::size_t max_total, std::size_t max_per_ip) {
    std::lock_guard lock(mutex_);
    max_total_ = max_total;
    max_per_ip_ = max_per_ip;
}

bool ConnectionQuota::try_acquire(const protocol::TransportAddress& client) {
    const auto key = allocation::IpKey::of(client);
    std::lock_guard lock(mutex_);
    if (total_ >= max_total_) return false;
    auto it = per_ip_.find(key);
    if (it != per_ip_.end() && it->second >= max_per_ip_) return false;
    if (it == per_ip_.end()) it = per_ip_.emplace(key, 0).first;
    ++it->second;
    ++total_;
    return true;
}

void ConnectionQuota::release(const protocol::TransportAddress& client) {
    const auto key = allocation::IpKey::of(client);
    std::lock_guard lock(mutex_);
    auto it = per_ip_.find(key);
    if (it == per_ip_.end()) return;  // never counted
    if (--it->second == 0) per_ip_.erase(it);
    --total_;
}

std::size_t ConnectionQuota::total() {
    std::lock_guard lock(mutex_);
    return total_;
}

std::size_t ConnectionQuota::count_for(const protocol::TransportAddress& client) {
    const auto key = allocation::IpKey::of(client);
    std::lock_guard lock(mutex_);
    auto it = per_ip_.find(key);
    return it == per_ip_.end() ? 0 : it->second;
}

}  // namespace tern::server
