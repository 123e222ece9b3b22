#!/usr/bin/env python3
"""The fast path test's peer: echoes every UDP datagram back to its sender (a relayed address)
and records what it received, so that the test can check the bytes that reached the peer, not
only those that came back.

Usage: peer_record.py IPV4 IPV6 PORT (run in the peer's namespace). Prints "ready" once both
sockets are bound, then takes one command a line on standard input:
  dump   prints {"records": [[family, length, sha256 hex], ...]} (the datagrams received since the
         last dump, in arrival order) and forgets them
Exits when standard input closes. A plain UDP socket: the kernel verified each datagram's UDP
checksum before this program sees it (a bad one would be dropped and counted as InCsumErrors).
"""

import hashlib
import json
import select
import socket
import sys


def main() -> int:
    ip4, ip6, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    socks = {}
    for family, ip, tag in ((socket.AF_INET, ip4, 4), (socket.AF_INET6, ip6, 6)):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        s.bind((ip, port))
        socks[s] = tag
    print("ready", flush=True)
    records = []
    while True:
        r, _, _ = select.select(list(socks) + [sys.stdin], [], [])
        for s in r:
            if s is sys.stdin:
                line = sys.stdin.readline()
                if not line:
                    return 0
                if line.strip() == "dump":
                    print(json.dumps({"records": records}), flush=True)
                    records = []
                continue
            data, src = s.recvfrom(65536)
            records.append([socks[s], len(data), hashlib.sha256(data).hexdigest()])
            try:
                s.sendto(data, src)
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main())
