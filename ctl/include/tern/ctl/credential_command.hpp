// `ternctl credential`: mints a TURN REST API credential from the secret ternd would check it
// with. The secret comes from the command line, standard input, a secrets file or ternd's own
// config file; the last three are read by the config library's rules, so what ternctl signs
// with is byte for byte what ternd verifies with.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace tern::ctl {

// A TTL longer than this is refused without --force: it is most likely milliseconds.
inline constexpr std::int64_t max_credential_ttl = 7 * 24 * 3600;

// Runs the command on its arguments (after the word "credential"). Reads a secret given as
// `--secret -` from `in`; prints the credential to `out` and refusals to `err`. Returns the exit
// status: 0, or 2 for a mistake in the arguments or an unusable secret.
int credential_command(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                       std::ostream& err);

}  // namespace tern::ctl
