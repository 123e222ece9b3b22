#include "private_network.hpp"

#include <gtest/gtest.h>
#include <sched.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <thread>

#include "support.hpp"

namespace tern::test {

std::string in_private_network(const std::vector<std::string>& addresses,
                               const std::function<void()>& body) {
    std::string skip;
    std::thread runner([&] {
        if (::unshare(CLONE_NEWNET) != 0) {
            skip = std::string("cannot create a network namespace: ") + std::strerror(errno);
            return;
        }
        // nodad: an IPv6 address is usable at once instead of after duplicate detection.
        std::string setup = "ip link set lo up";
        for (const auto& a : addresses) {
            const bool v6 = a.find(':') != std::string::npos;
            setup += " && ip addr add " + a + " dev lo" + (v6 ? " nodad" : "");
        }
        std::string out;
        if (run_command(setup, out) != 0) {
            skip = "cannot configure the namespace (" + setup + "): " + out;
            return;
        }
        try {
            body();
        } catch (const std::exception& e) {
            ADD_FAILURE() << "exception: " << e.what();
        }
    });
    runner.join();
    return skip;
}

}  // namespace tern::test
