// The source of unpredictable numbers the allocation logic draws from (relay ports, tokens).
// Injected so the server can back it with a CSPRNG and tests with a seeded generator.
#pragma once

#include <cstdint>

namespace tern::allocation {

class RandomSource {
public:
    virtual ~RandomSource() = default;
    virtual std::uint64_t next() noexcept = 0;
};

}  // namespace tern::allocation
