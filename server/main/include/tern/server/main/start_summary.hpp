// What ternd tells the operator once at start, so a log shows what this process serves: the
// realm, how many credentials, each certificate's subject and expiry, the advertised relay
// addresses and the peer-policy exceptions.
#pragma once

#include <string>
#include <vector>

#include "tern/config/config.hpp"

namespace tern::server {

// One line per IP family: "relay ipv4: bound on 10.0.0.5, advertised as 203.0.113.7, ports
// 49152-65535" ("bound on the address each client reached" without relay.addresses).
std::vector<std::string> relay_address_lines(const config::Config& config);

// "start: realm example.org, 2 secrets, 1 static user, certificate tls CN=... expires ...,
// relay ipv4 10.0.0.5 -> 203.0.113.7, ...". `generated_secret`: the one secret is ternd's own.
std::string start_summary(const config::Config& config, bool generated_secret);

}  // namespace tern::server
