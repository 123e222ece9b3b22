// TURN relay end to end (RFC 8656): a real ternd relaying between coturn's turnutils_uclient and
// its echo peer turnutils_peer over UDP, TCP and TLS, with channels and with Send indications,
// with REST and static credentials; plus refusals (wrong password, expired REST username,
// tampered message, loopback peer not allowed) checked for their exact error codes with our own
// STUN client, each next to a control that succeeds so the refusal cannot be a client mistake.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <ctime>
#include <functional>
#include <iostream>
#include <memory>
#include <random>
#include <regex>
#include <thread>

#include "support.hpp"
#include "tern/protocol/integrity.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"

namespace tern::test {
namespace {

using protocol::MessageBuilder;
using protocol::MessageClass;
using protocol::MessageView;
using protocol::Method;

constexpr const char* realm = "tern.test";
constexpr const char* rest_secret = "s3cret";

// uclient's load: -m clients each sending -n messages of -l bytes every -z ms. Small enough to
// finish in ~3 s, large enough that a relay dropping a few percent would show.
constexpr int messages_per_client = 50;
constexpr int clients = 2;

std::string quoted_listen(const std::string& scheme, const std::string& host, std::uint16_t p) {
    return "\"" + scheme + "://" + host + ":" + std::to_string(p) + "\"";
}

// `allow_loopback`: the default deny list refuses loopback peers, and every peer here is on
// loopback. channel_numbers rfc5766: turnutils_uclient picks channel numbers at random from
// RFC 5766's 0x4000-0x7FFF, which RFC 8656 narrowed to 0x4000-0x4FFF.
std::string relay_yaml(std::uint16_t port, std::uint16_t tls_port, bool allow_loopback = true,
                       bool rfc5766_channels = true) {
    const std::string data = data_dir();
    std::string y = "realm: " + std::string(realm) +
                    "\n"
                    "threads: 2\n"
                    "listen: [ " +
                    quoted_listen("udp", "127.0.0.1", port) + ", " +
                    quoted_listen("tcp", "127.0.0.1", port) + ", " +
                    quoted_listen("tls", "127.0.0.1", tls_port) + ", " +
                    quoted_listen("udp", "[::1]", port) +
                    " ]\n"
                    "tls: { certificate: " +
                    data + "/tls/cert.pem, private_key: " + data +
                    "/tls/key.pem }\n"
                    "auth:\n"
                    "  secrets: [ \"" +
                    rest_secret +
                    "\" ]\n"
                    "  users: { alice: { password: wonderland } }\n"
                    "relay:\n"
                    "  ports: 46000-46999\n";
    if (rfc5766_channels) y += "  channel_numbers: rfc5766\n";
    if (allow_loopback) y += "  allow_peers: [ 127.0.0.0/8, \"::1/128\" ]\n";
    // Tests end with allocations alive; SIGTERM should not wait for them (the drain tests set
    // their own grace).
    y += "limits: { shutdown_grace: 0 }\n";
    y += "log: { level: debug }\n";
    return y;
}

// ternd with every listener up, or a fatal failure carrying its log.
struct Server {
    std::uint16_t port = free_port();
    std::uint16_t tls_port = free_port();
    std::unique_ptr<TerndProcess> process;

    explicit Server(bool allow_loopback = true, bool rfc5766_channels = true) {
        process = std::make_unique<TerndProcess>(
            relay_yaml(port, tls_port, allow_loopback, rfc5766_channels));
    }
    // The banner is printed once every listener is bound.
    bool ready() const { return process->wait_for_output("is listening on", 10s); }
};

// coturn's echo peer, answered once before it is used so a slow start is not "packet loss".
struct EchoPeer {
    std::uint16_t port = free_port();
    std::unique_ptr<BackgroundProcess> process;

