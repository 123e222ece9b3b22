// A KernelRoutes for the kernel fast path tests: records every call in order, holds what is
// installed like the XDP program's maps would (a new entry counts from zero) and the named
// budgets with how many opens each has, lets a test say what the kernel relayed on an installed
// route, and can be scripted to refuse installs or budgets the way full maps do. It also counts
// breaches of the contract (a route installed twice, withdrawn or read while not installed, a
// budget closed more often than opened or while a route still draws from it). Test-only code
// may allocate.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tern/allocation/kernel_routes.hpp"
#include "tern/allocation/token_bucket.hpp"

namespace tern::allocation::testing {

class FakeKernelRoutes final : public KernelRoutes {
public:
    enum class Op : std::uint8_t { install, refused, withdraw, open_budget, close_budget };
    struct Call {
        Op op;
        KernelRoute route;                       // install, refused, withdraw
        std::string name;                        // open_budget
        BucketRate rate;                         // open_budget
        KernelBudget budget = no_kernel_budget;  // open_budget (what it answered), close_budget
    };
    struct Entry {
        KernelRoute route;
        KernelRouteCounts counts;
    };
    struct Budget {
        std::string name;
        KernelBudget id = no_kernel_budget;
        BucketRate rate;
        int opens = 0;  // opens not closed yet
    };

    bool install(const KernelRoute& route) noexcept override {
        const bool full = refuse_installs_ > 0 || (capacity && installed.size() >= *capacity);
        if (refuse_installs_ > 0) --refuse_installs_;
        calls.push_back(Call{full ? Op::refused : Op::install, route, {}, {}, no_kernel_budget});
        if (full) return false;
        if (find(route) != nullptr) ++duplicate_installs;
        if (!usable(route.allocation_budget) || !usable(route.user_budget)) ++closed_budget_routes;
        installed.push_back(Entry{route, {}});
        return true;
    }

    KernelRouteCounts withdraw(const KernelRoute& route) noexcept override {
        calls.push_back(Call{Op::withdraw, route, {}, {}, no_kernel_budget});
        if (on_withdraw) on_withdraw(route);
        const auto it = std::find_if(installed.begin(), installed.end(),
                                     [&](const Entry& e) { return e.route == route; });
        if (it == installed.end()) {
            ++unknown_withdraws;
            return {};
        }
        const KernelRouteCounts last = it->counts;
        installed.erase(it);
        return last;
    }

    KernelRouteCounts counts(const KernelRoute& route) noexcept override {
        const Entry* e = find(route);
        if (e == nullptr) {
            ++unknown_reads;
            return {};
        }
        return e->counts;
    }

    KernelBudget open_budget(std::string_view name, const BucketRate& rate) noexcept override {
        KernelBudget id = no_kernel_budget;
        const auto named = std::find(refused_names_.begin(), refused_names_.end(), name);
        if (named != refused_names_.end()) {
            refused_names_.erase(named);
        } else if (refuse_budgets_ > 0) {
            --refuse_budgets_;
        } else {
            Budget* b = budget(name);
            if (b == nullptr) {
                budgets.push_back(Budget{std::string(name), next_budget_++, rate, 0});
                b = &budgets.back();
            }
            b->rate = rate;
            ++b->opens;
            id = b->id;
        }
        calls.push_back(Call{Op::open_budget, {}, std::string(name), rate, id});
        return id;
    }

    void close_budget(KernelBudget id) noexcept override {
        calls.push_back(Call{Op::close_budget, {}, {}, {}, id});
        const auto it = std::find_if(budgets.begin(), budgets.end(),
                                     [&](const Budget& b) { return b.id == id && b.opens > 0; });
        if (it == budgets.end()) {
            ++unknown_closes;
            return;
        }
        if (--it->opens > 0) return;
        for (const auto& e : installed) {
            if (e.route.allocation_budget == id || e.route.user_budget == id)
                ++closed_budget_routes;
        }
    }

