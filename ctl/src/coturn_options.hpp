// What ternctl import-coturn knows of coturn's options that have no tern key. Private to ctl/src.
#pragma once

#include <optional>
#include <string_view>

namespace tern::ctl {

// Why `option` is not carried over, for the options tern has no counterpart of; nullopt for the
// options the importer maps and for names it does not know.
std::optional<std::string_view> unmapped_reason(std::string_view option);

}  // namespace tern::ctl
