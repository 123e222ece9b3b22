// Proves a running server relays without touching the heap: a whole Server (listener, worker,
// relay sockets) in this process, and operator new counts calls made on worker threads.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <ctime>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "loopback_udp.hpp"
#include "tern/auth/credential_store.hpp"
#include "tern/auth/rest_credential.hpp"
#include "tern/config/config.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/channel_data.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"
#include "tern/server/main/server.hpp"

// GCC sees the replaced delete inlined into std::allocator and takes its free() for a mismatch
// with operator new; here both sides are malloc/free by construction.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
std::atomic<bool> armed{false};
std::atomic<int> worker_allocations{0};

// Worker threads name themselves "tern-w<N>"; the test's own client code may allocate freely.
bool on_worker_thread() {
    thread_local int worker = -1;
    if (worker < 0) {
        char name[16] = {};
        ::prctl(PR_GET_NAME, name);
        worker = std::strncmp(name, "tern-w", 6) == 0 ? 1 : 0;
    }
    return worker == 1;
}
}  // namespace

void* operator new(std::size_t size) {
    if (armed.load(std::memory_order_relaxed) && on_worker_thread()) {
        worker_allocations.fetch_add(1);
    }
    if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}

namespace tern::server {
namespace {

namespace p = protocol;
using Bytes = std::vector<std::uint8_t>;

using UdpSocket = LoopbackUdp;

class RelayPathHeap : public ::testing::Test {
protected:
    void SetUp() override {
        // Both bandwidth caps on, so their buckets are on the measured path too.
        auto loaded = config::load_config_text(
            "realm: heap.test\n"
            "listen: [ \"udp://127.0.0.1:0\" ]\n"
            "auth: { secrets: [ \"heap-secret\" ] }\n"
            "relay: { addresses: [ 127.0.0.1 ], allow_peers: [ 127.0.0.0/8 ] }\n"
            "limits: { allocation_bandwidth: 1000000000, user_bandwidth: 1000000000 }\n"
            "threads: 1\n"
            "log: { level: error }\n",
            "heap-test");
        ASSERT_TRUE(loaded.config.has_value());
        server_ = std::make_unique<Server>(std::move(*loaded.config), "");
        ASSERT_TRUE(server_->open());
        server_address_ = server_->bound_listeners().at(0).address;
        thread_ = std::thread([this] { server_->run(); });
    }
    void TearDown() override {
        if (thread_.joinable()) {
            std::raise(SIGINT);  // Server::run stops on SIGINT at once
            thread_.join();
        }
    }

    // Sends a request and returns the parsed answer's bytes (kept alive by `storage`).
    p::MessageView exchange(std::span<const std::uint8_t> request, Bytes& storage) {
        p::MessageView view;
        for (int attempt = 0; attempt < 5; ++attempt) {
            client_.send(server_address_, request);
            storage = client_.receive();
            if (!storage.empty() && p::MessageView::parse(storage, view) == p::ParseError::ok) {
                return view;
            }
        }
        ADD_FAILURE() << "no answer from the server";
        return view;
    }

    std::span<const std::uint8_t> sign(p::MessageBuilder& b) {
        b.add_text(p::attr::username, username_);
        b.add_text(p::attr::realm, realm_);
        b.add_text(p::attr::nonce, nonce_);
        b.add_message_integrity(key_.bytes());
        return b.finish();
    }

    p::TransactionId next_id() {
        p::TransactionId id;
        id.bytes[0] = ++counter_;
        id.bytes[1] = 0x5A;
        return id;
    }

    std::unique_ptr<Server> server_;
    std::thread thread_;
    p::TransportAddress server_address_;
    UdpSocket client_;
    // Valid for an hour: within auth.max_credential_lifetime.
    std::string username_ = std::to_string(std::time(nullptr) + 3600) + ":heap";
    std::string realm_;
    std::string nonce_;
    auth::LongTermKey key_;
    std::uint8_t counter_ = 0;
};

TEST_F(RelayPathHeap, ChannelDataAndIndicationsBothWaysMakeNoWorkerAllocation) {
    UdpSocket channel_peer;  // reached through channel 0x4000
    UdpSocket plain_peer;    // reached through Send and Data indications
    std::array<std::uint8_t, 512> buffer{};
    Bytes storage;

    // Allocate (401, then authenticated), a permission for both peers, a channel for one.
    {
        p::MessageBuilder b(buffer, {p::Method::allocate, p::MessageClass::request}, next_id());
        b.add_requested_transport(17);
        const auto challenge = exchange(b.finish(), storage);
        ASSERT_EQ(challenge.message_class(), p::MessageClass::error_response);
        realm_ = std::string(*challenge.realm());
        nonce_ = std::string(*challenge.nonce());
        key_ = auth::md5_key(username_, realm_, auth::rest_password("heap-secret", username_));
    }
    {
        p::MessageBuilder b(buffer, {p::Method::allocate, p::MessageClass::request}, next_id());
        b.add_requested_transport(17);
        ASSERT_EQ(exchange(sign(b), storage).message_class(), p::MessageClass::success_response);
    }
    for (const UdpSocket* peer : {&channel_peer, &plain_peer}) {
        p::MessageBuilder b(buffer, {p::Method::create_permission, p::MessageClass::request},
                            next_id());
        b.add_xor_address(p::attr::xor_peer_address, peer->address());
        ASSERT_EQ(exchange(sign(b), storage).message_class(), p::MessageClass::success_response);
    }
    {
        p::MessageBuilder b(buffer, {p::Method::channel_bind, p::MessageClass::request}, next_id());
        b.add_channel_number(0x4000);
        b.add_xor_address(p::attr::xor_peer_address, channel_peer.address());
        ASSERT_EQ(exchange(sign(b), storage).message_class(), p::MessageClass::success_response);
    }

    Bytes channel_data(4 + 100, 0xAB);
    p::write_channel_data_header(std::span<std::uint8_t, 4>(channel_data.data(), 4), 0x4000, 100);
    Bytes send_indication(256);
    {
        p::MessageBuilder b(send_indication, {p::Method::send, p::MessageClass::indication},
                            next_id());
        b.add_xor_address(p::attr::xor_peer_address, plain_peer.address());
        const Bytes payload(100, 0xCD);
        b.add_bytes(p::attr::data, payload);
        send_indication.resize(b.size());
    }
    const Bytes answer(100, 0xEF);

    // One round: client -> both peers, then both peers -> client; every leg must arrive.
    p::TransportAddress relayed{};
    int delivered = 0;
    const auto round = [&] {
        client_.send(server_address_, channel_data);
        if (channel_peer.receive(&relayed).size() == 100) ++delivered;
        channel_peer.send(relayed, answer);
        if (client_.receive().size() == 104) ++delivered;
        client_.send(server_address_, send_indication);
        if (plain_peer.receive().size() == 100) ++delivered;
        plain_peer.send(relayed, answer);
        if (!client_.receive().empty()) ++delivered;
    };
    // Warm-up: Asio's handler memory and the first-use caches fill here.
    for (int i = 0; i < 200; ++i) round();
    ASSERT_EQ(delivered, 800);

    delivered = 0;
    worker_allocations = 0;
    armed = true;
    constexpr int rounds = 5000;
    for (int i = 0; i < rounds; ++i) round();
    armed = false;
    EXPECT_EQ(delivered, 4 * rounds);
    EXPECT_EQ(worker_allocations.load(), 0)
        << "operator new was called on a worker thread while relaying";
}

}  // namespace
}  // namespace tern::server
