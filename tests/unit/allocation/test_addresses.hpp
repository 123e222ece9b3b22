// Shared fixtures of the allocation tests: addresses from text and a fixed start time, so each
// test reads as the RFC rule it checks.
#pragma once

#include <gtest/gtest.h>

#include <chrono>

#include "tern/allocation/time_point.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::allocation::testing {

inline const TimePoint t0 = TimePoint{} + std::chrono::seconds(1000);

inline protocol::TransportAddress addr(const char* text) {
    auto a = protocol::TransportAddress::parse(text);
    EXPECT_TRUE(a.has_value()) << text;
    return a.value_or(protocol::TransportAddress{});
}

}  // namespace tern::allocation::testing
