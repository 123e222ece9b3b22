// ternctl against a real ternd: `credential --secrets-file` and `--config` mint what ternd
// accepts from a secrets file with CRLF line ends and trailing blanks, and a config written by
// `import-coturn` from a coturn turnserver.conf carries coturn's credentials: coturn's
// turnutils_uclient relays through ternd with the same options it would give coturn.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>

#include "support.hpp"

namespace tern::test {
namespace {

using protocol::Method;

// The newest secret has a blank and a CR after it, as an editor on Windows and a careless paste
// leave it; ternd trims both.
constexpr const char* newest_secret = "north-wind-secret-0123456789";
const std::string secrets_text =
    "# newest first\r\n" + std::string(newest_secret) + " \r\nolder-secret-0123456789\r\n";

std::string temp_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "ternctl-it-XXXXXX").string();
    return ::mkdtemp(pattern.data());
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
}

std::string ternctl(const std::string& args, int& rc) {
    std::string out;
    rc = run_command(std::string(TERNCTL_PATH) + " " + args, out);
    return out;
}

struct Minted {
    std::string username, password;
};

std::optional<Minted> minted(const std::string& out) {
    static const std::regex form("username: (\\S+)\npassword: (\\S+)\n");
    std::smatch m;
    if (!std::regex_search(out, m, form)) return std::nullopt;
    return Minted{m[1], m[2]};
}

int allocate(std::uint16_t port, const std::string& user, const std::string& password) {
    TurnClient client(loopback4(port), user, password);
    return client.request(Method::allocate, TurnClient::udp_transport()).code();
}

