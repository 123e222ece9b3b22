// Driving a real AllocationManager the way a client would, for the tests that need it: STUN
// requests built and signed like a client's, responses parsed and checked for what every answer
// must have, the usual addresses, and a fixture that builds the manager on first use over a
// recording RelayEgress on a manual time line. Test-only code may allocate.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fake_egress.hpp"
#include "tern/allocation/allocation_manager.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/cidr.hpp"
#include "tern/protocol/integrity.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"
#include "tern/protocol/message_type.hpp"
#include "tern/protocol/transport_address.hpp"
#include "test_addresses.hpp"
#include "test_random.hpp"

namespace tern::allocation::testing {

inline constexpr std::uint8_t udp_protocol = 17;
inline constexpr std::uint8_t tcp_protocol = 6;
inline constexpr std::uint8_t family_v4 = 0x01;
inline constexpr std::uint8_t family_v6 = 0x02;
inline constexpr std::uint16_t first_port = 50000;
inline constexpr std::uint16_t last_port = 50099;

inline protocol::TransportAddress ta(const std::string& text) {
    return addr(text.c_str());
}

inline protocol::TransportAddress ip(const char* text) {
    auto a = protocol::TransportAddress::parse_ip(text);
    EXPECT_TRUE(a.has_value()) << text;
    return a.value_or(protocol::TransportAddress{});
}

inline bool same_ip(const protocol::TransportAddress& a, const protocol::TransportAddress& b) {
    return a.family == b.family && a.bytes == b.bytes;
}

inline const protocol::TransportAddress server4 = ta("198.51.100.1:3478");
inline const protocol::TransportAddress server6 = ta("[2001:db8::1]:3478");
inline const protocol::TransportAddress relay_v4 = ip("198.51.100.20");
inline const protocol::TransportAddress relay_v6 = ip("2001:db8::20");
// Public-looking peers: the default peer policy refuses special-purpose ranges (TEST-NET too).
inline const protocol::TransportAddress peer_a = ta("8.8.8.8:5000");
inline const protocol::TransportAddress peer_b = ta("1.1.1.1:6000");
inline const protocol::TransportAddress peer_v6 = ta("[2001:4860::8888]:5000");

inline FiveTuple tuple(std::uint16_t client_port,
                       protocol::Transport transport = protocol::Transport::udp,
                       const protocol::TransportAddress& server = server4) {
    const protocol::TransportAddress client =
        server.family == protocol::AddressFamily::ipv4
            ? ta("203.0.113.5:" + std::to_string(client_port))
            : ta("[2001:db8:5::5]:" + std::to_string(client_port));
    return FiveTuple{client, server, transport};
}

inline std::shared_ptr<const PeerPolicy> policy(std::vector<protocol::Cidr> allow = {},
                                                std::vector<protocol::Cidr> deny = {},
                                                std::vector<protocol::TransportAddress> own = {}) {
    return std::make_shared<const PeerPolicy>(allow, deny, own);
}

// A STUN request or indication under construction. The builder writes into buffer_, so the
// object stays where it was made.
class Request {
public:
    Request(protocol::Method method, std::uint32_t serial,
            protocol::MessageClass cls = protocol::MessageClass::request)
        : buffer_(4096), builder_(buffer_, protocol::MessageType{method, cls}, id(serial)) {}
    Request(const Request&) = delete;
    Request& operator=(const Request&) = delete;

    static protocol::TransactionId id(std::uint32_t serial) {
        protocol::TransactionId t;
        t.bytes.fill(0xA5);
        t.bytes[0] = static_cast<std::uint8_t>(serial >> 24);
        t.bytes[1] = static_cast<std::uint8_t>(serial >> 16);
        t.bytes[2] = static_cast<std::uint8_t>(serial >> 8);
        t.bytes[3] = static_cast<std::uint8_t>(serial);
        return t;
    }