    explicit EchoPeer(const std::string& host = "127.0.0.1") {
        process = std::make_unique<BackgroundProcess>(
            std::vector<std::string>{"turnutils_peer", "-L", host, "-p", std::to_string(port)});
    }
    bool ready(const TransportAddress& at) const {
        UdpClient probe(at.family == protocol::AddressFamily::ipv4 ? loopback4(0) : loopback6(0));
        const Bytes ping{'p', 'i', 'n', 'g'};
        for (int i = 0; i < 50; ++i) {
            probe.send_to(at, ping);
            if (const auto echo = probe.receive(100ms); echo && *echo == ping) return true;
        }
        return false;
    }
};

// What turnutils_uclient reports at the end of a run.
struct UclientSummary {
    bool found = false;
    long sent = -1;
    long received = -1;
    long lost = -1;
    double lost_percent = -1;
    long send_dropped = -1;
};

UclientSummary parse_uclient(const std::string& out) {
    UclientSummary s;
    // The final totals line has no "msz=" (the per-second progress lines do).
    static const std::regex totals(R"(start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+))");
    static const std::regex lost(
        R"(Total lost packets (\d+) \(([0-9.]+)%\), total send dropped (\d+) \(([0-9.]+)%\))");
    std::smatch m;
    bool have_totals = false, have_lost = false;
    for (auto it = std::sregex_iterator(out.begin(), out.end(), totals);
         it != std::sregex_iterator(); ++it) {
        s.sent = std::stol((*it)[1]);
        s.received = std::stol((*it)[2]);
        have_totals = true;
    }
    if (std::regex_search(out, m, lost)) {
        s.lost = std::stol(m[1]);
        s.lost_percent = std::stod(m[2]);
        s.send_dropped = std::stol(m[3]);
        have_lost = true;
    }
    s.found = have_totals && have_lost;
    return s;
}

// Runs turnutils_uclient against ternd and returns its exit status; `out` gets its output.
// -c: no RTCP allocations (those would need EVEN-PORT/RESERVATION-TOKEN, outside these tests).
int run_uclient(const std::string& options, const std::string& server_host,
                std::uint16_t server_port, const std::string& peer_host, std::uint16_t peer_port,
                std::string& out) {
    const std::string cmd =
        "timeout 60 turnutils_uclient -c -z 5 -n " + std::to_string(messages_per_client) + " -m " +
        std::to_string(clients) + " -l 120 -e " + peer_host + " -r " + std::to_string(peer_port) +
        " -p " + std::to_string(server_port) + " " + options + " " + server_host;
    const int rc = run_command(cmd, out);
    out = "$ " + cmd + "\n" + out;
    return rc;
}

// Every message sent came back through ternd and the peer: nothing lost, nothing dropped.
void expect_all_relayed(int rc, const std::string& out, const Server& server) {
    EXPECT_EQ(rc, 0) << out << "\nternd:\n" << server.process->output();
    const auto s = parse_uclient(out);
    ASSERT_TRUE(s.found) << "no uclient summary in:\n" << out;
    EXPECT_EQ(s.sent, messages_per_client * clients) << out;
    EXPECT_EQ(s.received, s.sent) << out;
    EXPECT_EQ(s.lost, 0) << out;
    EXPECT_EQ(s.lost_percent, 0.0) << out;
    EXPECT_EQ(s.send_dropped, 0) << out;
}

// ---------------------------------------------------------------------------------------------
// Relaying with coturn's client.

class TurnRelay : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(server_.ready()) << "ternd did not come up:\n" << server_.process->output();
        ASSERT_TRUE(peer_.ready(loopback4(peer_.port))) << "turnutils_peer did not echo:\n"
                                                        << peer_.process->output();
    }
    void TearDown() override {
        EXPECT_TRUE(server_.process->running()) << "ternd died:\n" << server_.process->output();
    }

    Server server_;
    EchoPeer peer_;
};

TEST_F(TurnRelay, UdpChannelsRestCredential) {
    std::string out;
    const int rc = run_uclient("-W " + std::string(rest_secret) + " -u bob", "127.0.0.1",
                               server_.port, "127.0.0.1", peer_.port, out);
    expect_all_relayed(rc, out, server_);
}

TEST_F(TurnRelay, UdpSendIndicationsStaticUser) {
    std::string out;
    const int rc = run_uclient("-s -u alice -w wonderland", "127.0.0.1", server_.port, "127.0.0.1",
                               peer_.port, out);
    expect_all_relayed(rc, out, server_);
}

TEST_F(TurnRelay, TcpChannelsRestCredential) {
    std::string out;
    const int rc = run_uclient("-t -W " + std::string(rest_secret) + " -u bob", "127.0.0.1",
                               server_.port, "127.0.0.1", peer_.port, out);
    expect_all_relayed(rc, out, server_);
}

