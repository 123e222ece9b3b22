// What nodes tell each other through the store, as text: operator commands on the control
// channel, and the lines of a node's session snapshot. Pure; the parsers take any bytes another
// process wrote (fuzz/fleet_messages.cpp) and refuse what they do not read exactly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tern::server {

// One operator command, issued on node `from` and applied by every node (the issuer too, but
// locally, before it publishes).
struct ControlCommand {
    enum class Op : std::uint8_t { revoke, unrevoke, kill, kill_user };
    Op op = Op::revoke;
    std::string from;          // node id of the issuer
    std::string user;          // revoke, unrevoke, kill_user
    std::int64_t until = 0;    // revoke: unix seconds
    std::int64_t decided = 0;  // revoke, unrevoke: when, in unix milliseconds (the later wins)
    std::string node;          // kill: the node holding the session
    std::string session;       // kill: its local id "W-N"
    friend bool operator==(const ControlCommand&, const ControlCommand&) = default;
};

// Lines "op\nfrom\n...": a user name, which may hold any byte, is always the last field.
std::string encode_control(const ControlCommand& command);
std::optional<ControlCommand> parse_control(std::string_view text);

// One session of a snapshot: the fields a listing filters on, then the JSON object the admin
// API prints, as "<bytes>:<user><bytes>:<client><json>" (the JSON holds no raw newline, so a
// snapshot is these lines joined by '\n').
struct SessionLine {
    std::string_view user;
    std::string_view client;  // "ip:port"
    std::string_view json;
};
std::string encode_session_line(std::string_view user, std::string_view client,
                                std::string_view json);
std::optional<SessionLine> parse_session_line(std::string_view line);

}  // namespace tern::server
