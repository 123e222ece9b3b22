#include "tern/allocation/clock.hpp"

// Anchors Clock's vtable in this library.
namespace tern::allocation {}