TEST_F(TurnRelay, TlsChannelsStaticUser) {
    // -S -t is TLS (-S alone would be DTLS); without -E uclient does not verify the certificate.
    std::string out;
    const int rc = run_uclient("-t -S -u alice -w wonderland", "127.0.0.1", server_.tls_port,
                               "127.0.0.1", peer_.port, out);
    // Interoperability only: coturn's client completes allocation, channel binding and relaying
    // over TLS. Exactly-once delivery over TLS is asserted by our own framing-correct reader
    // (TurnRelayStreams.TlsChannelDataBurstEchoedExactlyOnce) and by Chromium (e2e tls), both
    // strict. uclient's TLS runs lost up to ~30 % of echoes at times in earlier sessions; since
    // then 50 release-build runs in a row lost none (loaded machine included, and with the
    // earlier ternd too), so the cause was not in ternd's framing. The sanitizer tree runs this
    // with a much slower ternd, where uclient's fixed wait may count late echoes as lost.
    EXPECT_EQ(rc, 0) << out << "\nternd:\n" << server_.process->output();
    const auto s = parse_uclient(out);
    ASSERT_TRUE(s.found) << "no uclient summary in:\n" << out;
    EXPECT_EQ(s.sent, messages_per_client * clients) << out;
#ifdef TERN_SANITIZED
    // Under ASan it lost 52 of 100 once (CI, session 5), with TLS connects retried: only check
    // that echoes come back at all.
    EXPECT_GT(s.received, 0) << out;
#else
    EXPECT_GE(s.received, s.sent / 2) << out;
#endif
    EXPECT_EQ(s.send_dropped, 0) << out;
}

TEST_F(TurnRelay, UdpRtcpPairUsesEvenPortAndReservationToken) {
    // Without -c each client also allocates an RTCP relay: one Allocate asks for EVEN-PORT with
    // the R bit and gets a RESERVATION-TOKEN (uclient -v prints it as rtv=), and a later
    // Allocate redeems it for the next port up.
    const std::string cmd =
        "timeout 60 turnutils_uclient -v -z 5 -n " + std::to_string(messages_per_client) + " -m " +
        std::to_string(clients) + " -l 120 -e 127.0.0.1 -r " + std::to_string(peer_.port) + " -p " +
        std::to_string(server_.port) + " -W " + rest_secret + " -u bob 127.0.0.1";
    std::string out;
    const int rc = run_command(cmd, out);
    out = "$ " + cmd + "\n" + out;
    EXPECT_EQ(rc, 0) << out << "\nternd:\n" << server_.process->output();
    const auto s = parse_uclient(out);
    ASSERT_TRUE(s.found) << out;
    EXPECT_GE(s.sent, messages_per_client * clients) << out;
    EXPECT_EQ(s.received, s.sent) << out;
    EXPECT_EQ(s.lost, 0) << out;
    EXPECT_EQ(s.send_dropped, 0) << out;

    // (relay port, reservation token) per allocation, in order.
    static const std::regex allocation(R"(Received relay addr: [0-9.]+:(\d+)\n.*rtv=(\d+))");
    std::vector<std::pair<long, unsigned long long>> allocations;
    for (auto it = std::sregex_iterator(out.begin(), out.end(), allocation);
         it != std::sregex_iterator(); ++it) {
        allocations.emplace_back(std::stol((*it)[1]), std::stoull((*it)[2]));
    }
    bool pair_seen = false;
    for (std::size_t i = 0; i < allocations.size(); ++i) {
        const auto [port, token] = allocations[i];
        if (token == 0) continue;
        EXPECT_EQ(port % 2, 0) << "EVEN-PORT gave an odd port " << port << "\n" << out;
        for (std::size_t j = i + 1; j < allocations.size(); ++j) {
            if (allocations[j].first == port + 1) pair_seen = true;
        }
    }
    EXPECT_TRUE(pair_seen) << "no reserved even/odd relay port pair\n" << out;
}

TEST(TurnRelayParser, LossAndMissingSummaryAreDetected) {
    // The checks above rely on parse_uclient; uclient exits 0 even when every packet is lost
    // (seen against coturn with a peer that does not answer), so the summary is the verdict.
    const std::string lossy =
        "15: : start_mclient: msz=2, tot_send_msgs=100, tot_recv_msgs=0, tot_send_bytes ~ "
        "12000, tot_recv_bytes ~ 0\n"
        "15: : start_mclient: tot_send_msgs=100, tot_recv_msgs=0\n"
        "15: : Total lost packets 100 (100.000000%), total send dropped 0 (0.000000%)\n";
    const auto s = parse_uclient(lossy);
    ASSERT_TRUE(s.found);
    EXPECT_EQ(s.sent, 100);
    EXPECT_EQ(s.received, 0);
    EXPECT_EQ(s.lost, 100);
    EXPECT_EQ(s.lost_percent, 100.0);
    EXPECT_FALSE(parse_uclient("0: : ERROR: Cannot complete Allocation\n").found);
}

