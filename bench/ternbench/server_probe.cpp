#include "server_probe.hpp"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace ternbench {

std::optional<double> stat_cpu_seconds(const std::string& stat_path) {
    std::ifstream in(stat_path);
    std::string line;
    if (!std::getline(in, line)) return std::nullopt;
    // The command name may hold spaces; the fields we want follow its closing parenthesis.
    const auto close = line.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream fields(line.substr(close + 2));
    std::string f;
    std::uint64_t utime = 0;
    std::uint64_t stime = 0;
    for (int i = 3; fields >> f; ++i) {
        if (i == 14) utime = std::stoull(f);
        if (i == 15) {
            stime = std::stoull(f);
            break;
        }
    }
    static const auto ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    return static_cast<double>(utime + stime) / ticks;
}

namespace {

std::uint64_t read_rss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string key;
    while (in >> key) {
        if (key == "VmRSS:") {
            std::uint64_t kib = 0;
            in >> kib;
            return kib;
        }
        std::string rest;
        std::getline(in, rest);
    }
    return 0;
}

std::uint64_t count_fds(pid_t pid) {
    DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
    if (d == nullptr) return 0;
    std::uint64_t n = 0;
    while (const dirent* e = ::readdir(d)) {
        if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
    return n;
}

// /proc/net/snmp has a "Udp:" header line naming the columns, then a "Udp:" line of values.
std::uint64_t read_udp_drops() {
    std::ifstream in("/proc/net/snmp");
    std::string line;
    std::vector<std::string> names;
    while (std::getline(in, line)) {
        if (line.rfind("Udp:", 0) != 0) continue;
        std::istringstream words(line.substr(4));
        std::vector<std::string> row;
        for (std::string w; words >> w;) row.push_back(w);
        if (names.empty()) {
            names = row;
            continue;
        }
        for (std::size_t i = 0; i < names.size() && i < row.size(); ++i) {
            if (names[i] == "RcvbufErrors") return std::stoull(row[i]);
        }
        return 0;
    }
    return 0;
}

}  // namespace

ServerSample ServerProbe::sample() const {
    ServerSample s;
    s.udp_drops = read_udp_drops();
    if (pid_ <= 0) return s;
    s.cpu_seconds = stat_cpu_seconds("/proc/" + std::to_string(pid_) + "/stat").value_or(0);
    s.rss_kib = read_rss_kib(pid_);
    s.fds = count_fds(pid_);
    return s;
}

}  // namespace ternbench
