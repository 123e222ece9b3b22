// Hex text to bytes for test vectors copied from RFCs and from independent tools; anything that
// is not a lower-case hex digit (spaces, newlines) is skipped, so vectors keep their layout.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace tern::test {

inline std::vector<std::uint8_t> from_hex(std::string_view text) {
    std::vector<std::uint8_t> out;
    int high = -1;
    for (const char c : text) {
        int nibble = -1;
        if (c >= '0' && c <= '9') nibble = c - '0';
        if (c >= 'a' && c <= 'f') nibble = c - 'a' + 10;
        if (nibble < 0) continue;
        if (high < 0) {
            high = nibble;
        } else {
            out.push_back(static_cast<std::uint8_t>(high << 4 | nibble));
            high = -1;
        }
    }
    return out;
}

}  // namespace tern::test