TEST(TurnRelayIpv6, UdpChannelsIpv6RelayToIpv6Peer) {
    Server server;
    ASSERT_TRUE(server.ready()) << server.process->output();
    EchoPeer peer("::1");
    ASSERT_TRUE(peer.ready(loopback6(peer.port))) << peer.process->output();
    // -x asks for an IPv6 relayed address (REQUESTED-ADDRESS-FAMILY); ternd's default family is
    // IPv4, which could not reach the ::1 peer.
    std::string out;
    const int rc = run_uclient("-x -W " + std::string(rest_secret) + " -u bob", "::1", server.port,
                               "::1", peer.port, out);
    expect_all_relayed(rc, out, server);
}

TEST_F(TurnRelay, WrongPasswordRelaysNothing) {
    std::string out;
    const int rc = run_uclient("-u alice -w not-wonderland", "127.0.0.1", server_.port, "127.0.0.1",
                               peer_.port, out);
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(out.find("Cannot complete Allocation"), std::string::npos) << out;
    const auto s = parse_uclient(out);
    EXPECT_TRUE(!s.found || s.received <= 0) << out;
}

// ---------------------------------------------------------------------------------------------
// Refusals with exact codes, each beside its succeeding control.

TEST(TurnRelayAuth, WrongStaticPasswordGets401) {
    Server server;
    ASSERT_TRUE(server.ready()) << server.process->output();
    TurnClient wrong(loopback4(server.port), "alice", "not-wonderland");
    const Reply refused = wrong.request(Method::allocate, TurnClient::udp_transport());
    EXPECT_EQ(refused.code(), 401) << refused.describe();

    TurnClient right(loopback4(server.port), "alice", "wonderland");
    const Reply granted = right.request(Method::allocate, TurnClient::udp_transport());
    ASSERT_EQ(granted.code(), 0) << granted.describe() << "\n" << server.process->output();
    EXPECT_TRUE(granted.view.xor_relayed_address());
    EXPECT_TRUE(granted.view.xor_mapped_address());
    EXPECT_TRUE(granted.view.lifetime());
}

TEST(TurnRelayAuth, ExpiredRestUsernameGets401) {
    Server server;
    ASSERT_TRUE(server.ready()) << server.process->output();
    const std::string expired = rest_username(unix_now() - 3600, "bob");
    TurnClient old(loopback4(server.port), expired, rest_password(rest_secret, expired));
    const Reply refused = old.request(Method::allocate, TurnClient::udp_transport());
    EXPECT_EQ(refused.code(), 401) << refused.describe();
    EXPECT_FALSE(refused.view.xor_relayed_address());

    // The same construction with a future expiry is accepted, so the 401 is about the expiry.
    const std::string fresh = rest_username(unix_now() + 3600, "bob");
    TurnClient current(loopback4(server.port), fresh, rest_password(rest_secret, fresh));
    const Reply granted = current.request(Method::allocate, TurnClient::udp_transport());
    ASSERT_EQ(granted.code(), 0) << granted.describe() << "\n" << server.process->output();
    EXPECT_TRUE(granted.view.xor_relayed_address());
}

TEST(TurnRelayAuth, TamperedAllocateGets401AndTheUntamperedOneSucceeds) {
    Server server;
    ASSERT_TRUE(server.ready()) << server.process->output();
    TurnClient c(loopback4(server.port), "alice", "wonderland");
    ASSERT_TRUE(c.fetch_nonce());
    const Attributes attrs = [](MessageBuilder& b) {
        b.add_requested_transport(17);
        b.add_lifetime(600);
    };
    // LIFETIME is the second attribute: header 20 + REQUESTED-TRANSPORT 8 + LIFETIME TLV 4;
    // the last byte of its value turns 600 (0x258) into 0x259.
    const auto flip_lifetime = [](Bytes& msg) {
        ASSERT_EQ(msg[28], 0x00);
        ASSERT_EQ(msg[29], 0x0D);  // LIFETIME
        msg[35] ^= 0x01;
    };
    const Reply refused = c.exchange(c.build(Method::allocate, attrs, flip_lifetime));
    EXPECT_EQ(refused.code(), 401) << refused.describe();
    EXPECT_FALSE(refused.view.xor_relayed_address());

    // Same client, same nonce, same attributes, not tampered: an allocation.
    const Reply granted = c.exchange(c.build(Method::allocate, attrs));
    ASSERT_EQ(granted.code(), 0) << granted.describe() << "\n" << server.process->output();
    EXPECT_TRUE(granted.view.xor_relayed_address());
}

