#include "tern/server/io/kernel_fast_path.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ifaddrs.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <ctime>

#include "fast_path.skel.h"
#include "fast_path_maps.h"

namespace tern::server {

namespace {

using protocol::AddressFamily;
using protocol::TransportAddress;

// libbpf's own messages (a verifier log among them) go to the debug log, not stderr.
int libbpf_message(enum libbpf_print_level level, const char* format, va_list args) {
    if (level == LIBBPF_DEBUG) return 0;
    char line[512];
    const int n = std::vsnprintf(line, sizeof line, format, args);
    if (n > 0) spdlog::debug("libbpf: {}", std::string_view(line).substr(0, sizeof line - 1));
    return 0;
}

void widen(const TransportAddress& a, __u8* out) {
    if (a.family == AddressFamily::ipv4) {
        std::memset(out, 0, 10);
        out[10] = 0xff;
        out[11] = 0xff;
        std::memcpy(out + 12, a.bytes.data(), 4);
    } else {
        std::memcpy(out, a.bytes.data(), 16);
    }
}

__u16 family_of(const TransportAddress& a) {
    return a.family == AddressFamily::ipv4 ? TERN_FP_FAMILY_V4 : TERN_FP_FAMILY_V6;
}

tern_fp_channel_key channel_key(const allocation::KernelRoute& r) {
    tern_fp_channel_key k{};
    widen(r.client, k.client_ip);
    widen(r.server, k.server_ip);
    k.client_port = htons(r.client.port);
    k.server_port = htons(r.server.port);
    k.channel = htons(r.channel);
    k.family = family_of(r.peer);
    return k;
}

tern_fp_peer_key peer_key(const allocation::KernelRoute& r) {
    tern_fp_peer_key k{};
    widen(r.relay, k.relay_ip);
    widen(r.peer, k.peer_ip);
    k.relay_port = htons(r.relay.port);
    k.peer_port = htons(r.peer.port);
    k.family = family_of(r.peer);
    return k;
}

std::string errno_text(int err) {
    return std::strerror(err < 0 ? -err : err);
}

// The interface's own MAC address (zero on loopback).
std::array<std::uint8_t, 6> mac_of(const std::string& name) {
    std::array<std::uint8_t, 6> mac{};
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return mac;
    ifreq req{};
    std::strncpy(req.ifr_name, name.c_str(), IFNAMSIZ - 1);
    if (::ioctl(fd, SIOCGIFHWADDR, &req) == 0) std::memcpy(mac.data(), req.ifr_hwaddr.sa_data, 6);
    ::close(fd);
    return mac;
}

std::uint32_t mtu_of(const std::string& name) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 1500;
    ifreq req{};
    std::strncpy(req.ifr_name, name.c_str(), IFNAMSIZ - 1);
    const int rc = ::ioctl(fd, SIOCGIFMTU, &req);
    ::close(fd);
    return rc == 0 && req.ifr_mtu > 0 ? static_cast<std::uint32_t>(req.ifr_mtu) : 1500;
}

bool unspecified(const TransportAddress& a) {
    return std::all_of(a.bytes.begin(), a.bytes.end(), [](std::uint8_t b) { return b == 0; });
}

bool same_ip(const sockaddr* sa, const TransportAddress& a) {
    if (sa->sa_family == AF_INET && a.family == AddressFamily::ipv4) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        return std::memcmp(&in->sin_addr, a.bytes.data(), 4) == 0;
    }
    if (sa->sa_family == AF_INET6 && a.family == AddressFamily::ipv6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        return std::memcmp(&in6->sin6_addr, a.bytes.data(), 16) == 0;
    }
    return false;
}

