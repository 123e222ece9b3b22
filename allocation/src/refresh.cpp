// RFC 8656 §8: Refresh, by §8.2's rules, on the requester's own live allocation.
#include "request_reply.hpp"
#include "tern/allocation/allocation_manager.hpp"

namespace tern::allocation {

std::span<const std::uint8_t> AllocationManager::refresh(const protocol::MessageView& request,
                                                         const FiveTuple& tuple, Allocation& a,
                                                         const Requester& requester, TimePoint now,
                                                         Reply& r) {
    // REQUESTED-ADDRESS-FAMILY names which address of a dual allocation is meant.
    if (const auto raw = request.requested_address_family()) {
        const auto f = family_of(*raw);
        if (!f || relay_of(a, *f) == nullptr) return r.peer_family_mismatch();
    }
    RefreshOutcome outcome = table_.refresh(tuple, requested_lifetime(request), now);
    if (outcome.result == RefreshResult::no_allocation) return r.mismatch();
    std::uint32_t lifetime = 0;
    if (outcome.result == RefreshResult::deleted) {
        if (outcome.removed) release(*outcome.removed, EndReason::deleted);
    } else {
        a.credential_capped = false;  // a newer credential may lift the earlier cap
        if (requester.teardown_at) table_.cap_expiry(a, *requester.teardown_at);
        lifetime = seconds_of(a.expires - now);
    }
    protocol::MessageBuilder b = r.success();
    b.add_lifetime(lifetime);
    return r.finish(b);
}

}  // namespace tern::allocation
