// One worker thread with its own io_context, dispatcher and listeners. Everything a packet
// touches lives on one worker, so the packet path takes no locks and makes no cross-thread hops.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <system_error>
#include <thread>
#include <vector>

#include "tern/config/config.hpp"
#include "tern/server/request_dispatcher.hpp"
#include "tern/server/stream_listener.hpp"
#include "tern/server/udp_listener.hpp"

namespace tern::server {

class Worker {
public:
    Worker(unsigned index, std::shared_ptr<const config::Config> config);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Binds one socket for `listener` at `address` (whose port may be 0 on the first worker);
    // `bound` receives the address actually bound. Call before start().
    std::error_code add_listener(const config::Listener& listener,
                                 const protocol::TransportAddress& address,
                                 std::shared_ptr<boost::asio::ssl::context> tls,
                                 protocol::TransportAddress& bound);

    void start();
    void stop();  // returns at once; join() waits
    void join();

    // Runs on the worker's own thread: new requests see the new config and TLS context.
    void apply(std::shared_ptr<const config::Config> config,
               std::shared_ptr<boost::asio::ssl::context> tls);

private:
    unsigned index_;
    boost::asio::io_context io_;  // declared first: destroyed last, after the listeners
    RequestDispatcher dispatcher_;
    std::vector<std::unique_ptr<UdpListener>> udp_;
    std::vector<std::unique_ptr<StreamListener>> streams_;
    std::thread thread_;
};

}  // namespace tern::server
