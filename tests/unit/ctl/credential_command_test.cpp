// ternctl credential: where the secret comes from (ternd's rules for files and standard input)
// and the refusals, each with exit status 2 and a message that names the problem.
#include "tern/ctl/credential_command.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace tern::ctl {
namespace {

// The documented example (docs/credentials.md, checked against openssl in the CLI tests).
constexpr const char* example_password = "r/l6ttQtMIfbS2lfULS0mDRRNUg=";
constexpr const char* example_secret = "north-wind-secret";

struct Run {
    int rc = -1;
    std::string out, err;
};

Run run(const std::vector<std::string>& given, const std::string& input = "") {
    // The defaults first, so that a test's own --user or --ttl (later) wins.
    std::vector<std::string> args = {"--user", "alice", "--ttl", "3600", "--now", "1699996400"};
    args.insert(args.end(), given.begin(), given.end());
    std::istringstream in(input);
    std::ostringstream out, err;
    Run r;
    r.rc = credential_command(args, in, out, err);
    r.out = out.str();
    r.err = err.str();
    return r;
}

std::string password_of(const Run& r) {
    const auto at = r.out.find("password: ");
    return at == std::string::npos ? "" : r.out.substr(at + 10, r.out.find('\n', at) - at - 10);
}

class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "ternctl-XXXXXX").string();
        path_ = ::mkdtemp(pattern.data());
    }
    ~TempDir() { std::filesystem::remove_all(path_); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string write(const std::string& name, const std::string& text) const {
        const std::string file = path_ + "/" + name;
        std::ofstream(file, std::ios::binary) << text;
        return file;
    }

private:
    std::string path_;
};

TEST(CredentialCommand, LiteralSecretIsTakenVerbatim) {
    auto r = run({"--secret", example_secret});
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(password_of(r), example_password);
    // On the command line a trailing blank is part of the secret, as in a quoted auth.secrets.
    r = run({"--secret", std::string(example_secret) + " "});
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(password_of(r), example_password);
}

TEST(CredentialCommand, StandardInputIsReadByTheSecretsFileRule) {
    // A CRLF line end, trailing blanks, a BOM, comments and blank lines: ternd's file rule.
    for (const std::string& input :
         {std::string(example_secret) + "\n", std::string(example_secret) + " \t\r\n",
          "\xEF\xBB\xBF# newest first\n\n  " + std::string(example_secret) +
              "\r\nolder-secret-0123456789\n",
          std::string(example_secret)}) {
        const auto r = run({"--secret", "-"}, input);
        EXPECT_EQ(r.rc, 0) << r.err;
        EXPECT_EQ(password_of(r), example_password);
    }
    auto r = run({"--secret", "-"}, "");
    EXPECT_EQ(r.rc, 2);
    EXPECT_NE(r.err.find("standard input holds no secret"), std::string::npos) << r.err;
    r = run({"--secret", "-"}, "bad\x01secret-0123456789\n");
    EXPECT_EQ(r.rc, 2);
    EXPECT_NE(r.err.find("control character"), std::string::npos) << r.err;
}

TEST(CredentialCommand, SecretsFileSignsWithItsFirstSecretAsTerndReadsIt) {
    const TempDir dir;
    const auto file = dir.write("secrets", "# rotated 2026\r\n" + std::string(example_secret) +
                                               "  \r\nolder-secret-0123456789\r\n");
    auto r = run({"--secrets-file", file});
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(password_of(r), example_password);
    r = run({"--secrets-file", dir.write("short", "short\n")});
    EXPECT_EQ(r.rc, 2);
    EXPECT_NE(r.err.find("line 1: secret too short: 5 bytes, at least 16"), std::string::npos)
        << r.err;
    r = run({"--secrets-file", "/nonexistent/secrets"});
    EXPECT_EQ(r.rc, 2);
    EXPECT_NE(r.err.find("cannot read /nonexistent/secrets"), std::string::npos) << r.err;
}

TEST(CredentialCommand, ConfigSignsWithTheFirstSecretTerndLoads) {
    const TempDir dir;
    dir.write("secrets", std::string(example_secret) + "\r\n");
    // secrets_file relative to the config's directory, as ternd resolves it.
    auto r = run({"--config", dir.write("tern.yaml",
                                        "auth:\n  secrets_file: secrets\n"
                                        "  secrets: [ \"older-secret-0123456789\" ]\n")});
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(password_of(r), example_password);
    r = run({"--config", dir.write("none.yaml", "realm: x\n")});
    EXPECT_EQ(r.rc, 2);
    EXPECT_NE(r.err.find("sets no REST secret"), std::string::npos) << r.err;
    r = run({"--config", dir.write("bad.yaml", "relay: { ports: 1-2 }\n")});
    EXPECT_EQ(r.rc, 2);
    EXPECT_NE(r.err.find("relay.ports"), std::string::npos) << r.err;
}

TEST(CredentialCommand, RefusesMillisecondTtlsEmptyUsersAndShortSecrets) {
    auto r = run({"--secret", example_secret, "--ttl", "3600000"});
    EXPECT_EQ(r.rc, 2);
    EXPECT_NE(r.err.find("more than 7 days (604800 s)"), std::string::npos) << r.err;
    r = run({"--secret", example_secret, "--ttl", "3600000", "--force"});
    EXPECT_EQ(r.rc, 0) << r.err;
    r = run({"--secret", example_secret, "--ttl", "604800"});
    EXPECT_EQ(r.rc, 0) << r.err;
    r = run({"--secret", example_secret, "--user", ""});
    EXPECT_EQ(r.rc, 2);
    EXPECT_NE(r.err.find("--user is empty"), std::string::npos) << r.err;
    r = run({"--secret", "abc"});
    EXPECT_EQ(r.rc, 2);
    EXPECT_NE(r.err.find("3 bytes; at least 16"), std::string::npos) << r.err;
    r = run({"--secret", "abc", "--force"});
    EXPECT_EQ(r.rc, 0) << r.err;
    r = run({"--secret", ""});
    EXPECT_EQ(r.rc, 2);
    EXPECT_NE(r.err.find("the secret is empty"), std::string::npos) << r.err;
    r = run({"--secret", example_secret, "--secrets-file", "/etc/tern/secrets"});
    EXPECT_EQ(r.rc, 2);
    EXPECT_NE(r.err.find("one of --secret, --secrets-file or --config"), std::string::npos)
        << r.err;
}

}  // namespace
}  // namespace tern::ctl
