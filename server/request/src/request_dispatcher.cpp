#include "tern/server/request/request_dispatcher.hpp"

#include <algorithm>
#include <array>

#include "tern/auth/credential_store.hpp"
#include "tern/auth/expiry_policy.hpp"
#include "tern/auth/long_term_authenticator.hpp"
#include "tern/auth/nonce_authority.hpp"
#include "tern/protocol/integrity.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"
#include "tern/server/request/binding_responder.hpp"
#include "tern/server/request/relay_settings.hpp"
#include "tern/server/request/stun_responses.hpp"

namespace tern::server {

using protocol::MessageClass;
using protocol::MessageView;

namespace {

// UNKNOWN-ATTRIBUTES lists at most this many types; enough to tell the client what to drop
// while keeping the error small for an unauthenticated sender.
constexpr std::size_t max_unknown_listed = 8;
// Sources tracked by the unauthenticated-request limiter of one worker (about 300 KiB).
constexpr std::size_t source_slots = 8192;

bool is_turn_method(protocol::Method m) noexcept {
    return m == protocol::Method::allocate || m == protocol::Method::refresh ||
           m == protocol::Method::create_permission || m == protocol::Method::channel_bind;
}

// RFC 8489 §6.3.1.1: the unknown comprehension-required attributes, and for a Binding the RFC 5780
// ones tern does not serve; returns how many there are (only the first `out.size()` are written).
std::size_t unknown_attributes(const MessageView& msg,
                               std::array<std::uint16_t, max_unknown_listed>& out) noexcept {
    std::size_t n = msg.unknown_comprehension_required(out);
    if (msg.method() == protocol::Method::binding) {
        std::array<std::uint16_t, max_unknown_listed> unsupported{};
        const std::size_t n_unsupported =
            BindingResponder::unsupported_attributes(msg, unsupported);
        for (std::size_t i = 0; i < n_unsupported && i < unsupported.size(); ++i) {
            if (n < out.size()) out[n] = unsupported[i];
            ++n;
        }
    }
    return n;
}

std::vector<auth::StaticUserCredential> static_users(const config::Config& c) {
    std::vector<auth::StaticUserCredential> users;
    for (const auto& u : c.auth.users) users.push_back({u.name, u.password, u.key});
    return users;
}

}  // namespace

static_assert(static_cast<std::size_t>(auth::AuthOutcome::revoked) + 1 ==
                  std::tuple_size_v<decltype(DispatchCounters::auth_outcomes)>,
              "one tally per AuthOutcome");

std::size_t method_slot(protocol::Method method) noexcept {
    switch (method) {
        case protocol::Method::binding:
            return 0;
        case protocol::Method::allocate:
            return 1;
        case protocol::Method::refresh:
            return 2;
        case protocol::Method::create_permission:
            return 3;
        case protocol::Method::channel_bind:
            return 4;
        default:
            return counted_methods.size() - 1;
    }
}

std::size_t code_slot(std::uint16_t code) noexcept {
    for (std::size_t i = 0; i < counted_codes.size(); ++i) {
        if (counted_codes[i] == code) return i;
    }
    return counted_codes.size();
}

struct RequestDispatcher::Credentials {
    explicit Credentials(const config::Config& c)
        : store(c.realm, c.auth.secrets, static_users(c)),
          // PASSWORD-ALGORITHMS is offered so RFC 8489 clients may pick SHA-256; older clients
          // (browsers) ignore it and keep MD5 (§9.2.4).
          nonces(c.auth.nonce_secret ? std::optional<std::string_view>(*c.auth.nonce_secret)
                                     : std::nullopt,
                 c.auth.nonce_lifetime, auth::SecurityFeatures{true, false}),
          authenticator(store, nonces, c.auth.max_credential_lifetime),
          policy(expiry_policy(c.auth.expiry)) {}
    auth::CredentialStore store;
    auth::NonceAuthority nonces;
    auth::LongTermAuthenticator authenticator;
    auth::ExpiryPolicy policy;
};

RequestDispatcher::RequestDispatcher(std::shared_ptr<const config::Config> config,
                                     allocation::AllocationManager* relay, std::uint64_t hash_seed,
                                     SourceRateLimiter* unauthenticated)
    : config_(std::move(config)),
      credentials_(std::make_unique<Credentials>(*config_)),
      relay_(relay),
      own_limiter_(unauthenticated != nullptr
                       ? nullptr
                       : std::make_unique<SourceRateLimiter>(config_->limits.unauthenticated_rate,
                                                             config_->limits.unauthenticated_burst,
                                                             source_slots, hash_seed,
                                                             config_->limits.ipv6_source_prefix)),
      unauthenticated_(unauthenticated != nullptr ? unauthenticated : own_limiter_.get()) {}

RequestDispatcher::~RequestDispatcher() = default;

void RequestDispatcher::set_config(std::shared_ptr<const config::Config> config) {
    config_ = std::move(config);
    credentials_ = std::make_unique<Credentials>(*config_);
    unauthenticated_->set_rate(config_->limits.unauthenticated_rate,
                               config_->limits.unauthenticated_burst,
                               config_->limits.ipv6_source_prefix);
}

std::span<const std::uint8_t> RequestDispatcher::turn_request(const MessageView& msg,
                                                              const PacketContext& context,
                                                              std::span<std::uint8_t> out,
                                                              bool& authenticated) {
    const auto& creds = *credentials_;
    auth::AuthResult result =
        creds.authenticator.authenticate(msg, context.source, context.unix_now);
    // The expiry policy decides whether a verified but expired REST credential still counts.
    if (result.outcome == auth::AuthOutcome::credential_expired &&
        !auth::refuses(creds.policy, msg.method(), result.rest_expiry, context.unix_now)) {
        result.outcome = auth::AuthOutcome::ok;
    }
    // A revoked user's credential verifies but is refused like a wrong one, so a client that
    // leaked it learns nothing more than a guesser would.
    if (result.ok() && revocations_ && revocations_->refuses(result.username, context.unix_now)) {
        result.outcome = auth::AuthOutcome::revoked;
    }
    if (!result.ok()) {
        // Challenges and failures cost the sender's bucket; past its rate it gets silence.
        if (!unauthenticated_->allow(context.source, context.now)) {
            ++counters_.rate_limited;
            return {};
        }
        ++counters_.error_responses;
        ++counters_.auth_outcomes[static_cast<std::size_t>(result.outcome)];
        if (result.outcome == auth::AuthOutcome::challenge) {
            ++counters_.auth_challenges;
        } else {
            ++counters_.auth_failures;
        }
        protocol::MessageBuilder b(
            out, protocol::MessageType{msg.method(), MessageClass::error_response},
            msg.transaction_id());
        b.add_error_code(result.error_code(), auth::reason_phrase(result.outcome));
        if (result.needs_challenge()) {
            creds.authenticator.add_challenge(b, context.source, context.unix_now);
        }
        // SOFTWARE is left out on purpose: unauthenticated senders get the smallest answer.
        b.add_fingerprint();
        return b.finish();
    }
    authenticated = true;
    allocation::Requester requester;
    requester.username = result.username;
    requester.key = result.key.bytes();
    requester.sha256 = result.integrity == auth::IntegrityKind::message_integrity_sha256;
    if (const auto end = auth::teardown_at(creds.policy, result.rest_expiry)) {
        const auto left = std::max<std::int64_t>(0, *end - context.unix_now);
        requester.teardown_at = context.now + std::chrono::seconds(left);
    }
    const allocation::FiveTuple tuple{context.source, context.local, context.transport};
    const auto reply =
        relay_->handle_request(msg, tuple, context.client, requester, context.now, out);
    if (reply.empty() && relay_->take_deferred()) {
        if (deferrals_ != nullptr) deferrals_->hold(msg.bytes(), context);
        return reply;
    }
    const auto parsed_class = reply.size() >= 2 && (reply[1] & 0x10) != 0
                                  ? MessageClass::error_response
                                  : MessageClass::success_response;
    ++(parsed_class == MessageClass::error_response ? counters_.error_responses
                                                    : counters_.success_responses);
    return reply;
}

std::span<const std::uint8_t> RequestDispatcher::handle(std::span<const std::uint8_t> packet,
                                                        const PacketContext& context,
                                                        std::span<std::uint8_t> out) noexcept {
    bool authenticated = false;
    return handle(packet, context, out, authenticated);
}

std::span<const std::uint8_t> RequestDispatcher::handle(std::span<const std::uint8_t> packet,
                                                        const PacketContext& context,
                                                        std::span<std::uint8_t> out,
                                                        bool& authenticated) noexcept {
    if (packet.empty()) {
        ++counters_.dropped_other;
        return {};
    }
    // ChannelData is recognised by its first two bits, before any STUN parsing (RFC 8656 §12).
    if (protocol::looks_like_channel_data(packet[0]) && relay_ != nullptr) {
        const allocation::FiveTuple tuple{context.source, context.local, context.transport};
        relay_->on_channel_data(packet, tuple, context.now);
        return {};
    }
    if (!protocol::looks_like_stun(packet[0])) {
        ++counters_.dropped_other;
        return {};
    }
    MessageView msg;
    if (MessageView::parse(packet, msg) != protocol::ParseError::ok) {
        ++counters_.dropped_malformed;  // RFC 8489 §6.3: malformed messages are discarded
        return {};
    }
    // A FINGERPRINT that does not match means this is not a STUN message at all (§14.7).
    if (protocol::verify_fingerprint(msg) == protocol::IntegrityResult::mismatch) {
        ++counters_.dropped_malformed;
        return {};
    }
    switch (msg.message_class()) {
        case MessageClass::indication: {
            ++counters_.indications;  // Binding indications are keepalives: no reply
            // RFC 8489 §6.3.2: an indication with an unknown comprehension-required attribute
            // is discarded.
            std::array<std::uint16_t, 1> unknown{};
            if (msg.unknown_comprehension_required(unknown) > 0) {
                ++counters_.dropped_other;
                return {};
            }
            if (msg.method() == protocol::Method::send && relay_ != nullptr) {
                const allocation::FiveTuple tuple{context.source, context.local, context.transport};
                relay_->on_send_indication(msg, tuple, context.now);
            }
            return {};
        }
        case MessageClass::success_response:
        case MessageClass::error_response:
            ++counters_.dropped_other;
            return {};
        case MessageClass::request:
            break;
    }
    ++counters_.requests;
    const auto reply = answer(msg, context, out, authenticated);
    if (!reply.empty()) count_response(msg.method(), reply);
    return reply;
}

void RequestDispatcher::count_response(protocol::Method method,
                                       std::span<const std::uint8_t> reply) noexcept {
    std::uint16_t code = 200;
    MessageView parsed;
    if (MessageView::parse(reply, parsed) == protocol::ParseError::ok &&
        parsed.message_class() == MessageClass::error_response) {
        const auto error = parsed.error_code();
        code = error ? error->code : 0;
    }
    ++counters_.responses[method_slot(method)][code_slot(code)];
}

std::span<const std::uint8_t> RequestDispatcher::answer(const MessageView& msg,
                                                        const PacketContext& context,
                                                        std::span<std::uint8_t> out,
                                                        bool& authenticated) {
    // A UDP request "from" one of tern's relayed addresses is spoofed: its answer would reach
    // another client's relay session as data. No answer at all. Relays are UDP, so a TCP or TLS
    // client (which cannot spoof) on the same port number is someone else.
    if (relay_ != nullptr && context.transport == protocol::Transport::udp &&
        relay_->is_own_relayed_address(context.source)) {
        ++counters_.dropped_other;
        return {};
    }
    // RFC 8489 §6.3: "Once the authentication checks are done, the STUN agent MUST check for
    // unknown attributes": a TURN request (RFC 8656 §7.2 step 1: authenticated first) learns
    // about attributes only after it has proven its credential, from the manager, which signs
    // its 420. Those requests pay the sender's bucket in turn_request, unless they
    // authenticate.
    if (relay_ != nullptr && is_turn_method(msg.method())) {
        return turn_request(msg, context, out, authenticated);
    }
    // Binding and methods tern does not implement take no credentials: every answer costs the
    // sender's bucket.
    if (!unauthenticated_->allow(context.source, context.now)) {
        ++counters_.rate_limited;
        return {};
    }
    const std::string_view software = config_->software;
    std::array<std::uint16_t, max_unknown_listed> unknown{};
    const std::size_t n_unknown = unknown_attributes(msg, unknown);
    if (n_unknown > 0) {
        ++counters_.error_responses;
        const std::size_t listed = std::min(n_unknown, unknown.size());
        return write_error_response(msg, 420, "Unknown Attribute", software, out,
                                    std::span<const std::uint16_t>(unknown.data(), listed));
    }
    if (msg.method() == protocol::Method::binding) {
        ++counters_.success_responses;
        return BindingResponder::respond(msg, context, software, out);
    }
    // Methods tern does not implement (RFC 6062 Connect, ...) are refused plainly.
    ++counters_.error_responses;
    return write_error_response(msg, 400, "Unsupported method", software, out);
}

}  // namespace tern::server
