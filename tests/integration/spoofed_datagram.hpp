// UDP datagrams with a source address the test chooses (a raw socket writing its own IPv4
// header), for attacks that forge where a request comes from. Needs root (CAP_NET_RAW); meant
// for a private network namespace (private_network.hpp), never for a real interface.
#pragma once

#include "support.hpp"

namespace tern::test {

// Sends `payload` from `from` to `to`, both IPv4; false when the raw socket cannot be opened or
// the datagram was not sent.
bool send_spoofed_udp(const TransportAddress& from, const TransportAddress& to,
                      const Bytes& payload);

}  // namespace tern::test