TEST(TurnRelayPeers, LoopbackPeerIsForbiddenWithoutAllowPeers) {
    Server server(/*allow_loopback=*/false);
    ASSERT_TRUE(server.ready()) << server.process->output();
    TurnClient c(loopback4(server.port), "alice", "wonderland");
    const Reply allocated = c.request(Method::allocate, TurnClient::udp_transport());
    ASSERT_EQ(allocated.code(), 0) << allocated.describe() << "\n" << server.process->output();

    const auto peer = loopback4(free_port());
    const Reply perm = c.request(Method::create_permission, [&](MessageBuilder& b) {
        b.add_xor_address(protocol::attr::xor_peer_address, peer);
    });
    EXPECT_EQ(perm.code(), 403) << perm.describe();
    const Reply bind = c.request(Method::channel_bind, [&](MessageBuilder& b) {
        b.add_channel_number(0x4000);
        b.add_xor_address(protocol::attr::xor_peer_address, peer);
    });
    EXPECT_EQ(bind.code(), 403) << bind.describe();
}

TEST(TurnRelayPeers, UclientCannotRelayToALoopbackPeerWithoutAllowPeers) {
    Server server(/*allow_loopback=*/false);
    ASSERT_TRUE(server.ready()) << server.process->output();
    EchoPeer peer;
    ASSERT_TRUE(peer.ready(loopback4(peer.port))) << peer.process->output();
    std::string out;
    const int rc = run_uclient("-W " + std::string(rest_secret) + " -u bob", "127.0.0.1",
                               server.port, "127.0.0.1", peer.port, out);
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(out.find("error 403"), std::string::npos) << out;
    const auto s = parse_uclient(out);
    EXPECT_TRUE(!s.found || s.received <= 0) << out;
}

// ---------------------------------------------------------------------------------------------
// Our own client through the relay, step by step: pins a relay failure to one method.

TEST(TurnRelayOwnClient, PermissionSendDataChannelBindAndChannelData) {
    Server server;
    ASSERT_TRUE(server.ready()) << server.process->output();
    EchoPeer peer;
    const auto peer_addr = loopback4(peer.port);
    ASSERT_TRUE(peer.ready(peer_addr)) << peer.process->output();

    TurnClient c(loopback4(server.port), "alice", "wonderland");
    const Reply allocated = c.request(Method::allocate, TurnClient::udp_transport());
    ASSERT_EQ(allocated.code(), 0) << allocated.describe() << "\n" << server.process->output();
    const auto relayed = allocated.view.xor_relayed_address();
    ASSERT_TRUE(relayed);

    const Reply perm = c.request(Method::create_permission, [&](MessageBuilder& b) {
        b.add_xor_address(protocol::attr::xor_peer_address, peer_addr);
    });
    ASSERT_EQ(perm.code(), 0) << perm.describe();

    // Send indication out, Data indication back (the peer echoes to the relayed address).
    const Bytes payload{'h', 'e', 'l', 'l', 'o', '-', 't', 'u', 'r', 'n'};
    {
        Bytes buf(256);
        MessageBuilder b(buf, {Method::send, MessageClass::indication}, random_id());
        b.add_xor_address(protocol::attr::xor_peer_address, peer_addr);
        b.add_bytes(protocol::attr::data, payload);
        const auto out = b.finish();
        ASSERT_TRUE(c.socket().send_to(c.server(), Bytes(out.begin(), out.end())));
    }
    bool data_seen = false;
    for (int i = 0; i < 10 && !data_seen; ++i) {
        const auto got = c.socket().receive(200ms);
        if (!got) continue;
        MessageView v;
        if (MessageView::parse(*got, v) != protocol::ParseError::ok) continue;
        if (v.method() != Method::data || v.message_class() != MessageClass::indication) continue;
        ASSERT_TRUE(v.xor_peer_address());
        EXPECT_EQ(*v.xor_peer_address(), peer_addr) << v.xor_peer_address()->to_string();
        ASSERT_TRUE(v.data());
        EXPECT_TRUE(std::equal(v.data()->begin(), v.data()->end(), payload.begin(), payload.end()));
        data_seen = true;
    }
    EXPECT_TRUE(data_seen) << "no Data indication for the echoed Send\n"
                           << server.process->output();

    // An RFC 8656 channel number (0x4000-0x4FFF), then ChannelData both ways.
    constexpr std::uint16_t channel = 0x4001;
    const Reply bind = c.request(Method::channel_bind, [&](MessageBuilder& b) {
        b.add_channel_number(channel);
        b.add_xor_address(protocol::attr::xor_peer_address, peer_addr);
    });
    ASSERT_EQ(bind.code(), 0) << bind.describe();
    Bytes frame(4 + payload.size());
    frame[0] = static_cast<std::uint8_t>(channel >> 8);
    frame[1] = static_cast<std::uint8_t>(channel);
    frame[3] = static_cast<std::uint8_t>(payload.size());
    std::copy(payload.begin(), payload.end(), frame.begin() + 4);
    while (frame.size() % 4 != 0) frame.push_back(0);  // UDP padding is optional; harmless
    ASSERT_TRUE(c.socket().send_to(c.server(), frame));
    bool channel_seen = false;
    for (int i = 0; i < 10 && !channel_seen; ++i) {
        const auto got = c.socket().receive(200ms);
        if (!got || got->size() < 4 || !protocol::looks_like_channel_data((*got)[0])) continue;
        EXPECT_EQ(((*got)[0] << 8) | (*got)[1], channel);
        const std::size_t len = static_cast<std::size_t>(((*got)[2] << 8) | (*got)[3]);
        ASSERT_EQ(len, payload.size());
        ASSERT_GE(got->size(), 4 + len);
        EXPECT_TRUE(std::equal(got->begin() + 4, got->begin() + 4 + static_cast<long>(len),
                               payload.begin()));
        channel_seen = true;
    }
    EXPECT_TRUE(channel_seen) << "no ChannelData back on channel 0x4001\n"
                              << server.process->output();

    // Refresh with LIFETIME 0 deletes the allocation (RFC 8656 §7.3).
    const Reply deleted = c.request(Method::refresh, [](MessageBuilder& b) { b.add_lifetime(0); });
    EXPECT_EQ(deleted.code(), 0) << deleted.describe();
    const Reply after = c.request(Method::create_permission, [&](MessageBuilder& b) {
        b.add_xor_address(protocol::attr::xor_peer_address, peer_addr);
    });
    EXPECT_EQ(after.code(), 437) << after.describe();
}

