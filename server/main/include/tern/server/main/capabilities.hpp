// The kernel fast path's capabilities, which the systemd unit grants (CAP_BPF, CAP_NET_ADMIN,
// CAP_PERFMON), kept only as long as they are needed: CAP_BPF stays with a loaded fast path
// (every map access is a bpf() call, which Debian's unprivileged_bpf_disabled refuses without
// it), the rest goes once the program is attached, and all three when it is off.
#pragma once

namespace tern::server {

// Drops the fast path's capabilities from the effective, permitted, inheritable and ambient
// sets of the whole process (every thread: call before any is started), CAP_BPF only when
// `keep_bpf` is false. Others (CAP_NET_BIND_SERVICE) stay. False when the kernel refused.
bool drop_fast_path_capabilities(bool keep_bpf) noexcept;

}  // namespace tern::server
