// Usage records (usage_records.file, usage_records.journal): one JSON line, and/or one journal
// entry with TERN_* fields, per ended allocation. Workers call it when an allocation ends, never
// per packet; a mutex keeps lines whole and lets SIGHUP swap the file for logrotate.
#pragma once

#include <atomic>
#include <mutex>
#include <optional>
#include <string>

#include "tern/allocation/allocation_record.hpp"
#include "tern/allocation/tally.hpp"
#include "tern/config/config.hpp"
#include "tern/server/io/fleet_store.hpp"

namespace tern::server {

class UsageRecordLog final : public allocation::UsageSink {
public:
    UsageRecordLog() = default;
    ~UsageRecordLog() override;
    UsageRecordLog(const UsageRecordLog&) = delete;
    UsageRecordLog& operator=(const UsageRecordLog&) = delete;

    // Applies `records` (and the realm records carry), reopening the file: at start and on
    // SIGHUP, after logrotate moved it. Returns an error naming the file, or empty; on error
    // records go to the journal only (when on) until the next successful open.
    std::string configure(const config::UsageRecords& records, const std::string& realm);

    // fleet.usage_stream: records also go to the fleet's Redis stream (a queued job, never a
    // wait); `fleet` must outlive the log.
    void set_fleet(FleetStore* fleet) noexcept { fleet_ = fleet; }

    void allocation_ended(const allocation::AllocationRecord& record,
                          allocation::EndReason reason) noexcept override;

    std::uint64_t written() const noexcept { return written_.value(); }
    std::uint64_t failed() const noexcept { return failed_.value(); }

private:
    std::mutex mutex_;
    FleetStore* fleet_ = nullptr;
    int fd_ = -1;
    std::string path_;
    bool journal_ = false;
    std::string realm_;
    bool warned_ = false;  // one log line per run of failed writes
    // Written under mutex_, read by the metrics snapshot.
    allocation::Tally written_;
    allocation::Tally failed_;
};

}  // namespace tern::server
