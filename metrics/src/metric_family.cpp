#include "tern/metrics/metric_family.hpp"

namespace tern::metrics {

std::optional<Metric> find_metric(std::string_view name) noexcept {
    for (const auto& f : metric_families) {
        if (f.name == name) return f.id;
    }
    return std::nullopt;
}

std::string_view to_string(MetricType t) noexcept {
    return t == MetricType::counter ? "counter" : "gauge";
}

}  // namespace tern::metrics
