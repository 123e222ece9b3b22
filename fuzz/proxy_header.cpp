// libFuzzer target: parse_proxy_header on every growing prefix must settle on one verdict and
// keep it; a complete PROXY header, written again by write_proxy_v2, must read back as the same
// addresses.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "tern/edge/port_sharing.hpp"
#include "tern/edge/proxy_header.hpp"

namespace {

using namespace tern::edge;

void require(bool condition) {
    if (!condition) __builtin_trap();
}

bool same(const ProxyParse& a, const ProxyParse& b) {
    return a.status == b.status && a.length == b.length && a.local == b.local &&
           a.source == b.source && a.destination == b.destination;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> input(data, size);
    const ProxyParse whole = parse_proxy_header(input);
    if (whole.status == ProxyStatus::need_more) require(size < max_proxy_header_bytes);
    if (whole.status == ProxyStatus::complete) {
        require(whole.length > 0 && whole.length <= size);
        require(whole.length <= max_proxy_header_bytes);
    } else {
        require(whole.length == 0);
    }

    // The verdict is reached at one prefix and kept by every longer one.
    ProxyParse first;
    for (std::size_t n = 0; n <= size; ++n) {
        const ProxyParse p = parse_proxy_header(input.first(n));
        if (first.status == ProxyStatus::need_more) {
            first = p;
            if (p.status == ProxyStatus::complete) require(p.length == n);
        } else {
            require(same(p, first));
            if (n > first.length + max_proxy_header_bytes) break;  // settled long ago
        }
    }
    require(same(first, whole));

    // classify never waits for more than a STUN header's first 8 bytes.
    if (size >= 8) require(classify(input) != FirstBytes::need_more);

    if (whole.status != ProxyStatus::complete || whole.local) return 0;
    std::array<std::uint8_t, proxy_v2_max_bytes> out{};
    const std::size_t n = write_proxy_v2(out, whole.source, whole.destination);
    const ProxyParse again = parse_proxy_header(std::span(out.data(), n));
    require(again.status == ProxyStatus::complete && !again.local && again.length == n);
    require(again.source == whole.source && again.destination == whole.destination);
    return 0;
}
