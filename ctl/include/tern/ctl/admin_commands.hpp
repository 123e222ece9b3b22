// ternctl's operator commands over ternd's admin API (/v1/ on metrics.listen): sessions, kill,
// revoke, unrevoke. The endpoint and the bearer token come from ternd's config file (--config,
// default /etc/tern/tern.yaml): metrics.listen and admin.token_file, read as ternd reads them.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tern::ctl {

inline constexpr std::string_view default_config_path = "/etc/tern/tern.yaml";

// Each runs on the arguments after its command word, prints to `out`, refusals and errors to
// `err`, and returns the exit status: 0, 1 when ternd refused or could not be reached, 2 for a
// mistake in the arguments or the config.
int sessions_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int kill_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int revoke_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int unrevoke_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// metrics.listen of ternd's config at `config_path` as "host:port" reachable from this host (a
// wildcard listener on loopback); nullopt, with the reason on `err`, when it cannot be read.
std::optional<std::string> metrics_endpoint_of(const std::string& config_path, std::ostream& err);

// GET /v1/sessions's JSON as a table, one session a line (the server writes one object a line).
std::string format_sessions(std::string_view json);

}  // namespace tern::ctl