TEST(TurnRelayChannels, Rfc5766ChannelNumbersOnlyWhenConfigured) {
    // Default (rfc8656): 0x4000-0x4FFF only; 0x5000-0x7FFF are not channels (RFC 8656 §12).
    Server strict(/*allow_loopback=*/true, /*rfc5766_channels=*/false);
    ASSERT_TRUE(strict.ready()) << strict.process->output();
    TurnClient a(loopback4(strict.port), "alice", "wonderland");
    ASSERT_EQ(a.request(Method::allocate, TurnClient::udp_transport()).code(), 0);
    EXPECT_EQ(a.bind(0x4FFF, loopback4(30001)), 0);
    EXPECT_EQ(a.bind(0x5000, loopback4(30002)), 400);
    EXPECT_EQ(a.bind(0x7FFF, loopback4(30003)), 400);

    // relay.channel_numbers: rfc5766 (what turnutils_uclient needs) widens it to 0x7FFF.
    Server wide;
    ASSERT_TRUE(wide.ready()) << wide.process->output();
    TurnClient b(loopback4(wide.port), "alice", "wonderland");
    ASSERT_EQ(b.request(Method::allocate, TurnClient::udp_transport()).code(), 0);
    EXPECT_EQ(b.bind(0x5000, loopback4(30002)), 0);
    EXPECT_EQ(b.bind(0x7FFF, loopback4(30003)), 0);
    // Still one peer per channel and one channel per peer.
    EXPECT_EQ(b.bind(0x5000, loopback4(30004)), 400);
    EXPECT_EQ(b.bind(0x6000, loopback4(30003)), 400);
    // Rebinding the same pair refreshes it.
    EXPECT_EQ(b.bind(0x7FFF, loopback4(30003)), 0);
}

