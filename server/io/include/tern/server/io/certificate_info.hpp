// What an operator needs to know about a certificate at start: whose it is and when it
// expires. Reads the first certificate of a PEM chain; no context, no key.
#pragma once

#include <string>

namespace tern::server {

struct CertificateInfo {
    std::string subject;    // RFC 2253: "CN=turn.example.org,O=Example"
    std::string not_after;  // "2027-03-01T12:00:00Z"
    std::string error;      // set instead of the two above when the file cannot be read
};

CertificateInfo read_certificate_info(const std::string& pem_path);

}  // namespace tern::server
