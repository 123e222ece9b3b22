// The sample configs in tests/data, checked through the library directly: every good config
// loads, and every bad one fails with the text its .expect file records. ctest checks the same
// files again through `ternd --check-config`; this catches a drifting .expect without ternd.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tern/config/config.hpp"

namespace tern::config {
namespace {

namespace fs = std::filesystem;

const fs::path data_dir = TERN_TEST_DATA_DIR;

std::vector<fs::path> files_with_extension(const fs::path& dir, const std::string& extension) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.path().extension() == extension) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    return files;
}

std::string first_line_of(const fs::path& file) {
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);
    return line;
}

TEST(DataFiles, EveryGoodConfigLoads) {
    const auto configs = files_with_extension(data_dir / "good-configs", ".yaml");
    ASSERT_GE(configs.size(), 4u);
    for (const auto& config : configs) {
        const auto result = load_config_file(config.string());
        EXPECT_TRUE(result.config) << config;
        for (const auto& error : result.errors) ADD_FAILURE() << error.to_string();
    }
}

TEST(DataFiles, EveryBadConfigFailsWithItsExpectedText) {
    const auto configs = files_with_extension(data_dir / "bad-configs", ".yaml");
    ASSERT_GE(configs.size(), 10u);
    for (const auto& config : configs) {
        const auto result = load_config_file(config.string());
        EXPECT_FALSE(result.config) << config;
        std::string output;
        for (const auto& error : result.errors) output += error.to_string() + "\n";
        auto expect_file = config;
        expect_file.replace_extension(".expect");
        ASSERT_TRUE(fs::exists(expect_file)) << expect_file;
        const std::string expected = first_line_of(expect_file);
        // The .expect text starts at the file's base name, as the ctest harness needs, and
        // holds no ';', which CMake splits lists on wherever the text passes through a variable.
        EXPECT_EQ(expected.rfind(config.filename().string() + ":", 0), 0u) << expect_file;
        EXPECT_EQ(expected.find(';'), std::string::npos) << expect_file;
        EXPECT_NE(output.find(expected), std::string::npos)
            << config << "\nexpected: " << expected << "\ngot:\n"
            << output;
    }
}

TEST(DataFiles, EveryExpectFileHasItsConfig) {
    for (const auto& expect : files_with_extension(data_dir / "bad-configs", ".expect")) {
        auto config = expect;
        config.replace_extension(".yaml");
        EXPECT_TRUE(fs::exists(config)) << config;
    }
}

TEST(DataFiles, TestCertificateAndKeyArePresent) {
    for (const char* name : {"cert.pem", "key.pem"}) {
        const auto path = data_dir / "tls" / name;
        ASSERT_TRUE(fs::is_regular_file(path)) << path;
        const std::string first = first_line_of(path);
        EXPECT_EQ(first.rfind("-----BEGIN ", 0), 0u) << path;
    }
}

}  // namespace
}  // namespace tern::config
