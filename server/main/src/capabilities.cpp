#include "tern/server/main/capabilities.hpp"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cstdint>

namespace tern::server {

namespace {

// Not in Debian 12's glibc headers under these names everywhere: the kernel's numbers.
constexpr int cap_net_admin = 12;
constexpr int cap_perfmon = 38;
constexpr int cap_bpf = 39;

}  // namespace

bool drop_fast_path_capabilities(bool keep_bpf) noexcept {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    std::array<__user_cap_data_struct, _LINUX_CAPABILITY_U32S_3> data{};
    if (::syscall(SYS_capget, &header, data.data()) != 0) return false;
    const std::array<int, 3> drop{cap_net_admin, cap_perfmon, cap_bpf};
    const std::size_t count = keep_bpf ? 2 : 3;
    for (std::size_t i = 0; i < count; ++i) {
        const int cap = drop[i];
        const auto bit = static_cast<std::uint32_t>(1u << (cap % 32));
        auto& word = data[static_cast<std::size_t>(cap / 32)];
        word.effective &= ~bit;
        word.permitted &= ~bit;
        word.inheritable &= ~bit;
        // Ambient capabilities must leave before they can no longer be permitted.
        ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, cap, 0, 0);
    }
    // capset changes the calling thread only; before the workers start that is the process.
    return ::syscall(SYS_capset, &header, data.data()) == 0;
}

}  // namespace tern::server
