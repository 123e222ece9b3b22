#include "tern/allocation/clock.hpp"

#include <gtest/gtest.h>

namespace tern::allocation {
namespace {

TEST(ManualClock, MovesOnlyWhenAdvanced) {
    ManualClock clock(TimePoint{} + std::chrono::seconds(100));
    const Clock& c = clock;
    EXPECT_EQ(c.now(), TimePoint{} + std::chrono::seconds(100));
    EXPECT_EQ(c.now(), TimePoint{} + std::chrono::seconds(100));
    clock.advance(std::chrono::seconds(600));
    EXPECT_EQ(c.now(), TimePoint{} + std::chrono::seconds(700));
}

}  // namespace
}  // namespace tern::allocation
