// spdlog setup for ternd: human text or one JSON object per line, on stderr (journald picks it
// up). Never used per packet at info level.
#pragma once

#include "tern/config/config.hpp"

namespace tern::server {

void configure_logging(const config::Log& log);

}  // namespace tern::server
