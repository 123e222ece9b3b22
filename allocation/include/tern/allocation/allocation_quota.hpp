// The allocation quotas of the whole process (limits.max_allocations and
// max_allocations_per_user), shared by every worker; taken only on Allocate and on removal.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "tern/allocation/allocation_table.hpp"

namespace tern::allocation {

class AllocationQuota {
public:
    AllocationQuota(std::size_t max_total, std::size_t max_per_user) noexcept
        : max_total_(max_total), max_per_user_(max_per_user) {}

    // A reload: later admissions see the new limits; counts held are kept.
    void set_limits(std::size_t max_total, std::size_t max_per_user);

    // Counts one allocation for `username`, or says which quota is full: user_quota (486) is
    // reported before capacity (508), as the client's own limit is the more useful answer.
    CreateResult acquire(std::string_view username);
    void release(std::string_view username);

    std::size_t total();
    std::size_t count_for(std::string_view username);

private:
    std::mutex mutex_;
    std::size_t max_total_;
    std::size_t max_per_user_;
    std::size_t total_ = 0;
    std::map<std::string, std::size_t, std::less<>> per_user_;
};

}  // namespace tern::allocation
