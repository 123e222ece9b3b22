// A network namespace of the test's own, for what loopback alone cannot show: public-looking
// addresses (the default peer policy refuses loopback) and many source addresses of one IPv6
// prefix. The namespace is unnamed (unshare on a thread of the test), so nothing is left behind
// on any path: it goes when that thread, ternd and the test's sockets are gone. Needs root.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace tern::test {

// Runs `body` on a thread that first moves into a new network namespace with loopback up and
// each of `addresses` ("198.51.99.1/32", "2001:db8::1/128") added to it; sockets, ternd and
// commands started by `body` live there. Returns an empty string when it ran, else why it could
// not (for a skip). An exception from `body` is a test failure.
std::string in_private_network(const std::vector<std::string>& addresses,
                               const std::function<void()>& body);

}  // namespace tern::test