// The interfaces that carry `addresses`, by the rule in KernelFastPathOptions.
std::vector<std::string> interfaces_for(const std::vector<TransportAddress>& addresses) {
    std::vector<std::string> names;
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) return names;
    for (const ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
        if (i->ifa_addr == nullptr || (i->ifa_flags & IFF_UP) == 0) continue;
        const int family = i->ifa_addr->sa_family;
        if (family != AF_INET && family != AF_INET6) continue;
        const bool loopback = (i->ifa_flags & IFF_LOOPBACK) != 0;
        const bool wanted = std::any_of(addresses.begin(), addresses.end(), [&](const auto& a0) {
            const TransportAddress a = a0.unmapped();
            const int want = a.family == AddressFamily::ipv4 ? AF_INET : AF_INET6;
            if (unspecified(a)) return !loopback && (family == want || a0.is_v4_mapped());
            return same_ip(i->ifa_addr, a);
        });
        if (wanted && std::find(names.begin(), names.end(), i->ifa_name) == names.end()) {
            names.emplace_back(i->ifa_name);
        }
    }
    ::freeifaddrs(list);
    return names;
}

// Loads the program with maps of `max_channels` entries; false + why on failure. The object
// comes from the skeleton's embedded bytes, opened by name rather than through the skeleton's
// generated helpers.
bool load_program(std::uint32_t max_channels, KernelFastPath::Program& p, std::string& why) {
    libbpf_set_print(libbpf_message);
    std::size_t size = 0;
    const void* bytes = fast_path__elf_bytes(&size);
    bpf_object_open_opts opts{};
    opts.sz = sizeof opts;
    opts.object_name = "fast_path";
    p.object = bpf_object__open_mem(bytes, size, &opts);
    if (p.object == nullptr) {
        why = "the BPF object does not open (" + errno_text(errno) + ")";
        return false;
    }
    p.program = bpf_object__find_program_by_name(p.object, "tern_fast_path");
    for (auto [map, name] : {std::pair{&p.channels, "channels"},
                             {&p.peers, "peers"},
                             {&p.neighbors, "neighbors"},
                             {&p.ifaces, "ifaces"},
                             {&p.budgets, "budgets"},
                             {&p.stats, "stats"}}) {
        *map = bpf_object__find_map_by_name(p.object, name);
        if (*map == nullptr) p.program = nullptr;
    }
    // Each allocation has a channel entry at least, and a user at least one allocation.
    const std::uint32_t twice = std::max<std::uint32_t>(1024, max_channels * 2);
    if (p.program == nullptr || bpf_map__set_max_entries(p.channels, max_channels) != 0 ||
        bpf_map__set_max_entries(p.peers, max_channels) != 0 ||
        bpf_map__set_max_entries(p.neighbors, twice) != 0 ||
        bpf_map__set_max_entries(p.budgets, twice) != 0) {
        why = "the BPF object is not the one ternd was built with";
        return false;
    }
    if (const int rc = bpf_object__load(p.object); rc != 0) {
        const int err = errno != 0 ? errno : -rc;
        if (err == EPERM || err == EACCES) {
            why =
                "no permission to load a BPF program (it needs CAP_BPF, CAP_NET_ADMIN and "
                "CAP_PERFMON, or root)";
        } else {
            why = "the kernel refused the XDP program (" + errno_text(err) +
                  "; XDP and BPF links need Linux 5.9 or later)";
        }
        return false;
    }
    return true;
}

}  // namespace

std::unique_ptr<KernelFastPath> KernelFastPath::open(const KernelFastPathOptions& options,
                                                     std::string& why) {
    const std::vector<std::string> names =
        options.interfaces.empty() ? interfaces_for(options.addresses) : options.interfaces;
    if (names.empty()) {
        why = "no interface holds a listener address";
        return nullptr;
    }
    std::unique_ptr<KernelFastPath> path(new KernelFastPath());
    if (!load_program(options.max_channels, path->program_, why)) return nullptr;
    path->budget_slots_ = bpf_map__max_entries(path->program_.budgets);
    for (const auto& name : names) {
        const int ifindex = static_cast<int>(::if_nametoindex(name.c_str()));
        if (ifindex == 0) {
            why = "no interface named " + name;
            return nullptr;
        }
        bpf_link* link = bpf_program__attach_xdp(path->program_.program, ifindex);
        if (link == nullptr) {
            const int err = errno;
            why = err == EBUSY || err == EEXIST
                      ? name + " has an XDP program already"
                      : "XDP does not attach to " + name + " (" + errno_text(err) + ")";
            return nullptr;
        }
        bpf_xdp_query_opts query{};
        query.sz = sizeof query;
        const bool native =
            bpf_xdp_query(ifindex, 0, &query) == 0 && query.attach_mode == XDP_ATTACHED_DRV;
        const bool loopback = name == "lo";
        path->attached_.push_back(Attached{name, ifindex, link, native});
        const auto mac = mac_of(name);
        // The program relays only frames addressed to this MAC; without it, nothing would be.
        if (!loopback && std::all_of(mac.begin(), mac.end(), [](auto b) { return b == 0; })) {
            why = "the MAC address of " + name + " cannot be read";
            return nullptr;
        }
        path->register_interface(ifindex, mtu_of(name), loopback, mac);
    }
    return path;
}