    Request& transport(std::uint8_t protocol = udp_protocol) {
        builder_.add_requested_transport(protocol);
        return *this;
    }
    Request& family(std::uint8_t f) {
        const std::array<std::uint8_t, 4> v{f, 0, 0, 0};
        builder_.add_bytes(protocol::attr::requested_address_family, v);
        return *this;
    }
    Request& additional_family(std::uint8_t f) {
        const std::array<std::uint8_t, 4> v{f, 0, 0, 0};
        builder_.add_bytes(protocol::attr::additional_address_family, v);
        return *this;
    }
    Request& lifetime(std::uint32_t seconds) {
        builder_.add_lifetime(seconds);
        return *this;
    }
    Request& peer(const protocol::TransportAddress& p) {
        builder_.add_xor_address(protocol::attr::xor_peer_address, p);
        return *this;
    }
    Request& channel(std::uint16_t c) {
        builder_.add_channel_number(c);
        return *this;
    }
    Request& even_port(bool reserve_next) {
        builder_.add_even_port(reserve_next);
        return *this;
    }
    Request& token(std::uint64_t t) {
        builder_.add_reservation_token(t);
        return *this;
    }
    Request& dont_fragment() {
        builder_.add_flag(protocol::attr::dont_fragment);
        return *this;
    }
    Request& data(std::span<const std::uint8_t> payload) {
        builder_.add_bytes(protocol::attr::data, payload);
        return *this;
    }

    // The finished message, parsed. Requests end with MESSAGE-INTEGRITY and FINGERPRINT as a
    // client would send them (the caller, not the manager, checks them).
    const protocol::MessageView& view() {
        if (!finished_) {
            finished_ = true;
            if (builder_.ok() && cls() == protocol::MessageClass::request) {
                const std::array<std::uint8_t, 16> key{};
                builder_.add_message_integrity(key);
                builder_.add_fingerprint();
            }
            EXPECT_TRUE(builder_.ok());
            EXPECT_EQ(protocol::MessageView::parse(builder_.finish(), view_),
                      protocol::ParseError::ok);
        }
        return view_;
    }

private:
    protocol::MessageClass cls() const {
        return protocol::MessageType::decode(
                   static_cast<std::uint16_t>(buffer_[0] << 8 | buffer_[1]))
            .cls;
    }

    std::vector<std::uint8_t> buffer_;
    protocol::MessageBuilder builder_;
    protocol::MessageView view_;
    bool finished_ = false;
};

// A response copied out of the manager's buffer and parsed. Moving keeps the vector's storage,
// so the view stays valid; copying would not, hence deleted.
struct Response {
    std::vector<std::uint8_t> bytes;
    protocol::MessageView view;
    bool parsed = false;

    Response() = default;
    Response(Response&&) = default;
    Response(const Response&) = delete;

    bool success() const {
        return parsed && view.message_class() == protocol::MessageClass::success_response;
    }
    std::uint16_t error() const {
        if (!parsed || view.message_class() != protocol::MessageClass::error_response) return 0;
        const auto e = view.error_code();
        return e ? e->code : 0;
    }
    protocol::TransportAddress relayed() const {
        return view.xor_relayed_address().value_or(protocol::TransportAddress{});
    }
    std::vector<protocol::TransportAddress> all_relayed() const {
        std::array<protocol::TransportAddress, 4> out{};
        const std::size_t n = view.xor_addresses(protocol::attr::xor_relayed_address, out);
        return {out.begin(), out.begin() + static_cast<std::ptrdiff_t>(std::min(n, out.size()))};
    }
    std::uint32_t lifetime() const { return view.lifetime().value_or(0xFFFFFFFF); }
};

// An AllocationManager driven through handle_request on a manual time line (`now`), relaying
// through a FakeEgress, with two users (alice, bob) and helpers for each request.
class ManagerFixture : public ::testing::Test {
protected:
    ManagerFixture() {
        alice_key.fill(0x11);
        bob_key.fill(0x22);
    }

