#include "tern/ctl/status_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "tern/metrics/metric_family.hpp"

namespace tern::ctl {

namespace {

using metrics::Metric;
using metrics::name;

// name{a="x",b="y"} value
bool parse_line(std::string_view line, Sample& out) {
    const auto brace = line.find('{');
    const auto space = line.find(' ');
    if (space == std::string_view::npos) return false;
    std::string_view rest;
    if (brace != std::string_view::npos && brace < space) {
        out.name = std::string(line.substr(0, brace));
        std::size_t i = brace + 1;
        while (i < line.size() && line[i] != '}') {
            const auto eq = line.find('=', i);
            if (eq == std::string_view::npos || eq + 1 >= line.size() || line[eq + 1] != '"')
                return false;
            std::string key(line.substr(i, eq - i));
            std::string value;
            std::size_t j = eq + 2;
            for (; j < line.size() && line[j] != '"'; ++j) {
                if (line[j] == '\\' && j + 1 < line.size()) ++j;
                value += line[j];
            }
            if (j >= line.size()) return false;
            out.labels.emplace(std::move(key), std::move(value));
            i = j + 1;
            if (i < line.size() && line[i] == ',') ++i;
        }
        if (i >= line.size()) return false;
        rest = line.substr(i + 1);
    } else {
        out.name = std::string(line.substr(0, space));
        rest = line.substr(space);
    }
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    const std::string number(rest.substr(0, rest.find(' ')));
    char* end = nullptr;
    out.value = std::strtod(number.c_str(), &end);
    return !number.empty() && end != nullptr && *end == '\0';
}

class View {
public:
    explicit View(const std::vector<Sample>& samples) : samples_(samples) {}

    // Sum of `name` over samples whose labels include every pair of `match`.
    double sum(std::string_view name,
               const std::vector<std::pair<std::string, std::string>>& match = {}) const {
        double total = 0;
        for (const auto& s : samples_) {
            if (s.name != name) continue;
            const bool ok = std::all_of(match.begin(), match.end(), [&](const auto& m) {
                const auto it = s.labels.find(m.first);
                return it != s.labels.end() && it->second == m.second;
            });
            if (ok) total += s.value;
        }
        return total;
    }
    double max(std::string_view name) const {
        double m = 0;
        for (const auto& s : samples_) {
            if (s.name == name) m = std::max(m, s.value);
        }
        return m;
    }
    std::size_t count(std::string_view name) const {
        return static_cast<std::size_t>(std::count_if(
            samples_.begin(), samples_.end(), [&](const Sample& s) { return s.name == name; }));
    }
    // "label=value n, ..." for the non-zero samples of `name`, largest first.
    std::string breakdown(std::string_view name, const std::vector<std::string>& keys) const {
        std::vector<std::pair<double, std::string>> parts;
        for (const auto& s : samples_) {
            if (s.name != name || s.value == 0) continue;
            std::string label;
            for (const auto& k : keys) {
                const auto it = s.labels.find(k);
                if (it == s.labels.end()) continue;
                if (!label.empty()) label += '/';
                label += it->second;
            }
            parts.emplace_back(s.value, label);
        }
        std::sort(parts.begin(), parts.end(), [](const auto& a, const auto& b) {
            return a.first != b.first ? a.first > b.first : a.second < b.second;
        });
        std::string out;
        for (const auto& [v, label] : parts) {
            if (!out.empty()) out += ", ";
            out += label + " " + whole(v);
        }
        return out;
    }
    static std::string whole(double v) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.0f", v);
        return buf;
    }

private:
    const std::vector<Sample>& samples_;
};

std::string bytes(double b) {
    constexpr const char* units[] = {"B", "KB", "MB", "GB", "TB"};
    std::size_t u = 0;
    while (b >= 1000 && u + 1 < std::size(units)) {
        b /= 1000;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
    return buf;
}

std::string duration(double seconds) {
    const auto s = static_cast<long long>(seconds);
    char buf[48];
    if (s >= 86400) {
        std::snprintf(buf, sizeof buf, "%lldd %lldh", s / 86400, s % 86400 / 3600);
    } else if (s >= 3600) {
        std::snprintf(buf, sizeof buf, "%lldh %lldm", s / 3600, s % 3600 / 60);
    } else if (s >= 60) {
        std::snprintf(buf, sizeof buf, "%lldm %llds", s / 60, s % 60);
    } else {
        std::snprintf(buf, sizeof buf, "%llds", s);
    }
    return buf;
}

std::string with_breakdown(const std::string& total, const std::string& parts) {
    return parts.empty() ? total : total + " (" + parts + ")";
}

}  // namespace

std::optional<double> sample_value(const std::vector<Sample>& samples, std::string_view name,
                                   const std::vector<std::pair<std::string, std::string>>& labels) {
    for (const auto& s : samples) {
        if (s.name != name || s.labels.size() != labels.size()) continue;
        bool match = true;
        for (const auto& [k, v] : labels) {
            const auto it = s.labels.find(k);
            match = match && it != s.labels.end() && it->second == v;
        }
        if (match) return s.value;
    }
    return std::nullopt;
}

std::vector<Sample> parse_prometheus(std::string_view text) {
    std::vector<Sample> samples;
    while (!text.empty()) {
        const auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty() || line.front() == '#') continue;
        Sample s;
        if (parse_line(line, s)) samples.push_back(std::move(s));
    }
    return samples;
}

