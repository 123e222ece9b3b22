// Property test: seeded random valid messages are built, parsed back attribute for attribute,
// verified, and every single-byte corruption of a protected message is detected.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string_view>
#include <vector>

#include "tern/protocol/integrity.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"

namespace tern::protocol {
namespace {

using Bytes = std::vector<std::uint8_t>;

// mt19937's sequence is fixed by the standard; the distributions are not, so scale by hand.
class Random {
public:
    explicit Random(std::uint32_t seed) : engine_(seed) {}
    std::uint32_t next() { return static_cast<std::uint32_t>(engine_()); }
    std::size_t below(std::size_t n) { return n == 0 ? 0 : next() % n; }
    std::size_t between(std::size_t lo, std::size_t hi) { return lo + below(hi - lo + 1); }
    bool chance(unsigned percent) { return below(100) < percent; }
    std::uint8_t byte() { return static_cast<std::uint8_t>(next()); }
    Bytes bytes(std::size_t n) {
        Bytes out(n);
        for (auto& b : out) b = byte();
        return out;
    }

private:
    std::mt19937 engine_;
};

struct Expected {
    std::uint16_t type;
    Bytes value;                                  // as it must read back (XOR-coded on the wire)
    std::optional<TransportAddress> xor_address;  // for XOR address attributes
};

TransportAddress random_address(Random& rng) {
    if (rng.chance(50)) {
        return TransportAddress::v4({rng.byte(), rng.byte(), rng.byte(), rng.byte()},
                                    static_cast<std::uint16_t>(rng.next()));
    }
    std::array<std::uint8_t, 16> a{};
    for (auto& b : a) b = rng.byte();
    return TransportAddress::v6(a, static_cast<std::uint16_t>(rng.next()));
}

Bytes password_algorithm_entry(Random& rng) {
    const std::size_t params = rng.below(9);
    Bytes entry{0, static_cast<std::uint8_t>(rng.between(1, 2)), 0,
                static_cast<std::uint8_t>(params)};
    for (std::size_t i = 0; i < params; ++i) entry.push_back(rng.byte());
    while (entry.size() % 4 != 0) entry.push_back(0);
    return entry;
}

// Appends one random attribute to the builder and records what must read back.
void add_random_attribute(Random& rng, MessageBuilder& b, std::set<std::uint16_t>& used,
                          std::vector<Expected>& expected) {
    // Single-valued attributes are used once; generators are retried a few times.
    for (int attempt = 0; attempt < 8; ++attempt) {
        const auto pick = rng.below(24);
        auto take = [&](std::uint16_t type) { return used.insert(type).second; };
        auto raw = [&](std::uint16_t type, Bytes value) {
            b.add_bytes(type, value);
            expected.push_back({type, std::move(value), std::nullopt});
        };
        auto text = [&](std::uint16_t type, std::size_t lo, std::size_t hi) {
            raw(type, rng.bytes(rng.between(lo, hi)));  // the codec does not interpret text
        };
        switch (pick) {
            case 0:
                if (take(attr::username)) return text(attr::username, 1, 512);
                break;
            case 1:
                if (take(attr::realm)) return text(attr::realm, 1, 763);
                break;
            case 2:
                if (take(attr::nonce)) return text(attr::nonce, 1, 763);
                break;
            case 3:
                if (take(attr::software)) return text(attr::software, 0, 763);
                break;
            case 4:
                if (take(attr::data)) return text(attr::data, 0, 1200);
                break;
            case 5:
                if (take(attr::error_code)) {
                    const auto code = static_cast<std::uint16_t>(rng.between(300, 699));
                    const Bytes reason = rng.bytes(rng.below(128));
                    b.add_error_code(code,
                                     {reinterpret_cast<const char*>(reason.data()), reason.size()});
                    Bytes v{0, 0, static_cast<std::uint8_t>(code / 100),
                            static_cast<std::uint8_t>(code % 100)};
                    v.insert(v.end(), reason.begin(), reason.end());
                    expected.push_back({attr::error_code, v, std::nullopt});
                    return;
                }
                break;
            case 6:
            case 7: {
                // Repeatable: may appear any number of times.
                const std::uint16_t type =
                    pick == 6 ? attr::xor_peer_address : attr::xor_relayed_address;
                const auto address = random_address(rng);
                b.add_xor_address(type, address);
                expected.push_back({type, {}, address});
                return;
            }
            case 8: {
                const std::uint16_t types[] = {attr::xor_mapped_address, attr::alternate_server,
                                               attr::response_origin, attr::other_address,
                                               attr::mapped_address};
                const auto type = types[rng.below(5)];
                if (!take(type)) break;
                const auto address = random_address(rng);
                if (type == attr::xor_mapped_address) {
                    b.add_xor_address(type, address);
                    expected.push_back({type, {}, address});
                } else {
                    b.add_address(type, address);
                    Bytes v{0, static_cast<std::uint8_t>(address.family),
                            static_cast<std::uint8_t>(address.port >> 8),
                            static_cast<std::uint8_t>(address.port)};
                    v.insert(v.end(), address.bytes.begin(),
                             address.bytes.begin() + static_cast<long>(address.address_size()));
                    expected.push_back({type, v, std::nullopt});
                }
                return;
            }
            case 9: {
                const std::uint16_t types[] = {
                    attr::lifetime, attr::channel_number, attr::requested_transport,
                    attr::priority, attr::connection_id,  attr::change_request};
                const auto type = types[rng.below(6)];
                if (!take(type)) break;
                const auto value = rng.next();
                b.add_u32(type, value);
                expected.push_back(
                    {type,
                     {static_cast<std::uint8_t>(value >> 24),
                      static_cast<std::uint8_t>(value >> 16), static_cast<std::uint8_t>(value >> 8),
                      static_cast<std::uint8_t>(value)},
                     std::nullopt});
                return;
            }
            case 10:
                if (take(attr::even_port)) {
                    const bool reserve = rng.chance(50);
                    b.add_even_port(reserve);
                    expected.push_back(
                        {attr::even_port, {static_cast<std::uint8_t>(reserve ? 0x80 : 0)}, {}});
                    return;
                }
                break;
            case 11:
                if (take(attr::reservation_token))
                    return raw(attr::reservation_token, rng.bytes(8));
                break;
            case 12: {
                const std::uint16_t type =
                    rng.chance(50) ? attr::dont_fragment : attr::use_candidate;
                if (take(type)) {
                    b.add_flag(type);
                    expected.push_back({type, {}, std::nullopt});
                    return;
                }
                break;
            }
            case 13:
                if (take(attr::userhash)) return raw(attr::userhash, rng.bytes(32));
                break;
            case 14:
                if (take(attr::unknown_attributes)) {
                    return raw(attr::unknown_attributes, rng.bytes(2 * rng.between(1, 8)));
                }
                break;
            case 15:
                if (take(attr::password_algorithm)) {
                    return raw(attr::password_algorithm, password_algorithm_entry(rng));
                }
                break;
            case 16:
                if (take(attr::password_algorithms)) {
                    Bytes v;
                    for (std::size_t n = rng.between(1, 3); n > 0; --n) {
                        const auto entry = password_algorithm_entry(rng);
                        v.insert(v.end(), entry.begin(), entry.end());
                    }
                    return raw(attr::password_algorithms, v);
                }
                break;
            case 17:
                if (take(attr::icmp)) return raw(attr::icmp, rng.bytes(8));
                break;
            case 18: {
                const std::uint16_t type =
                    rng.chance(50) ? attr::ice_controlled : attr::ice_controlling;
                if (take(type)) return raw(type, rng.bytes(8));
                break;
            }
            case 19:
                if (take(attr::mobility_ticket)) return text(attr::mobility_ticket, 0, 64);
                break;
            case 20:
                if (take(attr::padding)) return text(attr::padding, 0, 64);
                break;
            case 21:
                if (take(attr::alternate_domain)) return text(attr::alternate_domain, 1, 255);
                break;
            case 22:
                if (take(attr::address_error_code)) {
                    Bytes v{static_cast<std::uint8_t>(rng.between(1, 2)), 0,
                            static_cast<std::uint8_t>(rng.between(3, 6)),
                            static_cast<std::uint8_t>(rng.below(100))};
                    const auto reason = rng.bytes(rng.below(40));
                    v.insert(v.end(), reason.begin(), reason.end());
                    return raw(attr::address_error_code, v);
                }
                break;
            default: {
                // Unknown comprehension-optional types, possibly repeated.
                const auto type = static_cast<std::uint16_t>(0xC000 + rng.below(16));
                return raw(type, rng.bytes(rng.below(40)));
            }
        }
    }
}

struct Protection {
    bool integrity = false;
    bool integrity_sha256 = false;
    bool fingerprint = false;
    bool any() const { return integrity || integrity_sha256 || fingerprint; }
};

// True when parse succeeds and every protection the message carries still verifies.
bool accepted(std::span<const std::uint8_t> bytes, std::span<const std::uint8_t> key,
              const Protection& p) {
    MessageView m;
    if (MessageView::parse(bytes, m) != ParseError::ok) return false;
    if (p.integrity && verify_message_integrity(m, key) != IntegrityResult::ok) return false;
    if (p.integrity_sha256 && verify_message_integrity_sha256(m, key) != IntegrityResult::ok) {
        return false;
    }
    if (p.fingerprint && verify_fingerprint(m) != IntegrityResult::ok) return false;
    return true;
}

TEST(RoundTrip, RandomMessagesReadBackAndResistCorruption) {
    Random rng(20240611);
    std::vector<std::uint8_t> buffer(65552);
    std::size_t protected_messages = 0;
    std::size_t corruptions = 0;
    constexpr int iterations = 3000;
    for (int iteration = 0; iteration < iterations; ++iteration) {
        SCOPED_TRACE(iteration);
        const MessageType type{static_cast<Method>(rng.below(0x1000)),
                               static_cast<MessageClass>(rng.below(4))};
        TransactionId id;
        for (auto& b : id.bytes) b = rng.byte();
        MessageBuilder builder(buffer, type, id);
        if (rng.chance(30)) builder.set_padding_byte(rng.byte());

        std::set<std::uint16_t> used;
        std::vector<Expected> expected;
        const std::size_t count = rng.below(21);
        for (std::size_t i = 0; i < count; ++i) {
            add_random_attribute(rng, builder, used, expected);
        }
        const Bytes key = rng.bytes(rng.below(33));
        Protection protection;
        if (rng.chance(50)) {
            builder.add_message_integrity(key);
            protection.integrity = true;
        }
        std::size_t sha_length = 0;
        if (rng.chance(30)) {
            sha_length = 16 + 4 * rng.below(5);
            builder.add_message_integrity_sha256(key, sha_length);
            protection.integrity_sha256 = true;
        }
        if (rng.chance(50)) {
            builder.add_fingerprint();
            protection.fingerprint = true;
        }
        ASSERT_TRUE(builder.ok());
        const auto bytes = builder.finish();

        MessageView m;
        ASSERT_EQ(MessageView::parse(bytes, m), ParseError::ok);
        EXPECT_EQ(m.type(), type);
        EXPECT_EQ(m.transaction_id(), id);
        const std::size_t trailer = (protection.integrity ? 1 : 0) +
                                    (protection.integrity_sha256 ? 1 : 0) +
                                    (protection.fingerprint ? 1 : 0);
        ASSERT_EQ(m.attribute_count(), expected.size() + trailer);
        std::vector<TransportAddress> peers;
        std::vector<TransportAddress> relayed;
        for (std::size_t i = 0; i < expected.size(); ++i) {
            const auto a = m.attribute(i);
            const auto& e = expected[i];
            ASSERT_EQ(a.type, e.type) << i;
            if (e.xor_address) {
                if (e.type == attr::xor_peer_address) peers.push_back(*e.xor_address);
                if (e.type == attr::xor_relayed_address) relayed.push_back(*e.xor_address);
                if (e.type == attr::xor_mapped_address) {
                    EXPECT_EQ(m.xor_mapped_address(), e.xor_address);
                }
            } else {
                EXPECT_EQ(Bytes(a.value.begin(), a.value.end()), e.value) << attribute_name(e.type);
            }
        }
        std::vector<TransportAddress> read(peers.size() + relayed.size() + 1);
        ASSERT_EQ(m.xor_addresses(attr::xor_peer_address, read), peers.size());
        EXPECT_TRUE(std::equal(peers.begin(), peers.end(), read.begin()));
        ASSERT_EQ(m.xor_addresses(attr::xor_relayed_address, read), relayed.size());
        EXPECT_TRUE(std::equal(relayed.begin(), relayed.end(), read.begin()));

        ASSERT_TRUE(accepted(bytes, key, protection));
        if (protection.integrity) {
            // Not key + "\0": HMAC zero-pads keys, so that would be the same key.
            Bytes wrong = key;
            if (wrong.empty()) {
                wrong.push_back(0x01);
            } else {
                wrong.back() ^= 0x01;
            }
            EXPECT_EQ(verify_message_integrity(m, wrong), IntegrityResult::mismatch);
        } else {
            EXPECT_EQ(verify_message_integrity(m, key), IntegrityResult::absent);
        }
        if (protection.integrity_sha256) {
            EXPECT_EQ(m.find(attr::message_integrity_sha256)->value.size(), sha_length);
        }
        if (!protection.fingerprint) {
            EXPECT_EQ(verify_fingerprint(m), IntegrityResult::absent);
        }

        if (!protection.any()) continue;
        ++protected_messages;
        // Every byte of short messages, a sample of the long ones.
        Bytes corrupted(bytes.begin(), bytes.end());
        const bool exhaustive = corrupted.size() <= 256;
        const std::size_t trials = exhaustive ? corrupted.size() : 64;
        for (std::size_t t = 0; t < trials; ++t) {
            const std::size_t at = exhaustive ? t : rng.below(corrupted.size());
            const auto flip = static_cast<std::uint8_t>(rng.between(1, 255));
            corrupted[at] ^= flip;
            EXPECT_FALSE(accepted(corrupted, key, protection))
                << "byte " << at << " ^ " << int{flip} << " went unnoticed";
            corrupted[at] ^= flip;
            ++corruptions;
        }
    }
    // The generator must actually produce the cases the property is about.
    EXPECT_GT(protected_messages, static_cast<std::size_t>(iterations) / 2);
    EXPECT_GT(corruptions, 100000u);
}

}  // namespace
}  // namespace tern::protocol