std::unique_ptr<KernelFastPath> KernelFastPath::load_detached(std::uint32_t max_channels,
                                                              std::string& why) {
    std::unique_ptr<KernelFastPath> path(new KernelFastPath());
    if (!load_program(max_channels, path->program_, why)) return nullptr;
    path->budget_slots_ = bpf_map__max_entries(path->program_.budgets);
    return path;
}

KernelFastPath::~KernelFastPath() {
    for (auto& a : attached_) bpf_link__destroy(a.link);
    if (program_.object != nullptr) bpf_object__close(program_.object);
}

void KernelFastPath::register_interface(int ifindex, std::uint32_t mtu, bool loopback,
                                        const std::array<std::uint8_t, 6>& mac) noexcept {
    const __u32 key = static_cast<__u32>(ifindex);
    tern_fp_iface_value value{mtu, loopback ? TERN_FP_IFACE_LOOPBACK : 0u, {}, 0};
    std::memcpy(value.mac, mac.data(), mac.size());
    bpf_map__update_elem(program_.ifaces, &key, sizeof key, &value, sizeof value, BPF_ANY);
}

int KernelFastPath::program_fd() const noexcept {
    return bpf_program__fd(program_.program);
}

int KernelFastPath::map_fd(const char* name) const noexcept {
    const bpf_map* map = bpf_object__find_map_by_name(program_.object, name);
    return map == nullptr ? -1 : bpf_map__fd(map);
}

bool KernelFastPath::install(const allocation::KernelRoute& route) noexcept {
    const tern_fp_channel_key ck = channel_key(route);
    tern_fp_channel_value cv{};
    widen(route.relay, cv.relay_ip);
    widen(route.peer, cv.peer_ip);
    cv.relay_port = htons(route.relay.port);
    cv.peer_port = htons(route.peer.port);
    cv.allocation_budget = route.allocation_budget;
    cv.user_budget = route.user_budget;
    const tern_fp_peer_key pk = peer_key(route);
    tern_fp_peer_value pv{};
    widen(route.client, pv.client_ip);
    widen(route.server, pv.server_ip);
    pv.client_port = htons(route.client.port);
    pv.server_port = htons(route.server.port);
    pv.channel = htons(route.channel);
    pv.allocation_budget = route.allocation_budget;
    pv.user_budget = route.user_budget;
    if (bpf_map__update_elem(program_.peers, &pk, sizeof pk, &pv, sizeof pv, BPF_ANY) != 0) {
        return false;  // full: user space relays this one
    }
    if (bpf_map__update_elem(program_.channels, &ck, sizeof ck, &cv, sizeof cv, BPF_ANY) != 0) {
        bpf_map__delete_elem(program_.peers, &pk, sizeof pk, 0);
        return false;
    }
    return true;
}

allocation::KernelRouteCounts KernelFastPath::withdraw(
    const allocation::KernelRoute& route) noexcept {
    return read(route, true);
}

allocation::KernelRouteCounts KernelFastPath::counts(
    const allocation::KernelRoute& route) noexcept {
    return read(route, false);
}

