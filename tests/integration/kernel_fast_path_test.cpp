// relay.kernel_fast_path against a real ternd on loopback (generic XDP on lo): bound channels
// relayed by the program both ways with identical bytes and exact counters, nothing relayed once
// the allocation is deleted, and nothing left attached after SIGKILL. Needs root (CAP_BPF and
// CAP_NET_ADMIN); the netns tests in tests/fast_path/ cover veth, IPv6 and checksums on a wire.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>
#include <utility>

#include "support.hpp"
#include "tern/ctl/endpoint_client.hpp"
#include "tern/ctl/status_report.hpp"

namespace tern::test {
namespace {

using protocol::MessageBuilder;
using protocol::Method;

std::string config(std::uint16_t port, std::uint16_t metrics_port, const char* mode) {
    return "listen: [\"udp://127.0.0.1:" + std::to_string(port) +
           "\"]\n"
           "auth:\n"
           "  users: { alice: { password: wonderland-long } }\n"
           "relay: { allow_peers: [\"127.0.0.0/8\"], kernel_fast_path: " +
           mode +
           " }\n"
           "limits: { unauthenticated_rate: 0, shutdown_grace: 0 }\n"
           "threads: 1\n"
           "metrics: { listen: \"127.0.0.1:" +
           std::to_string(metrics_port) + "\" }\n";
}

double metric(std::uint16_t metrics_port, const std::string& name, const std::string& direction) {
    const auto r = ctl::http_request(ctl::Endpoint{"127.0.0.1", std::to_string(metrics_port)},
                                     "GET", "/metrics");
    EXPECT_EQ(r.status, 200u) << r.error;
    return ctl::sample_value(ctl::parse_prometheus(r.body), name, {{"direction", direction}})
        .value_or(-1);
}

std::string shell(const std::string& command) {
    std::string out;
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    if (p == nullptr) return out;
    std::array<char, 4096> buf{};
    while (std::fgets(buf.data(), buf.size(), p)) out += buf.data();
    ::pclose(p);
    return out;
}

// The capability bits ternd holds, effective and permitted (/proc/PID/status).
std::pair<std::uint64_t, std::uint64_t> capabilities_of(pid_t pid) {
    const std::string status = shell("cat /proc/" + std::to_string(pid) + "/status");
    const auto field = [&](const std::string& name) {
        const auto at = status.find(name + ":\t");
        return at == std::string::npos
                   ? ~0ull
                   : std::stoull(status.substr(at + name.size() + 2), nullptr, 16);
    };
    return {field("CapEff"), field("CapPrm")};
}

constexpr std::uint64_t cap_net_admin = 1ull << 12;
constexpr std::uint64_t cap_perfmon = 1ull << 38;
constexpr std::uint64_t cap_bpf = 1ull << 39;

Bytes payload(std::size_t size, std::uint32_t seed) {
    Bytes b(size);
    for (std::size_t i = 0; i < size; ++i)
        b[i] = static_cast<std::uint8_t>((seed * 131 + i * 7) ^ i);
    return b;
}

Bytes channel_data(std::uint16_t channel, const Bytes& data) {
    Bytes frame(4 + data.size());
    frame[0] = static_cast<std::uint8_t>(channel >> 8);
    frame[1] = static_cast<std::uint8_t>(channel);
    frame[2] = static_cast<std::uint8_t>(data.size() >> 8);
    frame[3] = static_cast<std::uint8_t>(data.size());
    std::copy(data.begin(), data.end(), frame.begin() + 4);
    return frame;
}

class KernelFastPath : public ::testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "loading an XDP program needs root";
        if (shell("ip -d link show dev lo").find("xdp") != std::string::npos) {
            GTEST_SKIP() << "lo has an XDP program already (another ternd?)";
        }
    }
};

