#include "tern/allocation/permission_table.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "test_addresses.hpp"

namespace tern::allocation {
namespace {

using namespace std::chrono_literals;
using protocol::TransportAddress;

using testing::addr;
using testing::t0;

TEST(PermissionTable, InstallAllowsEveryPortOfThatIpOnly) {
    PermissionTable t(10);
    EXPECT_EQ(t.install(addr("192.0.2.1:1000"), t0), PermissionResult::installed);
    EXPECT_TRUE(t.allowed(addr("192.0.2.1:1000"), t0));
    EXPECT_TRUE(t.allowed(addr("192.0.2.1:2"), t0));
    EXPECT_FALSE(t.allowed(addr("192.0.2.2:1000"), t0));
    EXPECT_FALSE(t.allowed(addr("[2001:db8::1]:1000"), t0));
    EXPECT_EQ(t.count(), 1u);
}

TEST(PermissionTable, MappedAndPlainIpv4AreOnePermission) {
    PermissionTable t(10);
    EXPECT_EQ(t.install(addr("[::ffff:192.0.2.1]:5"), t0), PermissionResult::installed);
    EXPECT_TRUE(t.allowed(addr("192.0.2.1:9"), t0));
    EXPECT_EQ(t.install(addr("192.0.2.1:7"), t0), PermissionResult::refreshed);
    EXPECT_EQ(t.count(), 1u);
    // The deprecated IPv4-compatible form is a different (IPv6) address.
    EXPECT_FALSE(t.allowed(addr("[::192.0.2.1]:9"), t0));
}

TEST(PermissionTable, LifetimeIsThreeHundredSecondsExclusive) {
    PermissionTable t(10);
    t.install(addr("192.0.2.1:1"), t0);
    EXPECT_TRUE(t.allowed(addr("192.0.2.1:1"), t0 + 300s - 1ns));
    EXPECT_FALSE(t.allowed(addr("192.0.2.1:1"), t0 + 300s));
    EXPECT_EQ(t.expire(t0 + 300s - 1ns), 0u);
    EXPECT_EQ(t.expire(t0 + 300s), 1u);
    EXPECT_EQ(t.count(), 0u);
}

TEST(PermissionTable, RefreshRestartsTheLifetime) {
    PermissionTable t(10);
    t.install(addr("192.0.2.1:1"), t0);
    EXPECT_EQ(t.install(addr("192.0.2.1:1"), t0 + 200s), PermissionResult::refreshed);
    EXPECT_TRUE(t.allowed(addr("192.0.2.1:1"), t0 + 499s));
    EXPECT_FALSE(t.allowed(addr("192.0.2.1:1"), t0 + 500s));
}

TEST(PermissionTable, ReinstallAfterLapseCountsAsNew) {
    PermissionTable t(10);
    t.install(addr("192.0.2.1:1"), t0);
    EXPECT_EQ(t.install(addr("192.0.2.1:1"), t0 + 300s), PermissionResult::installed);
    EXPECT_TRUE(t.allowed(addr("192.0.2.1:1"), t0 + 599s));
}

TEST(PermissionTable, QuotaRefusesNewButRefreshesExisting) {
    PermissionTable t(2);
    EXPECT_EQ(t.install(addr("192.0.2.1:1"), t0), PermissionResult::installed);
    EXPECT_EQ(t.install(addr("192.0.2.2:1"), t0 + 10s), PermissionResult::installed);
    EXPECT_EQ(t.install(addr("192.0.2.3:1"), t0 + 20s), PermissionResult::quota_exceeded);
    EXPECT_FALSE(t.allowed(addr("192.0.2.3:1"), t0 + 20s));
    EXPECT_EQ(t.install(addr("192.0.2.1:1"), t0 + 20s), PermissionResult::refreshed);
    EXPECT_EQ(t.count(), 2u);
    // Once one lapses (192.0.2.2 at t0+310s) its slot is reusable without an explicit sweep.
    EXPECT_EQ(t.install(addr("192.0.2.3:1"), t0 + 310s - 1ns), PermissionResult::quota_exceeded);
    EXPECT_EQ(t.install(addr("192.0.2.3:1"), t0 + 310s), PermissionResult::installed);
    EXPECT_EQ(t.count(), 2u);
    EXPECT_FALSE(t.allowed(addr("192.0.2.2:1"), t0 + 310s));
}

TEST(PermissionTable, ZeroQuotaRefusesEverything) {
    PermissionTable t(0);
    EXPECT_EQ(t.install(addr("192.0.2.1:1"), t0), PermissionResult::quota_exceeded);
    EXPECT_EQ(t.count(), 0u);
}

TEST(PermissionTable, InstallAllIsAllOrNothing) {
    PermissionTable t(3);
    t.install(addr("192.0.2.1:1"), t0);
    const std::vector<TransportAddress> three = {addr("192.0.2.1:1"), addr("192.0.2.2:1"),
                                                 addr("192.0.2.3:1"), addr("192.0.2.4:1")};
    EXPECT_EQ(t.install_all(three, t0 + 100s), PermissionResult::quota_exceeded);
    EXPECT_FALSE(t.allowed(addr("192.0.2.2:1"), t0 + 100s));
    // The existing one was not refreshed either.
    EXPECT_FALSE(t.allowed(addr("192.0.2.1:1"), t0 + 300s));

    // Duplicates (also in mapped form) need only one slot.
    const std::vector<TransportAddress> dup = {addr("192.0.2.2:1"), addr("[::ffff:192.0.2.2]:2"),
                                               addr("192.0.2.3:9"), addr("192.0.2.1:1")};
    EXPECT_EQ(t.install_all(dup, t0 + 100s), PermissionResult::installed);
    EXPECT_EQ(t.count(), 3u);
    EXPECT_TRUE(t.allowed(addr("192.0.2.1:1"), t0 + 399s));  // refreshed along the way
    EXPECT_TRUE(t.allowed(addr("192.0.2.3:1"), t0 + 399s));
    const std::vector<TransportAddress> known = {addr("192.0.2.2:1"), addr("192.0.2.3:1")};
    EXPECT_EQ(t.install_all(known, t0 + 200s), PermissionResult::refreshed);
}

TEST(PermissionTable, ManyEntriesStaySearchable) {
    PermissionTable t(1000);
    for (int i = 0; i < 1000; ++i) {
        const auto a = TransportAddress::v4(
            {198, 51, static_cast<std::uint8_t>(i / 256), static_cast<std::uint8_t>(i % 256)}, 1);
        ASSERT_EQ(t.install(a, t0), PermissionResult::installed);
    }
    for (int i = 999; i >= 0; --i) {
        const auto a = TransportAddress::v4(
            {198, 51, static_cast<std::uint8_t>(i / 256), static_cast<std::uint8_t>(i % 256)}, 2);
        ASSERT_TRUE(t.allowed(a, t0)) << i;
    }
    EXPECT_FALSE(t.allowed(TransportAddress::v4({198, 51, 3, 232}, 1), t0));  // i = 1000
}

}  // namespace
}  // namespace tern::allocation
