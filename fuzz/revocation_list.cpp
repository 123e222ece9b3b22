// libFuzzer target: RevocationList::parse of any bytes (ternd reads the state file from disk at
// start). Beyond no crash and no UB: every skipped line is named by an error within the
// input's line count; the list equals a simple model of the format ("<int64> <rest of line>",
// the last line for a user winning); written out with to_text and parsed again it is the same
// list, with no errors; and refuses/forget_lapsed/lift agree with the entries.
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "tern/auth/revocation_list.hpp"

namespace {

using tern::auth::RevocationList;

void require(bool condition) {
    if (!condition) __builtin_trap();
}

// The format as the state file's comment describes it, written independently of the parser.
std::map<std::string, std::int64_t, std::less<>> model(std::string_view text, std::size_t& lines,
                                                       std::size_t& bad) {
    std::map<std::string, std::int64_t, std::less<>> out;
    lines = 0;
    bad = 0;
    std::size_t start = 0;
    while (start < text.size()) {
        std::size_t end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        const std::string_view line = text.substr(start, end - start);
        start = end + 1;
        ++lines;
        if (line.empty() || line[0] == '#') continue;
        std::size_t i = line[0] == '-' ? 1 : 0;
        const std::size_t digits_from = i;
        while (i < line.size() && line[i] >= '0' && line[i] <= '9') ++i;
        const bool number = i > digits_from;
        if (!number || i + 1 >= line.size() || line[i] != ' ') {
            ++bad;
            continue;
        }
        // In range of an int64: compare as a magnitude string against the limit.
        std::string_view magnitude = line.substr(digits_from, i - digits_from);
        while (magnitude.size() > 1 && magnitude[0] == '0') magnitude.remove_prefix(1);
        const std::string_view limit =
            digits_from == 1 ? "9223372036854775808" : "9223372036854775807";
        if (magnitude.size() > limit.size() ||
            (magnitude.size() == limit.size() && magnitude > limit)) {
            ++bad;
            continue;
        }
        std::int64_t until = 0;
        std::from_chars(line.data(), line.data() + i, until);
        out[std::string(line.substr(i + 1))] = until;
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto parsed = RevocationList::parse(text);

    std::size_t lines = 0;
    std::size_t bad = 0;
    const auto expected = model(text, lines, bad);
    require(parsed.list.entries() == expected);
    require(parsed.errors.size() == bad);
    for (const auto& error : parsed.errors) {
        require(error.starts_with("line "));
        std::size_t number = 0;
        const auto [ptr, ec] =
            std::from_chars(error.data() + 5, error.data() + error.size(), number);
        require(ec == std::errc{} && *ptr == ':' && number >= 1 && number <= lines);
    }

    // The state file ternd writes reads back as the same list.
    const std::string written = parsed.list.to_text();
    const auto again = RevocationList::parse(written);
    require(again.errors.empty());
    require(again.list.entries() == parsed.list.entries());
    require(again.list.to_text() == written);

    // Each entry refuses its own name exactly until its time.
    for (const auto& [user, until] : parsed.list.entries()) {
        require(!user.empty() && user.find('\n') == std::string::npos);
        if (until > std::numeric_limits<std::int64_t>::min()) {
            require(parsed.list.refuses(user, until - 1));
        }
        // Refused at `until` only through the user part of a REST-shaped name.
        const std::string_view part = tern::auth::user_of(user);
        const auto other = parsed.list.until(part);
        const bool through_part = part != user && other && until < *other;
        require(parsed.list.refuses(user, until) == through_part);
    }

    // forget_lapsed keeps exactly the entries still in force; lift removes each once.
    const std::int64_t cut = expected.empty() ? 0 : expected.begin()->second;
    RevocationList kept = parsed.list;
    kept.forget_lapsed(cut);
    std::size_t in_force = 0;
    for (const auto& [user, until] : parsed.list.entries()) {
        in_force += until > cut ? 1 : 0;
        require(kept.until(user) ==
                (until > cut ? std::optional<std::int64_t>(until) : std::nullopt));
    }
    require(kept.size() == in_force);
    RevocationList lifted = parsed.list;
    for (const auto& [user, until] : parsed.list.entries()) {
        require(lifted.lift(user));
        require(!lifted.lift(user));
    }
    require(lifted.size() == 0);
    return 0;
}
