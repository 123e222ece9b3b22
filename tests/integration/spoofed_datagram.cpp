#include "spoofed_datagram.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace tern::test {

namespace {

void put16(Bytes& b, std::size_t at, std::uint16_t v) {
    b[at] = static_cast<std::uint8_t>(v >> 8);
    b[at + 1] = static_cast<std::uint8_t>(v & 0xFF);
}

}  // namespace

bool send_spoofed_udp(const TransportAddress& from, const TransportAddress& to,
                      const Bytes& payload) {
    if (from.family != protocol::AddressFamily::ipv4 ||
        to.family != protocol::AddressFamily::ipv4) {
        return false;
    }
    // IPPROTO_RAW: we write the IP header; the kernel fills in its checksum (raw(7)).
    const int fd = ::socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
    if (fd < 0) return false;
    constexpr std::size_t ip_header = 20, udp_header = 8;
    Bytes packet(ip_header + udp_header + payload.size(), 0);
    packet[0] = 0x45;  // IPv4, 5 words of header
    put16(packet, 2, static_cast<std::uint16_t>(packet.size()));
    put16(packet, 6, 0x4000);  // don't fragment
    packet[8] = 64;            // TTL
    packet[9] = IPPROTO_UDP;
    std::memcpy(&packet[12], from.bytes.data(), 4);
    std::memcpy(&packet[16], to.bytes.data(), 4);
    put16(packet, ip_header, from.port);
    put16(packet, ip_header + 2, to.port);
    put16(packet, ip_header + 4, static_cast<std::uint16_t>(udp_header + payload.size()));
    // UDP checksum 0: "none", which IPv4 allows (RFC 768).
    if (!payload.empty()) {
        std::memcpy(&packet[ip_header + udp_header], payload.data(), payload.size());
    }
    sockaddr_in dest{};
    dest.sin_family = AF_INET;
    std::memcpy(&dest.sin_addr, to.bytes.data(), 4);
    const auto sent = ::sendto(fd, packet.data(), packet.size(), 0,
                               reinterpret_cast<const sockaddr*>(&dest), sizeof dest);
    ::close(fd);
    return sent == static_cast<ssize_t>(packet.size());
}

}  // namespace tern::test
