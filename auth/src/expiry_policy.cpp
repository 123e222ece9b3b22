// Credential-expiry policy for TURN REST credentials (auth.expiry).
#include "tern/auth/expiry_policy.hpp"

namespace tern::auth {

bool refuses(ExpiryPolicy policy, protocol::Method method, std::optional<std::int64_t> expiry,
             std::int64_t now_unix) noexcept {
    if (!expiry || !is_expired(*expiry, now_unix)) return false;
    switch (policy) {
        case ExpiryPolicy::allocate:
            return method == protocol::Method::allocate;
        case ExpiryPolicy::request:
        case ExpiryPolicy::strict:
            return true;
    }
    return true;
}

std::optional<std::int64_t> teardown_at(ExpiryPolicy policy,
                                        std::optional<std::int64_t> expiry) noexcept {
    if (policy != ExpiryPolicy::strict) return std::nullopt;
    return expiry;
}

}  // namespace tern::auth
