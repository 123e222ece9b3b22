// libFuzzer target: what another process wrote to the fleet's store (control messages, session
// snapshot lines). Beyond no crash and no UB: a command that parses encodes back to the same
// bytes (the format has one spelling), and a session line that parses is rebuilt exactly from
// its fields.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tern/server/request/fleet_messages.hpp"

namespace {

void require(bool condition) {
    if (!condition) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    if (const auto command = tern::server::parse_control(text)) {
        require(tern::server::encode_control(*command) == text);
    }
    if (const auto line = tern::server::parse_session_line(text)) {
        require(tern::server::encode_session_line(line->user, line->client, line->json) == text);
    }
    return 0;
}