class TernctlCredential : public ::testing::Test {
protected:
    void SetUp() override {
        write_file(dir_ + "/secrets", secrets_text);
        process_ =
            std::make_unique<TerndProcess>("listen: [ \"udp://127.0.0.1:" + std::to_string(port_) +
                                           "\" ]\nthreads: 1\nauth:\n  secrets_file: " + dir_ +
                                           "/secrets\nlimits: { shutdown_grace: 0 }\n");
        ASSERT_TRUE(process_->wait_for_output("is listening on", 10s)) << process_->output();
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::string dir_ = temp_dir();
    std::uint16_t port_ = free_port();
    std::unique_ptr<TerndProcess> process_;
};

TEST_F(TernctlCredential, SecretsFileAndConfigMintWhatTerndAccepts) {
    for (const std::string& source :
         {"--secrets-file " + dir_ + "/secrets", "--config " + process_->config_path()}) {
        int rc = -1;
        const std::string out = ternctl("credential " + source + " --user alice --ttl 600", rc);
        ASSERT_EQ(rc, 0) << out;
        const auto c = minted(out);
        ASSERT_TRUE(c) << out;
        EXPECT_EQ(allocate(port_, c->username, c->password), 0) << source << "\n"
                                                                << process_->output();
    }
    // The same secret line, piped in (the old documented pipeline): trimmed the same way.
    int rc = -1;
    const std::string out =
        ternctl("credential --secret - --user alice --ttl 600 < " + dir_ + "/secrets", rc);
    ASSERT_EQ(rc, 0) << out;
    const auto piped = minted(out);
    ASSERT_TRUE(piped) << out;
    EXPECT_EQ(allocate(port_, piped->username, piped->password), 0) << process_->output();
    // Control: the line as it stands in the file, blank and CR included, is refused by ternd, so
    // the trimming is what made the credentials above work.
    const std::string username = rest_username(unix_now() + 600, "alice");
    EXPECT_EQ(
        allocate(port_, username, rest_password(std::string(newest_secret) + " \r", username)),
        401);
}

// ---------------------------------------------------------------------------------------------
// import-coturn, end to end.

class ImportCoturn : public ::testing::Test {
protected:
    void SetUp() override {
        for (const char* program : {"turnutils_uclient", "turnutils_peer"}) {
            std::string ignored;
            if (run_command(std::string("command -v ") + program, ignored) != 0) {
                GTEST_SKIP() << program << " is not installed (make test-deps installs coturn)";
            }
        }
        // What an operator's turnserver.conf holds, on loopback ports for the test.
        write_file(dir_ + "/turnserver.conf",
                   "listening-port=" + std::to_string(port_) +
                       "\nlistening-ip=127.0.0.1\n"
                       "min-port=47000\nmax-port=47999\n"
                       "realm=coturn.test\n"
                       "fingerprint\n"
                       "lt-cred-mech\n"
                       "user=alice:wonderland\n"
                       "use-auth-secret\n"
                       "static-auth-secret=coturn-rest-secret-0123456789\n"
                       "allow-loopback-peers\n"
                       "no-tls\nno-dtls\nno-cli\n");
        int rc = -1;
        // Into files of their own: run_command folds standard error into what it returns.
        std::string said;
        rc = run_command("(" + std::string(TERNCTL_PATH) + " import-coturn " + dir_ +
                             "/turnserver.conf >" + dir_ + "/imported.yaml 2>" + dir_ + "/notes)",
                         said);
        ASSERT_EQ(rc, 0) << said;
        std::ifstream imported(dir_ + "/imported.yaml");
        const std::string yaml(std::istreambuf_iterator<char>(imported), {});
        std::ifstream notes(dir_ + "/notes");
        notes_.assign(std::istreambuf_iterator<char>(notes), {});
        // Tests end with allocations alive; SIGTERM should not wait for them.
        process_ = std::make_unique<TerndProcess>(yaml + "limits: { shutdown_grace: 0 }\n");
        ASSERT_TRUE(process_->wait_for_output("is listening on", 10s)) << yaml << "\n"
                                                                       << process_->output();
        peer_ = std::make_unique<BackgroundProcess>(std::vector<std::string>{
            "turnutils_peer", "-L", "127.0.0.1", "-p", std::to_string(peer_port_)});
        // Answered once before use, so a slow start is not counted as loss.
        UdpClient probe(loopback4(0));
        const Bytes ping{'p', 'i', 'n', 'g'};
        bool echoed = false;
        for (int i = 0; i < 50 && !echoed; ++i) {
            probe.send_to(loopback4(peer_port_), ping);
            const auto echo = probe.receive(100ms);
            echoed = echo && *echo == ping;
        }
        ASSERT_TRUE(echoed) << "turnutils_peer did not echo:\n" << peer_->output();
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    // uclient's own summary: every message sent came back through ternd and the peer.
    void expect_relayed(const std::string& credentials) {
        std::string out;
        const std::string cmd =
            "timeout 60 turnutils_uclient -c -z 5 -n 30 -m 2 -l 120 -e "
            "127.0.0.1 -r " +
            std::to_string(peer_port_) + " -p " + std::to_string(port_) + " " + credentials +
            " 127.0.0.1";
        const int rc = run_command(cmd, out);
        EXPECT_EQ(rc, 0) << cmd << "\n" << out << "\nternd:\n" << process_->output();
        static const std::regex totals(R"(tot_send_msgs=(\d+), tot_recv_msgs=(\d+))");
        std::string sent, received;
        for (auto it = std::sregex_iterator(out.begin(), out.end(), totals);
             it != std::sregex_iterator(); ++it) {
            sent = (*it)[1];
            received = (*it)[2];
        }
        EXPECT_EQ(sent, "60") << out;
        EXPECT_EQ(received, sent) << out;
    }

    std::string dir_ = temp_dir();
    std::uint16_t port_ = free_port();
    std::uint16_t peer_port_ = free_port();
    std::string notes_;
    std::unique_ptr<TerndProcess> process_;
    std::unique_ptr<BackgroundProcess> peer_;
};

TEST_F(ImportCoturn, UclientRelaysWithCoturnsRestSecret) {
    expect_relayed("-W coturn-rest-secret-0123456789 -u bob");
}

TEST_F(ImportCoturn, UclientRelaysWithCoturnsStaticUser) {
    expect_relayed("-u alice -w wonderland");
}

TEST_F(ImportCoturn, NamesWhatWasNotCarriedOver) {
    EXPECT_NE(notes_.find("turnserver.conf:6: fingerprint:"), std::string::npos) << notes_;
    EXPECT_NE(notes_.find("turnserver.conf:13: no-dtls:"), std::string::npos) << notes_;
    EXPECT_NE(notes_.find("turnserver.conf:14: no-cli:"), std::string::npos) << notes_;
}

}  // namespace
}  // namespace tern::test
