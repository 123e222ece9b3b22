#!/usr/bin/env python3
"""A TURN client agent for the fleet test: run it where the client lives (`ip netns exec CLIENT
python3 turn_agent.py`); it keeps allocations open and takes one JSON command per line on
standard input, answering each with one JSON line on standard output that carries the command's
"id". Commands run concurrently (a stream can run while other commands are answered).

Commands ("cmd"; addresses are "ip:port", an IPv6 one "[ip]:port"):
  probe      {server, [transport=udp|tcp]} Binding (over UDP from a socket of the server's
             family); answers the SOFTWARE and XOR-MAPPED-ADDRESS
  allocate   {server, username, password, [prefer_software], [follow=true], [lifetime],
              [tries=60]}
             Allocate over UDP from a fresh port; 401 -> REALM/NONCE -> authenticated again
             (438 too). A 300 Try Alternate is followed once to its ALTERNATE-SERVER, after its
             MESSAGE-INTEGRITY checked out (RFC 8489 §10). prefer_software: first pick a source
             port whose Binding through `server` is answered with that SOFTWARE (a node behind
             a hashing balancer). Answers code, reason, server (the one it ended on), relayed,
             software, redirects and, on 200, "alloc" (an id for the commands below).
  nonce      {server}                      unauthenticated Allocate: answers realm and nonce
  raw_allocate {server, username, password, realm, nonce}
             one authenticated Allocate with exactly this nonce, no retry; on 200 an "alloc"
  refresh    {alloc, [lifetime]}           Refresh (lifetime 0 deletes the allocation)
  create_permission {alloc, peer}          CreatePermission for the peer's address
  channel_bind {alloc, peer, channel}      ChannelBind to the peer (IPv4 or IPv6)
  echo       {alloc, channel, [count=5], [timeout=2]}   ChannelData to the peer, counts echoes
  stream     {alloc, channel, rate, seconds, [tail=0.5]}
             ChannelData at `rate` per second for `seconds`; answers sent, received, lost,
             max_gap_ms (longest time without an echo inside the stream, start included),
             max_send_gap_ms (the agent's own longest pause between two sends: a busy machine
             shows here, not as the relay's fault), max_latency_ms (send to echo), first_echo,
             last_echo, start, end (time.monotonic() values, comparable across processes on
             this machine)
  close      {alloc}                       forget it locally (no Refresh)
  allocate_af {server, username, password, [lifetime]}
             Allocate over UDP from a socket of the server's family (IPv4 or IPv6), asking for
             a relayed address of that family (REQUESTED-ADDRESS-FAMILY); a 300 is not
             followed. Answers as allocate does
  payloads   {alloc, channel, sizes, seed, [gap_ms=1], [timeout=3]}
             one unpadded ChannelData per size, payload fast_payload(seed, size), to the echoing
             peer; answers sent, identical (sizes echoed byte for byte), missing (sizes),
             corrupt (echoes matching no payload sent: [length, first bytes hex]),
             wrong_channel, duplicates, send_errors
  quit
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import select
import socket
import struct
import sys
import threading
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stun  # noqa: E402

_out_lock = threading.Lock()


def reply(obj: dict) -> None:
    line = json.dumps(obj, sort_keys=True)
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def fmt(addr: tuple[str, int] | None) -> str | None:
    return None if addr is None else f"{addr[0]}:{addr[1]}"


class Conn:
    """One UDP socket (IPv4 unless told otherwise) with a reader thread: STUN answers go to
    whoever waits for their transaction, ChannelData to the data sink."""

    def __init__(self, family: int = socket.AF_INET) -> None:
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        self.local = self.sock.getsockname()[:2]  # an IPv6 one has flowinfo and scope id too
        self.pending: dict[bytes, queue.Queue] = {}
        self.lock = threading.Lock()
        self.sink = None  # callable(channel, payload, arrival monotonic)
        self.closed = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.closed:
            try:
                r, _, _ = select.select([self.sock], [], [], 0.2)
                if not r:
                    continue
                data, src = self.sock.recvfrom(65536)
            except OSError:
                return
            now = time.monotonic()
            cd = stun.parse_channel_data(data)
            if cd is not None:
                sink = self.sink
                if sink is not None:
                    sink(cd[0], cd[1], now)
                continue
            if not stun.is_stun(data):
                continue
            try:
                msg = stun.parse(data)
            except ValueError:
                continue
            msg.source = src
            with self.lock:
                q = self.pending.get(msg.txid)
            if q is not None:
                q.put(msg)

    def transact(self, msg: stun.Message, dest: tuple[str, int], key: bytes | None,
                 timeout: float = 3.0) -> stun.Message | None:
        """Sends a request, retransmitting (RFC 8489 §6.2.1, shortened RTO), and returns the
        answer or None."""
        data = msg.encode(key)
        q: queue.Queue = queue.Queue()
        with self.lock:
            self.pending[msg.txid] = q
        try:
            deadline = time.monotonic() + timeout
            rto = 0.25
            while True:
                self.sock.sendto(data, dest)
                wait = min(rto, deadline - time.monotonic())
                if wait <= 0:
                    return None
                try:
                    return q.get(timeout=wait)
                except queue.Empty:
                    rto *= 2
                    if time.monotonic() >= deadline:
                        return None
        finally:
            with self.lock:
                self.pending.pop(msg.txid, None)

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


def conn_for(server: tuple[str, int]) -> Conn:
    """A Conn of the server's family."""
    return Conn(socket.AF_INET6 if ":" in server[0] else socket.AF_INET)