    // Built on first use, so a test may change `settings`, `peers` or the port range first.
    AllocationManager& manager() {
        if (!manager_) {
            ports_ = std::make_unique<RelayPorts>(port_first, port_last, random_);
            manager_ = std::make_unique<AllocationManager>(settings, peers, *ports_, egress,
                                                           0x5EED5EED5EED5EEDull);
            built(*manager_);
        }
        return *manager_;
    }
    RelayPorts& ports() {
        manager();
        return *ports_;
    }
    // Called once the manager is built, before its first request.
    virtual void built(AllocationManager& /*manager*/) {}

    Requester alice() const { return Requester{"alice", alice_key, false, std::nullopt}; }
    Requester bob() const { return Requester{"bob", bob_key, false, std::nullopt}; }

    std::uint32_t next_serial() { return ++serial_; }

    // Runs a request and checks what every answer must have: the same method and transaction
    // ID, MESSAGE-INTEGRITY (or -SHA256) under the requester's key, then FINGERPRINT.
    Response send(Request& request, const FiveTuple& t, const Requester& who,
                  ClientRoute client = ClientRoute::connection(77)) {
        const protocol::MessageView& req = request.view();
        std::vector<std::uint8_t> out(8192);
        const auto answer = manager().handle_request(req, t, client, who, now, out);
        Response r;
        r.bytes.assign(answer.begin(), answer.end());
        if (r.bytes.empty()) return r;
        r.parsed = protocol::MessageView::parse(r.bytes, r.view) == protocol::ParseError::ok;
        EXPECT_TRUE(r.parsed) << "unparseable response";
        if (!r.parsed) return r;
        EXPECT_EQ(r.view.method(), req.method());
        EXPECT_EQ(r.view.transaction_id(), req.transaction_id());
        if (who.sha256) {
            EXPECT_EQ(protocol::verify_message_integrity_sha256(r.view, who.key),
                      protocol::IntegrityResult::ok);
        } else {
            EXPECT_EQ(protocol::verify_message_integrity(r.view, who.key),
                      protocol::IntegrityResult::ok);
        }
        EXPECT_EQ(protocol::verify_fingerprint(r.view), protocol::IntegrityResult::ok);
        return r;
    }

    Response allocate(const FiveTuple& t, const Requester& who) {
        Request r(protocol::Method::allocate, next_serial());
        r.transport();
        return send(r, t, who);
    }
    // An Allocate that must succeed; returns the relayed address.
    protocol::TransportAddress must_allocate(const FiveTuple& t, const Requester& who) {
        const Response r = allocate(t, who);
        EXPECT_TRUE(r.success()) << "error " << r.error();
        return r.relayed();
    }
    Response permit(const FiveTuple& t, const Requester& who,
                    std::initializer_list<protocol::TransportAddress> peers_to_add) {
        Request r(protocol::Method::create_permission, next_serial());
        for (const auto& p : peers_to_add) r.peer(p);
        return send(r, t, who);
    }
    Response bind(const FiveTuple& t, const Requester& who, std::uint16_t channel,
                  const protocol::TransportAddress& peer) {
        Request r(protocol::Method::channel_bind, next_serial());
        r.channel(channel).peer(peer);
        return send(r, t, who);
    }
    Response refresh(const FiveTuple& t, const Requester& who, std::optional<std::uint32_t> life) {
        Request r(protocol::Method::refresh, next_serial());
        if (life) r.lifetime(*life);
        return send(r, t, who);
    }
    RelayId relay_id(const FiveTuple& t) {
        const Allocation* a = manager().find(t, now);
        EXPECT_NE(a, nullptr);
        return a ? a->relay_ids[0] : 0;
    }

    ManagerSettings settings;
    std::shared_ptr<const PeerPolicy> peers = policy();
    std::uint16_t port_first = first_port;
    std::uint16_t port_last = last_port;
    TimePoint now = t0;
    std::array<std::uint8_t, 16> alice_key{};
    std::array<std::uint8_t, 16> bob_key{};

    // Declared before the manager so they outlive it.
    SeededRandom random_{42};
    FakeEgress egress;
    std::unique_ptr<RelayPorts> ports_;
    std::unique_ptr<AllocationManager> manager_;

private:
    std::uint32_t serial_ = 0;
};

}  // namespace tern::allocation::testing
