// Relay port bookkeeping: a bitset over the configured range plus a short list of holds.
#include "tern/allocation/relay_port_pool.hpp"

#include <algorithm>
#include <bit>

namespace tern::allocation {

namespace {
// Random probes before falling back to a scan: with the pool at most ~90 % full, eight probes
// miss all free ports with probability 0.9^8 ≈ 43 %, and the scan keeps the worst case bounded.
constexpr int random_probes = 8;
}  // namespace

RelayPortPool::RelayPortPool(std::uint16_t first, std::uint16_t last, RandomSource& random,
                             Duration reservation_lifetime, Duration unusable_cooldown)
    : first_(first),
      size_(first <= last ? static_cast<std::size_t>(last - first) + 1 : 0),
      free_(size_),
      random_(random),
      reservation_lifetime_(reservation_lifetime),
      unusable_cooldown_(unusable_cooldown),
      busy_((size_ + 63) / 64, 0) {}

void RelayPortPool::set_busy(std::size_t index) noexcept {
    busy_[index / 64] |= std::uint64_t{1} << (index % 64);
    --free_;
}

void RelayPortPool::clear_busy(std::size_t index) noexcept {
    busy_[index / 64] &= ~(std::uint64_t{1} << (index % 64));
    ++free_;
}

bool RelayPortPool::in_use(std::uint16_t port) const noexcept {
    if (port < first_ || static_cast<std::size_t>(port - first_) >= size_) return false;
    return busy(static_cast<std::size_t>(port - first_)) && !held(port);
}

bool RelayPortPool::held(std::uint16_t port) const noexcept {
    return std::any_of(holds_.begin(), holds_.end(), [&](const Hold& h) { return h.port == port; });
}

std::size_t RelayPortPool::reservations() const noexcept {
    return static_cast<std::size_t>(std::count_if(holds_.begin(), holds_.end(), [](const Hold& h) {
        return h.kind == HoldKind::reservation;
    }));
}

std::optional<std::uint16_t> RelayPortPool::acquire() noexcept {
    if (free_ == 0) return std::nullopt;
    for (int i = 0; i < random_probes; ++i) {
        const std::size_t index = random_.next() % size_;
        if (!busy(index)) {
            set_busy(index);
            return static_cast<std::uint16_t>(first_ + index);
        }
    }
    // Scan a word at a time from a random word so the fallback does not always favour the
    // bottom of the range.
    const std::size_t words = busy_.size();
    const std::size_t start = random_.next() % words;
    for (std::size_t k = 0; k < words; ++k) {
        const std::size_t w = (start + k) % words;
        std::uint64_t free_bits = ~busy_[w];
        const std::size_t valid = std::min<std::size_t>(64, size_ - w * 64);
        if (valid < 64) free_bits &= (std::uint64_t{1} << valid) - 1;
        if (free_bits != 0) {
            const std::size_t index =
                w * 64 + static_cast<std::size_t>(std::countr_zero(free_bits));
            set_busy(index);
            return static_cast<std::uint16_t>(first_ + index);
        }
    }
    return std::nullopt;  // unreachable while free_ is consistent
}

bool RelayPortPool::even_candidate(std::size_t index, bool reserve_next) const noexcept {
    if (((first_ + index) & 1u) != 0 || busy(index)) return false;
    if (!reserve_next) return true;
    return index + 1 < size_ && !busy(index + 1);
}

std::optional<std::uint64_t> RelayPortPool::fresh_token() noexcept {
    // Zero is kept as "no token", and a token must name one reservation only. A healthy 64-bit
    // source almost never repeats; the bound only stops a broken one from hanging the worker.
    for (int attempt = 0; attempt < 16; ++attempt) {
        const std::uint64_t t = random_.next();
        if (t == 0) continue;
        const bool taken = std::any_of(holds_.begin(), holds_.end(), [&](const Hold& h) {
            return h.kind == HoldKind::reservation && h.token == t;
        });
        if (!taken) return t;
    }
    return std::nullopt;
}

std::optional<EvenPortGrant> RelayPortPool::acquire_even(bool reserve_next, TimePoint now) {
    if (free_ < (reserve_next ? 2u : 1u)) return std::nullopt;
    const std::size_t first_even = (first_ & 1u) ? 1 : 0;
    if (first_even >= size_) return std::nullopt;
    const std::size_t evens = (size_ - first_even + 1) / 2;
    std::optional<std::size_t> found;
    for (int i = 0; i < random_probes && !found; ++i) {
        const std::size_t index = first_even + 2 * (random_.next() % evens);
        if (even_candidate(index, reserve_next)) found = index;
    }
    if (!found) {
        const std::size_t start = random_.next() % evens;
        for (std::size_t k = 0; k < evens && !found; ++k) {
            const std::size_t index = first_even + 2 * ((start + k) % evens);
            if (even_candidate(index, reserve_next)) found = index;
        }
    }
    if (!found) return std::nullopt;
    EvenPortGrant grant;
    grant.port = static_cast<std::uint16_t>(first_ + *found);
    if (reserve_next) {
        const auto token = fresh_token();
        if (!token) return std::nullopt;
        set_busy(*found + 1);
        holds_.push_back(Hold{static_cast<std::uint16_t>(grant.port + 1), HoldKind::reservation,
                              *token, now + reservation_lifetime_});
        grant.reservation_token = token;
    }
    set_busy(*found);
    return grant;
}

std::optional<std::uint16_t> RelayPortPool::claim(std::uint64_t token, TimePoint now) noexcept {
    for (auto it = holds_.begin(); it != holds_.end(); ++it) {
        if (it->kind != HoldKind::reservation || it->token != token) continue;
        if (now >= it->until) return std::nullopt;  // lapsed; expire() returns the port
        const std::uint16_t port = it->port;
        holds_.erase(it);  // the bit stays set: the port moves from reserved to in use
        return port;
    }
    return std::nullopt;
}

void RelayPortPool::release(std::uint16_t port) noexcept {
    if (port < first_ || static_cast<std::size_t>(port - first_) >= size_) return;
    const std::size_t index = static_cast<std::size_t>(port - first_);
    if (!busy(index) || held(port)) return;
    clear_busy(index);
}

void RelayPortPool::mark_unusable(std::uint16_t port, TimePoint now) {
    if (port < first_ || static_cast<std::size_t>(port - first_) >= size_) return;
    const std::size_t index = static_cast<std::size_t>(port - first_);
    if (held(port)) return;
    if (!busy(index)) set_busy(index);
    holds_.push_back(Hold{port, HoldKind::unusable, 0, now + unusable_cooldown_});
}

std::size_t RelayPortPool::expire(TimePoint now) noexcept {
    std::size_t freed = 0;
    auto lapsed = [&](const Hold& h) {
        if (now < h.until) return false;
        clear_busy(static_cast<std::size_t>(h.port - first_));
        ++freed;
        return true;
    };
    holds_.erase(std::remove_if(holds_.begin(), holds_.end(), lapsed), holds_.end());
    return freed;
}

}  // namespace tern::allocation
