#include "tern/server/worker.hpp"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <string>

namespace tern::server {

namespace asio = boost::asio;

Worker::Worker(unsigned index, std::shared_ptr<const config::Config> config)
    : index_(index), io_(1), dispatcher_(std::move(config)) {}

Worker::~Worker() {
    stop();
    join();
}

std::error_code Worker::add_listener(const config::Listener& listener,
                                     const protocol::TransportAddress& address,
                                     std::shared_ptr<asio::ssl::context> tls,
                                     protocol::TransportAddress& bound) {
    if (listener.transport == config::Transport::udp) {
        auto l = std::make_unique<UdpListener>(io_, dispatcher_);
        if (auto ec = l->open(address)) return ec;
        bound = l->local_address();
        udp_.push_back(std::move(l));
        return {};
    }
    auto l = std::make_unique<StreamListener>(io_, dispatcher_, listener.transport, StreamLimits{});
    if (auto ec = l->open(address)) return ec;
    l->set_tls_context(std::move(tls));
    bound = l->local_address();
    streams_.push_back(std::move(l));
    return {};
}

void Worker::start() {
    for (auto& l : udp_) l->start();
    for (auto& l : streams_) l->start();
    thread_ = std::thread([this] {
        const std::string name = "tern-w" + std::to_string(index_);
        pthread_setname_np(pthread_self(), name.c_str());
        auto guard = asio::make_work_guard(io_);
        try {
            io_.run();
        } catch (const std::exception& e) {
            // Nothing on the packet path throws; reaching here is a bug worth a loud line.
            spdlog::critical("worker {} stopped on an exception: {}", index_, e.what());
        }
    });
}

void Worker::stop() {
    asio::post(io_, [this] {
        for (auto& l : udp_) l->close();
        for (auto& l : streams_) l->close();
        io_.stop();
    });
}

void Worker::join() {
    if (thread_.joinable()) thread_.join();
}

void Worker::apply(std::shared_ptr<const config::Config> config,
                   std::shared_ptr<asio::ssl::context> tls) {
    asio::post(io_, [this, config = std::move(config), tls = std::move(tls)]() mutable {
        dispatcher_.set_config(std::move(config));
        if (tls) {
            for (auto& l : streams_) l->set_tls_context(tls);
        }
    });
}

}  // namespace tern::server
