// The tls section (tls_schema.cpp): the default pair, tls.certificates chosen by SNI, their host
// names and wildcards, where each pair was written, and errors naming key and line.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tern/config/config.hpp"

namespace tern::config {
namespace {

const std::string data_dir = TERN_TEST_DATA_DIR;
const std::string cert = data_dir + "/tls/cert.pem";
const std::string key = data_dir + "/tls/key.pem";
const std::string cert_a = data_dir + "/tls/turn-a.pem";
const std::string key_a = data_dir + "/tls/turn-a.key";
const std::string cert_b = data_dir + "/tls/turn-b.pem";
const std::string key_b = data_dir + "/tls/turn-b.key";

LoadResult load(const std::string& yaml) {
    return load_config_text(yaml, "test.yaml");
}

std::string all_errors(const LoadResult& result) {
    std::string text;
    for (const auto& error : result.errors) text += error.to_string() + "\n";
    return text;
}

TlsFiles load_tls_ok(const std::string& yaml) {
    const auto result = load(yaml);
    EXPECT_TRUE(result.config) << yaml << "\n" << all_errors(result);
    if (!result.config || !result.config->tls) {
        ADD_FAILURE() << "no tls section loaded";
        return {};
    }
    return *result.config->tls;
}

void expect_one_error(const std::string& yaml, const std::string& key_path, int line,
                      const std::string& message) {
    const auto result = load(yaml);
    EXPECT_FALSE(result.config) << yaml;
    ASSERT_EQ(result.errors.size(), 1u) << yaml << "\n" << all_errors(result);
    const auto& error = result.errors.front();
    EXPECT_EQ(error.key, key_path) << error.to_string();
    EXPECT_EQ(error.line, line) << error.to_string();
    EXPECT_EQ(error.message, message) << error.to_string();
}

// A tls section with a default pair and `entries` (each "    - ..." lines) under certificates.
std::string with_default(const std::string& entries) {
    return "tls:\n  certificate: " + cert + "\n  private_key: " + key + "\n  certificates:\n" +
           entries;
}

// One block-style entry of tls.certificates, four lines long.
std::string entry(const std::string& names, const std::string& c, const std::string& k) {
    return "    - names: " + names + "\n      certificate: " + c + "\n      private_key: " + k +
           "\n";
}

TEST(TlsSchema, SinglePairKeepsItsMeaningAndRecordsWhereItWasWritten) {
    const TlsFiles tls =
        load_tls_ok("realm: x\ntls:\n  certificate: " + cert + "\n  private_key: " + key + "\n");
    EXPECT_EQ(tls, (TlsFiles{cert, key}));
    EXPECT_TRUE(tls.certificates.empty());
    EXPECT_EQ(tls.key, "tls");
    EXPECT_EQ(tls.line, 2);
    EXPECT_EQ(tls.certificate_line, 3);
    EXPECT_EQ(tls.private_key_line, 4);
}

TEST(TlsSchema, WhereAPairWasWrittenIsNotPartOfItsValue) {
    TlsFiles a{cert, key};
    TlsFiles b{cert, key, "tls.certificates[0]", 9};
    b.certificate_line = 10;
    EXPECT_EQ(a, b);
    b.private_key = key_a;
    EXPECT_NE(a, b);
    CertificatePair p{{"a.example"}, cert, key, "tls.certificates[0]", 3, 4, 5};
    CertificatePair q{{"a.example"}, cert, key, "tls.certificates[1]", 7, 8, 9};
    EXPECT_EQ(p, q);
    q.names = {"b.example"};
    EXPECT_NE(p, q);
}

TEST(TlsSchema, PairsWithADefault) {
    const std::string yaml =
        with_default(entry("[ turn.example.com, \"*.turn.example.com\" ]", cert_a, key_a) +
                     entry("[ Turn.Example.ORG ]", cert_b, key_b));
    const TlsFiles tls = load_tls_ok(yaml);
    EXPECT_EQ(tls.certificate, cert);
    EXPECT_EQ(tls.private_key, key);
    EXPECT_EQ(tls.key, "tls");
    EXPECT_EQ(tls.line, 1);
    ASSERT_EQ(tls.certificates.size(), 2u);
    const auto& a = tls.certificates[0];
    EXPECT_EQ(a.names, (std::vector<std::string>{"turn.example.com", "*.turn.example.com"}));
    EXPECT_EQ(a.certificate, cert_a);
    EXPECT_EQ(a.private_key, key_a);
    EXPECT_EQ(a.key, "tls.certificates[0]");
    EXPECT_EQ(a.line, 5);
    EXPECT_EQ(a.certificate_line, 6);
    EXPECT_EQ(a.private_key_line, 7);
    const auto& b = tls.certificates[1];
    EXPECT_EQ(b.names, (std::vector<std::string>{"turn.example.org"}));  // lowercased
    EXPECT_EQ(b.key, "tls.certificates[1]");
    EXPECT_EQ(b.line, 8);
    EXPECT_EQ(b.private_key_line, 10);
}

TEST(TlsSchema, WithoutADefaultTheFirstEntryIsTheDefault) {
    const TlsFiles tls =
        load_tls_ok("tls:\n  certificates:\n" + entry("[ turn.example.com ]", cert_a, key_a) +
                    "    - { names: [ turn.example.org ], certificate: " + cert_b +
                    ", private_key: " + key_b + " }\n");
    EXPECT_EQ(tls.certificate, cert_a);
    EXPECT_EQ(tls.private_key, key_a);
    EXPECT_EQ(tls.key, "tls.certificates[0]");
    EXPECT_EQ(tls.line, 3);
    EXPECT_EQ(tls.certificate_line, 4);
    EXPECT_EQ(tls.private_key_line, 5);
    ASSERT_EQ(tls.certificates.size(), 2u);
    EXPECT_EQ(tls.certificates[1].line, 6);
    EXPECT_EQ(tls.certificates[1].certificate_line, 6);
}

TEST(TlsSchema, AnEmptyListBesideADefaultIsAllowed) {
    for (const std::string empty : {"", " [ ]"}) {
        const TlsFiles tls =
            load_tls_ok("tls:\n  certificate: " + cert + "\n  private_key: " + key +
                        "\n  certificates:" + empty + "\n");
        EXPECT_TRUE(tls.certificates.empty());
        EXPECT_EQ(tls.certificate, cert);
    }
}

TEST(TlsSchema, RelativePathsResolveAgainstTheConfigDirectory) {
    const auto result = load_config_text(
        "tls:\n  certificates:\n    - { names: [ a.example ], certificate: turn-a.pem, "
        "private_key: ./turn-a.key }\n",
        data_dir + "/tls/some-config.yaml");
    ASSERT_TRUE(result.config) << all_errors(result);
    EXPECT_EQ(result.config->tls->certificates.at(0).certificate, cert_a);
    EXPECT_EQ(result.config->tls->certificates.at(0).private_key, key_a);
    EXPECT_EQ(result.config->tls->certificate, cert_a);
}

TEST(TlsSchema, HostNames) {
    const auto names_of = [](const std::string& names) {
        return load_tls_ok(with_default(entry(names, cert_a, key_a))).certificates.at(0).names;
    };
    EXPECT_EQ(names_of("[ localhost ]"), (std::vector<std::string>{"localhost"}));
    EXPECT_EQ(names_of("[ \"*.EXAMPLE.com\", xn--bcher-kva.example, a-1.b2 ]"),
              (std::vector<std::string>{"*.example.com", "xn--bcher-kva.example", "a-1.b2"}));
    EXPECT_EQ(names_of("[ \"" + std::string(63, 'a') + ".example\" ]").at(0).size(), 71u);
}

// Where the first name of the first entry is written by with_default + entry.
constexpr int first_name_line = 5;

TEST(TlsSchema, BadHostNamesAreRefusedWithKeyAndLine) {
    const auto refused = [](const std::string& name, const std::string& message) {
        SCOPED_TRACE(name);
        expect_one_error(with_default(entry("[ \"" + name + "\" ]", cert_a, key_a)),
                         "tls.certificates[0].names[0]", first_name_line, message);
    };
    refused("", "must not be empty");
    refused("turn..example.com", "'turn..example.com' has an empty label");
    refused(".example.com", "'.example.com' has an empty label");
    refused("turn.example.com.",
            "'turn.example.com.' ends with a dot; write the name without it (clients send it "
            "without one)");
    refused("turn_1.example.com",
            "'turn_1.example.com' holds '_'; a host name has letters, digits, hyphens and dots");
    refused("turn example.com",
            "'turn example.com' holds ' '; a host name has letters, digits, hyphens and dots");
    refused("-turn.example.com",
            "'-turn.example.com' has a label that starts or ends with a hyphen");
    refused(
        "b\xC3\xBC"
        "cher.example",
        "'b\xC3\xBC"
        "cher.example' is not ASCII; write an internationalized name in its "
        "xn-- form");
    // Quoted names are cut short after 64 bytes, as every value in a message is.
    refused(std::string(64, 'a') + ".example",
            "'" + std::string(64, 'a') + "...' has a label longer than 63 bytes");
}

TEST(TlsSchema, NamesTooLongAtTheLimit) {
    // 253 bytes pass, 254 do not.
    std::string name = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                       std::string(63, 'c') + "." + std::string(61, 'd');
    ASSERT_EQ(name.size(), 253u);
    EXPECT_EQ(load_tls_ok(with_default(entry("[ " + name + " ]", cert_a, key_a)))
                  .certificates.at(0)
                  .names.at(0),
              name);
    name += "d";
    expect_one_error(with_default(entry("[ " + name + " ]", cert_a, key_a)),
                     "tls.certificates[0].names[0]", first_name_line,
                     "too long: 254 bytes, a host name has at most 253");
}

TEST(TlsSchema, WildcardsCoverOneWholeLeftmostLabel) {
    const auto refused = [](const std::string& name, const std::string& message) {
        SCOPED_TRACE(name);
        expect_one_error(with_default(entry("[ \"" + name + "\" ]", cert_a, key_a)),
                         "tls.certificates[0].names[0]", first_name_line, message);
    };
    const std::string leftmost =
        ": a wildcard must be the whole leftmost label, as in *.example.com";
    refused("*", "'*'" + leftmost);
    refused("t*.example.com", "'t*.example.com'" + leftmost);
    refused("turn.*.example.com", "'turn.*.example.com'" + leftmost);
    refused("*.*.example.com", "'*.*.example.com'" + leftmost);
    refused("*.", "'*.' has no name after the wildcard; write one, as in *.example.com");
}

TEST(TlsSchema, AddressesAreNotSniNames) {
    for (const std::string address : {"192.0.2.1", "2001:db8::1", "::1"}) {
        SCOPED_TRACE(address);
        expect_one_error(with_default(entry("[ \"" + address + "\" ]", cert_a, key_a)),
                         "tls.certificates[0].names[0]", first_name_line,
                         "'" + address +
                             "' is an IP address; clients send no SNI for an address, so only "
                             "the default pair (tls.certificate) serves it");
    }
}

TEST(TlsSchema, ANameListedTwiceIsRefused) {
    // Across entries, and without regard to case.
    expect_one_error(with_default(entry("[ turn.example.com, \"*.example.com\" ]", cert_a, key_a) +
                                  entry("[ turn.example.org, TURN.example.COM ]", cert_b, key_b)),
                     "tls.certificates[1].names[1]", 8,
                     "duplicate of tls.certificates[0].names[0]");
    // Within one entry.
    expect_one_error(with_default(entry("[ \"*.example.com\", \"*.Example.com\" ]", cert_a, key_a)),
                     "tls.certificates[0].names[1]", first_name_line,
                     "duplicate of tls.certificates[0].names[0]");
    // An exact name and the wildcard above it are different names: the exact one wins.
    load_tls_ok(with_default(entry("[ turn.example.com, \"*.example.com\" ]", cert_a, key_a)));
}

TEST(TlsSchema, EmptyOrMissingNames) {
    for (const std::string empty : {"", "[ ]"}) {
        expect_one_error(with_default(entry(empty, cert_a, key_a)), "tls.certificates[0].names",
                         first_name_line, "needs at least one host name, such as turn.example.com");
    }
    expect_one_error(with_default(entry("turn.example.com", cert_a, key_a)),
                     "tls.certificates[0].names", first_name_line,
                     "expected a list of strings, got a string");
    expect_one_error(
        with_default("    - { certificate: " + cert_a + ", private_key: " + key_a + " }\n"),
        "tls.certificates[0].names", 5,
        "missing; each entry of tls.certificates needs names, certificate and "
        "private_key");
}

TEST(TlsSchema, EachEntryNeedsItsFiles) {
    expect_one_error(with_default("    - { names: [ a.example ], private_key: " + key_a + " }\n"),
                     "tls.certificates[0].certificate", 5,
                     "missing; each entry of tls.certificates needs names, certificate and "
                     "private_key");
    expect_one_error(with_default("    - { names: [ a.example ], certificate: " + cert_a + " }\n"),
                     "tls.certificates[0].private_key", 5,
                     "missing; each entry of tls.certificates needs names, certificate and "
                     "private_key");
    expect_one_error(with_default(entry("[ a.example ]", cert_a, "/nonexistent/b.key")),
                     "tls.certificates[0].private_key", 7,
                     "cannot read /nonexistent/b.key: No such file or directory");
    expect_one_error(with_default(entry("[ a.example ]", data_dir, key_a)),
                     "tls.certificates[0].certificate", 6,
                     "cannot read " + data_dir + ": not a regular file");
    expect_one_error(with_default(entry("[ a.example ]", "\"\"", key_a)),
                     "tls.certificates[0].certificate", 6, "must not be empty");
    expect_one_error(with_default("    - { names: [ a.example ], certificate: " + cert_a +
                                  ", private_key: " + key_a + ", private_keys: x }\n"),
                     "tls.certificates[0].private_keys", 5,
                     "unknown key, did you mean private_key?");
}

TEST(TlsSchema, EntriesMustBeMapsInAList) {
    expect_one_error(with_default("    - turn.example.com\n"), "tls.certificates[0]", 5,
                     "expected a map with names, certificate and private_key, got a string");
    expect_one_error("tls:\n  certificate: " + cert + "\n  private_key: " + key +
                         "\n  certificates: { names: [ a.example ] }\n",
                     "tls.certificates", 4,
                     "expected a list of entries with names, certificate and private_key, got "
                     "a map");
}

TEST(TlsSchema, APairIsNeededSomewhere) {
    // Neither a default nor any entry.
    expect_one_error("tls:\n  certificates: [ ]\n", "tls.certificates", 2,
                     "needs at least one entry (or give tls.certificate and tls.private_key)");
    // The messages of the single pair of old are unchanged.
    const auto result = load("tls: { }\n");
    ASSERT_EQ(result.errors.size(), 2u) << all_errors(result);
    EXPECT_EQ(result.errors[0].to_string(),
              "test.yaml:1: tls.certificate: missing; the tls section needs certificate and "
              "private_key");
    EXPECT_EQ(result.errors[1].to_string(),
              "test.yaml:1: tls.private_key: missing; the tls section needs certificate and "
              "private_key");
}

TEST(TlsSchema, HalfADefaultPairIsRefused) {
    expect_one_error("tls:\n  certificate: " + cert + "\n  certificates:\n" +
                         entry("[ a.example ]", cert_a, key_a),
                     "tls.private_key", 1,
                     "missing; the default pair needs both certificate and private_key (leave "
                     "both out to serve tls.certificates[0] by default)");
    expect_one_error("tls:\n  private_key: " + key + "\n  certificates:\n" +
                         entry("[ a.example ]", cert_a, key_a),
                     "tls.certificate", 1,
                     "missing; the default pair needs both certificate and private_key (leave "
                     "both out to serve tls.certificates[0] by default)");
}

TEST(TlsSchema, EveryProblemIsReportedInFileOrder) {
    const auto result = load(with_default(entry("[ \"bad name\" ]", cert_a, "/nonexistent/a") +
                                          entry("[ ]", "/nonexistent/b", key_b)));
    ASSERT_EQ(result.errors.size(), 4u) << all_errors(result);
    EXPECT_EQ(result.errors[0].key, "tls.certificates[0].names[0]");
    EXPECT_EQ(result.errors[0].line, 5);
    EXPECT_EQ(result.errors[1].key, "tls.certificates[0].private_key");
    EXPECT_EQ(result.errors[1].line, 7);
    EXPECT_EQ(result.errors[2].key, "tls.certificates[1].names");
    EXPECT_EQ(result.errors[2].line, 8);
    EXPECT_EQ(result.errors[3].key, "tls.certificates[1].certificate");
    EXPECT_EQ(result.errors[3].line, 9);
}

TEST(TlsSchema, UnknownKeysInTheSectionAreNamed) {
    expect_one_error(
        "tls:\n  certificate: " + cert + "\n  private_key: " + key + "\n  certficates: [ ]\n",
        "tls.certficates", 4, "unknown key, did you mean certificates?");
}

}  // namespace
}  // namespace tern::config
