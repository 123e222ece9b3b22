#include "host_names.hpp"

#include <algorithm>
#include <cstddef>

#include "tern/config/parse.hpp"

namespace tern::config {

namespace {

// RFC 1035 §2.3.4, as RFC 6066 §3 carries DNS names in the SNI extension.
constexpr std::size_t max_host_name_bytes = 253;
constexpr std::size_t max_label_bytes = 63;

bool is_name_character(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

}  // namespace

std::string why_not_host_name(std::string_view written) {
    const std::string_view name = written.starts_with("*.") ? written.substr(2) : written;
    if (name.empty()) {
        return quote_for_message(written) +
               " has no name after the wildcard; write one, as in *.example.com";
    }
    if (written.size() > max_host_name_bytes) {
        return "too long: " + std::to_string(written.size()) + " bytes, a host name has at most " +
               std::to_string(max_host_name_bytes);
    }
    if (name.back() == '.') {
        return quote_for_message(written) +
               " ends with a dot; write the name without it (clients send it without one)";
    }
    std::size_t start = 0;
    while (start <= name.size()) {
        const auto end = std::min(name.find('.', start), name.size());
        const std::string_view label = name.substr(start, end - start);
        if (label.empty()) return quote_for_message(written) + " has an empty label";
        if (label.size() > max_label_bytes) {
            return quote_for_message(written) + " has a label longer than " +
                   std::to_string(max_label_bytes) + " bytes";
        }
        if (label.find('*') != std::string_view::npos) {
            return quote_for_message(written) +
                   ": a wildcard must be the whole leftmost label, as in *.example.com";
        }
        const auto bad = std::find_if_not(label.begin(), label.end(), is_name_character);
        if (bad != label.end()) {
            if (static_cast<unsigned char>(*bad) >= 0x80) {
                return quote_for_message(written) +
                       " is not ASCII; write an internationalized name in its xn-- form";
            }
            return quote_for_message(written) + " holds " +
                   quote_for_message(std::string(1, *bad)) +
                   "; a host name has letters, digits, hyphens and dots";
        }
        if (label.front() == '-' || label.back() == '-') {
            return quote_for_message(written) + " has a label that starts or ends with a hyphen";
        }
        start = end + 1;
    }
    return {};
}

std::string lowercase(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) {
        return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    });
    return out;
}

bool is_address_literal(std::string_view name) {
    return parse_ip_address(name).value.has_value() || name.find(':') != std::string_view::npos;
}

}  // namespace tern::config
