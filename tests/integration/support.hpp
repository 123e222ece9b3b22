// Integration-test support: a real ternd child process, and plain-socket STUN clients over UDP,
// TCP and TLS whose local address comes from the kernel (getsockname), not from the server.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"
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

// How many times `needle` occurs in `haystack`, without overlaps (log lines in ternd's output).
std::size_t count_of(const std::string& haystack, const std::string& needle);

// Datagrams the kernel dropped: at full receive buffers of the UDP sockets bound to local `port`
// (any address, both families; /proc/net/udp{,6}), and at the full per-CPU input backlog that
// loopback traffic passes through (/proc/net/softnet_stat, all CPUs). Loss a test sees on
// loopback is either counted here or was ternd's own.
std::uint64_t kernel_udp_drops(std::uint16_t port);
std::uint64_t kernel_backlog_drops();

class TerndProcess {
public:
    // Writes `yaml` to a fresh temp dir as tern.yaml and starts ternd --config on it.
    explicit TerndProcess(const std::string& yaml);
    // The same, with NAME=VALUE `environment` entries added to ternd's environment.
    TerndProcess(const std::string& yaml, const std::vector<std::string>& environment);
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
// with host name `host`). `rcvbuf`, if set, is the SO_RCVBUF applied before connect, so the
// advertised window stays small.
class StreamClient {
public:
    // `local`, if given, is bound before connecting (the source address the server sees).
    static std::optional<StreamClient> connect_tcp(const TransportAddress& server, int rcvbuf = 0,
                                                   std::optional<TransportAddress> local = {});
    static std::optional<StreamClient> connect_tls(const TransportAddress& server,
                                                   const std::string& ca_file,
                                                   const std::string& host, int rcvbuf = 0);
    StreamClient(StreamClient&& other) noexcept;
    StreamClient& operator=(StreamClient&&) = delete;
    ~StreamClient();

    TransportAddress local_address() const;
    // The socket, for faults a test stages itself (shutdown(SHUT_WR), say); -1 after abort().
    int fd() const { return fd_; }
    // Sends all of `bytes` (TCP: as many send calls as it takes).
    bool send(const Bytes& bytes);
    // The client vanishes: SO_LINGER 0 turns close() into a RST; no TLS close_notify, no FIN.
    void abort();
    // Reads exactly one STUN message (20-byte header + length); nullopt on timeout or close.
    std::optional<Bytes> receive_message(std::chrono::milliseconds timeout = 2s);
    // True when the server closed the connection (FIN or RST) within `timeout`; whatever else
    // arrives (TLS session tickets, say) is read and dropped.
    bool wait_closed(std::chrono::milliseconds timeout);
    // One STUN message or one ChannelData frame (its stream padding read and dropped);
    // nullopt on timeout or close.
    std::optional<Bytes> receive_frame(std::chrono::milliseconds timeout = 2s);
    // SHA-256 of the DER certificate the server showed, lower-case hex; empty for TCP.
    std::string peer_certificate_sha256() const;

private:
    StreamClient() = default;
    // Reads until `inbox_` holds at least `n` bytes; false on timeout or close, keeping what
    // arrived, so a frame cut by a timeout is resumed rather than parsed from its middle.
    bool fill(std::size_t n, std::chrono::steady_clock::time_point deadline);
    Bytes take(std::size_t n);
    int fd_ = -1;
    void* ssl_ = nullptr;  // SSL*
    void* ctx_ = nullptr;  // SSL_CTX*
    Bytes inbox_;          // received, not yet returned
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
    // When the kernel queued the datagram receive() last returned (CLOCK_REALTIME, ns): for a
    // sender on loopback, the moment it sent it, however late this thread got to read it.
    std::int64_t last_arrival_ns() const { return last_arrival_ns_; }

private:
    int fd_ = -1;
    std::int64_t last_arrival_ns_ = 0;
};

// ---------------------------------------------------------------------------------------------
// A TURN client with long-term credentials (RFC 8489 §9.2), shared by the relay, soak, reload
// and flood tests. Credentials are computed here with OpenSSL, independently of tern's own
// auth library, so a bug there cannot cancel out.

protocol::TransactionId random_id();

// TURN REST password: base64(HMAC-SHA1(secret, username)).
std::string rest_password(const std::string& secret, const std::string& username);
// "<expiry>:<user>".
std::string rest_username(std::int64_t expiry, const std::string& user);
std::int64_t unix_now();
// Long-term key MD5(username ":" realm ":" password), RFC 8489 §9.2.2.
Bytes long_term_key(const std::string& username, const std::string& realm,
                    const std::string& password);
// Appends FINGERPRINT to a finished message (RFC 8489 §14.7): length first, then the CRC.
void append_fingerprint(Bytes& msg);
// A ChannelData frame, padded to a multiple of 4 (which UDP may and streams must carry).
Bytes channel_data(std::uint16_t channel, const Bytes& payload);

// A parsed reply that owns its bytes. Moving keeps `view` valid (a moved vector keeps its
// buffer); copying would not, hence no copies.
struct Reply {
    Reply() = default;
    Reply(Reply&&) = default;
    Reply& operator=(Reply&&) = default;
    Reply(const Reply&) = delete;
    Reply& operator=(const Reply&) = delete;

