#include "tern/server/ops/admin_api.hpp"

#include <fmt/format.h>

#include <charconv>
#include <ctime>
#include <vector>

namespace tern::server {

namespace {

using Kind = AdminCommand::Kind;

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// %XX decoded ('+' too in a query); nullopt for a broken escape or a control character, which
// no user name or address holds and which would break the state file's lines.
std::optional<std::string> percent_decoded(std::string_view text, bool query) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '%') {
            if (i + 2 >= text.size()) return std::nullopt;
            const int hi = hex_value(text[i + 1]);
            const int lo = hex_value(text[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            c = static_cast<char>(hi * 16 + lo);
            i += 2;
        } else if (query && c == '+') {
            c = ' ';
        }
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return std::nullopt;
        out += c;
    }
    return out;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
    std::vector<std::string_view> parts;
    while (true) {
        const auto at = text.find(separator);
        parts.push_back(text.substr(0, at));
        if (at == std::string_view::npos) return parts;
        text.remove_prefix(at + 1);
    }
}

std::optional<std::int64_t> parse_int64(std::string_view text) noexcept {
    std::int64_t value = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size()) return std::nullopt;
    return value;
}

// {"until": 1765000000} and nothing else (whitespace aside); an empty body is no until.
std::variant<std::optional<std::int64_t>, HttpAnswer> until_of_body(std::string_view body) {
    const auto trim = [](std::string_view s) {
        while (!s.empty() &&
               (s.front() == ' ' || s.front() == '\n' || s.front() == '\r' || s.front() == '\t'))
            s.remove_prefix(1);
        while (!s.empty() &&
               (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' || s.back() == '\t'))
            s.remove_suffix(1);
        return s;
    };
    body = trim(body);
    if (body.empty() || body == "{}") return std::optional<std::int64_t>{};
    constexpr std::string_view bad = R"(the body must be {"until": <unix seconds>} or empty)";
    if (body.front() != '{' || body.back() != '}') return json_error(400, bad);
    body = trim(body.substr(1, body.size() - 2));
    constexpr std::string_view key = "\"until\"";
    if (!body.starts_with(key)) return json_error(400, bad);
    body = trim(body.substr(key.size()));
    if (body.empty() || body.front() != ':') return json_error(400, bad);
    const auto value = parse_int64(trim(body.substr(1)));
    if (!value) return json_error(400, bad);
    return std::optional<std::int64_t>{*value};
}

HttpAnswer method_not_allowed(std::string_view allowed) {
    return json_error(405, fmt::format("use {}", allowed));
}

}  // namespace

AdminOutcome outcome_of(unsigned http_status) noexcept {
    if (http_status < 300) return AdminOutcome::ok;
    if (http_status == 401) return AdminOutcome::unauthorized;
    if (http_status == 429) return AdminOutcome::rate_limited;
    if (http_status == 404) return AdminOutcome::not_found;
    if (http_status < 500) return AdminOutcome::bad_request;
    return AdminOutcome::failed;
}

std::variant<AdminCommand, HttpAnswer> parse_admin_request(std::string_view method,
                                                           std::string_view target,
                                                           std::string_view body) {
    std::string_view query;
    if (const auto q = target.find('?'); q != std::string_view::npos) {
        query = target.substr(q + 1);
        target = target.substr(0, q);
    }
    AdminCommand command;
    std::optional<std::string> until_text;
    if (!query.empty()) {
        for (const auto pair : split(query, '&')) {
            const auto eq = pair.find('=');
            const auto name = pair.substr(0, eq);
            const auto value =
                percent_decoded(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
            if (!value)
                return json_error(400, fmt::format("bad escape in query parameter {}", name));
            if (name == "user") {
                command.user = *value;
            } else if (name == "client") {
                command.client = *value;
            } else if (name == "until") {
                until_text = *value;
            } else {
                return json_error(400, fmt::format("unknown query parameter {}", name));
            }
        }
    }
    const auto parts = split(target, '/');  // "", "v1", ...
    if (parts.size() < 3 || !parts[0].empty() || parts[1] != "v1") {
        return json_error(404, "not found: see /v1/sessions, /v1/users/{user}/revoke");
    }
    if (parts[2] == "sessions" && parts.size() == 3) {
        if (method == "GET" || method == "HEAD") {
            command.kind = Kind::list_sessions;
            return command;
        }
        if (method == "DELETE") {
            if (command.user.empty()) {
                return json_error(400,
                                  "DELETE /v1/sessions needs ?user=NAME (or use /v1/sessions/ID)");
            }
            command.kind = Kind::kill_user;
            return command;
        }
        return method_not_allowed("GET or DELETE");
    }
    if (parts[2] == "sessions" && parts.size() == 4) {
        if (method != "DELETE") return method_not_allowed("DELETE");
        // "0-17", or "0-17@turn-b" in a fleet.
        const auto decoded = percent_decoded(parts[3], false);
        if (!decoded) return json_error(404, "no such session: ids look like 0-17");
        const std::string_view text = *decoded;
        const auto at = text.find('@');
        const auto id = parse_session_id(text.substr(0, at));
        if (!id) return json_error(404, "no such session: ids look like 0-17");
        command.kind = Kind::kill_session;
        command.session = *id;
        if (at != std::string_view::npos) {
            command.node = std::string(text.substr(at + 1));
            if (command.node.empty()) return json_error(404, "no such session: no node after @");
        }
        return command;
    }
    if (parts[2] == "revocations" && parts.size() == 3) {
        if (method != "GET" && method != "HEAD") return method_not_allowed("GET");
        command.kind = Kind::list_revocations;
        return command;
    }
    if (parts[2] == "users" && parts.size() == 5 && parts[4] == "revoke") {
        const auto user = percent_decoded(parts[3], false);
        if (!user || user->empty())
            return json_error(400, "the user name is empty or badly escaped");
        command.user = *user;
        if (method == "DELETE") {
            command.kind = Kind::unrevoke;
            return command;
        }
        if (method != "POST") return method_not_allowed("POST or DELETE");
        command.kind = Kind::revoke;
        if (until_text) {
            command.until = parse_int64(*until_text);
            if (!command.until) return json_error(400, "until must be unix seconds");
        } else {
            auto from_body = until_of_body(body);
            if (auto* answer = std::get_if<HttpAnswer>(&from_body)) return std::move(*answer);
            command.until = std::get<std::optional<std::int64_t>>(from_body);
        }
        return command;
    }
    return json_error(404, "not found: see /v1/sessions, /v1/users/{user}/revoke");
}

bool bearer_matches(std::string_view authorization, std::string_view token) noexcept {
    constexpr std::string_view scheme = "bearer";
    if (token.empty() || authorization.size() != scheme.size() + 1 + token.size()) return false;
    unsigned char difference = 0;
    for (std::size_t i = 0; i < scheme.size(); ++i) {
        // RFC 7235 §2.1: the scheme is case-insensitive. Only a letter's two cases give a
        // lower-case letter once the 0x20 bit is set.
        const auto a = static_cast<unsigned char>(authorization[i]);
        difference |=
            static_cast<unsigned char>((a | 0x20) ^ static_cast<unsigned char>(scheme[i]));
    }
    difference |= static_cast<unsigned char>(authorization[scheme.size()] ^ ' ');
    for (std::size_t i = 0; i < token.size(); ++i) {
        difference |= static_cast<unsigned char>(authorization[scheme.size() + 1 + i] ^ token[i]);
    }
    return difference == 0;
}

bool AdminFailureLimiter::blocked(const std::string& source,
                                  std::chrono::steady_clock::time_point now) const {
    const auto it = sources_.find(source);
    return it != sources_.end() && now - it->second.since < window &&
           it->second.failures >= max_failures;
}

void AdminFailureLimiter::failed(const std::string& source,
                                 std::chrono::steady_clock::time_point now) {
    if (sources_.size() >= max_sources && !sources_.contains(source)) {
        std::erase_if(sources_, [now](const auto& e) { return now - e.second.since >= window; });
        if (sources_.size() >= max_sources) sources_.clear();  // a flood of sources: start over
    }
    auto& entry = sources_[source];
    if (entry.failures == 0 || now - entry.since >= window) entry = Entry{now, 0};
    ++entry.failures;
}

std::string session_id_text(std::uint64_t id) {
    constexpr std::uint64_t serial_mask =
        (std::uint64_t{1} << allocation::allocation_id_worker_shift) - 1;
    return fmt::format("{}-{}", allocation::worker_of_allocation(id), id & serial_mask);
}

std::optional<std::uint64_t> parse_session_id(std::string_view text) noexcept {
    const auto dash = text.find('-');
    if (dash == std::string_view::npos) return std::nullopt;
    const auto worker = parse_int64(text.substr(0, dash));
    const auto serial = parse_int64(text.substr(dash + 1));
    if (!worker || !serial || *worker < 0 || *worker >= 65536 || *serial <= 0 ||
        *serial >= (std::int64_t{1} << allocation::allocation_id_worker_shift)) {
        return std::nullopt;
    }
    return (static_cast<std::uint64_t>(*worker) << allocation::allocation_id_worker_shift) |
           static_cast<std::uint64_t>(*serial);
}

std::string json_quoted(std::string_view text) {
    std::string out = "\"";
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (byte < 0x20 || byte == 0x7F) {
            out += fmt::format("\\u{:04x}", byte);
        } else {
            out += c;
        }
    }
    out += '"';
    return out;
}

HttpAnswer json_answer(unsigned status, std::string body) {
    body += '\n';
    return HttpAnswer{status, "application/json", std::move(body)};
}

HttpAnswer json_error(unsigned status, std::string_view message) {
    return json_answer(status, "{\"error\": " + json_quoted(message) + "}");
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900,
                       utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, ms % 1000);
}