class Allocation:
    def __init__(self, conn: Conn, server: tuple[str, int], username: str, password: str,
                 realm: str, nonce: str):
        self.conn = conn
        self.server = server
        self.username = username
        self.password = password
        self.realm = realm
        self.nonce = nonce
        self.relayed: tuple[str, int] | None = None
        self.peers: dict[int, tuple[str, int]] = {}

    @property
    def key(self) -> bytes:
        return stun.long_term_key(self.username, self.realm, self.password)

    def authed(self, method: int, attrs) -> stun.Message | None:
        """An authenticated request to the allocation's server; one retry on 438 (or on a 401
        that carries a fresh nonce). attrs: the attributes before USERNAME, or a function of
        the request's transaction id that gives them (a retry is a new transaction)."""
        answer = None
        for _ in range(2):
            msg = stun.Message(method, stun.REQUEST)
            for a in attrs(msg.txid) if callable(attrs) else attrs:
                msg.add(*a)
            msg.add_str(stun.USERNAME, self.username)
            msg.add_str(stun.REALM, self.realm)
            msg.add_str(stun.NONCE, self.nonce)
            answer = self.conn.transact(msg, self.server, self.key)
            if answer is None:
                return None
            code = answer.code()
            new_nonce = answer.text(stun.NONCE)
            if code in (438, 401) and new_nonce and new_nonce != self.nonce:
                self.nonce = new_nonce
                realm = answer.text(stun.REALM)
                if realm:
                    self.realm = realm
                continue
            return answer
        return answer


