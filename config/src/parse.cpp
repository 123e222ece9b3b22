// Text forms of addresses, listeners, CIDRs and port ranges, with messages that say what is
// wrong. Address bytes come from protocol::TransportAddress so that the config and the wire
// agree on what an address is; this file adds the operator-facing diagnostics.
#include <algorithm>
#include <cstdio>

#include "host_names.hpp"
#include "tern/config/config.hpp"
#include "tern/config/parse.hpp"

namespace tern::config {

namespace {

constexpr std::uint32_t max_port = 65535;

bool is_decimal(std::string_view text) {
    return !text.empty() &&
           std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Digits only; values beyond `limit` come back as limit + 1 so callers can say "too large"
// without overflowing on a long digit string.
std::uint32_t decimal_value(std::string_view digits, std::uint32_t limit) {
    std::uint64_t value = 0;
    for (char c : digits) {
        value = value * 10 + static_cast<std::uint64_t>(c - '0');
        if (value > limit) return limit + 1;
    }
    return static_cast<std::uint32_t>(value);
}

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t");
    if (first == std::string_view::npos) return {};
    const auto last = text.find_last_not_of(" \t");
    return text.substr(first, last - first + 1);
}

std::string port_range_text(std::uint32_t lowest) {
    if (lowest == 0) return "1-65535 (or 0 to let the kernel choose)";
    return std::to_string(lowest) + "-65535";
}

Parsed<std::uint16_t> parse_port(std::string_view text, std::uint32_t lowest) {
    if (text.empty()) return Parsed<std::uint16_t>::fail("missing port number");
    if (!is_decimal(text)) {
        return Parsed<std::uint16_t>::fail(quote_for_message(text) + " is not a port number");
    }
    const std::uint32_t value = decimal_value(text, max_port);
    if (value > max_port || value < lowest) {
        return Parsed<std::uint16_t>::fail("port " + escape_for_message(text, 16) +
                                           " is out of range " + port_range_text(lowest));
    }
    return Parsed<std::uint16_t>::ok(static_cast<std::uint16_t>(value));
}

std::size_t address_bits(const TransportAddress& address) {
    return address.family == protocol::AddressFamily::ipv4 ? 32 : 128;
}

}  // namespace

std::string escape_for_message(std::string_view text, std::size_t max_bytes) {
    std::string out;
    for (std::size_t i = 0; i < text.size() && i < max_bytes; ++i) {
        const auto byte = static_cast<unsigned char>(text[i]);
        if (byte < 0x20 || byte == 0x7F) {
            char escaped[5];
            std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
            out += escaped;
        } else {
            out += static_cast<char>(byte);
        }
    }
    if (text.size() > max_bytes) out += "...";
    return out;
}

std::string_view trim_blanks(std::string_view text) noexcept {
    constexpr std::string_view blanks = " \t\r\v\f";
    const auto first = text.find_first_not_of(blanks);
    if (first == std::string_view::npos) return {};
    return text.substr(first, text.find_last_not_of(blanks) - first + 1);
}

std::string quote_for_message(std::string_view text) {
    // Appended piecewise: g++ 12 raises a false -Wrestrict on "'" + std::string&&.
    std::string out(1, '\'');
    out += escape_for_message(text);
    out += '\'';
    return out;
}

Parsed<TransportAddress> parse_ip_address(std::string_view text) {
    using Result = Parsed<TransportAddress>;
    if (text.empty()) return Result::fail("empty address");
    if (auto address = TransportAddress::parse_ip(text)) {
        address->port = 0;
        return Result::ok(*address);
    }
    if (text.front() == '[') {
        return Result::fail(quote_for_message(text) + " is not a bracketed IPv6 address");
    }
    // Say why the most common near-misses fail rather than just "not an address".
    const auto colon = text.rfind(':');
    if (colon != std::string_view::npos && text.find(':') == colon &&
        TransportAddress::parse_ip(text.substr(0, colon))) {
        return Result::fail(quote_for_message(text) + " has a port; expected an address alone");
    }
    return Result::fail(quote_for_message(text) +
                        " is not an IPv4 or IPv6 address (host names are not accepted)");
}

Parsed<TransportAddress> parse_socket_address(std::string_view text, std::uint16_t lowest_port) {
    using Result = Parsed<TransportAddress>;
    std::string_view host;
    std::string_view port_text;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) {
            return Result::fail("missing ']' after the IPv6 address in " + quote_for_message(text));
        }
        host = text.substr(0, close + 1);
        const auto rest = text.substr(close + 1);
        if (rest.empty()) return Result::fail("missing port in " + quote_for_message(text));
        if (rest.front() != ':') {
            return Result::fail("unexpected " + quote_for_message(rest) + " after " +
                                quote_for_message(host));
        }
        port_text = rest.substr(1);
    } else {
        const auto colon = text.find(':');
        if (colon == std::string_view::npos) {
            return Result::fail("missing port in " + quote_for_message(text) +
                                " (expected ip:port)");
        }
        if (text.find(':', colon + 1) != std::string_view::npos) {
            return Result::fail("IPv6 addresses need brackets, e.g. [2001:db8::1]:3478; got " +
                                quote_for_message(text));
        }
        host = text.substr(0, colon);
        port_text = text.substr(colon + 1);
    }
    auto address = parse_ip_address(host);
    if (!address.value) return address;
    const auto port = parse_port(port_text, lowest_port);
    if (!port.value) return Result::fail(port.error);
    address.value->port = *port.value;
    return address;
}

