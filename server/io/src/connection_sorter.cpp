#include "connection_sorter.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <utility>

#include "fallback_pump.hpp"
#include "tern/edge/port_sharing.hpp"
#include "tern/edge/proxy_header.hpp"

namespace tern::server {

namespace {

// A PROXY header and then a ClientHello spread over as many records as the reader allows.
constexpr std::size_t max_sorted_bytes =
    edge::max_proxy_header_bytes + edge::max_hello_prefix_bytes;
// Most connections are sorted from their first segment: a ClientHello is 0.5 to 2 KiB.
constexpr std::size_t first_buffer_bytes = 4096;

}  // namespace

ConnectionSorter::ConnectionSorter(StreamServices services, tcp::socket socket,
                                   const PacketContext& context,
                                   std::optional<allocation::IpKey> slot)
    : services_(std::move(services)),
      socket_(std::move(socket)),
      timer_(socket_.get_executor()),
      context_(context),
      slot_(slot),
      trusted_proxy_(!slot.has_value()),
      listener_transport_(context.transport) {}

ConnectionSorter::~ConnectionSorter() {
    if (slot_ && services_.quota != nullptr) services_.quota->release(*slot_);
}

void ConnectionSorter::start() {
    timer_.expires_after(services_.limits.handshake_timeout);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (ec || self->done_) return;
        if (self->step_ == Step::proxy_header && self->trusted_proxy_) {
            self->refuse(ProxyRefusal::timeout);
        } else {
            self->refuse(SortRefusal::timeout);
        }
    });
    buffer_.resize(first_buffer_bytes);
    read();
}

void ConnectionSorter::read() {
    if (filled_ == buffer_.size()) {
        if (buffer_.size() == max_sorted_bytes) {
            // Still undecided with the cap full: only a ClientHello over its cap gets here.
            refuse(SortRefusal::too_large);
            return;
        }
        buffer_.resize(std::min(buffer_.size() * 2, max_sorted_bytes));
    }
    socket_.async_read_some(
        asio::buffer(buffer_.data() + filled_, buffer_.size() - filled_),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
            if (self->done_) return;
            if (ec) {  // closed or reset before it said anything that counts
                self->close();
                return;
            }
            self->filled_ += n;
            self->sort();
        });
}

void ConnectionSorter::sort() {
    if (step_ == Step::proxy_header) {
        if (!sort_proxy_header()) return;
        step_ = Step::first_bytes;
    }
    if (!shared_port()) {
        to_turn(context_.transport);
        return;
    }
    if (step_ == Step::first_bytes) {
        switch (edge::classify(unsorted())) {
            case edge::FirstBytes::need_more:
                read();
                return;
            case edge::FirstBytes::stun:
                to_turn(protocol::Transport::tcp);
                return;
            case edge::FirstBytes::other:
                refuse(SortRefusal::unrecognized);
                return;
            case edge::FirstBytes::tls:
                hello_ = std::make_unique<edge::ClientHelloReader>();
                step_ = Step::client_hello;
                break;
        }
    }
    switch (hello_->parse(unsorted())) {
        case edge::HelloStatus::need_more:
            read();
            return;
        case edge::HelloStatus::complete:
            if (edge::route(*hello_, services_.sorting->turn_names) == edge::TlsDestination::turn) {
                to_turn(protocol::Transport::tls);
            } else {
                to_fallback();
            }
            return;
        case edge::HelloStatus::too_large:
            refuse(SortRefusal::too_large);
            return;
        case edge::HelloStatus::not_tls:
        case edge::HelloStatus::malformed:
            refuse(SortRefusal::malformed);
            return;
    }
}

