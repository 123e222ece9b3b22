// ternd's checks of a config beyond its schema, on the real binary: file access as the service's
// user (--user), the warning tier (--strict), and what a start logs: the summary, JSON-only
// output in JSON mode, and a reload's list of changes.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "support.hpp"

namespace tern::test {
namespace {

const std::string ternd = TERND_PATH;

// A fresh directory other users may enter (mkdtemp makes it 0700), removed at the end.
class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/tern-it-cfg-XXXXXX";
        path_ = ::mkdtemp(tmpl);
        ::chmod(path_.c_str(), 0755);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    std::string write(const std::string& name, const std::string& text, mode_t mode) const {
        std::string file = path_ + "/" + name;
        std::ofstream(file) << text;
        ::chmod(file.c_str(), mode);
        return file;
    }
    std::string copy(const std::string& from, const std::string& name, mode_t mode) const {
        std::ifstream in(from);
        std::stringstream text;
        text << in.rdbuf();
        return write(name, text.str(), mode);
    }

private:
    std::string path_;
};

std::string tls_yaml(std::uint16_t port) {
    return "realm: checks.example.org\n"
           "listen: [ \"tls://127.0.0.1:" +
           std::to_string(port) +
           "\" ]\n"
           "auth: { secrets: [ \"0123456789abcdef0123456789abcdef\" ] }\n"
           "tls:\n"
           "  certificate: cert.pem\n"
           "  private_key: key.pem\n";
}

TEST(CheckConfigUser, AKeyOnlyRootCanReadFailsForTheServiceUser) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
    TempDir dir;
    dir.copy(data_dir() + "/tls/cert.pem", "cert.pem", 0644);
    const auto key = dir.copy(data_dir() + "/tls/key.pem", "key.pem", 0600);
    const auto config = dir.write("tern.yaml", tls_yaml(free_port()), 0644);
    std::string out;
    EXPECT_EQ(run_command(ternd + " --check-config " + config + " --user nobody", out), 1) << out;
    EXPECT_NE(out.find(config + ":6: tls.private_key: " + key +
                       " is not readable by user nobody (Permission denied)"),
              std::string::npos)
        << out;
    EXPECT_EQ(out.find("configuration OK"), std::string::npos) << out;

    // Root itself could always read it: without --user nobody the check would have passed.
    ::chmod(key.c_str(), 0644);
    EXPECT_EQ(run_command(ternd + " --check-config " + config + " --user nobody", out), 0) << out;
    EXPECT_NE(out.find("configuration OK"), std::string::npos) << out;
}

TEST(CheckConfigUser, AnUnknownUserIsAUsageError) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
    TempDir dir;
    const auto config =
        dir.write("tern.yaml", "auth: { secrets: [ \"0123456789abcdef\" ] }\n", 0644);
    std::string out;
    EXPECT_EQ(run_command(ternd + " --check-config " + config + " --user no-such-user-here", out),
              2)
        << out;
    EXPECT_NE(out.find("ternd: --user: no user named no-such-user-here"), std::string::npos) << out;
}

TEST(StrictStart, AWarningStopsTheStartOnlyWithStrict) {
    TempDir dir;
    const auto port = free_port();
    // No credentials: a warning (every credential minted elsewhere would fail).
    const auto config = dir.write(
        "tern.yaml", "listen: [ \"udp://127.0.0.1:" + std::to_string(port) + "\" ]\n", 0644);
    std::string out;
    // timeout: were --strict ignored, ternd would serve until stopped (exit 124 then).
    EXPECT_EQ(run_command("timeout 10 " + ternd + " --config " + config + " --strict", out), 1)
        << out;
    EXPECT_NE(
        out.find("warning " + config + ": auth: no auth.secrets, auth.secrets_file or auth.users"),
        std::string::npos)
        << out;
    EXPECT_NE(out.find("1 config warning(s) and --strict: not starting"), std::string::npos) << out;
}

// Every line must be one JSON object: python3's parser decides, not ours.
std::string lines_that_are_not_json(const std::string& output, const TempDir& dir) {
    const auto file = dir.write("output.log", output, 0644);
    std::string bad;
    run_command(
        "python3 -c 'import json, sys\n"
        "for line in open(sys.argv[1]):\n"
        "    try:\n"
        "        assert isinstance(json.loads(line), dict)\n"
        "    except Exception:\n"
        "        print(\"NOT JSON: \" + line.rstrip())' " +
            file,
        bad);
    return bad;
}

TEST(StartSummary, JsonModeWritesOnlyJsonAndTheSummaryNamesRealmAndExpiry) {
    const auto port = free_port();
    const std::string data = data_dir();
    const std::string yaml =
        "realm: summary.example.org\n"
        "listen: [ \"udp://127.0.0.1:" +
        std::to_string(port) + "\", \"tls://127.0.0.1:" + std::to_string(free_port()) +
        "\" ]\n"
        "log: { format: json }\n"
        "tls:\n  certificate: " +
        data + "/tls/cert.pem\n  private_key: " + data +
        "/tls/key.pem\n"
        "relay:\n  allow_peers: [ 10.0.0.0/8 ]\n";
    // No credentials either: the generated-secret banner must be JSON too.
    TerndProcess p(yaml);
    ASSERT_TRUE(p.wait_for_output("is listening on", 10s)) << p.output();
    ASSERT_TRUE(p.wait_for_output("iceServers entry", 5s)) << p.output();

    p.rewrite_config(yaml + "limits: { max_allocations: 50 }\n");
    p.send_signal(SIGHUP);
    ASSERT_TRUE(p.wait_for_output("configuration reloaded", 5s)) << p.output();
    ASSERT_EQ(p.stop(), 0) << p.output();
    const std::string output = p.output();
    EXPECT_NE(output.find("changed limits.max_allocations 100000 -> 50"), std::string::npos)
        << output;

    TempDir dir;
    EXPECT_EQ(lines_that_are_not_json(output, dir), "") << output;

    // The certificate's expiry, as the openssl tool reads it ("notAfter=2036-11-17 23:15:40Z").
    std::string not_after;
    ASSERT_EQ(
        run_command("openssl x509 -noout -enddate -dateopt iso_8601 -in " + data + "/tls/cert.pem",
                    not_after),
        0)
        << not_after;
    not_after = not_after.substr(not_after.find('=') + 1);
    not_after = not_after.substr(0, not_after.find('\n'));
    not_after[not_after.find(' ')] = 'T';
    std::istringstream lines(output);
    std::string line;
    std::string summary;
    while (std::getline(lines, line)) {
        if (line.find("\"msg\":\"start: ") != std::string::npos) summary = line;
    }
    ASSERT_FALSE(summary.empty()) << output;
    EXPECT_EQ(count_of(output, "\"msg\":\"start: "), 1u) << output;
    EXPECT_NE(summary.find("realm summary.example.org"), std::string::npos) << summary;
    EXPECT_NE(summary.find("CN=localhost expires " + not_after), std::string::npos)
        << summary << "\nopenssl: " << not_after;
    EXPECT_NE(summary.find("allow_peers 10.0.0.0/8"), std::string::npos) << summary;
    // The warnings are logged too, as JSON.
    EXPECT_NE(output.find("\"level\":\"warning\",\"msg\":\"" + p.config_path() +
                          ":8: relay.allow_peers[0]: 10.0.0.0/8 lets clients relay to private"),
              std::string::npos)
        << output;
}

}  // namespace
}  // namespace tern::test
