// ternctl status: reads the Prometheus text ternd's metrics endpoint serves and turns it into a
// short summary for a human. Pure: parsing and formatting only.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tern::ctl {

struct Sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
};

// Samples of the text exposition format; comments and malformed lines are skipped.
std::vector<Sample> parse_prometheus(std::string_view text);

// The value of the sample `name` with exactly `labels`; nullopt when there is none.
std::optional<double> sample_value(const std::vector<Sample>& samples, std::string_view name,
                                   const std::vector<std::pair<std::string, std::string>>& labels);

// The summary; `healthy` is /healthz's verdict (false = draining).
std::string format_status(const std::vector<Sample>& samples, const std::string& endpoint,
                          bool healthy);

}  // namespace tern::ctl