std::string format_status(const std::vector<Sample>& samples, const std::string& endpoint,
                          bool healthy) {
    const View v(samples);
    std::string version = "?";
    for (const auto& s : samples) {
        if (s.name == name(Metric::build_info) && s.labels.count("version") != 0) {
            version = s.labels.at("version");
        }
    }
    const bool draining = !healthy || v.sum(name(Metric::draining)) > 0;
    const auto w = View::whole;
    std::string out;
    out += "ternd " + version + " at " + endpoint + ": " +
           (draining ? "DRAINING (new allocations refused; /healthz answers 503)" : "serving") +
           ", up " + duration(v.sum(name(Metric::uptime_seconds))) + "\n";
    out += "  allocations    " +
           with_breakdown(w(v.sum(name(Metric::allocations_active))) + " active",
                          v.breakdown(name(Metric::allocations_active), {"transport", "family"})) +
           ", " + w(v.sum(name(Metric::allocations_created))) + " created since start\n";
    out += "  permissions    " + w(v.sum(name(Metric::permissions_active))) + ", channels " +
           w(v.sum(name(Metric::channels_active))) + "\n";
    out += "  connections    " +
           w(v.sum(name(Metric::connections_active), {{"transport", "tcp"}})) + " TCP, " +
           w(v.sum(name(Metric::connections_active), {{"transport", "tls"}})) + " TLS\n";
    out += "  relayed        to peers " +
           w(v.sum(name(Metric::relayed_packets), {{"direction", "to_peer"}})) + " packets (" +
           bytes(v.sum(name(Metric::relayed_bytes), {{"direction", "to_peer"}})) +
           "), to clients " +
           w(v.sum(name(Metric::relayed_packets), {{"direction", "to_client"}})) + " packets (" +
           bytes(v.sum(name(Metric::relayed_bytes), {{"direction", "to_client"}})) + ")\n";
    out += "  not relayed    " +
           with_breakdown(w(v.sum(name(Metric::relay_dropped_packets))),
                          v.breakdown(name(Metric::relay_dropped_packets), {"reason"})) +
           "\n";
    out += "  requests       " +
           with_breakdown(w(v.sum(name(Metric::requests))),
                          v.breakdown(name(Metric::requests), {"method", "code"})) +
           "\n";
    // The first Allocate of every client is challenged; that is not a failure worth a look.
    const double challenged =
        v.sum(name(Metric::auth_failures), {{"reason", "missing_credentials"}});
    std::string failures;
    for (const auto& s : samples) {
        if (s.name != name(Metric::auth_failures) || s.value == 0) continue;
        const auto reason = s.labels.find("reason");
        if (reason == s.labels.end() || reason->second == "missing_credentials") continue;
        failures += (failures.empty() ? "" : ", ") + reason->second + " " + w(s.value);
    }
    if (challenged > 0) {
        failures += (failures.empty() ? "" : "; ") + w(challenged) + " first-request challenges";
    }
    out += "  auth failures  " +
           with_breakdown(w(v.sum(name(Metric::auth_failures)) - challenged), failures) + "\n";
    out += "  rejections     " +
           with_breakdown(w(v.sum(name(Metric::rejections))),
                          v.breakdown(name(Metric::rejections), {"reason"})) +
           "\n";
    out += "  TLS handshakes " + w(v.sum(name(Metric::tls_handshakes_failed))) + " failed\n";
    char lag[64];
    std::snprintf(lag, sizeof lag, "%.1f ms", v.max(name(Metric::worker_loop_lag_seconds)) * 1000);
    out += "  workers        " + std::to_string(v.count(name(Metric::worker_loop_lag_seconds))) +
           ", largest loop lag " + lag + "\n";
    return out;
}

}  // namespace tern::ctl
