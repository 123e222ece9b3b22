// ternd as a process: clean SIGTERM exit, SIGHUP reload (bad configs refused, good ones applied
// live), JSON logs, a clear error when a port is taken, and the embedded default config.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include <regex>
#include <sstream>

#include "support.hpp"
#include "tern/protocol/message.hpp"

namespace tern::test {
namespace {

using protocol::MessageView;

std::string udp_yaml(std::uint16_t port, const std::string& extra = "") {
    return "listen: [ \"udp://127.0.0.1:" + std::to_string(port) +
           "\", \"tcp://127.0.0.1:" + std::to_string(port) +
           "\" ]\nauth: { secrets: [ \"lifecycle-secret\" ] }\n" + extra;
}

std::optional<MessageView> ask(std::uint16_t port, Bytes& storage,
                               std::chrono::milliseconds total = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + total;
    while (std::chrono::steady_clock::now() < deadline) {
        TransportAddress local;
        auto r = udp_exchange(loopback4(port), binding_request(), loopback4(0), local, 200ms);
        if (r) {
            storage = std::move(*r);
            MessageView msg;
            if (MessageView::parse(storage, msg) != protocol::ParseError::ok) return std::nullopt;
            return msg;
        }
    }
    return std::nullopt;
}

TEST(Lifecycle, SigtermExitsZeroPromptly) {
    const auto port = free_port();
    TerndProcess p(udp_yaml(port));
    Bytes storage;
    ASSERT_TRUE(ask(port, storage)) << p.output();
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(p.stop(5s), 0) << p.output();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
    EXPECT_NE(p.output().find("received SIGTERM, stopping"), std::string::npos) << p.output();
}

TEST(Lifecycle, SighupRefusesABrokenConfigAndAppliesAGoodOne) {
    const auto port = free_port();
    TerndProcess p(udp_yaml(port, "software: before-reload\n"));
    Bytes storage;
    auto msg = ask(port, storage);
    ASSERT_TRUE(msg) << p.output();
    EXPECT_EQ(msg->software(), "before-reload");

    p.rewrite_config(udp_yaml(port, "software: broken\nrelay: { ports: 60000-50000 }\n"));
    p.send_signal(SIGHUP);
    ASSERT_TRUE(p.wait_for_output("keeping the running configuration", 5s)) << p.output();
    EXPECT_NE(p.output().find("relay.ports"), std::string::npos) << p.output();
    msg = ask(port, storage);
    ASSERT_TRUE(msg) << "stopped answering after a refused reload\n" << p.output();
    EXPECT_EQ(msg->software(), "before-reload");

    p.rewrite_config(udp_yaml(port, "software: after-reload\n"));
    p.send_signal(SIGHUP);
    ASSERT_TRUE(p.wait_for_output("configuration reloaded", 5s)) << p.output();
    // Workers pick the new config up on their own threads; allow them a moment.
    const auto deadline = std::chrono::steady_clock::now() + 3s;
    std::string seen;
    while (std::chrono::steady_clock::now() < deadline) {
        msg = ask(port, storage);
        ASSERT_TRUE(msg);
        seen = std::string(msg->software().value_or(""));
        if (seen == "after-reload") break;
    }
    EXPECT_EQ(seen, "after-reload");
    EXPECT_EQ(p.stop(), 0);
}

TEST(Lifecycle, SighupReportsSettingsThatNeedARestart) {
    const auto port = free_port();
    TerndProcess p(udp_yaml(port, "threads: 1\n"));
    Bytes storage;
    ASSERT_TRUE(ask(port, storage)) << p.output();
    p.rewrite_config(udp_yaml(port, "threads: 2\n"));
    p.send_signal(SIGHUP);
    EXPECT_TRUE(p.wait_for_output("threads changed; restart ternd to apply it", 5s)) << p.output();
    EXPECT_TRUE(ask(port, storage));
    EXPECT_EQ(p.stop(), 0);
}

TEST(Lifecycle, JsonLogLinesAreJsonObjectsEvenForHostileText) {
    const auto port = free_port();
    TerndProcess p(udp_yaml(port, "log: { level: info, format: json }\n"));
    Bytes storage;
    ASSERT_TRUE(ask(port, storage)) << p.output();
    // A refused reload logs the offending value, which here carries a quote and a backslash.
    p.rewrite_config(udp_yaml(port, "log: { level: 'lo\"ud\\', format: json }\n"));
    p.send_signal(SIGHUP);
    ASSERT_TRUE(p.wait_for_output("keeping the running configuration", 5s)) << p.output();
    ASSERT_EQ(p.stop(), 0);

    std::istringstream lines(p.output());
    std::string line;
    int json_lines = 0;
    bool saw_escaped_value = false;
    // A JSON string: no raw quote, backslash or control byte except as an escape sequence.
    const std::regex shape(
        R"(^\{"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","level":"[a-z]+","msg":"(?:[^"\\\x00-\x1f]|\\["\\n]|\\u00[0-9a-f]{2})*"\}$)");
    while (std::getline(lines, line)) {
        if (line.empty() || line[0] != '{') continue;  // the stdout banner is not a log line
        EXPECT_TRUE(std::regex_match(line, shape)) << line;
        if (line.find(R"(unknown level 'lo\"ud\\')") != std::string::npos) saw_escaped_value = true;
        ++json_lines;
    }
    EXPECT_GE(json_lines, 3) << p.output();  // listening, the refused reload, stopping
    EXPECT_TRUE(saw_escaped_value) << p.output();
}

TEST(Lifecycle, PortTakenIsAClearErrorAndExitCodeOne) {
    const auto port = free_port();
    // A plain socket without SO_REUSEPORT blocks ternd's bind.
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    TerndProcess p(udp_yaml(port));
    EXPECT_TRUE(p.wait_exited(5s));
    EXPECT_EQ(p.stop(), 1);
    EXPECT_NE(p.output().find("listen: cannot bind udp://127.0.0.1:" + std::to_string(port)),
              std::string::npos)
        << p.output();
    ::close(fd);
}

TEST(Lifecycle, BrokenConfigFileRefusesToStart) {
    TerndProcess p("listen: [ \"udp://127.0.0.1:99999\" ]\n");
    EXPECT_TRUE(p.wait_exited(5s));
    EXPECT_EQ(p.stop(), 1);
    EXPECT_NE(p.output().find("listen[0]"), std::string::npos) << p.output();
}

TEST(Lifecycle, EmbeddedDefaultListensOn3478AndPrintsIceServers) {
    // The default binds the well-known port on every interface; skip if something has it.
    const int probe = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(3478);
    const bool free = ::bind(probe, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(probe);
    if (!free) GTEST_SKIP() << "port 3478 is in use on this machine";

    std::string dir = "/tmp/tern-default-XXXXXX";
    ASSERT_TRUE(::mkdtemp(dir.data()));
    const pid_t pid = ::fork();
    if (pid == 0) {
        const int fd = ::open((dir + "/out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::execl(TERND_PATH, TERND_PATH, static_cast<char*>(nullptr));
        ::_exit(127);
    }
    Bytes storage;
    const auto msg = ask(3478, storage);
    std::string out;
    run_command("cat " + dir + "/out", out);
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(msg) << out;
    EXPECT_EQ(msg->message_class(), protocol::MessageClass::success_response);
    for (const char* url :
         {"udp://0.0.0.0:3478", "tcp://0.0.0.0:3478", "udp://[::]:3478", "tcp://[::]:3478"}) {
        EXPECT_NE(out.find(url), std::string::npos) << url << "\n" << out;
    }
    EXPECT_NE(out.find("iceServers"), std::string::npos) << out;
    EXPECT_TRUE(std::regex_search(out, std::regex(R"("username": "\d+:demo", "credential": ")")))
        << out;
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    run_command("rm -rf " + dir, out);
}

}  // namespace
}  // namespace tern::test
