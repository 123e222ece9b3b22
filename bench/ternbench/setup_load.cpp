#include "setup_load.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <iostream>
#include <limits>
#include <stdexcept>

#include "tern/auth/credential_store.hpp"
#include "tern/protocol/attribute_type.hpp"

namespace ternbench {

namespace p = tern::protocol;

namespace {
// wait: allocated, waiting for SetupPlan::peer_of to name the peer.
enum class Step : std::uint8_t { idle, challenge, allocate, wait, permit, bind, release, done };
constexpr auto retransmit_after = std::chrono::milliseconds(500);
constexpr int max_retransmits = 7;
constexpr std::uint64_t max_errors = 1000;
// Latency samples kept per kind: 4 M (16 MiB) is minutes of set-ups at this machine's rate.
constexpr std::size_t max_latency_samples = std::size_t{1} << 22;

void keep(std::vector<std::uint32_t>& samples, Clock::time_point from, Clock::time_point to) {
    if (samples.size() >= max_latency_samples) return;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count();
    samples.push_back(static_cast<std::uint32_t>(
        std::clamp<std::int64_t>(ns, 0, std::numeric_limits<std::uint32_t>::max())));
}

double quantile_us(std::vector<std::uint32_t>& v, double q) {
    if (v.empty()) return 0;
    const auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return static_cast<double>(v[k]) / 1e3;
}
}  // namespace

struct SetupEngine::State {
    Step step = Step::idle;
    p::TransactionId id{};
    Credential credential;
    std::string realm;
    std::string nonce;
    TransportAddress relayed{};
    Clock::time_point sent_at{};
    int retransmits = 0;
    std::array<std::uint8_t, 512> request{};
    std::size_t request_size = 0;
    TransportAddress peer{};
    bool reopen = false;
    Clock::time_point setup_started{};     // the first Allocate of this set-up went out
    Clock::time_point allocate_started{};  // the authenticated Allocate went out
};

SetupEngine::SetupEngine(std::vector<std::unique_ptr<Link>>& links, SetupPlan plan)
    : links_(links), plan_(std::move(plan)), states_(links.size()) {
    epoll_ = ::epoll_create1(0);
    for (std::size_t i = 0; i < links_.size(); ++i) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = i;
        ::epoll_ctl(epoll_, EPOLL_CTL_ADD, links_[i]->fd(), &ev);
        // One user name per link, as browsers of different users would have.
        states_[i].credential = rest_credential(plan_.secret, "bench" + std::to_string(i));
    }
}

SetupEngine::~SetupEngine() {
    if (epoll_ >= 0) ::close(epoll_);
}

TransportAddress SetupEngine::relayed(std::size_t link) const {
    return states_.at(link).relayed;
}

void SetupEngine::start_recording() {
    recording_ = true;
    allocate_ns_.clear();
    setup_ns_.clear();
}

double SetupEngine::allocate_latency_us(double q) {
    return quantile_us(allocate_ns_, q);
}

double SetupEngine::setup_latency_us(double q) {
    return quantile_us(setup_ns_, q);
}

void SetupEngine::start(std::size_t i, Clock::time_point now) {
    states_[i].step = Step::challenge;
    send_step(i, now, true);
}

void SetupEngine::send_step(std::size_t i, Clock::time_point now, bool fresh) {
    State& s = states_[i];
    if (fresh) {
        s.id = random_transaction_id();
        s.retransmits = 0;
        const Signing signing{&s.credential, s.realm, s.nonce};
        std::span<const std::uint8_t> built;
        switch (s.step) {
            case Step::challenge:
                built = allocate_request(s.request, s.id, {});
                break;
            case Step::allocate:
                built = allocate_request(s.request, s.id, signing);
                break;
            case Step::permit:
                built = create_permission_request(s.request, s.id, s.peer, signing);
                break;
            case Step::bind:
                built = channel_bind_request(s.request, s.id, bench_channel, s.peer, signing);
                break;
            case Step::release:
                built = refresh_request(s.request, s.id, 0, signing);
                break;
            default:
                return;
        }
        s.request_size = built.size();
        // Read the clock here, not `now` (when the loop woke up), for the latencies.
        if (s.step == Step::challenge) s.setup_started = Clock::now();
        if (s.step == Step::allocate) s.allocate_started = Clock::now();
    }
    s.sent_at = now;
    if (!links_[i]->send({s.request.data(), s.request_size})) {
        throw std::runtime_error("client " + std::to_string(i) + ": connection lost");
    }
}

