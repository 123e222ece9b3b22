// A connection on a shared port that is not TURN, passed byte for byte and never decrypted to
// the web server behind it (edge.fallback), and the web server's bytes back. Each direction
// moves through a pipe with splice(2), so the payload never enters user space; the pipe is the
// direction's whole buffer (64 KiB), so a slow reader on either side stops the other side's
// reads (TCP back-pressure) instead of growing memory. A FIN is passed on as a FIN once the
// pipe is empty (half-close both ways); the connection ends when both directions have, on any
// error, or after edge.fallback_idle_timeout without a byte. Private to server/io.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <vector>

#include "tern/allocation/ip_key.hpp"
#include "tern/server/io/stream_listener.hpp"
#include "tern/server/request/connection_quota.hpp"
#include "tern/server/request/packet_context.hpp"

namespace tern::server {

// Connects to `route.upstream` and starts passing. `first_bytes` were read from `client` while
// sorting it and go first (after the PROXY v2 header when route.proxy_v2: the client's address
// from `context.source`, the address it reached from `context.local`). `slot` is the
// connection's key in `quota` (may be null), given back when it ends.
void start_fallback_pump(boost::asio::ip::tcp::socket client, std::vector<std::uint8_t> first_bytes,
                         const PacketContext& context, const FallbackRoute& route,
                         ConnectionQuota* quota, allocation::IpKey slot, StreamCounters* counters);

}  // namespace tern::server
