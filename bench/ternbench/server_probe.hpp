// What the server under test costs, read from /proc: its CPU time (user + system, all threads),
// its resident memory and open descriptors, and the kernel's system-wide UDP receive drops.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace ternbench {

// utime + stime in seconds from a /proc/PID/stat (or /proc/PID/task/TID/stat) file; nullopt when
// it cannot be read (the process or thread is gone).
std::optional<double> stat_cpu_seconds(const std::string& stat_path);

struct ServerSample {
    double cpu_seconds = 0;       // utime + stime of every thread
    std::uint64_t rss_kib = 0;    // VmRSS
    std::uint64_t fds = 0;        // entries in /proc/PID/fd
    std::uint64_t udp_drops = 0;  // Udp RcvbufErrors, whole host
};

class ServerProbe {
public:
    explicit ServerProbe(pid_t pid) : pid_(pid) {}
    bool enabled() const noexcept { return pid_ > 0; }
    // Reads everything; without a PID only the host-wide counter is filled in.
    ServerSample sample() const;

private:
    pid_t pid_;
};

}  // namespace ternbench
