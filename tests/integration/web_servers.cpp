#include "web_servers.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace tern::test {

std::string find_program(const std::string& program) {
    std::vector<std::string> dirs;
    if (const char* path = std::getenv("PATH")) {
        std::stringstream ss(path);
        for (std::string d; std::getline(ss, d, ':');) {
            if (!d.empty()) dirs.push_back(d);
        }
    }
    dirs.emplace_back("/usr/sbin");
    dirs.emplace_back("/sbin");
    for (const auto& d : dirs) {
        const std::string candidate = d + "/" + program;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return {};
}

TempDir::TempDir(const std::string& prefix) {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

TestCertificate make_certificate(const std::string& dir, const std::string& stem,
                                 const std::string& name) {
    TestCertificate c;
    c.certificate = dir + "/" + stem + "-cert.pem";
    c.private_key = dir + "/" + stem + "-key.pem";
    const std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
        "-keyout " +
        c.private_key + " -out " + c.certificate + " -subj /CN=" + name +
        " -addext subjectAltName=DNS:" + name;
    std::string out;
    if (run_command(cmd, out) != 0) throw std::runtime_error("openssl req failed: " + out);
    c.sha256 = certificate_file_sha256(c.certificate);
    if (c.sha256.empty()) throw std::runtime_error("no certificate in " + c.certificate);
    return c;
}

bool wait_for_tcp_listener(std::uint16_t port, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (;;) {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) return false;
        const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
        ::close(fd);
        if (ok) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(20ms);
    }
}

// ---------------------------------------------------------------------------------------------

NginxProcess::NginxProcess(NginxOptions options)
    : dir_("tern-it-nginx"), options_(std::move(options)) {
    if (options_.port == 0) options_.port = free_port();
    const std::string d = dir_.path();
    std::filesystem::create_directories(d + "/www");
    std::filesystem::create_directories(d + "/tmp");
    std::ofstream(d + "/www/index.html") << options_.index_html;
    {
        std::ofstream large(d + "/www/large.bin", std::ios::binary);
        std::string block(4096, '\0');
        for (std::size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>('a' + i % 26);
        for (std::size_t left = options_.large_file_bytes; left > 0;) {
            const std::size_t n = std::min(left, block.size());
            large.write(block.data(), static_cast<std::streamsize>(n));
            left -= n;
        }
    }
    const std::string listen = "127.0.0.1:" + std::to_string(options_.port) + " ssl" +
                               (options_.proxy_protocol ? " proxy_protocol" : "");
    std::ostringstream conf;
    conf << "daemon off;\n"
            "master_process off;\n"
            "worker_processes 1;\n"
            "pid "
         << d << "/nginx.pid;\n"
         << "error_log " << d << "/error.log info;\n"
         << "events { worker_connections 1024; }\n"
            "http {\n"
            "  log_format tern 'remote=$remote_addr proxy=$proxy_protocol_addr "
            "peer=$realip_remote_addr sni=$ssl_server_name \"$request\" $status "
            "$body_bytes_sent';\n"
            "  access_log "
         << d << "/access.log tern;\n"
         << "  client_body_temp_path " << d << "/tmp/body;\n"
         << "  proxy_temp_path " << d << "/tmp/proxy;\n"
         << "  fastcgi_temp_path " << d << "/tmp/fastcgi;\n"
         << "  uwsgi_temp_path " << d << "/tmp/uwsgi;\n"
         << "  scgi_temp_path " << d << "/tmp/scgi;\n"
         << "  types { text/html html; application/octet-stream bin; }\n"
            "  server {\n"
            "    listen "
         << listen << ";\n"
         << "    server_name " << options_.server_name << ";\n"
         << "    ssl_certificate " << options_.certificate << ";\n"
         << "    ssl_certificate_key " << options_.private_key << ";\n";
    if (options_.proxy_protocol) {
        conf << "    set_real_ip_from 127.0.0.1;\n"
                "    real_ip_header proxy_protocol;\n";
    }
    conf << "    root " << d << "/www;\n"
         << "  }\n"
            "}\n";
    std::ofstream(d + "/nginx.conf") << conf.str();
    const std::string nginx = find_program("nginx");
    if (nginx.empty()) throw std::runtime_error("nginx is not installed");
    // -e: the error log before the config is read (the default, /var/log/nginx, is not ours).
    process_ = std::make_unique<BackgroundProcess>(std::vector<std::string>{
        nginx, "-p", d + "/", "-c", d + "/nginx.conf", "-e", d + "/error.log"});
}

NginxProcess::~NginxProcess() {
    if (process_) process_->stop(5s);
}

namespace {

// Every port accepting connections while `process` runs; false at once if it exits.
bool wait_ready(BackgroundProcess* process, const std::vector<std::uint16_t>& ports,
                std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (process && process->running()) {
        const bool all = std::all_of(ports.begin(), ports.end(),
                                     [](std::uint16_t p) { return wait_for_tcp_listener(p, 0ms); });
        if (all) return process->running();
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

}  // namespace

bool NginxProcess::ready(std::chrono::milliseconds timeout) {
    return wait_ready(process_.get(), {options_.port}, timeout);
}

std::string NginxProcess::diagnostics() const {
    return "nginx output:\n" + (process_ ? process_->output() : std::string()) +
           "\nnginx error log:\n" + error_log() + "\nnginx.conf:\n" +
           read_file(dir_.file("nginx.conf"));
}

// ---------------------------------------------------------------------------------------------

HaproxyProcess::HaproxyProcess(std::vector<HaproxyFrontend> frontends)
    : dir_("tern-it-haproxy"), frontends_(std::move(frontends)) {
    std::ostringstream conf;
    conf << "global\n"
            "  maxconn 2000\n"  // haproxy wants twice as many descriptors as this

            "defaults\n"
            "  mode tcp\n"
            "  timeout connect 5s\n"
            "  timeout client 60s\n"
            "  timeout server 60s\n";
    for (std::size_t i = 0; i < frontends_.size(); ++i) {
        auto& f = frontends_[i];
        if (f.listen_port == 0) f.listen_port = free_port();
        conf << "frontend in" << i << "\n"
             << "  bind 127.0.0.1:" << f.listen_port << "\n"
             << "  default_backend out" << i << "\n"
             << "backend out" << i << "\n"
             << "  server s" << i << " 127.0.0.1:" << f.target_port
             << (f.send_proxy_v2 ? " send-proxy-v2" : "") << "\n";
    }
    std::ofstream(dir_.file("haproxy.cfg")) << conf.str();
    const std::string haproxy = find_program("haproxy");
    if (haproxy.empty()) throw std::runtime_error("haproxy is not installed");
    // -db: foreground, no daemon and no master process; the child is haproxy itself.
    process_ = std::make_unique<BackgroundProcess>(
        std::vector<std::string>{haproxy, "-db", "-f", dir_.file("haproxy.cfg")});
}

HaproxyProcess::~HaproxyProcess() {
    if (process_) process_->stop(5s);
}

bool HaproxyProcess::ready(std::chrono::milliseconds timeout) {
    std::vector<std::uint16_t> ports;
    for (const auto& f : frontends_) ports.push_back(f.listen_port);
    return wait_ready(process_.get(), ports, timeout);
}

std::string HaproxyProcess::diagnostics() const {
    return "haproxy output:\n" + (process_ ? process_->output() : std::string()) +
           "\nhaproxy.cfg:\n" + read_file(dir_.file("haproxy.cfg"));
}

// ---------------------------------------------------------------------------------------------

RawUpstream::RawUpstream(bool read_data, std::size_t keep_bytes)
    : read_data_(read_data), keep_bytes_(keep_bytes) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (listen_fd_ < 0) throw std::runtime_error("socket failed");
    if (!read_data_) {
        // Inherited by accepted sockets: a small window, so the kernel holds little for us.
        const int small = 4096;
        ::setsockopt(listen_fd_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
        ::listen(listen_fd_, 512) != 0) {
        ::close(listen_fd_);
        throw std::runtime_error("bind/listen failed");
    }
    socklen_t len = sizeof sa;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    thread_ = std::thread([this] { run(); });
}

RawUpstream::~RawUpstream() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    for (const int fd : fds_) ::close(fd);
    ::close(listen_fd_);
}

void RawUpstream::run() {
    std::array<std::uint8_t, 16384> buf{};
    while (!stop_.load()) {
        std::vector<pollfd> polls{{listen_fd_, POLLIN, 0}};
        std::vector<std::size_t> index{0};
        {
            const std::lock_guard lock(mutex_);
            if (read_data_) {
                for (std::size_t i = 0; i < fds_.size(); ++i) {
                    if (fds_[i] < 0) continue;
                    polls.push_back({fds_[i], POLLIN, 0});
                    index.push_back(i);
                }
            }
        }
        if (::poll(polls.data(), polls.size(), 50) <= 0) continue;
        if (polls[0].revents & POLLIN) {
            for (;;) {
                const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK);
                if (fd < 0) break;
                const std::lock_guard lock(mutex_);
                fds_.push_back(fd);
                received_.emplace_back();
                accepted_.fetch_add(1);
            }
        }
        for (std::size_t p = 1; p < polls.size(); ++p) {
            if (polls[p].revents == 0) continue;
            const std::size_t i = index[p];
            const ssize_t n = ::recv(polls[p].fd, buf.data(), buf.size(), 0);
            const std::lock_guard lock(mutex_);
            if (n <= 0) {
                if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                    ::close(fds_[i]);
                    fds_[i] = -1;
                }
                continue;
            }
            auto& kept = received_[i];
            const std::size_t room = keep_bytes_ > kept.size() ? keep_bytes_ - kept.size() : 0;
            const std::size_t take = std::min(room, static_cast<std::size_t>(n));
            kept.insert(kept.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(take));
        }
    }
}

Bytes RawUpstream::received(std::size_t i) const {
    const std::lock_guard lock(mutex_);
    return i < received_.size() ? received_[i] : Bytes{};
}

bool RawUpstream::wait_received(std::size_t i, std::size_t n,
                                std::chrono::milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (received(i).size() >= n) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(10ms);
    }
}

}  // namespace tern::test
