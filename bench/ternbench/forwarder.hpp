// The reference limit: a bare UDP forwarder doing the kernel work of ChannelData relaying and
// nothing else (recvmmsg/sendmmsg, strip or prepend 4 bytes, one socket per client).
#pragma once

#include "turn_messages.hpp"

namespace ternbench {

// Runs until SIGTERM or SIGINT; returns the process exit code.
int run_forwarder(const TransportAddress& listen, const TransportAddress& peer);

}  // namespace ternbench
