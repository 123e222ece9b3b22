#include "tern/server/request/fleet_messages.hpp"

#include <array>
#include <charconv>

namespace tern::server {

namespace {

constexpr std::array<std::string_view, 4> op_names = {"revoke", "unrevoke", "kill", "kill_user"};
constexpr std::size_t max_field = 4096;

// The next '\n'-terminated field of `text`, consumed; nullopt when there is no newline.
std::optional<std::string_view> next_field(std::string_view& text) {
    const auto newline = text.find('\n');
    if (newline > max_field) return std::nullopt;  // npos (no newline) too
    const auto field = text.substr(0, newline);
    text.remove_prefix(newline + 1);
    return field;
}

// A length-prefixed field "<n>:<n bytes>", consumed.
std::optional<std::string_view> counted_field(std::string_view& text) {
    const auto colon = text.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon > 5) return std::nullopt;
    if (colon > 1 && text[0] == '0') return std::nullopt;  // one spelling per length
    std::size_t n = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + colon, n);
    if (ec != std::errc() || end != text.data() + colon || n > max_field ||
        n > text.size() - colon - 1) {
        return std::nullopt;
    }
    const auto field = text.substr(colon + 1, n);
    text.remove_prefix(colon + 1 + n);
    return field;
}

// A positive number field "<digits>\n" without a leading zero, consumed.
bool positive_field(std::string_view& text, std::int64_t& value) {
    const auto field = next_field(text);
    if (!field || field->empty() || field->front() == '0') return false;
    const auto [end, ec] = std::from_chars(field->data(), field->data() + field->size(), value);
    return ec == std::errc() && end == field->data() + field->size() && value > 0;
}

}  // namespace

std::string encode_control(const ControlCommand& c) {
    std::string out(op_names[static_cast<std::size_t>(c.op)]);
    out += '\n';
    out += c.from;
    out += '\n';
    switch (c.op) {
        case ControlCommand::Op::revoke:
            out += std::to_string(c.until) + '\n' + std::to_string(c.decided) + '\n' + c.user;
            break;
        case ControlCommand::Op::unrevoke:
            out += std::to_string(c.decided) + '\n' + c.user;
            break;
        case ControlCommand::Op::kill:
            out += c.node + '\n' + c.session;
            break;
        case ControlCommand::Op::kill_user:
            out += c.user;
            break;
    }
    return out;
}

std::optional<ControlCommand> parse_control(std::string_view text) {
    ControlCommand c;
    const auto op = next_field(text);
    if (!op) return std::nullopt;
    std::size_t index = 0;
    while (index < op_names.size() && op_names[index] != *op) ++index;
    if (index == op_names.size()) return std::nullopt;
    c.op = static_cast<ControlCommand::Op>(index);
    const auto from = next_field(text);
    if (!from || from->empty()) return std::nullopt;
    c.from = std::string(*from);
    if (text.size() > max_field) return std::nullopt;
    switch (c.op) {
        case ControlCommand::Op::revoke: {
            if (!positive_field(text, c.until) || !positive_field(text, c.decided)) {
                return std::nullopt;
            }
            c.user = std::string(text);
            break;
        }
        case ControlCommand::Op::unrevoke:
            if (!positive_field(text, c.decided)) return std::nullopt;
            c.user = std::string(text);
            break;
        case ControlCommand::Op::kill: {
            const auto node = next_field(text);
            if (!node || node->empty() || text.empty()) return std::nullopt;
            c.node = std::string(*node);
            c.session = std::string(text);
            break;
        }
        case ControlCommand::Op::kill_user:
            c.user = std::string(text);
            break;
    }
    if (c.op != ControlCommand::Op::kill && c.user.empty()) return std::nullopt;
    return c;
}

std::string encode_session_line(std::string_view user, std::string_view client,
                                std::string_view json) {
    std::string out = std::to_string(user.size()) + ':';
    out += user;
    out += std::to_string(client.size()) + ':';
    out += client;
    out += json;
    return out;
}

std::optional<SessionLine> parse_session_line(std::string_view line) {
    SessionLine s;
    const auto user = counted_field(line);
    if (!user) return std::nullopt;
    const auto client = counted_field(line);
    if (!client) return std::nullopt;
    if (line.empty() || line.front() != '{' || line.back() != '}' ||
        line.find('\n') != std::string_view::npos) {
        return std::nullopt;
    }
    s.user = *user;
    s.client = *client;
    s.json = line;
    return s;
}

}  // namespace tern::server
