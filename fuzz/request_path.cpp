// libFuzzer target: the whole request path, stateful. An input is a script of steps run against
// one RequestDispatcher + AllocationManager with a fake clock and a recording egress, so the
// fuzzer explores sequences (allocate, permit, bind, relay, expire, close), not single messages.
//
// Step: [op][length hi][length lo][payload]. ops (op % 6):
//   0  payload to the dispatcher as a UDP datagram from client A
//   1  payload to the dispatcher as a TCP frame from client B
//   2  payload parsed as STUN, its attributes copied into a request signed as alice with a valid
//      nonce (the fuzzer cannot forge HMACs itself), sent from client A (op & 8: client B)
//   3  payload as a datagram from a peer (address from its first bytes) to a relay socket
//   4  advance the clock by payload[0] * 8 seconds and run the expiry sweep
//   5  client B's connection closes
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tern/allocation/allocation_manager.hpp"
#include "tern/allocation/allocation_quota.hpp"
#include "tern/allocation/relay_ports.hpp"
#include "tern/auth/credential_store.hpp"
#include "tern/config/config.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"
#include "tern/server/relay_settings.hpp"
#include "tern/server/request_dispatcher.hpp"

namespace {

using namespace tern;
using protocol::TransportAddress;

void require(bool condition) {
    if (!condition) __builtin_trap();
}

constexpr std::int64_t start_unix = 1'800'000'000;

class CountingRandom final : public allocation::RandomSource {
public:
    std::uint64_t next() noexcept override { return state_ += 0x9E3779B97F4A7C15ull; }

private:
    std::uint64_t state_ = 1;
};

// Checks the egress contract the manager must keep: only open relays are used or closed.
class CheckingEgress final : public allocation::RelayEgress {
public:
    allocation::OpenRelayResult open_relay(const TransportAddress&, bool) override {
        const allocation::RelayId id = next_++;
        open_.push_back(id);
        return {allocation::OpenRelayStatus::opened, id};
    }
    void close_relay(allocation::RelayId id) noexcept override {
        for (auto& o : open_) {
            if (o == id) {
                o = open_.back();
                open_.pop_back();
                return;
            }
        }
        __builtin_trap();  // closing a relay that is not open
    }
    bool send_to_peer(allocation::RelayId id, const TransportAddress&,
                      std::span<const std::uint8_t> payload) noexcept override {
        require(is_open(id));
        require(payload.size() <= 65535);
        return true;
    }
    bool send_to_client(const allocation::FiveTuple&, allocation::ClientId,
                        std::span<const std::uint8_t> message) noexcept override {
        require(!message.empty());
        return true;
    }
    bool is_open(allocation::RelayId id) const {
        for (auto o : open_) {
            if (o == id) return true;
        }
        return false;
    }
    std::size_t open_count() const { return open_.size(); }
    allocation::RelayId any(std::uint8_t pick) const {
        return open_.empty() ? 0 : open_[pick % open_.size()];
    }

private:
    allocation::RelayId next_ = 1;
    std::vector<allocation::RelayId> open_;
};

const config::Config& fuzz_config() {
    static const config::Config c = [] {
        config::Config cfg;
        cfg.realm = "fuzz";
        cfg.auth.secrets = {"s3cret"};
        cfg.auth.users = {{"alice", "wonderland", std::nullopt}};
        cfg.auth.nonce_secret = "a fixed nonce key for fuzzing";
        cfg.relay.allow_peers = {protocol::Cidr::covering(TransportAddress::v4({0, 0, 0, 0}, 0), 0),
                                 protocol::Cidr::covering(TransportAddress::v6({}, 0), 0)};
        cfg.relay.deny_peers = {
            protocol::Cidr::covering(TransportAddress::v4({10, 0, 0, 0}, 0), 8)};
        cfg.relay.channel_numbers = config::ChannelNumbers::rfc5766;
        cfg.limits.max_allocations = 4;
        cfg.limits.max_allocations_per_user = 3;
        // Shallow buckets (70 kB and 100 kB deep, about one largest datagram) so a script can
        // run them dry and refill them.
        cfg.limits.allocation_bandwidth = 70000;
        cfg.limits.user_bandwidth = 100000;
        return cfg;
    }();
    return c;
}

// A fresh harness per input must be cheap: a small retransmission cache.
allocation::ManagerSettings small(allocation::ManagerSettings s) {
    s.transaction_slots = 16;
    return s;
}

struct Harness {
    Harness()
        : config(std::make_shared<const config::Config>(fuzz_config())),
          ports(50000, 50015, random),
          quota(4, 3),
          manager(small(server::manager_settings(*config)), server::make_peer_policy(*config, {}),
                  ports, egress, 7, &quota),
          dispatcher(config, &manager) {}