std::string allocation_json(const allocation::AllocationRecord& r, std::string_view realm,
                            const WallClock& clock, std::optional<allocation::EndReason> ended,
                            std::string_view node) {
    std::string relayed = "[";
    for (std::size_t i = 0; i < r.relays.size(); ++i) {
        if (i != 0) relayed += ", ";
        relayed += json_quoted(r.relays[i].to_string());
    }
    relayed += "]";
    const auto started = clock.wall(r.started);
    // In a fleet an id names its node too, so any node can end it.
    std::string id = session_id_text(r.id);
    std::string out = "{";
    if (!node.empty()) {
        id += '@';
        id += node;
        out += "\"node\": " + json_quoted(node) + ", ";
    }
    out += fmt::format(
        R"("id": {}, "user": {}, "realm": {}, "client": {}, "transport": {}, "relayed": {}, )"
        R"("started": {}, )",
        json_quoted(id), json_quoted(r.username), json_quoted(realm),
        json_quoted(r.tuple.client.unmapped().to_string()),
        json_quoted(protocol::to_string(r.tuple.transport)), relayed,
        json_quoted(rfc3339(started)));
    if (ended) {
        const double seconds = std::chrono::duration<double>(clock.wall_now - started).count();
        out += fmt::format(R"("ended": {}, "duration_seconds": {:.3f}, "reason": {}, )",
                           json_quoted(rfc3339(clock.wall_now)), seconds > 0 ? seconds : 0.0,
                           json_quoted(allocation::name_of(*ended)));
    } else {
        out += fmt::format(R"("expires": {}, )", json_quoted(rfc3339(clock.wall(r.expires))));
    }
    out += fmt::format(
        R"("permissions": {}, "channels": {}, "bytes_to_peer": {}, "packets_to_peer": {}, )"
        R"("bytes_to_client": {}, "packets_to_client": {}}})",
        r.permissions, r.channels, r.usage.bytes_to_peer, r.usage.packets_to_peer,
        r.usage.bytes_to_client, r.usage.packets_to_client);
    return out;
}

}  // namespace tern::server
