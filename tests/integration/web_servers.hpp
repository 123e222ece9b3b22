// Third-party servers around ternd for the shared-port tests: nginx as the website behind
// ternd's TLS port (edge.fallback), haproxy in front of ternd sending PROXY v2, and a raw TCP
// upstream of our own that records what reaches it (or reads nothing at all). Each runs on
// 127.0.0.1 ports the test picks, from a temp dir of its own with a generated config; nginx and
// haproxy are child processes stopped by their PID in the destructor, never the system's
// instances (Debian starts those on port 80 when it installs them; nothing here uses 80 or 443).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

namespace tern::test {

// The absolute path of `program` found in PATH, /usr/sbin or /sbin (nginx and haproxy live in
// /usr/sbin, which a non-root PATH may lack); empty if it is not installed.
std::string find_program(const std::string& program);

// A fresh directory under /tmp, removed with everything in it by the destructor.
class TempDir {
public:
    explicit TempDir(const std::string& prefix = "tern-it-web");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

// A self-signed certificate (EC P-256, SAN DNS:<name>, CN <name>) and its key, written into
// `dir` as <stem>-cert.pem and <stem>-key.pem by the openssl command line. Throws on failure.
struct TestCertificate {
    std::string certificate;
    std::string private_key;
    std::string sha256;  // of the DER certificate, as StreamClient::peer_certificate_sha256
};
TestCertificate make_certificate(const std::string& dir, const std::string& stem,
                                 const std::string& name);

// True once something accepts TCP connections on 127.0.0.1:`port` (the probe connection is
// closed at once; tried at least once), false after `timeout`.
bool wait_for_tcp_listener(std::uint16_t port, std::chrono::milliseconds timeout);

// Reads a whole file; empty if it cannot be read.
std::string read_file(const std::string& path);

// ---------------------------------------------------------------------------------------------
// nginx serving HTTPS on 127.0.0.1:<port> from a temp dir: `daemon off; master_process off;`, so
// the child is nginx itself, every path (pid, logs, temp files) inside the temp dir. It serves
// index.html and large.bin (`large_file_bytes` of a repeating pattern). Its access log has one
// line per request:
//   remote=<$remote_addr> proxy=<$proxy_protocol_addr> peer=<$realip_remote_addr> sni=<...>
//   "<request>" <status> <body bytes>
// With `proxy_protocol`, the listener requires a PROXY header and $remote_addr is the address it
// carries (realip from 127.0.0.1); without, $remote_addr is the connection's source.
struct NginxOptions {
    std::uint16_t port = 0;  // 0: free_port()
    std::string certificate;
    std::string private_key;
    std::string server_name = "www.example.test";
    bool proxy_protocol = false;
    std::string index_html = "<html><body>the website beside TURN</body></html>\n";
    std::size_t large_file_bytes = 4 << 20;
};

class NginxProcess {
public:
    explicit NginxProcess(NginxOptions options);
    ~NginxProcess();
    NginxProcess(const NginxProcess&) = delete;
    NginxProcess& operator=(const NginxProcess&) = delete;

    static bool available() { return !find_program("nginx").empty(); }

    // Running, and its port accepts connections.
    bool ready(std::chrono::milliseconds timeout = 10s);
    std::uint16_t port() const { return options_.port; }
    pid_t pid() const { return process_ ? process_->pid() : -1; }
    const std::string& dir() const { return dir_.path(); }
    const NginxOptions& options() const { return options_; }
    std::string access_log() const { return read_file(dir_.file("access.log")); }
    std::string error_log() const { return read_file(dir_.file("error.log")); }
    // What nginx printed, its error log and its config, for a failure message.
    std::string diagnostics() const;

private:
    TempDir dir_;
    NginxOptions options_;
    std::unique_ptr<BackgroundProcess> process_;
};

// ---------------------------------------------------------------------------------------------
// haproxy in `mode tcp`, run in the foreground (-db) as a child: each frontend listens on
// 127.0.0.1:<listen_port> and forwards to 127.0.0.1:<target_port>, with a PROXY v2 header first
// when `send_proxy_v2`. Its connections to the target come from 127.0.0.1.
struct HaproxyFrontend {
    std::uint16_t listen_port = 0;  // 0: free_port()
    std::uint16_t target_port = 0;
    bool send_proxy_v2 = true;
};

class HaproxyProcess {
public:
    explicit HaproxyProcess(std::vector<HaproxyFrontend> frontends);
    ~HaproxyProcess();
    HaproxyProcess(const HaproxyProcess&) = delete;
    HaproxyProcess& operator=(const HaproxyProcess&) = delete;

    static bool available() { return !find_program("haproxy").empty(); }

    // Running, and every frontend accepts connections.
    bool ready(std::chrono::milliseconds timeout = 10s);
    const std::vector<HaproxyFrontend>& frontends() const { return frontends_; }
    pid_t pid() const { return process_ ? process_->pid() : -1; }
    std::string diagnostics() const;

private:
    TempDir dir_;
    std::vector<HaproxyFrontend> frontends_;
    std::unique_ptr<BackgroundProcess> process_;
};

// ---------------------------------------------------------------------------------------------
// A raw TCP upstream on a thread of this process, listening on 127.0.0.1 (port from the kernel):
// with `read_data`, it accepts every connection and records the first `keep_bytes` it receives
// on each (then keeps reading and discarding until the peer closes); without, it accepts and never
// reads a byte (a slow web server), with a small receive buffer so the kernel's share stays
// small too.
class RawUpstream {
public:
    explicit RawUpstream(bool read_data, std::size_t keep_bytes = 64 * 1024);
    ~RawUpstream();
    RawUpstream(const RawUpstream&) = delete;
    RawUpstream& operator=(const RawUpstream&) = delete;

    std::uint16_t port() const { return port_; }
    std::size_t accepted() const { return accepted_.load(); }
    // The recorded bytes of connection `i` (in accept order) so far.
    Bytes received(std::size_t i) const;
    // Waits until connection `i` has recorded at least `n` bytes.
    bool wait_received(std::size_t i, std::size_t n, std::chrono::milliseconds timeout) const;

private:
    void run();

    int listen_fd_ = -1;
    std::uint16_t port_ = 0;
    bool read_data_;
    std::size_t keep_bytes_;
    std::atomic<bool> stop_{false};
    std::atomic<std::size_t> accepted_{0};
    mutable std::mutex mutex_;
    std::vector<int> fds_;
    std::vector<Bytes> received_;
    std::thread thread_;
};

}  // namespace tern::test