    // The kernel relayed `more` on the installed route of `channel` whose client is `client`.
    // False when none is installed.
    bool relay(const protocol::TransportAddress& client, std::uint16_t channel,
               const KernelRouteCounts& more) {
        for (auto& e : installed) {
            if (e.route.channel != channel || e.route.client != client) continue;
            e.counts.packets_to_peer += more.packets_to_peer;
            e.counts.bytes_to_peer += more.bytes_to_peer;
            e.counts.packets_to_client += more.packets_to_client;
            e.counts.bytes_to_client += more.bytes_to_client;
            return true;
        }
        return false;
    }

    // The next `count` installs fail as if the channel map were full.
    void refuse_installs(std::size_t count = 1) { refuse_installs_ += count; }
    // The next `count` budget opens fail as if the budget map were full.
    void refuse_budgets(std::size_t count = 1) { refuse_budgets_ += count; }
    // The next open of the budget called `name` fails so.
    void refuse_budget(std::string_view name) { refused_names_.emplace_back(name); }

    std::size_t count(Op op) const {
        return static_cast<std::size_t>(
            std::count_if(calls.begin(), calls.end(), [&](const Call& c) { return c.op == op; }));
    }
    std::size_t installs() const { return count(Op::install); }
    std::size_t withdraws() const { return count(Op::withdraw); }
    const Entry* route_of(const protocol::TransportAddress& client, std::uint16_t channel) const {
        const auto it = std::find_if(installed.begin(), installed.end(), [&](const Entry& e) {
            return e.route.client == client && e.route.channel == channel;
        });
        return it == installed.end() ? nullptr : &*it;
    }
    bool holds(const protocol::TransportAddress& client, std::uint16_t channel) const {
        return route_of(client, channel) != nullptr;
    }
    // The budget of that name, open or not (nullptr: never opened).
    Budget* budget(std::string_view name) {
        const auto it = std::find_if(budgets.begin(), budgets.end(),
                                     [&](const Budget& b) { return b.name == name; });
        return it == budgets.end() ? nullptr : &*it;
    }
    int open_budgets() const {
        int n = 0;
        for (const auto& b : budgets) n += b.opens;
        return n;
    }

    std::vector<Call> calls;              // every call but counts(), in order
    std::vector<Entry> installed;         // what the kernel relays now
    std::vector<Budget> budgets;          // every budget ever opened
    std::optional<std::size_t> capacity;  // a channel map size (unset: no limit)
    // Runs inside withdraw(), before it returns: to see what else had happened by then, or to
    // relay a little more between the manager's last read and the removal.
    std::function<void(const KernelRoute&)> on_withdraw;
    // Contract breaches a test can assert are zero.
    std::size_t duplicate_installs = 0;    // a route installed while it was installed already
    std::size_t unknown_withdraws = 0;     // a route withdrawn that was not installed
    std::size_t unknown_reads = 0;         // counts() of a route that was not installed
    std::size_t unknown_closes = 0;        // close_budget() of a budget with no open left
    std::size_t closed_budget_routes = 0;  // a route installed naming a closed budget, or a
                                           // budget's last close while a route still named it

private:
    const Entry* find(const KernelRoute& route) const {
        const auto it = std::find_if(installed.begin(), installed.end(),
                                     [&](const Entry& e) { return e.route == route; });
        return it == installed.end() ? nullptr : &*it;
    }
    bool usable(KernelBudget id) const {
        if (id == no_kernel_budget) return true;
        return std::any_of(budgets.begin(), budgets.end(),
                           [&](const Budget& b) { return b.id == id && b.opens > 0; });
    }

    std::size_t refuse_installs_ = 0;
    std::size_t refuse_budgets_ = 0;
    std::vector<std::string> refused_names_;
    KernelBudget next_budget_ = 1;
};

}  // namespace tern::allocation::testing
