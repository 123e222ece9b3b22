// Builds the server-side TLS context from the configured certificate chain and key (TLS 1.2+).
// Errors come back as text naming the config key, for --check-config and reload.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "tern/config/config.hpp"

namespace tern::server {

struct TlsContextResult {
    std::shared_ptr<boost::asio::ssl::context> context;  // null on error
    std::string error;
};

TlsContextResult make_tls_context(const config::TlsFiles& files);

}  // namespace tern::server