// ChannelData over a TCP or TLS control connection, sent in bursts and echoed by the peer:
// every frame must come back exactly once. Read with exact STUN/ChannelData framing, so several
// frames in one TCP segment or one TLS record are all seen (turnutils_uclient's TLS reader takes
// one TLS record as one message).
void expect_stream_channel_data_echoed(bool tls) {
    Server server;
    ASSERT_TRUE(server.ready()) << server.process->output();
    EchoPeer peer;
    const auto peer_addr = loopback4(peer.port);
    ASSERT_TRUE(peer.ready(peer_addr)) << peer.process->output();
    auto stream = tls ? StreamClient::connect_tls(loopback4(server.tls_port),
                                                  data_dir() + "/tls/cert.pem", "localhost")
                      : StreamClient::connect_tcp(loopback4(server.port));
    ASSERT_TRUE(stream);
    TurnClient c(std::move(*stream), "alice", "wonderland");
    const Reply allocated = c.request(Method::allocate, TurnClient::udp_transport());
    ASSERT_EQ(allocated.code(), 0) << allocated.describe() << "\n" << server.process->output();
    constexpr std::uint16_t channel = 0x4001;
    const Reply bind = c.request(Method::channel_bind, [&](MessageBuilder& b) {
        b.add_channel_number(channel);
        b.add_xor_address(protocol::attr::xor_peer_address, peer_addr);
    });
    ASSERT_EQ(bind.code(), 0) << bind.describe();

    constexpr int frames = 100;
    constexpr std::size_t payload_size = 120;  // a multiple of 4: no stream padding
    for (int i = 0; i < frames; ++i) {
        Bytes frame(4 + payload_size, static_cast<std::uint8_t>(i));
        frame[0] = channel >> 8;
        frame[1] = channel & 0xFF;
        frame[2] = 0;
        frame[3] = payload_size;
        ASSERT_TRUE(c.send_raw(frame));
        if (i % 10 == 9) std::this_thread::sleep_for(2ms);  // bursts of 10
    }
    std::vector<int> seen(frames, 0);
    int received = 0;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (received < frames && std::chrono::steady_clock::now() < deadline) {
        const auto f = c.receive_raw(500ms);
        if (!f || f->size() != 4 + payload_size) continue;
        if ((((*f)[0] << 8) | (*f)[1]) != channel) continue;
        const int id = (*f)[4];
        ASSERT_LT(id, frames);
        ++seen[static_cast<std::size_t>(id)];
        ++received;
    }
    EXPECT_EQ(received, frames) << server.process->output();
    for (int i = 0; i < frames; ++i) EXPECT_EQ(seen[static_cast<std::size_t>(i)], 1) << i;
}

TEST(TurnRelayStreams, TcpChannelDataBurstEchoedExactlyOnce) {
    expect_stream_channel_data_echoed(false);
}

TEST(TurnRelayStreams, TlsChannelDataBurstEchoedExactlyOnce) {
    expect_stream_channel_data_echoed(true);
}

// ---------------------------------------------------------------------------------------------
// Behind 1:1 NAT: relay sockets bind the private address, clients are told the public one.

TEST(TurnRelayExternal, AdvertisesTheExternalAddressAndBindsTheInternalOne) {
    const std::uint16_t port = free_port();
    std::string yaml = relay_yaml(port, free_port());
    const std::string relay_section = "relay:\n";
    yaml.replace(yaml.find(relay_section), relay_section.size(),
                 relay_section +
                     "  addresses: [ 127.0.0.1 ]\n"
                     "  external_addresses: { 127.0.0.1: 203.0.113.7 }\n");
    TerndProcess ternd(yaml);
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    EXPECT_NE(ternd.output().find("relay ipv4: bound on 127.0.0.1, advertised as 203.0.113.7, "
                                  "ports 46000-46999"),
              std::string::npos)
        << ternd.output();

    TurnClient c(loopback4(port), "alice", "wonderland");
    const Reply r = c.request(Method::allocate, TurnClient::udp_transport());
    ASSERT_EQ(r.code(), 0) << r.describe() << "\n" << ternd.output();
    const auto relayed = r.view.xor_relayed_address();
    ASSERT_TRUE(relayed);
    EXPECT_EQ(relayed->ip_string(), "203.0.113.7");
    EXPECT_GE(relayed->port, 46000);
    EXPECT_LE(relayed->port, 46999);

    // The socket itself is on the internal address, at the advertised port.
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in internal{};
    internal.sin_family = AF_INET;
    internal.sin_port = htons(relayed->port);
    internal.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_NE(::bind(fd, reinterpret_cast<const sockaddr*>(&internal), sizeof internal), 0);
    EXPECT_EQ(errno, EADDRINUSE);
    ::close(fd);
}