    Bytes bytes;
    protocol::MessageView view;
    bool ok = false;

    // 0 for a success response, the ERROR-CODE for an error response, -1 otherwise.
    int code() const;
    std::string describe() const;
};

using Attributes = std::function<void(protocol::MessageBuilder&)>;

// A long-term-credential TURN client on one 5-tuple: a UDP socket, or a TCP/TLS stream. The key
// is derived from the REALM the server announces in its first 401.
class TurnClient {
public:
    // UDP from `local` (port 0 = any); a default `local` means the loopback address of the
    // server's family.
    TurnClient(const TransportAddress& server, std::string username, std::string password,
               std::optional<TransportAddress> local = std::nullopt);
    TurnClient(StreamClient stream, std::string username, std::string password);

    UdpClient& socket() { return *udp_; }
    StreamClient& stream() { return *stream_; }
    const TransportAddress& server() const { return server_; }

    bool send_raw(const Bytes& bytes);
    // One datagram (UDP) or one STUN message / ChannelData frame (streams).
    std::optional<Bytes> receive_raw(std::chrono::milliseconds timeout);

    // Builds a request; authenticated (USERNAME, REALM, NONCE, MESSAGE-INTEGRITY) once a nonce
    // is known, FINGERPRINT last unless `tamper` is given, which then runs on the signed bytes
    // before FINGERPRINT is appended, so only MESSAGE-INTEGRITY can notice.
    Bytes build(protocol::Method method, const Attributes& attrs,
                const std::function<void(Bytes&)>& tamper = {});

    // Sends `msg` and waits for the response with its transaction id (skipping indications and
    // ChannelData). UDP retransmits `attempts` times, 1 s apart (RFC 8489 §6.2.1); a stream
    // sends once and waits up to `stream_wait`.
    Reply exchange(const Bytes& msg, int attempts = 3, std::chrono::milliseconds stream_wait = 3s);

    // Sends the request; on 401 or 438 carrying a nonce (the first contact, or a stale nonce)
    // learns REALM and NONCE and sends it once more, authenticated.
    Reply request(protocol::Method method, const Attributes& attrs,
                  std::chrono::milliseconds stream_wait = 3s);

    // Runs `hook` on every datagram or frame received, on any path (exchange included).
    void on_receive(std::function<void(const Bytes&)> hook) { on_receive_ = std::move(hook); }

    // Gets a nonce without creating anything: an unauthenticated Allocate is always answered
    // with 401, REALM and NONCE.
    bool fetch_nonce();

    static Attributes udp_transport();
    // The result code of a CreatePermission for `peer`, or of a ChannelBind of `channel` to it.
    int permit(const TransportAddress& peer);
    int bind(std::uint16_t channel, const TransportAddress& peer);

private:
    void learn(const Reply& r);

    std::unique_ptr<UdpClient> udp_;
    std::optional<StreamClient> stream_;
    TransportAddress server_;
    std::string username_;
    std::string password_;
    Bytes key_;
    std::string realm_;
    std::string nonce_;
    std::function<void(const Bytes&)> on_receive_;
};

// ---------------------------------------------------------------------------------------------
// A UDP echo peer on a thread of this process: every datagram goes back to its sender. Unlike
// turnutils_peer it counts what it saw, so a test can tell client-to-peer loss from
// peer-to-client loss. `observe` (optional) sees each datagram on the peer's thread before it
// is echoed.
class UdpEchoPeer {
public:
    explicit UdpEchoPeer(const TransportAddress& local = TransportAddress::v4({127, 0, 0, 1}, 0),
                         std::function<void(const std::uint8_t*, std::size_t)> observe = {});
    ~UdpEchoPeer();
    UdpEchoPeer(const UdpEchoPeer&) = delete;
    UdpEchoPeer& operator=(const UdpEchoPeer&) = delete;

    const TransportAddress& address() const { return address_; }
    std::uint64_t received() const { return received_.load(); }
    // Seconds between the kernel's arrival times of the first and the last datagram: how long
    // the sender (on loopback) took to send them, however this thread was scheduled.
    double arrival_span_seconds() const;

private:
    int fd_ = -1;
    TransportAddress address_;
    std::function<void(const std::uint8_t*, std::size_t)> observe_;
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> received_{0};
    std::atomic<std::int64_t> first_arrival_ns_{0}, last_arrival_ns_{0};
    std::thread thread_;
};

// /proc/<pid>/status VmRSS in KiB (-1 if unreadable), and the number of open descriptors in
// /proc/<pid>/fd (-1 if unreadable).
long process_rss_kib(pid_t pid);
int process_fd_count(pid_t pid);

// SHA-256 of the DER certificate in a PEM file, lower-case hex (as
// StreamClient::peer_certificate_sha256); empty if the file holds none.
std::string certificate_file_sha256(const std::string& pem_file);

}  // namespace tern::test
