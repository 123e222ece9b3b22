// What a reload changes, in words for the log: "limits.max_allocations 100 -> 50", "tls",
// "auth.secrets (2 -> 3)". Pure; secrets and passwords are never shown, only counted.
#pragma once

#include <string>
#include <vector>

#include "tern/config/config.hpp"

namespace tern::config {

// Each changed key or section once, in file-schema order; empty when nothing changed. Values
// are shown for single numbers and words, the key alone for lists, maps and files.
std::vector<std::string> describe_changes(const Config& before, const Config& after);

}  // namespace tern::config
