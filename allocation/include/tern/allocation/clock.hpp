// The time source the TURN state machine is given instead of reading a clock itself, so every
// lifetime rule can be tested by moving a ManualClock forward.
#pragma once

#include <chrono>

namespace tern::allocation {

using Duration = std::chrono::steady_clock::duration;
using TimePoint = std::chrono::steady_clock::time_point;

class Clock {
public:
    virtual ~Clock() = default;
    virtual TimePoint now() const noexcept = 0;
};

// A clock that moves only when told to; for tests and fuzzing.
class ManualClock final : public Clock {
public:
    explicit ManualClock(TimePoint start = TimePoint{}) noexcept : now_(start) {}
    TimePoint now() const noexcept override { return now_; }
    void advance(Duration d) noexcept { now_ += d; }

private:
    TimePoint now_;
};

}  // namespace tern::allocation
