#include "tern/server/ops/logging.hpp"

#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>

namespace tern::server {
namespace {

void append(spdlog::memory_buf_t& dest, std::string_view s) {
    dest.append(s.data(), s.data() + s.size());
}

void append_json_string(spdlog::memory_buf_t& dest, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    dest.push_back('"');
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            dest.push_back('\\');
            dest.push_back(c);
        } else if (c == '\n') {
            append(dest, "\\n");
        } else if (u < 0x20) {
            append(dest, "\\u00");
            dest.push_back(hex[u >> 4]);
            dest.push_back(hex[u & 0xF]);
        } else {
            dest.push_back(c);
        }
    }
    dest.push_back('"');
}

// {"time":"2026-11-20T10:00:00.123Z","level":"info","msg":"..."} one object per line.
class JsonLineFormatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        const auto t = msg.time.time_since_epoch();
        const auto secs = std::chrono::duration_cast<std::chrono::seconds>(t);
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - secs).count();
        const std::time_t tt = secs.count();
        std::tm tm{};
        gmtime_r(&tt, &tm);
        char stamp[40];
        const auto len = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
        append(dest, "{\"time\":\"");
        append(dest, std::string_view(stamp, len));
        char frac[8];
        std::snprintf(frac, sizeof frac, ".%03dZ", static_cast<int>(ms));
        append(dest, frac);
        append(dest, "\",\"level\":");
        const auto level = spdlog::level::to_string_view(msg.level);
        append_json_string(dest, std::string_view(level.data(), level.size()));
        append(dest, ",\"msg\":");
        append_json_string(dest, std::string_view(msg.payload.data(), msg.payload.size()));
        append(dest, "}\n");
    }
    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<JsonLineFormatter>();
    }
};

spdlog::level::level_enum to_spdlog(config::LogLevel l) {
    switch (l) {
        case config::LogLevel::trace:
            return spdlog::level::trace;
        case config::LogLevel::debug:
            return spdlog::level::debug;
        case config::LogLevel::info:
            return spdlog::level::info;
        case config::LogLevel::warn:
            return spdlog::level::warn;
        case config::LogLevel::error:
            return spdlog::level::err;
        case config::LogLevel::critical:
            return spdlog::level::critical;
        case config::LogLevel::off:
            return spdlog::level::off;
    }
    return spdlog::level::info;
}

}  // namespace

void configure_logging(const config::Log& log) {
    auto logger = spdlog::default_logger();
    if (!logger || logger->name() != "ternd") {
        logger = std::make_shared<spdlog::logger>(
            "ternd", std::make_shared<spdlog::sinks::stderr_sink_mt>());
        spdlog::set_default_logger(logger);
    }
    if (log.format == config::LogFormat::json) {
        logger->set_formatter(std::make_unique<JsonLineFormatter>());
    } else {
        logger->set_formatter(
            std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v"));
    }
    logger->set_level(to_spdlog(log.level));
    logger->flush_on(spdlog::level::info);
}

}  // namespace tern::server
