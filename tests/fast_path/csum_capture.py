#!/usr/bin/env python3
"""Captures UDP datagrams arriving on an interface (AF_PACKET, run in the receiver's namespace)
and checks their checksums itself: the IPv4 header checksum, and the UDP checksum over the IPv4
or IPv6 pseudo-header. For the fast path test, which captures what the XDP program rewrote.

Usage: csum_capture.py IFACE (--dport PORT | --sport PORT) [--channeldata] [--max N]
                       [--seconds S]
Prints "ready" once the socket is bound, then captures inbound UDP datagrams to (--dport) or
from (--sport) PORT until it has --max of them (default 200), --seconds have passed (default 10)
or a line "stop" arrives on standard input; then prints one JSON line:
  {"captured": N, "verified": N, "partial": N, "bad_count": N, "bad": [...], "sizes": [...],
   "partial_sizes": [...], "udp_zero": N, "families": {"4": N, "6": N}}
("sizes" are the UDP payload sizes of the verified datagrams, "partial_sizes" those of the
deferred ones.)
"partial" counts datagrams the sending stack left with a deferred checksum (CHECKSUM_PARTIAL,
TP_STATUS_CSUMNOTREADY: a packet from this machine's own stack through a veth with tx
offload); their checksum field is not final, so they are counted, not judged. Every other one
is verified; "bad" lists those that failed (at most 20, with the reason). --channeldata keeps
only datagrams whose payload starts like ChannelData (0x40-0x4F) and also checks that its length
field matches the UDP length.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_CSUMNOTREADY = 0x8
AUXDATA = struct.Struct("IIIHHHH")


def ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def check(frame: bytes, want_dport: int | None, want_sport: int | None,
          channeldata: bool) -> tuple[bool, dict] | None:
    """None when the frame is not one to judge; else (matched, facts)."""
    if len(frame) < 14:
        return None
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    ip = frame[14:]
    facts: dict = {}
    if ethertype == 0x0800:
        if len(ip) < 20 or ip[0] >> 4 != 4:
            return None
        ihl = (ip[0] & 0x0F) * 4
        total_len, frag, proto = struct.unpack_from("!H2xH1xB", ip, 2)
        if proto != 17 or frag & 0x3FFF or total_len > len(ip) or ihl < 20:
            return None
        facts["family"] = 4
        facts["ip_ok"] = ones_sum(ip[:ihl]) == 0xFFFF
        udp = ip[ihl:total_len]
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, len(udp))
    elif ethertype == 0x86DD:
        if len(ip) < 40 or ip[0] >> 4 != 6 or ip[6] != 17:
            return None  # extension headers are not ours to judge
        (plen,) = struct.unpack_from("!H", ip, 4)
        if 40 + plen > len(ip):
            return None
        facts["family"] = 6
        facts["ip_ok"] = True  # IPv6 has no header checksum
        udp = ip[40:40 + plen]
        pseudo = ip[8:40] + struct.pack("!IxxxB", len(udp), 17)
    else:
        return None
    if len(udp) < 8:
        return None
    sport, dport, ulen, csum = struct.unpack_from("!HHHH", udp)
    if want_dport is not None and dport != want_dport:
        return None
    if want_sport is not None and sport != want_sport:
        return None
    payload = udp[8:ulen]
    if channeldata and not (len(payload) >= 4 and 0x40 <= payload[0] <= 0x4F):
        return None
    facts["size"] = len(payload)
    facts["ulen_ok"] = ulen == len(udp)
    facts["udp_zero"] = csum == 0
    facts["udp_ok"] = csum != 0 and ones_sum(pseudo + udp) == 0xFFFF
    if channeldata:
        (cd_len,) = struct.unpack_from("!H", payload, 2)
        facts["cd_ok"] = 4 + cd_len <= len(payload) <= 4 + cd_len + 3
    return True, facts


def main(argv: list[str]) -> int:
    iface = argv[1]
    opts = argv[2:]

    def opt(name: str, default=None):
        return opts[opts.index(name) + 1] if name in opts else default

    dport = int(opt("--dport")) if "--dport" in opts else None
    sport = int(opt("--sport")) if "--sport" in opts else None
    channeldata = "--channeldata" in opts
    limit = int(opt("--max", 200))
    seconds = float(opt("--seconds", 10))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.bind((iface, ETH_P_ALL))
    print("ready", flush=True)
    out = {"captured": 0, "verified": 0, "partial": 0, "bad": [], "sizes": [], "udp_zero": 0,
           "partial_sizes": [], "bad_count": 0, "families": {"4": 0, "6": 0}}
    deadline = time.monotonic() + seconds
    while out["captured"] < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([s, sys.stdin], [], [], left)
        if sys.stdin in r:
            line = sys.stdin.readline()
            if not line or line.strip() == "stop":
                break
        if s not in r:
            continue
        frame, ancdata, _, addr = s.recvmsg(65536, socket.CMSG_SPACE(AUXDATA.size))
        if addr[2] == PACKET_OUTGOING:
            continue
        judged = check(frame, dport, sport, channeldata)
        if judged is None:
            continue
        _, facts = judged
        status = 0
        for level, ctype, cdata in ancdata:
            if level == SOL_PACKET and ctype == PACKET_AUXDATA and len(cdata) >= AUXDATA.size:
                status = AUXDATA.unpack_from(cdata)[0]
        out["captured"] += 1
        out["families"][str(facts["family"])] += 1
        if status & TP_STATUS_CSUMNOTREADY:
            out["partial"] += 1
            out["partial_sizes"].append(facts["size"])
            continue
        out["sizes"].append(facts["size"])
        problems = [k for k in ("ip_ok", "udp_ok", "ulen_ok", "cd_ok") if facts.get(k) is False]
        if facts["udp_zero"]:
            out["udp_zero"] += 1
        if problems:
            out["bad_count"] += 1
            if len(out["bad"]) < 20:
                out["bad"].append({"size": facts["size"], "family": facts["family"],
                                   "failed": problems, "udp_zero": facts["udp_zero"]})
            continue
        out["verified"] += 1
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
