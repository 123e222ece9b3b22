#!/usr/bin/env python3
"""The fleet test's peer: echoes every UDP datagram back to its sender (a relayed address).
Usage: peer_echo.py IP PORT. Prints "ready" once bound; exits when standard input closes."""

import select
import socket
import sys


def main() -> int:
    ip, port = sys.argv[1], int(sys.argv[2])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((ip, port))
    print("ready", flush=True)
    while True:
        r, _, _ = select.select([sock, sys.stdin], [], [])
        if sys.stdin in r and not sys.stdin.readline():
            return 0
        if sock in r:
            data, src = sock.recvfrom(65536)
            try:
                sock.sendto(data, src)
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main())
