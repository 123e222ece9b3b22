// libFuzzer target: arbitrary bytes as a config file. load_config_text must return (never
// crash, throw or hang), and what it returns must be self-consistent.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tern/config/config.hpp"
#include "tern/config/parse.hpp"

namespace {

// Properties every result must have; a violation aborts so libFuzzer records the input.
void check(const tern::config::LoadResult& result) {
    if (result.config.has_value() == !result.errors.empty()) __builtin_trap();
    int previous_line = 0;
    for (const auto& error : result.errors) {
        // File order, except that the note that checking stopped early comes last of all.
        const bool stop_note = &error == &result.errors.back() && error.line == 0 &&
                               error.message.find("stopped checking") != std::string::npos;
        if (error.message.empty() || (error.line < previous_line && !stop_note)) __builtin_trap();
        previous_line = error.line;
        // One error, one line of output: keys and values from the input are escaped.
        if (error.to_string().find('\n') != std::string::npos) __builtin_trap();
    }
    if (!result.config) return;
    const auto& config = *result.config;
    if (config.listen.empty() || config.realm.empty()) __builtin_trap();
    // What the loader accepted must read back the same through the text forms.
    for (const auto& listener : config.listen) {
        const auto again = tern::config::parse_listener_url(listener.to_url());
        if (!again.value || *again.value != listener) __builtin_trap();
    }
    for (const auto* cidrs : {&config.relay.allow_peers, &config.relay.deny_peers}) {
        for (const auto& cidr : *cidrs) {
            if (tern::config::parse_cidr(cidr.to_string()).value != cidr) __builtin_trap();
            if (!cidr.contains(cidr.network)) __builtin_trap();
        }
    }
    if (config.relay.ports.first > config.relay.ports.last) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    check(tern::config::load_config_text(text, "fuzz.yaml"));
    return 0;
}