class Agent:
    def __init__(self) -> None:
        self.allocs: dict[str, Allocation] = {}
        self.next_id = 1
        self.lock = threading.Lock()

    def register(self, alloc: Allocation) -> str:
        with self.lock:
            aid = f"a{self.next_id}"
            self.next_id += 1
            self.allocs[aid] = alloc
        return aid

    def alloc(self, cmd: dict) -> Allocation:
        a = self.allocs.get(cmd["alloc"])
        if a is None:
            raise KeyError(f"no allocation {cmd['alloc']}")
        return a

    # ---------------------------------------------------------------- commands
    def cmd_probe(self, cmd: dict) -> dict:
        server = hostport(cmd["server"])
        if cmd.get("transport") == "tcp":
            return self._probe_tcp(server)
        conn = conn_for(server)
        try:
            return self._probe(conn, server)
        finally:
            conn.close()

    def _probe(self, conn: Conn, server: tuple[str, int]) -> dict:
        ans = conn.transact(stun.Message(stun.BINDING, stun.REQUEST), server, None,
                            timeout=2.0)
        if ans is None:
            return {"code": 0, "reason": "no answer to Binding"}
        return {"code": ans.code(), "software": ans.text(stun.SOFTWARE),
                "mapped": fmt(ans.xor_address(stun.XOR_MAPPED_ADDRESS)),
                "local": fmt(conn.local)}

    def _probe_tcp(self, server: tuple[str, int]) -> dict:
        """A Binding over TCP (RFC 8489 §6.2.2: STUN messages back to back on the stream)."""
        msg = stun.Message(stun.BINDING, stun.REQUEST)
        with socket.create_connection(server, timeout=3) as s:
            local = s.getsockname()
            s.sendall(msg.encode())
            data = b""
            while len(data) < 20 or len(data) < 20 + struct.unpack_from("!H", data, 2)[0]:
                chunk = s.recv(4096)
                if not chunk:
                    return {"code": 0, "reason": "connection closed before an answer"}
                data += chunk
        ans = stun.parse(data)
        return {"code": ans.code(), "software": ans.text(stun.SOFTWARE),
                "mapped": fmt(ans.xor_address(stun.XOR_MAPPED_ADDRESS)), "local": fmt(local)}

    def cmd_nonce(self, cmd: dict) -> dict:
        conn = Conn()
        try:
            msg = stun.Message(stun.ALLOCATE, stun.REQUEST)
            msg.add(stun.REQUESTED_TRANSPORT, bytes([stun.UDP, 0, 0, 0]))
            ans = conn.transact(msg, hostport(cmd["server"]), None)
            if ans is None:
                return {"code": 0, "reason": "no answer"}
            return {"code": ans.code(), "realm": ans.text(stun.REALM),
                    "nonce": ans.text(stun.NONCE), "software": ans.text(stun.SOFTWARE)}
        finally:
            conn.close()

    def _allocate_attrs(self, cmd: dict) -> list[tuple[int, bytes]]:
        attrs = [(stun.REQUESTED_TRANSPORT, bytes([stun.UDP, 0, 0, 0]))]
        if "lifetime" in cmd:
            attrs.append((stun.LIFETIME, struct.pack("!I", int(cmd["lifetime"]))))
        return attrs

    def _pick_conn(self, cmd: dict, server: tuple[str, int]) -> tuple[Conn, str | None, int]:
        want = cmd.get("prefer_software")
        if not want:
            return Conn(), None, 0
        tries = int(cmd.get("tries", 60))
        for attempt in range(1, tries + 1):
            conn = Conn()
            probe = self._probe(conn, server)
            if probe.get("software") == want:
                return conn, probe["software"], attempt
            conn.close()
        raise RuntimeError(f"no source port of {tries} reached SOFTWARE {want!r}")

    def cmd_allocate(self, cmd: dict) -> dict:
        started = time.monotonic()
        server = hostport(cmd["server"])
        conn, _, tries = self._pick_conn(cmd, server)
        return self._allocate(conn, server, self._allocate_attrs(cmd), cmd,
                              follow=cmd.get("follow", True), started=started,
                              result={"port_tries": tries})

    def _allocate(self, conn: Conn, server: tuple[str, int], attrs: list[tuple[int, bytes]],
                  cmd: dict, follow: bool, started: float, result: dict) -> dict:
        """Allocates with attrs over conn: unauthenticated first, then with cmd's username and
        password, following one 300 if `follow`; fills in result and returns it."""
        result.update(local=fmt(conn.local), redirects=[])
        ok = False
        try:
            first = stun.Message(stun.ALLOCATE, stun.REQUEST)
            for a in attrs:
                first.add(*a)
            ans = conn.transact(first, server, None)
            if ans is None:
                result.update(code=0, reason="no answer to the unauthenticated Allocate")
                return result
            if ans.code() != 401:
                result.update(code=ans.code(), reason="expected 401 to the first Allocate",
                              server=fmt(server))
                return result
            alloc = Allocation(conn, server, cmd["username"], cmd["password"],
                               ans.text(stun.REALM) or "", ans.text(stun.NONCE) or "")
            while True:
                ans = alloc.authed(stun.ALLOCATE, attrs)
                if ans is None:
                    result.update(code=0, reason="no answer to the authenticated Allocate",
                                  server=fmt(alloc.server))
                    return result
                code = ans.code()
                if code == 300:
                    alt_raw = ans.get(stun.ALTERNATE_SERVER)
                    mi_ok = ans.check_integrity(alloc.key)
                    hop = {"from": fmt(alloc.server), "mi_ok": mi_ok,
                           "fingerprint_ok": ans.check_fingerprint(),
                           "alternate": fmt(stun.decode_plain_address(alt_raw))
                           if alt_raw else None,
                           "alternate_domain": ans.text(stun.ALTERNATE_DOMAIN),
                           "software": ans.text(stun.SOFTWARE)}
                    result["redirects"].append(hop)
                    if not follow or len(result["redirects"]) > 1 or not mi_ok or not alt_raw:
                        why = ("300 not followed" if not follow else
                               "a second 300" if len(result["redirects"]) > 1 else
                               "300 without a valid MESSAGE-INTEGRITY" if not mi_ok else
                               "300 without ALTERNATE-SERVER")
                        result.update(code=300, reason=why, server=fmt(alloc.server))
                        return result
                    alloc.server = stun.decode_plain_address(alt_raw)
                    continue
                err = ans.error()
                result.update(code=code, reason=err[1] if err else "",
                              server=fmt(alloc.server), software=ans.text(stun.SOFTWARE),
                              mi_ok=ans.check_integrity(alloc.key) if code != 401 else None)
                if code == 200:
                    alloc.relayed = ans.xor_address(stun.XOR_RELAYED_ADDRESS)
                    result.update(relayed=fmt(alloc.relayed),
                                  mapped=fmt(ans.xor_address(stun.XOR_MAPPED_ADDRESS)),
                                  lifetime=ans.u32(stun.LIFETIME),
                                  alloc=self.register(alloc))
                    ok = True
                return result
        finally:
            result["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
            if not ok:
                conn.close()

    def cmd_raw_allocate(self, cmd: dict) -> dict:
        conn = Conn()
        server = hostport(cmd["server"])
        alloc = Allocation(conn, server, cmd["username"], cmd["password"], cmd["realm"],
                           cmd["nonce"])
        msg = stun.Message(stun.ALLOCATE, stun.REQUEST)
        for a in self._allocate_attrs(cmd):
            msg.add(*a)
        msg.add_str(stun.USERNAME, alloc.username)
        msg.add_str(stun.REALM, alloc.realm)
        msg.add_str(stun.NONCE, alloc.nonce)
        ans = conn.transact(msg, server, alloc.key)
        if ans is None:
            conn.close()
            return {"code": 0, "reason": "no answer"}
        err = ans.error()
        out = {"code": ans.code(), "reason": err[1] if err else "",
               "software": ans.text(stun.SOFTWARE), "nonce": ans.text(stun.NONCE)}
        if ans.code() == 200:
            alloc.relayed = ans.xor_address(stun.XOR_RELAYED_ADDRESS)
            out.update(relayed=fmt(alloc.relayed), alloc=self.register(alloc),
                       server=fmt(server))
        else:
            conn.close()
        return out

    def _answer(self, ans: stun.Message | None) -> dict:
        if ans is None:
            return {"code": 0, "reason": "no answer"}
        err = ans.error()
        return {"code": ans.code(), "reason": err[1] if err else "",
                "software": ans.text(stun.SOFTWARE)}

    def cmd_refresh(self, cmd: dict) -> dict:
        a = self.alloc(cmd)
        attrs = []
        if "lifetime" in cmd:
            attrs.append((stun.LIFETIME, struct.pack("!I", int(cmd["lifetime"]))))
        ans = a.authed(stun.REFRESH, attrs)
        out = self._answer(ans)
        if ans is not None and ans.code() == 200:
            out["lifetime"] = ans.u32(stun.LIFETIME)
        return out

    def cmd_create_permission(self, cmd: dict) -> dict:
        a = self.alloc(cmd)
        ip, port = hostport(cmd["peer"])
        return self._answer(self._with_peer(a, stun.CREATE_PERMISSION, ip, port, []))

    def cmd_channel_bind(self, cmd: dict) -> dict:
        a = self.alloc(cmd)
        ip, port = hostport(cmd["peer"])
        channel = int(cmd["channel"])
        ans = self._with_peer(a, stun.CHANNEL_BIND, ip, port,
                              [(stun.CHANNEL_NUMBER, struct.pack("!HH", channel, 0))])
        if ans is not None and ans.code() == 200:
            a.peers[channel] = (ip, port)
        return self._answer(ans)

    def _with_peer(self, a: Allocation, method: int, ip: str, port: int,
                   extra: list[tuple[int, bytes]]) -> stun.Message | None:
        # An IPv6 XOR-PEER-ADDRESS is XORed with the transaction id too, so each request
        # (a retry with a fresh nonce included) encodes its own.
        return a.authed(method, lambda txid: [
            (stun.XOR_PEER_ADDRESS, stun.encode_xor_address(ip, port, txid))] + extra)

    def cmd_echo(self, cmd: dict) -> dict:
        a = self.alloc(cmd)
        channel = int(cmd["channel"])
        count = int(cmd.get("count", 5))
        timeout = float(cmd.get("timeout", 2.0))
        got: set[int] = set()
        done = threading.Event()
        tag = os.urandom(4)

        def sink(ch: int, payload: bytes, now: float) -> None:
            if ch == channel and payload[:4] == tag and len(payload) >= 8:
                got.add(struct.unpack_from("!I", payload, 4)[0])
                if len(got) >= count:
                    done.set()

        a.conn.sink = sink
        try:
            for seq in range(count):
                a.conn.sock.sendto(stun.channel_data(channel, tag + struct.pack("!I", seq)
                                                     + b"x" * 56), a.server)
                time.sleep(0.01)
            done.wait(timeout)
        finally:
            a.conn.sink = None
        return {"sent": count, "received": len(got)}

    def cmd_stream(self, cmd: dict) -> dict:
        a = self.alloc(cmd)
        channel = int(cmd["channel"])
        rate = float(cmd["rate"])
        seconds = float(cmd["seconds"])
        tail = float(cmd.get("tail", 0.5))
        tag = os.urandom(4)
        arrivals: dict[int, tuple[float, float]] = {}  # seq -> (sent, arrived)
        lock = threading.Lock()

        def sink(ch: int, payload: bytes, now: float) -> None:
            if ch == channel and payload[:4] == tag and len(payload) >= 16:
                seq, sent_at = struct.unpack_from("!Id", payload, 4)
                with lock:
                    arrivals.setdefault(seq, (sent_at, now))

        a.conn.sink = sink
        interval = 1.0 / rate
        start = time.monotonic()
        sent = 0
        send_errors = 0
        max_send_gap = 0.0
        last_send = start
        try:
            while True:
                due = start + sent * interval
                if due - start >= seconds:
                    break
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                now = time.monotonic()
                max_send_gap = max(max_send_gap, now - last_send)
                last_send = now
                try:
                    a.conn.sock.sendto(stun.channel_data(
                        channel, tag + struct.pack("!Id", sent, now) + b"s" * 80), a.server)
                except OSError:
                    send_errors += 1
                sent += 1
            end = time.monotonic()
            time.sleep(tail)
        finally:
            a.conn.sink = None
        with lock:
            pairs = sorted(arrivals.values(), key=lambda p: p[1])
        times = [arrived for _, arrived in pairs]
        max_gap = 0.0
        prev = start
        for t in times:
            max_gap = max(max_gap, t - prev)
            prev = t
        # The time from the last echo to the stream's end counts as a gap too (a stream whose
        # echoes stopped must show it), less one interval for the last datagram in flight.
        max_gap = max(max_gap, end - prev - interval)
        latencies = [arrived - sent_at for sent_at, arrived in pairs]
        return {"sent": sent, "received": len(arrivals), "lost": sent - len(arrivals),
                "max_gap_ms": round(max_gap * 1000, 1),
                "max_send_gap_ms": round(max_send_gap * 1000, 1),
                "interval_ms": round(interval * 1000, 1),
                "max_latency_ms": round(max(latencies) * 1000, 1) if latencies else None,
                "start": start, "end": end,
                "first_echo": times[0] if times else None,
                "last_echo": times[-1] if times else None, "send_errors": send_errors}

    def cmd_close(self, cmd: dict) -> dict:
        a = self.allocs.pop(cmd["alloc"], None)
        if a is not None:
            a.conn.close()
        return {"closed": a is not None}

    # ---------------------------------------------------------------- for the fast path test
    # (tests/fast_path/fast_path_topology.py)
    def cmd_allocate_af(self, cmd: dict) -> dict:
        started = time.monotonic()
        server = hostport(cmd["server"])
        family = 2 if ":" in server[0] else 1
        attrs = self._allocate_attrs(cmd) + [(REQUESTED_ADDRESS_FAMILY, bytes([family, 0, 0, 0]))]
        return self._allocate(conn_for(server), server, attrs, cmd, follow=False,
                              started=started, result={})

    def cmd_payloads(self, cmd: dict) -> dict:
        a = self.alloc(cmd)
        channel = int(cmd["channel"])
        seed = str(cmd["seed"])
        sizes = [int(n) for n in cmd["sizes"]]
        gap = float(cmd.get("gap_ms", 1)) / 1000
        timeout = float(cmd.get("timeout", 3.0))
        expected = {fast_payload(seed, n): n for n in sizes}
        identical: set[int] = set()
        corrupt: list = []
        counts = {"wrong_channel": 0, "duplicates": 0}
        lock = threading.Lock()
        done = threading.Event()

        def sink(ch: int, payload: bytes, now: float) -> None:
            with lock:
                if ch != channel:
                    counts["wrong_channel"] += 1
                    return
                n = expected.get(payload)
                if n is None:
                    if len(corrupt) < 20:
                        corrupt.append([len(payload), payload[:16].hex()])
                    return
                if n in identical:
                    counts["duplicates"] += 1
                identical.add(n)
                if len(identical) == len(expected):
                    done.set()

        a.conn.sink = sink
        send_errors = 0
        try:
            for n in sizes:
                data = struct.pack("!HH", channel, n) + fast_payload(seed, n)  # no padding
                try:
                    a.conn.sock.sendto(data, a.server)
                except OSError:
                    send_errors += 1
                if gap > 0:
                    time.sleep(gap)
            done.wait(timeout)
        finally:
            a.conn.sink = None
        with lock:
            return {"sent": len(sizes), "identical": len(identical),
                    "missing": sorted(set(sizes) - identical), "corrupt": corrupt,
                    "wrong_channel": counts["wrong_channel"],
                    "duplicates": counts["duplicates"], "send_errors": send_errors}


REQUESTED_ADDRESS_FAMILY = 0x0017  # RFC 8656 §18.1


def fast_payload(seed: str, size: int) -> bytes:
    """The payload `payloads` sends for a size: random-looking bytes, reproducible by the test
    (and by the peer's checker) from the seed alone."""
    return hashlib.shake_256(f"{seed}:{size}".encode()).digest(size)


def main() -> int:
    agent = Agent()
    threads = []
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            cmd = json.loads(line)
        except json.JSONDecodeError as e:
            reply({"ok": False, "error": f"bad JSON: {e}"})
            continue
        if cmd.get("cmd") == "quit":
            reply({"id": cmd.get("id"), "ok": True})
            break
        handler = getattr(agent, "cmd_" + str(cmd.get("cmd")), None)
        if handler is None:
            reply({"id": cmd.get("id"), "ok": False, "error": f"unknown command {cmd.get('cmd')}"})
            continue

        def run(cmd=cmd, handler=handler) -> None:
            try:
                out = handler(cmd)
                out.update(id=cmd.get("id"), ok=True)
            except Exception as e:  # reported to the test, which decides
                out = {"id": cmd.get("id"), "ok": False, "error": f"{type(e).__name__}: {e}",
                       "trace": traceback.format_exc(limit=3)}
            reply(out)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        threads.append(t)
    for a in list(agent.allocs.values()):
        a.conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
