// Integration-test support: a real ternd child process, and plain-socket STUN clients over UDP,
// TCP and TLS whose local address comes from the kernel (getsockname), not from the server.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tern/protocol/message_type.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::test {

using protocol::TransportAddress;
using Bytes = std::vector<std::uint8_t>;
using namespace std::chrono_literals;

// A port free on 127.0.0.1 and ::1 for both UDP and TCP at the time of the call.
std::uint16_t free_port();
TransportAddress loopback4(std::uint16_t port);
TransportAddress loopback6(std::uint16_t port);

std::string data_dir();  // tests/data in the source tree

class TerndProcess {
public:
    // Writes `yaml` to a fresh temp dir as tern.yaml and starts ternd --config on it.
    explicit TerndProcess(const std::string& yaml);
    ~TerndProcess();
    TerndProcess(const TerndProcess&) = delete;
    TerndProcess& operator=(const TerndProcess&) = delete;

    pid_t pid() const { return pid_; }
    const std::string& dir() const { return dir_; }
    std::string config_path() const { return dir_ + "/tern.yaml"; }
    void rewrite_config(const std::string& yaml) const;

    // Everything ternd wrote to stdout and stderr so far.
    std::string output() const;
    bool wait_for_output(const std::string& needle, std::chrono::milliseconds timeout) const;
    void send_signal(int signo) const;
    bool running();
    // Waits for ternd to exit on its own; false if it is still running after `timeout`.
    bool wait_exited(std::chrono::milliseconds timeout);
    // SIGTERM, then waits; returns the exit status, or -1 if it had to be killed.
    int stop(std::chrono::milliseconds timeout = 10s);

private:
    std::string dir_;
    pid_t pid_ = -1;
    bool reaped_ = false;
    int status_ = 0;
};

// Fresh Binding request with a random transaction id (FINGERPRINT included when asked).
Bytes binding_request(protocol::TransactionId* id_out = nullptr, bool fingerprint = true);

// One datagram out, one back (or nullopt on timeout). `local` is bound first (port 0 = any);
// `local_out` receives the kernel's choice, `reply_from` (if given) the reply's source.
std::optional<Bytes> udp_exchange(const TransportAddress& server, const Bytes& request,
                                  const TransportAddress& local, TransportAddress& local_out,
                                  std::chrono::milliseconds timeout = 2s,
                                  TransportAddress* reply_from = nullptr);

// A connected stream client (TCP, or TLS verifying the server certificate against `ca_file`
// with host name `host`).
class StreamClient {
public:
    static std::optional<StreamClient> connect_tcp(const TransportAddress& server);
    static std::optional<StreamClient> connect_tls(const TransportAddress& server,
                                                   const std::string& ca_file,
                                                   const std::string& host);
    StreamClient(StreamClient&& other) noexcept;
    StreamClient& operator=(StreamClient&&) = delete;
    ~StreamClient();

    TransportAddress local_address() const;
    bool send(const Bytes& bytes);
    // Reads exactly one STUN message (20-byte header + length); nullopt on timeout or close.
    std::optional<Bytes> receive_message(std::chrono::milliseconds timeout = 2s);
    // True when the server closed the connection within `timeout`.
    bool wait_closed(std::chrono::milliseconds timeout);
    // One STUN message or one ChannelData frame (its stream padding read and dropped);
    // nullopt on timeout or close.
    std::optional<Bytes> receive_frame(std::chrono::milliseconds timeout = 2s);

private:
    StreamClient() = default;
    std::optional<Bytes> read_exact(std::size_t n, std::chrono::steady_clock::time_point deadline);
    int fd_ = -1;
    void* ssl_ = nullptr;  // SSL*
    void* ctx_ = nullptr;  // SSL_CTX*
};

// Runs a shell command, capturing stdout+stderr; returns the exit status.
int run_command(const std::string& command, std::string& output);

// A helper child process (coturn's turnutils_peer, say): argv[0] is looked up in PATH, stdout
// and stderr go to a temp file, and the destructor stops it by its own PID (SIGTERM, then
// SIGKILL), so a failing test never leaves it behind.
class BackgroundProcess {
public:
    explicit BackgroundProcess(const std::vector<std::string>& argv);
    ~BackgroundProcess();
    BackgroundProcess(const BackgroundProcess&) = delete;
    BackgroundProcess& operator=(const BackgroundProcess&) = delete;

    pid_t pid() const { return pid_; }
    std::string output() const;
    bool running();
    // SIGTERM, then SIGKILL after `timeout`; returns the exit status, or -1 if killed/signalled.
    int stop(std::chrono::milliseconds timeout = 5s);

private:
    std::string log_;
    pid_t pid_ = -1;
    bool reaped_ = false;
    int status_ = 0;
};

// One UDP socket kept open across several exchanges, so a TURN allocation's 5-tuple stays the
// same from Allocate to CreatePermission to data. Throws when the socket cannot be bound.
class UdpClient {
public:
    explicit UdpClient(const TransportAddress& local);
    ~UdpClient();
    UdpClient(const UdpClient&) = delete;
    UdpClient& operator=(const UdpClient&) = delete;

    TransportAddress local_address() const;
    bool send_to(const TransportAddress& to, const Bytes& bytes);
    // One datagram, or nullopt on timeout.
    std::optional<Bytes> receive(std::chrono::milliseconds timeout = 2s,
                                 TransportAddress* from = nullptr);

private:
    int fd_ = -1;
};

}  // namespace tern::test