    server::PacketContext context(bool client_b) const {
        server::PacketContext ctx;
        ctx.source = client_b
                         ? TransportAddress::v6(
                               {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, 40002)
                         : TransportAddress::v4({198, 51, 100, 1}, 40001);
        ctx.local = client_b
                        ? TransportAddress::v6(
                              {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 3478)
                        : TransportAddress::v4({192, 0, 2, 1}, 3478);
        ctx.transport = client_b ? config::Transport::tcp : config::Transport::udp;
        ctx.client = client_b ? 2 : 1;
        ctx.now = now;
        ctx.unix_now =
            start_unix +
            std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
        return ctx;
    }

    std::span<const std::uint8_t> send(std::span<const std::uint8_t> packet, bool client_b) {
        const auto reply = dispatcher.handle(packet, context(client_b), out);
        if (!reply.empty()) {
            protocol::MessageView view;
            // Every reply is a well-formed STUN message of at most the buffer's size.
            require(protocol::MessageView::parse(reply, view) == protocol::ParseError::ok);
        }
        return reply;
    }

    std::string nonce(bool client_b) {
        std::array<std::uint8_t, 32> buf{};
        protocol::MessageBuilder b(
            buf, {protocol::Method::allocate, protocol::MessageClass::request}, {});
        const auto reply = send(b.finish(), client_b);
        protocol::MessageView view;
        if (reply.empty() || protocol::MessageView::parse(reply, view) != protocol::ParseError::ok)
            return {};
        const auto n = view.nonce();
        return n ? std::string(*n) : std::string();
    }

    // Copies the attributes the fuzzer chose and signs the result as alice.
    void send_signed(std::span<const std::uint8_t> payload, bool client_b) {
        protocol::MessageView in;
        if (protocol::MessageView::parse(payload, in) != protocol::ParseError::ok) return;
        std::array<std::uint8_t, 2048> buf{};
        protocol::MessageBuilder b(buf, {in.method(), protocol::MessageClass::request},
                                   in.transaction_id());
        for (std::size_t i = 0; i < in.attribute_count(); ++i) {
            const auto a = in.attribute(i);
            if (a.type == protocol::attr::username || a.type == protocol::attr::realm ||
                a.type == protocol::attr::nonce || a.type == protocol::attr::message_integrity ||
                a.type == protocol::attr::message_integrity_sha256 ||
                a.type == protocol::attr::fingerprint || a.type == protocol::attr::userhash ||
                a.type == protocol::attr::password_algorithm ||
                a.type == protocol::attr::password_algorithms) {
                continue;
            }
            b.add_bytes(a.type, a.value);
        }
        b.add_text(protocol::attr::username, "alice");
        b.add_text(protocol::attr::realm, "fuzz");
        b.add_text(protocol::attr::nonce, nonce(client_b));
        b.add_message_integrity(key.bytes());
        b.add_fingerprint();
        if (b.ok()) send(b.finish(), client_b);
    }

    CountingRandom random;
    std::shared_ptr<const config::Config> config;
    allocation::RelayPorts ports;
    allocation::AllocationQuota quota;
    CheckingEgress egress;
    allocation::AllocationManager manager;
    server::RequestDispatcher dispatcher;
    allocation::TimePoint now{};
    auth::LongTermKey key = auth::md5_key("alice", "fuzz", "wonderland");
    std::array<std::uint8_t, 1024> out{};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Harness h;
    std::span<const std::uint8_t> input(data, size);
    for (int steps = 0; input.size() >= 3 && steps < 64; ++steps) {
        const std::uint8_t op = input[0];
        const std::size_t length = std::min<std::size_t>(
            (static_cast<std::size_t>(input[1]) << 8 | input[2]), input.size() - 3);
        const auto payload = input.subspan(3, length);
        input = input.subspan(3 + length);
        switch (op % 6) {
            case 0:
                h.send(payload, false);
                break;
            case 1:
                h.send(payload, true);
                break;
            case 2:
                h.send_signed(payload, (op & 8) != 0);
                break;
            case 3: {
                if (payload.size() < 7) break;
                const auto peer =
                    TransportAddress::v4({payload[1], payload[2], payload[3], payload[4]},
                                         static_cast<std::uint16_t>(payload[5] << 8 | payload[6]));
                h.manager.on_peer_datagram(h.egress.any(payload[0]), peer, payload.subspan(7),
                                           h.now);
                break;
            }
            case 4:
                h.now += std::chrono::seconds(payload.empty() ? 1 : payload[0] * 8);
                h.manager.expire(h.now);
                break;
            case 5:
                h.manager.on_client_closed(
                    {h.context(true).source, h.context(true).local, allocation::Transport::tcp});
                break;
        }
        // Every live allocation holds one or two relays; nothing leaks past the quota.
        require(h.manager.allocation_count() <= 4);
        require(h.egress.open_count() <= 2 * h.manager.allocation_count());
    }
    h.manager.clear();
    require(h.egress.open_count() == 0);
    require(h.quota.total() == 0);
    return 0;
}
