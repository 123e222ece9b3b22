// A seeded, reproducible RandomSource for the allocation unit tests (SplitMix64), with a way
// to script the next values so tests can force zero or repeated tokens.
#pragma once

#include <cstdint>
#include <deque>

#include "tern/allocation/random_source.hpp"

namespace tern::allocation::testing {

class SeededRandom final : public RandomSource {
public:
    explicit SeededRandom(std::uint64_t seed) noexcept : state_(seed) {}
    std::uint64_t next() noexcept override {
        if (!scripted_.empty()) {
            const auto v = scripted_.front();
            scripted_.pop_front();
            return v;
        }
        std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    // Values returned before the generator resumes, to force collisions in tests.
    void script(std::uint64_t v) { scripted_.push_back(v); }

private:
    std::uint64_t state_;
    std::deque<std::uint64_t> scripted_;
};

}  // namespace tern::allocation::testing