Parsed<Listener> parse_listener_url(std::string_view text) {
    using Result = Parsed<Listener>;
    const auto separator = text.find("://");
    if (separator == std::string_view::npos) {
        return Result::fail("expected scheme://address:port such as udp://0.0.0.0:3478, got " +
                            quote_for_message(text));
    }
    const auto scheme = text.substr(0, separator);
    Listener listener;
    if (const auto transport = protocol::parse_transport(scheme)) {
        listener.transport = *transport;
    } else {
        return Result::fail("unknown scheme " + quote_for_message(scheme) +
                            " (expected udp, tcp or tls)");
    }
    auto address = parse_socket_address(text.substr(separator + 3), 0);
    if (!address.value) return Result::fail(address.error);
    listener.address = *address.value;
    return Result::ok(listener);
}

Parsed<Cidr> parse_cidr(std::string_view text) {
    using Result = Parsed<Cidr>;
    const auto slash = text.find('/');
    auto address = parse_ip_address(text.substr(0, slash));
    if (!address.value) return Result::fail(address.error);
    const std::size_t bits = address_bits(*address.value);
    std::size_t prefix_length = bits;
    if (slash != std::string_view::npos) {
        const auto prefix_text = text.substr(slash + 1);
        if (!is_decimal(prefix_text)) {
            return Result::fail(quote_for_message(prefix_text) + " is not a prefix length in " +
                                quote_for_message(text));
        }
        prefix_length = decimal_value(prefix_text, 128);
        if (prefix_length > bits) {
            return Result::fail("prefix length " + escape_for_message(prefix_text, 16) +
                                " is too long for " + (bits == 32 ? "IPv4" : "IPv6") +
                                " (at most " + std::to_string(bits) + ") in " +
                                quote_for_message(text));
        }
    }
    if (protocol::mask_address(*address.value, prefix_length) != *address.value) {
        return Result::fail(quote_for_message(text) + " has host bits set; did you mean " +
                            Cidr{protocol::mask_address(*address.value, prefix_length),
                                 static_cast<std::uint8_t>(prefix_length)}
                                .to_string() +
                            "?");
    }
    return Result::ok(Cidr::covering(*address.value, prefix_length));
}