// True once the header question is settled and the connection goes on; false while reading on
// or after refusing.
bool ConnectionSorter::sort_proxy_header() {
    const auto header = edge::parse_proxy_header({buffer_.data(), filled_});
    if (!trusted_proxy_) {
        // Whatever starts like a PROXY header is refused here: a client must not choose the
        // address TURN reports and counts it under.
        if (header.status == edge::ProxyStatus::not_proxy) return true;
        if (header.status == edge::ProxyStatus::need_more) {
            read();
        } else {
            refuse(ProxyRefusal::untrusted);
        }
        return false;
    }
    switch (header.status) {
        case edge::ProxyStatus::need_more:
            read();
            return false;
        case edge::ProxyStatus::not_proxy:
            refuse(ProxyRefusal::missing);
            return false;
        case edge::ProxyStatus::malformed:
            refuse(ProxyRefusal::malformed);
            return false;
        case edge::ProxyStatus::too_large:
            refuse(ProxyRefusal::too_large);
            return false;
        case edge::ProxyStatus::complete:
            break;
    }
    header_length_ = header.length;
    // LOCAL (a health check) and UNKNOWN carry no client: the proxy's own address stays.
    if (!header.local) context_.source = header.source;
    if (services_.quota == nullptr) {
        slot_ = allocation::IpKey::of(context_.source);
        return true;
    }
    const auto key = services_.quota->source_of(context_.source);
    const auto verdict = services_.quota->acquire(key);
    if (verdict != allocation::QuotaVerdict::granted) {
        if (services_.counters != nullptr) {
            ++(verdict == allocation::QuotaVerdict::key_full ? services_.counters->rejected_per_ip
                                                             : services_.counters->rejected_total);
        }
        close();
        return false;
    }
    slot_ = key;
    return true;
}

std::vector<std::uint8_t> ConnectionSorter::take_unsorted() {
    const auto rest = unsorted();
    return {rest.begin(), rest.end()};
}

void ConnectionSorter::to_turn(protocol::Transport transport) {
    done_ = true;
    timer_.cancel();
    if (services_.counters != nullptr && shared_port()) {
        ++at(services_.counters->sorted,
             transport == protocol::Transport::tls ? SortedRoute::turn_tls : SortedRoute::turn_tcp);
    }
    context_.transport = transport;
    if (start_turn_stream(services_, socket_, context_, *slot_, take_unsorted())) {
        slot_.reset();  // the connection gives it back
    } else {
        close();
    }
}

void ConnectionSorter::to_fallback() {
    done_ = true;
    timer_.cancel();
    // The website's visitors do not use up TURN's connection limits; they have their own.
    if (services_.quota != nullptr) services_.quota->release(*slot_);
    slot_.reset();
    auto* quota = services_.fallback_quota;
    const auto key = quota != nullptr ? quota->source_of(context_.source)
                                      : allocation::IpKey::of(context_.source);
    const auto verdict = quota != nullptr ? quota->acquire(key) : allocation::QuotaVerdict::granted;
    if (verdict != allocation::QuotaVerdict::granted) {
        if (services_.counters != nullptr) {
            ++at(services_.counters->fallback_failed, verdict == allocation::QuotaVerdict::key_full
                                                          ? FallbackFailure::max_connections_per_ip
                                                          : FallbackFailure::max_connections);
        }
        close();
        return;
    }
    if (services_.counters != nullptr) ++at(services_.counters->sorted, SortedRoute::fallback);
    start_fallback_pump(std::move(socket_), take_unsorted(), context_, *services_.sorting->fallback,
                        quota, key, services_.counters);
}

void ConnectionSorter::refuse(SortRefusal why) {
    if (services_.counters != nullptr) ++at(services_.counters->sort_refused, why);
    static constexpr std::array<const char*, 4> reasons = {
        "a ClientHello that does not parse", "a ClientHello over the size cap",
        "no decision within limits.handshake_timeout", "neither TLS nor STUN"};
    spdlog::debug("closing connection from {} on a shared port: {}", context_.source.to_string(),
                  reasons[static_cast<std::size_t>(why)]);
    close();
}

void ConnectionSorter::refuse(ProxyRefusal why) {
    if (services_.counters != nullptr) ++at(services_.counters->proxy_refused, why);
    close();
}

void ConnectionSorter::close() {
    done_ = true;
    timer_.cancel();
    boost::system::error_code ec;
    socket_.close(ec);
}

}  // namespace tern::server