TEST_F(KernelFastPath, RelaysBoundChannelsBothWaysInTheKernelAndStopsWhenTheAllocationGoes) {
    const auto port = free_port();
    const auto metrics_port = free_port();
    TerndProcess ternd(config(port, metrics_port, "on"));
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    ASSERT_NE(ternd.output().find("kernel fast path: XDP generic on lo"), std::string::npos)
        << ternd.output();
    // Attached: CAP_BPF stays for the maps, the rest of the fast path's capabilities went.
    const auto [effective, permitted] = capabilities_of(ternd.pid());
    EXPECT_EQ(effective & (cap_net_admin | cap_perfmon | cap_bpf), cap_bpf)
        << std::hex << effective;
    EXPECT_EQ(permitted & (cap_net_admin | cap_perfmon | cap_bpf), cap_bpf)
        << std::hex << permitted;
    const std::string link = shell("ip -d link show dev lo");
    EXPECT_NE(link.find("xdpgeneric"), std::string::npos) << link;
    // The program's id, to see it go (other ternd processes may have programs of their own).
    const auto at = link.find("prog/xdp id ");
    ASSERT_NE(at, std::string::npos) << link;
    const std::string program_id = link.substr(at + 12, link.find(' ', at + 12) - at - 12);

    UdpClient peer(loopback4(0));
    TurnClient client(loopback4(port), "alice", "wonderland-long");
    const Reply allocated = client.request(Method::allocate, TurnClient::udp_transport());
    ASSERT_EQ(allocated.code(), 0) << allocated.describe();
    const auto relayed = allocated.view.xor_relayed_address();
    ASSERT_TRUE(relayed);
    constexpr std::uint16_t channel = 0x4321;
    ASSERT_EQ(client.bind(channel, peer.local_address()), 0);

    // Every size from 1 byte up, each way; the receivers get exactly what was sent.
    constexpr int count = 200;
    for (int i = 0; i < count; ++i) {
        const Bytes data = payload(1 + i * 7, i);
        ASSERT_TRUE(client.send_raw(channel_data(channel, data)));
        const auto got = peer.receive(2s);
        ASSERT_TRUE(got) << "datagram " << i << " did not reach the peer";
        ASSERT_EQ(*got, data) << "datagram " << i;
    }
    for (int i = 0; i < count; ++i) {
        const Bytes data = payload(1 + i * 7, i + 1000);
        ASSERT_TRUE(peer.send_to(*relayed, data));
        const auto got = client.receive_raw(2s);
        ASSERT_TRUE(got) << "datagram " << i << " did not reach the client";
        ASSERT_EQ(*got, channel_data(channel, data)) << "datagram " << i;
    }
    // The program relayed them, not user space (the first of each direction may teach it the
    // way back).
    EXPECT_GE(metric(metrics_port, "tern_kernel_fast_path_packets_total", "to_peer"), count - 1);
    EXPECT_GE(metric(metrics_port, "tern_kernel_fast_path_packets_total", "to_client"), count - 1);
    EXPECT_EQ(metric(metrics_port, "tern_relayed_packets_total", "to_peer"), count);
    EXPECT_EQ(metric(metrics_port, "tern_relayed_packets_total", "to_client"), count);

    // Refresh 0 deletes the allocation; its entries leave the kernel before the answer does.
    const Reply deleted =
        client.request(Method::refresh, [](MessageBuilder& b) { b.add_lifetime(0); });
    ASSERT_EQ(deleted.code(), 0) << deleted.describe();
    const double relayed_before = metric(metrics_port, "tern_relayed_packets_total", "to_client");
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(peer.send_to(*relayed, payload(100, i)));
    EXPECT_FALSE(client.receive_raw(500ms)) << "relayed after the allocation was deleted";
    EXPECT_EQ(metric(metrics_port, "tern_relayed_packets_total", "to_client"), relayed_before);

    // SIGKILL: the kernel drops the link with the process; nothing stays attached or pinned.
    ternd.send_signal(SIGKILL);
    ternd.stop(5s);
    bool detached = false;
    for (int i = 0; i < 40 && !detached; ++i) {
        detached =
            shell("ip -d link show dev lo").find("xdp") == std::string::npos &&
            shell("bpftool prog show id " + program_id).find("tern_fast_path") == std::string::npos;
        if (!detached) std::this_thread::sleep_for(50ms);
    }
    EXPECT_TRUE(detached) << shell("ip -d link show dev lo");
}

TEST_F(KernelFastPath, OffLeavesTheInterfaceAlone) {
    const auto port = free_port();
    const auto metrics_port = free_port();
    TerndProcess ternd(config(port, metrics_port, "off"));
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    EXPECT_EQ(shell("ip -d link show dev lo").find("xdp"), std::string::npos);
    EXPECT_EQ(ternd.output().find("kernel fast path"), std::string::npos) << ternd.output();
    // Off: none of the fast path's capabilities is kept, even by a ternd started as root.
    const auto [effective, permitted] = capabilities_of(ternd.pid());
    EXPECT_EQ(effective & (cap_net_admin | cap_perfmon | cap_bpf), 0u) << std::hex << effective;
    EXPECT_EQ(permitted & (cap_net_admin | cap_perfmon | cap_bpf), 0u) << std::hex << permitted;
}

}  // namespace
}  // namespace tern::test