Parsed<PortRange> parse_relay_port_range(std::string_view text) {
    using Result = Parsed<PortRange>;
    const auto dash = text.find('-');
    if (dash == std::string_view::npos) {
        return Result::fail("expected a port range such as 49152-65535, got " +
                            quote_for_message(text));
    }
    const auto first = parse_port(trim(text.substr(0, dash)), 1);
    const auto last = parse_port(trim(text.substr(dash + 1)), 1);
    // An inverted range is the likelier mistake when both ends are plain numbers, so name it
    // before complaining that one end is too low.
    if (first.value && last.value && *first.value > *last.value) {
        return Result::fail("first port " + std::to_string(*first.value) + " > last " +
                            std::to_string(*last.value));
    }
    if (!first.value) return Result::fail(first.error);
    if (!last.value) return Result::fail(last.error);
    if (*first.value < min_relay_port) {
        return Result::fail("first port " + std::to_string(*first.value) + " is below " +
                            std::to_string(min_relay_port) +
                            "; relay ports must not be privileged ports");
    }
    const std::uint32_t count = std::uint32_t{*last.value} - *first.value + 1;
    if (count < min_relay_port_count) {
        return Result::fail("the range holds " + std::to_string(count) + " port; at least " +
                            std::to_string(min_relay_port_count) + " are needed");
    }
    return Result::ok(PortRange{*first.value, *last.value});
}

namespace {

constexpr std::uint16_t default_redis_port = 6379;
// RFC 1035 §2.3.4; a longer name can never resolve.
constexpr std::size_t max_redis_host_bytes = 253;

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// %XX escapes decoded (RFC 3986 §2.1), so that a password may hold '@', '/' or ':'; nullopt
// for a '%' without two hex digits after it, and for %00, which AUTH cannot carry.
std::optional<std::string> percent_decoded(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        if (i + 2 >= text.size()) return std::nullopt;
        const int high = hex_digit(text[i + 1]);
        const int low = hex_digit(text[i + 2]);
        if (high < 0 || low < 0 || (high == 0 && low == 0)) return std::nullopt;
        out += static_cast<char>(high * 16 + low);
        i += 2;
    }
    return out;
}

// Why `name` (lowercased) cannot be a Redis host name; empty when it can. Looser than SNI
// names: the resolver also finds names with '_' (container and /etc/hosts names often have
// one), and one label ("redis") is a normal service name.
std::string why_not_redis_host(std::string_view name) {
    if (name.size() > max_redis_host_bytes) {
        return "the host name is longer than " + std::to_string(max_redis_host_bytes) + " bytes";
    }
    bool digits_only = true;
    std::size_t start = 0;
    while (start <= name.size()) {
        const auto end = std::min(name.find('.', start), name.size());
        const std::string_view label = name.substr(start, end - start);
        if (label.empty()) return quote_for_message(name) + " has an empty label";
        for (char c : label) {
            const bool digit = c >= '0' && c <= '9';
            if (!digit && !(c >= 'a' && c <= 'z') && c != '-' && c != '_') {
                return quote_for_message(name) + " holds " + quote_for_message(std::string(1, c)) +
                       "; a host name has letters, digits, '-', '_' and dots";
            }
            digits_only = digits_only && digit;
        }
        start = end + 1;
    }
    if (digits_only) return quote_for_message(name) + " is not an IPv4 address";
    return {};
}

}  // namespace

std::string masked_redis_url(std::string_view text) {
    const auto separator = text.find("://");
    const std::size_t start = separator == std::string_view::npos ? 0 : separator + 3;
    // The last '@': a password may hold '@' (and '/'), a host, port or db never does.
    const auto at = text.rfind('@');
    if (at == std::string_view::npos || at < start) return std::string(text);
    const auto colon = text.find(':', start);
    const std::size_t secret = colon < at ? colon + 1 : start;
    std::string out(text.substr(0, secret));
    out += "***";
    out += text.substr(at);
    return out;
}

