// libFuzzer target: ClientHelloReader fed the input whole and fed growing prefixes one byte at
// a time must reach the same verdict at the same place with the same results, and what it
// reports must hold up (lengths inside the input, names in their alphabet, routing total).
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "tern/edge/client_hello.hpp"
#include "tern/edge/port_sharing.hpp"

namespace {

using namespace tern::edge;

void require(bool condition) {
    if (!condition) __builtin_trap();
}

bool valid_name(std::string_view name) {
    if (name.empty() || name.size() > max_server_name_bytes) return false;
    if (name.front() == '.' || name.back() == '.') return false;
    for (const char c : name) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) {
            return false;
        }
    }
    return name.find("..") == std::string_view::npos;
}

// Two readers of about 17 KiB each: kept out of the stack frame and reused.
ClientHelloReader whole;
ClientHelloReader bytewise;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> input(data, size);
    whole.reset();
    const HelloStatus verdict = whole.parse(input);
    if (verdict == HelloStatus::need_more) require(size < max_hello_prefix_bytes);

    bytewise.reset();
    HelloStatus status = HelloStatus::need_more;
    std::size_t decided_at = 0;
    for (std::size_t n = 0; n <= size && status == HelloStatus::need_more; ++n) {
        status = bytewise.parse(input.first(n));
        decided_at = n;
    }
    require(status == verdict);
    // A verdict is final: more bytes, or none, do not change it.
    require(bytewise.parse(input) == verdict);
    require(bytewise.parse({}) == verdict);

    if (verdict != HelloStatus::complete) {
        require(whole.length() == 0 && !whole.has_server_name() && !whole.offers_alpn());
        return 0;
    }
    // Complete exactly when the last record carrying the hello ends.
    require(whole.length() == decided_at && bytewise.length() == decided_at);
    require(whole.length() <= size);
    require(whole.has_server_name() == bytewise.has_server_name());
    require(whole.server_name() == bytewise.server_name());
    require(whole.server_name_valid() == !whole.server_name().empty());
    if (whole.server_name_valid()) require(whole.has_server_name());
    if (whole.server_name_valid()) require(valid_name(whole.server_name()));
    require(whole.offers_alpn() == bytewise.offers_alpn());
    require(whole.alpn_count() == bytewise.alpn_count());
    require(whole.alpn_count() <= max_alpn_protocols);
    require(whole.offers_alpn() == (whole.alpn_count() > 0));
    for (std::size_t i = 0; i < whole.alpn_count(); ++i) {
        const std::string_view name = whole.alpn_protocol(i);
        require(!name.empty() && name == bytewise.alpn_protocol(i));
        require(whole.offers(name));
    }
    require(whole.alpn_protocol(whole.alpn_count()).empty());

    // Routing is total and follows its first rule.
    static const std::array<std::string, 2> names{"turn.example.com", "*.example.net"};
    const TlsDestination destination = route(whole, names);
    if (whole.offers(alpn_turn) || whole.offers(alpn_nat_discovery)) {
        require(destination == TlsDestination::turn);
    }
    if (!whole.has_server_name() && !whole.offers_alpn()) {
        require(destination == TlsDestination::turn);
    }
    return 0;
}