void SetupEngine::on_message(std::size_t i, std::span<const std::uint8_t> bytes,
                             Clock::time_point now) {
    State& s = states_[i];
    p::MessageView view;
    if (p::MessageView::parse(bytes, view) != p::ParseError::ok) return;
    if (view.transaction_id() != s.id) return;  // a late answer to a retransmission
    const bool success = view.message_class() == p::MessageClass::success_response;
    if (!success) {
        const auto code = view.error_code();
        const int c = code ? code->code : 0;
        if ((c == 401 && s.step == Step::challenge) || c == 438) {
            if (const auto r = view.realm(); r && s.realm != *r) {
                s.realm = std::string(*r);
                s.credential.key =
                    tern::auth::md5_key(s.credential.username, s.realm, s.credential.password);
            }
            if (const auto n = view.nonce()) s.nonce = std::string(*n);
            if (s.step == Step::challenge) s.step = Step::allocate;
            send_step(i, now, true);
            return;
        }
        if (++errors_ <= 5) {
            std::cerr << "client " << i << ": error " << c << " at step "
                      << static_cast<int>(s.step) << "\n";
        }
        if (errors_ > max_errors) throw std::runtime_error("too many error responses");
        // Start over; an allocation this link may still hold answers 437 until it expires.
        s.step = Step::challenge;
        send_step(i, now, true);
        return;
    }
    switch (s.step) {
        case Step::challenge:  // a server without authentication: carry on
        case Step::allocate:
            if (recording_ && s.step == Step::allocate) {
                keep(allocate_ns_, s.allocate_started, Clock::now());
            }
            if (const auto r = view.xor_relayed_address()) s.relayed = *r;
            s.peer = plan_.peer;
            if (plan_.peer_of) {
                const auto peer = plan_.peer_of(*this, i);
                if (!peer) {
                    s.step = Step::wait;
                    ++waiting_;
                    return;
                }
                s.peer = *peer;
            }
            s.step = Step::permit;
            break;
        case Step::permit:
            s.step = Step::bind;
            break;
        case Step::bind:
            if (recording_) keep(setup_ns_, s.setup_started, Clock::now());
            if (!plan_.cycle) {
                s.step = Step::done;
                ++done_;
                --in_progress_;
                return;
            }
            s.step = Step::release;
            break;
        case Step::release:
            ++completed_;
            s.step = Step::challenge;
            if (plan_.reopen) {
                s.reopen = true;  // not here: the link is mid-receive
                return;
            }
            break;
        default:
            return;
    }
    send_step(i, now, true);
}

void SetupEngine::check_retransmits(Clock::time_point now) {
    for (std::size_t i = 0; i < states_.size(); ++i) {
        State& s = states_[i];
        if (s.step == Step::idle || s.step == Step::done || s.step == Step::wait) continue;
        if (now - s.sent_at < retransmit_after) continue;
        if (links_[i]->transport() != Transport::udp || ++s.retransmits > max_retransmits) {
            throw std::runtime_error("client " + std::to_string(i) + ": no answer at step " +
                                     std::to_string(static_cast<int>(s.step)));
        }
        send_step(i, now, false);
    }
}

void SetupEngine::start_waiting(Clock::time_point now) {
    for (std::size_t i = 0; i < states_.size() && waiting_ != 0; ++i) {
        State& s = states_[i];
        if (s.step != Step::wait) continue;
        const auto peer = plan_.peer_of(*this, i);
        if (!peer) continue;
        --waiting_;
        s.peer = *peer;
        s.step = Step::permit;
        send_step(i, now, true);
    }
}

void SetupEngine::run(Clock::time_point deadline) {
    std::array<epoll_event, 256> events{};
    auto now = Clock::now();
    auto last_check = now;
    const std::size_t limit = plan_.cycle ? links_.size() : plan_.max_in_progress;
    while (now < deadline) {
        while (next_to_start_ < links_.size() && in_progress_ < limit) {
            ++in_progress_;
            start(next_to_start_++, now);
        }
        if (!plan_.cycle && done_ == links_.size()) return;
        if (waiting_ != 0) start_waiting(now);
        const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 20);
        now = Clock::now();
        for (int e = 0; e < n; ++e) {
            const std::size_t i = events[static_cast<std::size_t>(e)].data.u64;
            const bool open = links_[i]->receive(
                [&](std::span<const std::uint8_t> frame) { on_message(i, frame, now); });
            if (!open) throw std::runtime_error("client " + std::to_string(i) + ": closed");
            if (states_[i].reopen) {
                states_[i].reopen = false;
                ::epoll_ctl(epoll_, EPOLL_CTL_DEL, links_[i]->fd(), nullptr);
                links_[i] = plan_.reopen(i);
                epoll_event ev{};
                ev.events = EPOLLIN;
                ev.data.u64 = i;
                ::epoll_ctl(epoll_, EPOLL_CTL_ADD, links_[i]->fd(), &ev);
                send_step(i, now, true);
            }
        }
        if (now - last_check >= std::chrono::milliseconds(100)) {
            check_retransmits(now);
            last_check = now;
        }
    }
    if (!plan_.cycle) {
        throw std::runtime_error("set-up timed out: " + std::to_string(done_) + " of " +
                                 std::to_string(links_.size()) + " allocations");
    }
}

}  // namespace ternbench