allocation::KernelRouteCounts KernelFastPath::read(const allocation::KernelRoute& route,
                                                   bool remove) noexcept {
    // Read and removed in one step, so no packet is relayed uncounted in between.
    const auto lookup = [remove](bpf_map* map, const void* key, std::size_t key_size, void* value,
                                 std::size_t value_size) {
        return remove ? bpf_map_lookup_and_delete_elem(bpf_map__fd(map), key, value) == 0
                      : bpf_map__lookup_elem(map, key, key_size, value, value_size, 0) == 0;
    };
    allocation::KernelRouteCounts c;
    const tern_fp_channel_key ck = channel_key(route);
    tern_fp_channel_value cv{};
    if (lookup(program_.channels, &ck, sizeof ck, &cv, sizeof cv)) {
        c.packets_to_peer = cv.packets;
        c.bytes_to_peer = cv.bytes;
    }
    const tern_fp_peer_key pk = peer_key(route);
    tern_fp_peer_value pv{};
    if (lookup(program_.peers, &pk, sizeof pk, &pv, sizeof pv)) {
        c.packets_to_client = pv.packets;
        c.bytes_to_client = pv.bytes;
    }
    return c;
}

allocation::KernelBudget KernelFastPath::open_budget(std::string_view name,
                                                     const allocation::BucketRate& rate) noexcept {
    const std::lock_guard lock(budgets_mutex_);
    auto it = budgets_.find(name);
    tern_fp_budget value{};
    if (it == budgets_.end()) {
        allocation::KernelBudget slot = allocation::no_kernel_budget;
        if (!free_budgets_.empty()) {
            slot = free_budgets_.back();
            free_budgets_.pop_back();
        } else if (budgets_.size() < budget_slots_) {
            slot = static_cast<allocation::KernelBudget>(budgets_.size());
        } else {
            return allocation::no_kernel_budget;
        }
        it = budgets_.emplace(std::string(name), Budget{slot, 0}).first;
        if (by_slot_.size() <= slot) by_slot_.resize(std::size_t{slot} + 1, budgets_.end());
        by_slot_[slot] = it;
        timespec now{};
        ::clock_gettime(CLOCK_MONOTONIC, &now);  // bpf_ktime_get_ns's clock
        const auto ns =
            static_cast<__u64>(now.tv_sec) * 1000000000ull + static_cast<__u64>(now.tv_nsec);
        for (auto* b : {&value.to_peer, &value.to_client}) {
            b->tokens = static_cast<__s64>(rate.burst);  // a new bucket is full
            b->last_ns = ns;
        }
    } else {
        // Shared with routes of another allocation: keep its tokens, take the new rate.
        bpf_map__lookup_elem(program_.budgets, &it->second.slot, sizeof it->second.slot, &value,
                             sizeof value, 0);
    }
    for (auto* b : {&value.to_peer, &value.to_client}) {
        b->bytes_per_second = rate.bytes_per_second;
        b->burst = rate.burst;
    }
    bpf_map__update_elem(program_.budgets, &it->second.slot, sizeof it->second.slot, &value,
                         sizeof value, BPF_ANY);
    ++it->second.routes;
    return it->second.slot;
}

void KernelFastPath::close_budget(allocation::KernelBudget budget) noexcept {
    const std::lock_guard lock(budgets_mutex_);
    if (budget >= by_slot_.size() || by_slot_[budget] == budgets_.end()) return;
    const auto it = by_slot_[budget];
    if (--it->second.routes == 0) {
        free_budgets_.push_back(budget);
        by_slot_[budget] = budgets_.end();
        budgets_.erase(it);
    }
}

KernelFastPathStats KernelFastPath::stats() const noexcept {
    KernelFastPathStats s;
    const int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0 || cpus > 4096) return s;
    std::uint64_t* out[] = {
        &s.to_peer,      &s.to_client,         &s.passed_no_entry, &s.passed_no_neighbor,
        &s.passed_other, &s.dropped_bandwidth, &s.bytes_to_peer,   &s.bytes_to_client};
    std::vector<__u64> values(static_cast<std::size_t>(cpus));
    for (__u32 key = 0; key < TERN_FP_STAT_COUNT; ++key) {
        if (bpf_map__lookup_elem(program_.stats, &key, sizeof key, values.data(),
                                 values.size() * sizeof(__u64), 0) != 0) {
            continue;
        }
        for (const auto v : values) *out[key] += v;
    }
    return s;
}

std::string KernelFastPath::describe() const {
    std::string text;
    for (const auto& a : attached_) {
        if (!text.empty()) text += ", ";
        text += std::string("XDP ") + (a.native ? "native" : "generic") + " on " + a.name;
    }
    return text;
}

}  // namespace tern::server
