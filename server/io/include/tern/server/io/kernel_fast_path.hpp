// The kernel fast path (relay.kernel_fast_path): ternd's side of the XDP program in
// server/io/bpf/fast_path.bpf.c. Loads it from the skeleton compiled into ternd and attaches it
// to interfaces by bpf_link (native mode where the driver has it, generic otherwise), so the
// kernel detaches it when ternd exits, however it exits; nothing is pinned. Its maps are the
// managers' KernelRoutes: every call is one or two map system calls, safe from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "tern/allocation/kernel_routes.hpp"
#include "tern/protocol/transport_address.hpp"

struct bpf_link;
struct bpf_map;
struct bpf_object;
struct bpf_program;

namespace tern::server {

struct KernelFastPathOptions {
    // Interfaces by name; empty = the interfaces holding one of `addresses` (an unspecified
    // address: every interface that is up with an address of its family, loopback excepted).
    std::vector<std::string> interfaces;
    std::vector<protocol::TransportAddress> addresses;  // the UDP listeners' and relay addresses
    std::uint32_t max_channels = 65536;                 // entries per direction
};

// What the program did, summed over CPUs, since it was loaded.
struct KernelFastPathStats {
    std::uint64_t to_peer = 0;
    std::uint64_t to_client = 0;
    std::uint64_t passed_no_entry = 0;
    std::uint64_t passed_no_neighbor = 0;
    std::uint64_t passed_other = 0;
    std::uint64_t dropped_bandwidth = 0;
    std::uint64_t bytes_to_peer = 0;  // payload
    std::uint64_t bytes_to_client = 0;
};

class KernelFastPath final : public allocation::KernelRoutes {
public:
    // Loaded and attached to every chosen interface, or nullptr with `why` saying what failed
    // (privileges, the kernel, an interface); nothing stays loaded then.
    static std::unique_ptr<KernelFastPath> open(const KernelFastPathOptions& options,
                                                std::string& why);
    ~KernelFastPath();
    KernelFastPath(const KernelFastPath&) = delete;
    KernelFastPath& operator=(const KernelFastPath&) = delete;

    bool install(const allocation::KernelRoute& route) noexcept override;
    allocation::KernelRouteCounts withdraw(const allocation::KernelRoute& route) noexcept override;
    allocation::KernelRouteCounts counts(const allocation::KernelRoute& route) noexcept override;
    allocation::KernelBudget open_budget(std::string_view name,
                                         const allocation::BucketRate& rate) noexcept override;
    void close_budget(allocation::KernelBudget budget) noexcept override;

    KernelFastPathStats stats() const noexcept;
    std::size_t interface_count() const noexcept { return attached_.size(); }
    // "XDP native on eth0, XDP generic on lo": the start's log line.
    std::string describe() const;

    // The program, for its property test (bpf_prog_test_run_opts): a loaded fast path attached
    // to no interface, with `ifindex` registered as an interface of the given MTU and MAC
    // (loopback: see looks_deferred in fast_path.bpf.c).
    static std::unique_ptr<KernelFastPath> load_detached(std::uint32_t max_channels,
                                                         std::string& why);
    void register_interface(int ifindex, std::uint32_t mtu, bool loopback,
                            const std::array<std::uint8_t, 6>& mac = {}) noexcept;
    int program_fd() const noexcept;
    // A map of the program by its name in fast_path.bpf.c ("channels", "neighbors", ...), or -1.
    int map_fd(const char* name) const noexcept;

    // The loaded object and what ternd uses of it (fast_path.bpf.c's names).
    struct Program {
        bpf_object* object = nullptr;
        bpf_program* program = nullptr;
        bpf_map* channels = nullptr;
        bpf_map* peers = nullptr;
        bpf_map* neighbors = nullptr;
        bpf_map* ifaces = nullptr;
        bpf_map* budgets = nullptr;
        bpf_map* stats = nullptr;
    };

private:
    struct Attached {
        std::string name;
        int ifindex = 0;
        bpf_link* link = nullptr;
        bool native = false;
    };
    KernelFastPath() = default;
    // A route's counts from both maps; `remove` deletes each entry as it is read.
    allocation::KernelRouteCounts read(const allocation::KernelRoute& route, bool remove) noexcept;

    Program program_;
    std::vector<Attached> attached_;
    // Budgets by name, shared by the workers: taken at a channel's install and an allocation's
    // end, never per packet.
    struct Budget {
        allocation::KernelBudget slot = allocation::no_kernel_budget;
        std::size_t routes = 0;  // opens not yet closed
    };
    std::mutex budgets_mutex_;
    std::map<std::string, Budget, std::less<>> budgets_;
    std::vector<std::map<std::string, Budget, std::less<>>::iterator> by_slot_;
    std::vector<allocation::KernelBudget> free_budgets_;
    std::uint32_t budget_slots_ = 0;
};

}  // namespace tern::server
