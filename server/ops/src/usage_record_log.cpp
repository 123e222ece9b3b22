#include "tern/server/ops/usage_record_log.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "tern/server/ops/admin_api.hpp"

namespace tern::server {

namespace {

std::string errno_text(int error) {
    std::string text(128, '\0');
    // The GNU strerror_r returns the text, which may not be the buffer.
    const char* message = strerror_r(error, text.data(), text.size());
    return message;
}

}  // namespace

UsageRecordLog::~UsageRecordLog() {
    if (fd_ >= 0) ::close(fd_);
}

std::string UsageRecordLog::configure(const config::UsageRecords& records,
                                      const std::string& realm) {
    int fd = -1;
    std::string error;
    if (records.file) {
        // O_APPEND: each record is one write(2) at the end, whoever else appends.
        fd = ::open(records.file->c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0)
            error = "usage_records.file: cannot open " + *records.file + ": " + errno_text(errno);
    }
    const std::lock_guard lock(mutex_);
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
    path_ = records.file.value_or("");
    journal_ = records.journal;
    realm_ = realm;
    warned_ = false;
    return error;
}

void UsageRecordLog::allocation_ended(const allocation::AllocationRecord& record,
                                      allocation::EndReason reason) noexcept {
    try {
        const WallClock clock{std::chrono::steady_clock::now(), std::chrono::system_clock::now()};
        const std::lock_guard lock(mutex_);
        if (fleet_ != nullptr && !fleet_->settings().usage_stream.empty()) {
            const std::string node = fleet_->node_id();
            fleet_->append_usage(
                {{"node", node},
                 {"reason", std::string(name_of(reason))},
                 {"record", allocation_json(record, realm_, clock, reason, node)}});
        }
        if (fd_ < 0 && !journal_) {
            if (!path_.empty()) ++failed_;  // configured, but the file could not be opened
            return;
        }
        std::string line = allocation_json(record, realm_, clock, reason);
        bool ok = true;
        if (fd_ >= 0) {
            line += '\n';
            const auto n = ::write(fd_, line.data(), line.size());
            if (n != static_cast<ssize_t>(line.size())) {
                ok = false;
                if (!warned_) {
                    warned_ = true;
                    spdlog::error("usage_records.file: cannot write {}: {}", path_,
                                  n < 0 ? errno_text(errno) : std::string("short write"));
                }
            }
            line.pop_back();
        }
        if (journal_) {
            const auto& u = record.usage;
            const int rc = sd_journal_send(
                "MESSAGE=allocation %s ended (%s): %llu bytes to peers, %llu to the client",
                session_id_text(record.id).c_str(), std::string(name_of(reason)).c_str(),
                static_cast<unsigned long long>(u.bytes_to_peer),
                static_cast<unsigned long long>(u.bytes_to_client), "PRIORITY=6",
                "SYSLOG_IDENTIFIER=ternd", "TERN_EVENT=allocation_ended", "TERN_RECORD=%s",
                line.c_str(), "TERN_SESSION=%s", session_id_text(record.id).c_str(), "TERN_USER=%s",
                record.username.c_str(), "TERN_REASON=%s", std::string(name_of(reason)).c_str(),
                "TERN_BYTES_TO_PEER=%llu", static_cast<unsigned long long>(u.bytes_to_peer),
                "TERN_BYTES_TO_CLIENT=%llu", static_cast<unsigned long long>(u.bytes_to_client),
                nullptr);
            ok = ok && rc >= 0;
        }
        if (ok) {
            ++written_;
            warned_ = false;
        } else {
            ++failed_;
        }
    } catch (...) {
        // Out of memory while formatting: the record is lost, the relay goes on.
        ++failed_;
    }
}

}  // namespace tern::server
