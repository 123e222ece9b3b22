// libFuzzer target: the whole request path, stateful. An input is a script of steps run against
// one RequestDispatcher + AllocationManager with a fake clock and a recording egress, so the
// fuzzer explores sequences (allocate, permit, bind, relay, expire, close), not single messages.
//
// Step: [op][length hi][length lo][payload]. ops (op % 6):
//   0  payload to the dispatcher as a UDP datagram from client A
//   1  payload to the dispatcher as a TCP frame from client B
//   2  a request signed as alice with a valid nonce (the fuzzer cannot forge HMACs itself), sent
//      from client A, or B when (op / 6) & 1. With (op / 6) & 2 clear, the payload is parsed as
//      STUN and its attributes are copied; set, the payload is raw (send_raw_signed below), so the
//      attributes need not parse: unknown address families, attributes after the integrity
//      attribute, a second MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 with USERHASH.
//   3  payload as a datagram from a peer (address from its first bytes) to a relay socket
//   4  advance the clock by payload[0] * 8 seconds and run the expiry sweep
//   5  client B's connection closes
#include <algorithm>
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
#include "tern/auth/long_term_authenticator.hpp"
#include "tern/config/config.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"
#include "tern/server/request/relay_settings.hpp"
#include "tern/server/request/request_dispatcher.hpp"

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
    bool send_to_client(const allocation::FiveTuple&, allocation::ClientRoute,
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
        // One relay address per family, so client A (IPv4) and client B (IPv6) can both get
        // either family and dual-stack allocations; with none, each client could only relay on
        // the address it reached and every dual-stack Allocate ended in 440.
        cfg.relay.addresses = {
            TransportAddress::v4({192, 0, 2, 1}, 0),
            TransportAddress::v6({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 0)};
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
        ctx.transport = client_b ? protocol::Transport::tcp : protocol::Transport::udp;
        ctx.client = client_b ? allocation::ClientRoute::connection(2)
                              : allocation::ClientRoute::listener(1);
        ctx.now = now;
        ctx.unix_now =
            start_unix +
            std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
        return ctx;
    }

    std::span<const std::uint8_t> send(std::span<const std::uint8_t> packet, bool client_b) {
        protocol::MessageView request;
        const bool parsed =
            protocol::MessageView::parse(packet, request) == protocol::ParseError::ok;
        if (parsed) seen_transactions.push_back(request.transaction_id());
        const auto reply = dispatcher.handle(packet, context(client_b), out);
        if (!reply.empty()) {
            protocol::MessageView view;
            // Every reply is a well-formed STUN message of at most the buffer's size.
            require(protocol::MessageView::parse(reply, view) == protocol::ParseError::ok);
            // Malformed messages are discarded, never answered (RFC 8489 §6.3), whatever they
            // carry (an unknown address family, say).
            require(parsed);
        }
        return reply;
    }

    bool seen(const protocol::TransactionId& id) const {
        for (const auto& s : seen_transactions) {
            if (s == id) return true;
        }
        return false;
    }

    // What a signed request that reached the manager may get back, checked only for a
    // transaction id not sent before (a retransmission gets the first answer from the cache).
    void check_answer(const protocol::MessageView& request, std::span<const std::uint8_t> reply) {
        protocol::MessageView answer;
        if (reply.empty() ||
            protocol::MessageView::parse(reply, answer) != protocol::ParseError::ok ||
            answer.message_class() != protocol::MessageClass::success_response) {
            return;
        }
        const std::uint32_t max_lifetime = config->limits.max_lifetime;
        if (request.method() == protocol::Method::allocate) {
            // REQUESTED-TRANSPORT is required (RFC 8656 §7.2), and one that follows the
            // integrity attribute does not count (RFC 8489 §14.5): `request` is the view the
            // dispatcher saw, which skips it.
            require(request.requested_transport().has_value());
            // An unknown REQUESTED-ADDRESS-FAMILY is 440, an ADDITIONAL-ADDRESS-FAMILY other
            // than IPv6 is 400 (RFC 8656 §7.2): neither is ever granted.
            const auto family = request.requested_address_family();
            require(!family || *family == 0x01 || *family == 0x02);
            const auto additional = request.additional_address_family();
            require(!additional || *additional == 0x02);
            // LIFETIME is capped, 0xFFFFFFFF included, and 0 in an Allocate is not a delete.
            const auto granted = answer.lifetime();
            require(granted && *granted > 0 && *granted <= max_lifetime);
            std::array<TransportAddress, 4> relayed{};
            const std::size_t n =
                answer.xor_addresses(protocol::attr::xor_relayed_address, relayed);
            require(n == 1 || n == 2);
        }
        if (request.method() == protocol::Method::refresh) {
            const auto granted = answer.lifetime();
            require(granted && *granted <= max_lifetime);
            // LIFETIME 0 deletes (RFC 8656 §7.3), and the answer says 0.
            if (request.lifetime() == 0u) require(*granted == 0);
        }
    }

    // Signs `b` (the attributes before the credentials already in it) as alice: USERNAME or
    // USERHASH, REALM, NONCE, with SHA-256 also PASSWORD-ALGORITHMS and PASSWORD-ALGORITHM, then
    // MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256.
    void add_credentials(protocol::MessageBuilder& b, bool client_b, bool sha256, bool hashed) {
        if (hashed) {
            const auto hash = auth::userhash("alice", "fuzz");
            b.add_bytes(protocol::attr::userhash, hash);
        } else {
            b.add_text(protocol::attr::username, "alice");
        }
        b.add_text(protocol::attr::realm, "fuzz");
        b.add_text(protocol::attr::nonce, nonce(client_b));
        if (sha256) {
            static constexpr std::array<std::uint8_t, 4> chosen = {0x00, 0x02, 0x00, 0x00};
            b.add_bytes(protocol::attr::password_algorithms,
                        auth::LongTermAuthenticator::offered_algorithms);
            b.add_bytes(protocol::attr::password_algorithm, chosen);
            b.add_message_integrity_sha256(sha256_key.bytes());
        } else {
            b.add_message_integrity(key.bytes());
        }
    }

    void send_checked(std::span<const std::uint8_t> message, bool client_b) {
        protocol::MessageView request;
        const bool fresh =
            protocol::MessageView::parse(message, request) == protocol::ParseError::ok &&
            !seen(request.transaction_id());
        const auto reply = send(message, client_b);
        if (fresh) check_answer(request, reply);
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
        add_credentials(b, client_b, false, false);
        b.add_fingerprint();
        if (b.ok()) send_checked(b.finish(), client_b);
    }

    // payload: [method hi][method lo][flags][transaction id, 12 bytes][TLVs]. The TLVs are copied
    // as they are (a last one cut short keeps what is left), so their values need not be valid.
    // flags & 0x0F: how many TLVs go before the credentials (15: all); the rest follow the
    //               integrity attribute, where RFC 8489 §14.5/§14.6 says they are ignored
    // flags & 0x10: PASSWORD-ALGORITHM SHA-256 and MESSAGE-INTEGRITY-SHA256
    // flags & 0x20: a second MESSAGE-INTEGRITY (under another key) after those TLVs
    // flags & 0x40: USERHASH instead of USERNAME
    // flags & 0x80: no FINGERPRINT
    void send_raw_signed(std::span<const std::uint8_t> payload, bool client_b) {
        if (payload.size() < 15) return;
        const auto method = static_cast<protocol::Method>((payload[0] << 8 | payload[1]) & 0x0FFF);
        const std::uint8_t flags = payload[2];
        protocol::TransactionId id;
        std::copy_n(payload.begin() + 3, id.bytes.size(), id.bytes.begin());
        std::span<const std::uint8_t> tlvs = payload.subspan(15);

        std::array<std::uint8_t, 2048> buf{};
        protocol::MessageBuilder b(buf, {method, protocol::MessageClass::request}, id);
        const unsigned before = flags & 0x0F;
        bool signed_yet = false;
        for (unsigned i = 0; tlvs.size() >= 4; ++i) {
            if (i == before && !signed_yet) {
                add_credentials(b, client_b, (flags & 0x10) != 0, (flags & 0x40) != 0);
                signed_yet = true;
            }
            const auto type = static_cast<std::uint16_t>(tlvs[0] << 8 | tlvs[1]);
            const std::size_t length = std::min<std::size_t>(
                static_cast<std::size_t>(tlvs[2] << 8 | tlvs[3]), tlvs.size() - 4);
            b.add_bytes(type, tlvs.subspan(4, length));
            tlvs = tlvs.subspan(std::min(tlvs.size(), 4 + ((length + 3) & ~std::size_t{3})));
        }
        if (!signed_yet) add_credentials(b, client_b, (flags & 0x10) != 0, (flags & 0x40) != 0);
        if ((flags & 0x20) != 0) {
            static constexpr std::array<std::uint8_t, 5> other_key = {'o', 't', 'h', 'e', 'r'};
            b.add_message_integrity(other_key);
        }
        if ((flags & 0x80) == 0) b.add_fingerprint();
        if (b.ok()) send_checked(b.finish(), client_b);
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
    auth::LongTermKey sha256_key = auth::sha256_key("alice", "fuzz", "wonderland");
    std::vector<protocol::TransactionId> seen_transactions;
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
            case 2: {
                const unsigned variant = op / 6;
                if ((variant & 2) != 0) {
                    h.send_raw_signed(payload, (variant & 1) != 0);
                } else {
                    h.send_signed(payload, (variant & 1) != 0);
                }
                break;
            }
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
                    {h.context(true).source, h.context(true).local, protocol::Transport::tcp});
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