Parsed<RedisEndpoint> parse_redis_url(std::string_view text) {
    using Result = Parsed<RedisEndpoint>;
    const std::string shown = quote_for_message(masked_redis_url(text));
    const auto separator = text.find("://");
    if (separator == std::string_view::npos) {
        return Result::fail(
            "expected redis://host[:port][/db] such as redis://10.0.0.5:6379, got " + shown);
    }
    const std::string scheme = lowercase(text.substr(0, separator));
    if (scheme == "rediss") {
        return Result::fail(
            "rediss:// (Redis over TLS) is not supported: hiredis 0.14 has no TLS; point "
            "redis:// at a local TLS tunnel (stunnel, spiped) instead, see docs/deployment.md");
    }
    if (scheme != "redis") {
        return Result::fail("unknown scheme " + quote_for_message(scheme) +
                            " (expected redis://), in " + shown);
    }
    RedisEndpoint endpoint;
    std::string_view rest = text.substr(separator + 3);
    if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
        const std::string_view user_info = rest.substr(0, at);
        rest = rest.substr(at + 1);
        const auto colon = user_info.find(':');
        if (colon == std::string_view::npos) {
            // Might be a password written without its ':', so it is not shown.
            return Result::fail(
                "the part before '@' has no ':'; write redis://:password@host for a password "
                "alone, or redis://user:password@host");
        }
        auto username = percent_decoded(user_info.substr(0, colon));
        if (!username) {
            return Result::fail(
                "the user name has a bad %-escape (expected %XX, two hex digits, "
                "not %00), in " +
                shown);
        }
        auto password = percent_decoded(user_info.substr(colon + 1));
        if (!password) {
            return Result::fail(
                "the password has a bad %-escape (expected %XX, two hex digits, "
                "not %00), in " +
                shown);
        }
        if (password->empty()) {
            return Result::fail(
                "the password after ':' is empty; leave out the part up to '@' "
                "for a Redis without AUTH, in " +
                shown);
        }
        endpoint.username = std::move(*username);
        endpoint.password = std::move(*password);
    }
    if (rest.find_first_of("?#") != std::string_view::npos) {
        return Result::fail("URL parameters ('?', '#') are not supported, in " + shown);
    }
    const auto slash = rest.find('/');
    const std::string_view host_port = rest.substr(0, slash);
    if (slash != std::string_view::npos) {
        // "redis://host/" is db 0, as in redis-cli.
        const std::string_view db = rest.substr(slash + 1);
        if (!db.empty()) {
            // Redis has 16 databases unless its `databases` says otherwise, so any u32 goes.
            constexpr std::uint32_t max_db = 0xFFFFFFFEu;  // decimal_value's limit + 1 must fit
            const std::uint32_t number = is_decimal(db) ? decimal_value(db, max_db) : max_db + 1;
            if (number > max_db) {
                return Result::fail("database " + quote_for_message(db) +
                                    " is not a number such as /0, in " + shown);
            }
            endpoint.db = number;
        }
    }
    if (host_port.empty()) return Result::fail("missing host in " + shown);
    std::string_view port_text;
    bool port_given = false;
    if (host_port.front() == '[') {
        const auto close = host_port.find(']');
        if (close == std::string_view::npos) {
            return Result::fail("missing ']' after the IPv6 address in " + shown);
        }
        const auto address = TransportAddress::parse_ip(host_port.substr(1, close - 1));
        if (!address || address->family != protocol::AddressFamily::ipv6) {
            return Result::fail(quote_for_message(host_port.substr(0, close + 1)) +
                                " is not a bracketed IPv6 address");
        }
        endpoint.host = address->ip_string();
        const std::string_view after = host_port.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') {
                return Result::fail("unexpected " + quote_for_message(after) + " after " +
                                    quote_for_message(host_port.substr(0, close + 1)));
            }
            port_text = after.substr(1);
            port_given = true;
        }
    } else {
        const auto colon = host_port.find(':');
        if (colon != std::string_view::npos &&
            host_port.find(':', colon + 1) != std::string_view::npos) {
            return Result::fail(
                "IPv6 addresses need brackets, e.g. redis://[2001:db8::5]:6379; got " + shown);
        }
        const std::string_view host = host_port.substr(0, colon);
        if (colon != std::string_view::npos) {
            port_text = host_port.substr(colon + 1);
            port_given = true;
        }
        if (host.empty()) return Result::fail("missing host in " + shown);
        if (const auto address = TransportAddress::parse_ip(host)) {
            endpoint.host = address->ip_string();
        } else {
            std::string name = lowercase(host);
            if (auto why = why_not_redis_host(name); !why.empty()) return Result::fail(why);
            endpoint.host = std::move(name);
        }
    }
    endpoint.port = default_redis_port;
    if (port_given) {
        const auto port = parse_port(port_text, 1);
        if (!port.value) return Result::fail(port.error + " in " + shown);
        endpoint.port = *port.value;
    }
    return Result::ok(std::move(endpoint));
}

}  // namespace tern::config
