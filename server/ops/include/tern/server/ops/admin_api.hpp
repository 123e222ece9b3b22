// The admin API's rules without sockets or workers: what a /v1/ request asks (AdminCommand) or
// the 4xx it gets instead, the bearer-token check, the limit on wrong tokens, and the JSON it
// answers with. AdminService (admin_service.hpp) carries commands out.
//
//   GET    /v1/sessions[?user=U&client=IP[:PORT]]   live allocations
//   DELETE /v1/sessions/{id}                        end one now
//   DELETE /v1/sessions?user=U                      end every one of U's now
//   GET    /v1/revocations                          revoked users and until when
//   POST   /v1/users/{user}/revoke[?until=UNIX]     refuse U's credentials, end U's allocations
//   DELETE /v1/users/{user}/revoke                  lift it
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>

#include "tern/allocation/allocation_record.hpp"
#include "tern/server/ops/metrics_endpoint.hpp"

namespace tern::server {

enum class AdminOutcome : std::uint8_t {
    ok,
    bad_request,
    unauthorized,
    rate_limited,
    not_found,
    failed,
};
inline constexpr std::array<std::string_view, 6> admin_outcome_names = {
    "ok", "bad_request", "unauthorized", "rate_limited", "not_found", "failed"};
AdminOutcome outcome_of(unsigned http_status) noexcept;

struct AdminCommand {
    enum class Kind : std::uint8_t {
        list_sessions,
        kill_session,
        kill_user,
        revoke,
        unrevoke,
        list_revocations,
    };
    Kind kind = Kind::list_sessions;
    std::string user;    // list filter, or the subject of kill_user/revoke/unrevoke
    std::string client;  // list filter: an IP, or IP:PORT as the list prints it
    std::uint64_t session = 0;
    std::string node;                   // kill_session in a fleet: the node after '@'
    std::optional<std::int64_t> until;  // revoke: unix seconds
};

// `method` and `target` as received; `body` may carry {"until": UNIX} for a revoke. A command,
// or the answer to send instead (400, 404, 405).
std::variant<AdminCommand, HttpAnswer> parse_admin_request(std::string_view method,
                                                           std::string_view target,
                                                           std::string_view body);

// Whether `authorization` is "Bearer <token>"; the comparison takes the same time wherever the
// first difference is.
bool bearer_matches(std::string_view authorization, std::string_view token) noexcept;

// Wrong tokens per source IP: after `max_failures` within `window`, that source gets 429 until
// the window ends, whatever it sends. Other sources are not locked out with it.
class AdminFailureLimiter {
public:
    static constexpr std::size_t max_failures = 10;
    static constexpr std::chrono::seconds window{60};
    static constexpr std::size_t max_sources = 1024;

    bool blocked(const std::string& source, std::chrono::steady_clock::time_point now) const;
    void failed(const std::string& source, std::chrono::steady_clock::time_point now);

private:
    struct Entry {
        std::chrono::steady_clock::time_point since;
        std::size_t failures = 0;
    };
    std::unordered_map<std::string, Entry> sources_;
};

// Session ids as the API shows them: "<worker>-<serial>" (allocation::first_allocation_id).
std::string session_id_text(std::uint64_t id);
std::optional<std::uint64_t> parse_session_id(std::string_view text) noexcept;

// JSON pieces.
std::string json_quoted(std::string_view text);
HttpAnswer json_answer(unsigned status, std::string body);
HttpAnswer json_error(unsigned status, std::string_view message);
// RFC 3339 in UTC with milliseconds: "2026-12-07T15:04:05.123Z".
std::string rfc3339(std::chrono::system_clock::time_point t);

// One allocation as a JSON object: `ended` and `reason` set for a usage record, unset for the
// session list. Steady times are turned into wall-clock ones through `steady_now`/`wall_now`.
struct WallClock {
    std::chrono::steady_clock::time_point steady_now;
    std::chrono::system_clock::time_point wall_now;
    std::chrono::system_clock::time_point wall(std::chrono::steady_clock::time_point t) const {
        return wall_now +
               std::chrono::duration_cast<std::chrono::system_clock::duration>(t - steady_now);
    }
};
// `node` set (a fleet): the object names it, and the id carries it ("0-5@turn-a").
std::string allocation_json(const allocation::AllocationRecord& r, std::string_view realm,
                            const WallClock& clock,
                            std::optional<allocation::EndReason> ended = std::nullopt,
                            std::string_view node = {});

}  // namespace tern::server