// relay.external_address: one line for the common case, every IPv4 relay address advertised as
// it, with no relay.addresses needed (the socket binds where the client arrived).
TEST(TurnRelayExternal, OneExternalAddressCoversTheFamily) {
    const std::uint16_t port = free_port();
    std::string yaml = relay_yaml(port, free_port());
    const std::string relay_section = "relay:\n";
    yaml.replace(yaml.find(relay_section), relay_section.size(),
                 relay_section + "  external_address: 203.0.113.9\n");
    TerndProcess ternd(yaml);
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    EXPECT_NE(ternd.output().find("relay ipv4: bound on the address each client reached, "
                                  "advertised as 203.0.113.9"),
              std::string::npos)
        << ternd.output();
    EXPECT_NE(ternd.output().find("relay ipv6: bound on the address each client reached, "
                                  "advertised as the same"),
              std::string::npos)
        << ternd.output();

    TurnClient c(loopback4(port), "alice", "wonderland");
    const Reply r = c.request(Method::allocate, TurnClient::udp_transport());
    ASSERT_EQ(r.code(), 0) << r.describe() << "\n" << ternd.output();
    const auto relayed = r.view.xor_relayed_address();
    ASSERT_TRUE(relayed);
    EXPECT_EQ(relayed->ip_string(), "203.0.113.9");
}

// ---------------------------------------------------------------------------------------------
// SIGTERM with a grace period: live allocations keep working, new ones are refused, and ternd
// exits 0 as soon as the last one is gone, or when the grace period is over.

std::string draining_yaml(std::uint16_t port, std::uint32_t grace) {
    std::string y = relay_yaml(port, free_port());
    const std::string none = "shutdown_grace: 0";
    y.replace(y.find(none), none.size(), "shutdown_grace: " + std::to_string(grace));
    return y;
}

TEST(TurnRelayDrain, SigtermKeepsLiveAllocationsRefusesNewOnesAndExitsWhenTheyEnd) {
    const std::uint16_t port = free_port();
    TerndProcess ternd(draining_yaml(port, 30));
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    TurnClient live(loopback4(port), "alice", "wonderland");
    ASSERT_EQ(live.request(Method::allocate, TurnClient::udp_transport()).code(), 0);

    ternd.send_signal(SIGTERM);
    ASSERT_TRUE(ternd.wait_for_output("draining 1 allocations", 5s)) << ternd.output();
    EXPECT_FALSE(ternd.wait_exited(1s));  // the live allocation holds it open

    // The live allocation still answers; a new client is sent elsewhere with 508.
    const Reply refreshed =
        live.request(Method::refresh, [](MessageBuilder& b) { b.add_lifetime(600); });
    EXPECT_EQ(refreshed.code(), 0) << refreshed.describe();
    TurnClient late(loopback4(port), "alice", "wonderland");
    EXPECT_EQ(late.request(Method::allocate, TurnClient::udp_transport()).code(), 508);

    // Deleting the last allocation ends the drain.
    EXPECT_EQ(live.request(Method::refresh, [](MessageBuilder& b) { b.add_lifetime(0); }).code(),
              0);
    EXPECT_TRUE(ternd.wait_exited(5s)) << ternd.output();
    EXPECT_EQ(ternd.stop(), 0);
}

TEST(TurnRelayDrain, TheGracePeriodBoundsTheWait) {
    const std::uint16_t port = free_port();
    TerndProcess ternd(draining_yaml(port, 2));
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    TurnClient live(loopback4(port), "alice", "wonderland");
    ASSERT_EQ(live.request(Method::allocate, TurnClient::udp_transport()).code(), 0);
    const auto start = std::chrono::steady_clock::now();
    ternd.send_signal(SIGTERM);
    EXPECT_TRUE(ternd.wait_exited(6s)) << ternd.output();
    EXPECT_GE(std::chrono::steady_clock::now() - start, 1900ms);
    EXPECT_NE(ternd.output().find("grace period over, 1 allocations end now"), std::string::npos)
        << ternd.output();
    EXPECT_EQ(ternd.stop(), 0);
}

TEST(TurnRelayDrain, ASecondSigtermStopsAtOnce) {
    const std::uint16_t port = free_port();
    TerndProcess ternd(draining_yaml(port, 60));
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    TurnClient live(loopback4(port), "alice", "wonderland");
    ASSERT_EQ(live.request(Method::allocate, TurnClient::udp_transport()).code(), 0);
    ternd.send_signal(SIGTERM);
    ASSERT_TRUE(ternd.wait_for_output("draining", 5s)) << ternd.output();
    ternd.send_signal(SIGTERM);
    EXPECT_TRUE(ternd.wait_exited(3s)) << ternd.output();
    EXPECT_EQ(ternd.stop(), 0);
}

}  // namespace
}  // namespace tern::test
