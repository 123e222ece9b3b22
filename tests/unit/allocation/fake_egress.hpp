// A RelayEgress for the AllocationManager tests: records every call (with copies of the bytes)
// and can be scripted to refuse the next relay socket opens, so each RFC 8656 rule about relay
// sockets and relayed data can be checked without real sockets. Test-only code may allocate.
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <vector>

#include "tern/allocation/five_tuple.hpp"
#include "tern/allocation/relay_egress.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::allocation::testing {

class FakeEgress final : public RelayEgress {
public:
    struct OpenCall {
        protocol::TransportAddress address;
        bool dont_fragment = false;
        OpenRelayStatus status = OpenRelayStatus::failed;  // what the fake answered
        RelayId id = 0;                                    // set when opened
    };
    struct PeerSend {
        RelayId relay = 0;
        protocol::TransportAddress peer;
        std::vector<std::uint8_t> payload;
    };
    struct ClientSend {
        FiveTuple tuple;
        ClientRoute client;
        std::vector<std::uint8_t> message;
    };

    OpenRelayResult open_relay(const protocol::TransportAddress& address,
                               bool dont_fragment) override {
        OpenCall call{address, dont_fragment, OpenRelayStatus::opened, 0};
        if (!scripted_.empty()) {
            call.status = scripted_.front();
            scripted_.pop_front();
        }
        if (call.status == OpenRelayStatus::opened) {
            call.id = next_id_++;
            open_ids.push_back(call.id);
        }
        opens.push_back(call);
        return OpenRelayResult{call.status, call.id};
    }

    void close_relay(RelayId id) noexcept override {
        closes.push_back(id);
        std::erase(open_ids, id);
    }

    bool send_to_peer(RelayId id, const protocol::TransportAddress& peer,
                      std::span<const std::uint8_t> payload) noexcept override {
        to_peer.push_back(PeerSend{id, peer, {payload.begin(), payload.end()}});
        return send_result;
    }

    bool send_to_client(const FiveTuple& tuple, ClientRoute client,
                        std::span<const std::uint8_t> message) noexcept override {
        to_client.push_back(ClientSend{tuple, client, {message.begin(), message.end()}});
        return send_result;
    }

    // The next `count` open_relay calls answer `status` instead of opening.
    void fail_next_opens(OpenRelayStatus status, std::size_t count = 1) {
        for (std::size_t i = 0; i < count; ++i) scripted_.push_back(status);
    }

    // Successful opens only.
    std::size_t opened_count() const {
        std::size_t n = 0;
        for (const auto& c : opens) n += c.status == OpenRelayStatus::opened ? 1 : 0;
        return n;
    }

    std::vector<OpenCall> opens;        // every open_relay call, in order
    std::vector<RelayId> open_ids;      // opened and not yet closed
    std::vector<RelayId> closes;        // every close_relay call, in order
    std::vector<PeerSend> to_peer;      // every send_to_peer call
    std::vector<ClientSend> to_client;  // every send_to_client call
    bool send_result = true;            // what send_to_peer / send_to_client return

private:
    std::deque<OpenRelayStatus> scripted_;
    RelayId next_id_ = 101;  // not 0, so a default-initialised id is never mistaken for one
};

}  // namespace tern::allocation::testing
