// Time as the TURN state machine sees it: a steady-clock reading the caller passes into each
// call instead of the machine reading a clock, so every lifetime rule is testable by choosing it.
#pragma once

#include <chrono>

namespace tern::allocation {

using Duration = std::chrono::steady_clock::duration;
using TimePoint = std::chrono::steady_clock::time_point;

}  // namespace tern::allocation
