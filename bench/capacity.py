#!/usr/bin/env python3
"""Capacity report of the kernel fast path (issue 20): ternd with `relay.kernel_fast_path: on`,
ternd relaying in user space, the bare forwarder and coturn 4.6.1, in a veth topology.

`python3 bench/run.py --build build --only capacity` runs it (and the full `make bench` runs it
last); `python3 bench/capacity.py --build build` runs it alone. It needs root, `ip netns`,
ethtool, taskset and bpftool, and skips itself (exit 0, with a message) without them.

Topology (network namespaces this script creates and removes, all named tcap-*):

    tcap-cli                      tcap-srv                          tcap-peer
    clients 10.222.0.0/16  tcap-c1 ==== tcap-c0   ternd /    tcap-p0 ==== tcap-p1  peers 10.223.0.0/16
    (AnyIP, on lo)     10.221.1.2     10.221.1.1  coturn /   10.221.2.1     10.221.2.2  (AnyIP, on lo)
                                      (listener)  forwarder  (relay address)

Two veth pairs, so relaying crosses interfaces. The client and peer ends have `tx off` (a local
sender's deferred checksum would send the fast path to user space) and `gro on` (native XDP
redirect into a veth needs NAPI on the receiving end); the server ends have `gro on` too. Every
end runs NAPI in a thread of its own (/sys/class/net/DEV/threaded), pinned: the server ends' to
the server's CPU, the client and peer ends' to the generator's. So the kernel's receive work (the
XDP program included) runs on the core of the side that receives, as a NIC's interrupts would,
instead of inside the sender's transmit call on the sender's CPU (veth's default: there, with
this kernel's tick-based CPU accounting, the fast path's work would be charged to the generator's
own system time). The server runs on CPU 0 (taskset), the generator (`ternbench calls`, one
process with sockets in both outer namespaces) on CPU 1.

Server CPU per relayed packet = (busy CPU time of the whole machine over the measured window,
from /proc/stat, minus the generator's: its own utime + stime and its NAPI threads', from
/proc/PID/stat) / relayed packets. Cross-checks: the server's own threads (the server process
and the server ends' NAPI threads) from /proc/PID/stat, and for the fast path the XDP program's
own run time (kernel.bpf_stats_enabled=1 for the run, restored after; `bpftool prog show name
tern_fast_path`: run_time_ns / run_cnt) and ternd's /metrics (the share of relayed packets the
kernel relayed).

Measurement 1 (fast path against user space): closed loop, 50 calls (allocations with a bound
channel to a peer of their own), 8 packets in flight each, 100 B and 1200 B payloads; ternd
with the fast path, ternd in user space and the bare forwarder.

Measurement 2 (calls per core): calls of audio (50 packets/s of 160 B) and video (90/s of 960 B)
both ways, paced by the generator; the largest number of calls with loss < 0.1 % and p99
one-way delay < 5 ms, by doubling then bisection, for ternd with the fast path, ternd in user
space and coturn 4.6.1.

Standard library only (Python 3.11).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import json
import os
import pathlib
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.dont_write_bytecode = True  # no bench/__pycache__ from the import below

from bench_support import (RELAY_PORTS, REALM, SECRET,  # noqa: E402
                           TERND_LIMITS, BenchError, f_pct, f_pps, f_ratio, launch, log,
                           ratio, stop_process, tail, wait_started)

REPO = pathlib.Path(__file__).resolve().parent.parent

NS_SERVER, NS_CLIENT, NS_PEER = "tcap-srv", "tcap-cli", "tcap-peer"
SERVER_CLIENT_DEV, CLIENT_DEV = "tcap-c0", "tcap-c1"
SERVER_PEER_DEV, PEER_DEV = "tcap-p0", "tcap-p1"
LISTEN_IP, CLIENT_GW = "10.221.1.1", "10.221.1.2"
RELAY_IP, PEER_GW = "10.221.2.1", "10.221.2.2"
CLIENT_BLOCK, PEER_BLOCK = "10.222.0.0/16", "10.223.0.0/16"
LISTEN_PORT = 3478
METRICS_PORT = 9641

BUDGET = 360.0          # seconds for the whole report
FLOOD_CALLS = 50
FLOOD_WINDOW = 4  # 200 packets in flight: within one veth ring (256)
FLOOD_SIZES = (100, 1200)
FLOOD_WARMUP, FLOOD_DURATION = 1.0, 3.0
SEARCH_WARMUP, SEARCH_DURATION = 1.0, 3.0
SEARCH_MIN_CALLS = 128
SEARCH_MAX_CALLS = 16000  # within the relay port range and the generator's address blocks
MAX_LOSS, MAX_P99_MS = 0.001, 5.0
# Before each measured window the generator waits up to this long for the rest of the machine to
# be quiet (< 0.1 core busy while the load is off); a search step that fails is measured again.
FLOOD_QUIET_WAIT, SEARCH_QUIET_WAIT = 15.0, 5.0
NOISY = 0.15  # measurement 1: a run with more other CPU than this is measured again

FLOOD_SERVERS = ["ternd-fast", "ternd", "forwarder"]
CALL_SERVERS = ["ternd-fast", "ternd", "coturn"]
LABEL = {"ternd-fast": "ternd, fast path on", "ternd": "ternd, user space",
         "forwarder": "forwarder", "coturn": "coturn 4.6.1"}

CLONE_NEWNET = 0x40000000


def sh(cmd: list[str], check: bool = True, timeout: float = 20.0) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BenchError(f"{' '.join(cmd)}: {e}") from e
    if check and r.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


# --------------------------------------------------------------------------------------------
# Requirements and namespaces


def missing_requirement() -> str | None:
    """Why the capacity report cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, XDP)"
    for tool in ("ip", "ethtool", "taskset", "bpftool"):
        if shutil.which(tool) is None and not os.access(f"/usr/sbin/{tool}", os.X_OK):
            return f"{tool} is not installed"
    if len(os.sched_getaffinity(0)) < 2:
        return "needs 2 CPUs (server and generator pinned apart)"
    probe = "tcap-probe"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return f"`ip netns add` failed: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def in_netns(name: str):
    """Sockets opened in this block belong to network namespace `name` (setns(2) on this,
    the only, thread)."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise BenchError(f"setns {name}: {os.strerror(e)}")
        yield
    finally:
        _libc.setns(home, CLONE_NEWNET)
        os.close(target)
        os.close(home)


class Topology:
    """The three namespaces and two veth pairs; NAPI threads pinned."""

    def __init__(self, server_cpu: int, client_cpu: int, threaded: bool = True):
        self.server_cpu = server_cpu
        self.client_cpu = client_cpu
        self.threaded = threaded  # False: veth's default, receive work in the sender's transmit

    @staticmethod
    def existing() -> list[str]:
        out = sh(["ip", "netns", "list"], check=False)
        return [line.split()[0] for line in out.splitlines()
                if line.split() and line.split()[0].startswith("tcap-")]

    def destroy(self) -> None:
        for ns in self.existing():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def create(self) -> None:
        self.destroy()  # a run that was killed may have left them
        for ns in (NS_SERVER, NS_CLIENT, NS_PEER):
            sh(["ip", "netns", "add", ns])
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        for dev, ns, peer_dev, peer_ns in ((SERVER_CLIENT_DEV, NS_SERVER, CLIENT_DEV, NS_CLIENT),
                                           (SERVER_PEER_DEV, NS_SERVER, PEER_DEV, NS_PEER)):
            sh(["ip", "link", "add", dev, "netns", ns, "type", "veth", "peer", "name", peer_dev,
                "netns", peer_ns])
        batch = [
            (NS_SERVER, f"addr add {LISTEN_IP}/24 dev {SERVER_CLIENT_DEV}"),
            (NS_SERVER, f"addr add {RELAY_IP}/24 dev {SERVER_PEER_DEV}"),
            (NS_CLIENT, f"addr add {CLIENT_GW}/24 dev {CLIENT_DEV}"),
            (NS_PEER, f"addr add {PEER_GW}/24 dev {PEER_DEV}"),
            (NS_SERVER, f"link set {SERVER_CLIENT_DEV} up"),
            (NS_SERVER, f"link set {SERVER_PEER_DEV} up"),
            (NS_CLIENT, f"link set {CLIENT_DEV} up"),
            (NS_PEER, f"link set {PEER_DEV} up"),
            # Every address of the two blocks is local on its side (AnyIP): one socket there
            # sends from any of them (IP_PKTINFO) and receives for all.
            (NS_CLIENT, f"route add local {CLIENT_BLOCK} dev lo"),
            (NS_PEER, f"route add local {PEER_BLOCK} dev lo"),
            (NS_CLIENT, f"route add default via {LISTEN_IP}"),
            (NS_PEER, f"route add default via {RELAY_IP}"),
            (NS_SERVER, f"route add {CLIENT_BLOCK} via {CLIENT_GW}"),
            (NS_SERVER, f"route add {PEER_BLOCK} via {PEER_GW}"),
        ]
        for ns, command in batch:
            sh(["ip", "-n", ns] + command.split())
        for ns in (NS_CLIENT, NS_PEER):
            # ARP from the interface's own address, not from a block address.
            sh(["ip", "netns", "exec", ns, "sysctl", "-qw",
                "net.ipv4.conf.all.arp_announce=2"])
        for ns, dev, features in ((NS_CLIENT, CLIENT_DEV, ["tx", "off", "gro", "on"]),
                                  (NS_PEER, PEER_DEV, ["tx", "off", "gro", "on"]),
                                  (NS_SERVER, SERVER_CLIENT_DEV, ["gro", "on"]),
                                  (NS_SERVER, SERVER_PEER_DEV, ["gro", "on"])):
            sh(["ip", "netns", "exec", ns, "ethtool", "-K", dev] + features)
            if self.threaded:
                sh(["ip", "netns", "exec", ns, "sh", "-c",
                    f"echo 1 > /sys/class/net/{dev}/threaded"])
        self.pin()

    @staticmethod
    def napi_threads() -> dict[str, list[int]]:
        """The NAPI kernel threads of the four ends (named napi/DEV-ID), by device."""
        out: dict[str, list[int]] = {d: [] for d in (SERVER_CLIENT_DEV, SERVER_PEER_DEV,
                                                     CLIENT_DEV, PEER_DEV)}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                comm = pathlib.Path(f"/proc/{entry}/comm").read_text().strip()
            except OSError:
                continue
            for dev in out:
                if comm.startswith(f"napi/{dev}-"):
                    out[dev].append(int(entry))
        return out

    def pin(self) -> tuple[list[int], list[int]]:
        """Pins the NAPI threads (attaching XDP may create new ones: called again after a
        server starts); returns (server side, generator side) thread ids."""
        if not self.threaded:
            return [], []
        threads = self.napi_threads()
        server, generator = [], []
        for dev, pids in threads.items():
            mine = dev in (SERVER_CLIENT_DEV, SERVER_PEER_DEV)
            for pid in pids:
                cpu = self.server_cpu if mine else self.client_cpu
                sh(["taskset", "-pc", str(cpu), str(pid)], check=False)
                (server if mine else generator).append(pid)
        if not server or not generator:
            raise BenchError(f"threaded NAPI is not running on every veth end: {threads}")
        return server, generator


# --------------------------------------------------------------------------------------------
# Servers


def ternd_config(fast: bool) -> str:
    fast_path = ""
    if fast:
        fast_path = (f", kernel_fast_path: on, kernel_fast_path_interfaces: "
                     f"[ {SERVER_CLIENT_DEV}, {SERVER_PEER_DEV} ]")
    return (
        f"realm: {REALM}\n"
        f'listen: [ "udp://{LISTEN_IP}:{LISTEN_PORT}" ]\n'
        f'auth: {{ secrets: [ "{SECRET}" ] }}\n'
        f"relay: {{ addresses: [ {RELAY_IP} ], ports: {RELAY_PORTS[0]}-{RELAY_PORTS[1]}, "
        f"allow_peers: [ {PEER_BLOCK} ]{fast_path} }}\n"
        + TERND_LIMITS +
        "threads: 1\n"
        "log: { level: warn }\n"
        f'metrics: {{ listen: "127.0.0.1:{METRICS_PORT}" }}\n'
    )


def coturn_command(binary: str, tmp: pathlib.Path) -> list[str]:
    """bench/run.py's coturn flags (single-threaded, REST secret, no quotas or caps, logs to
    /dev/null), on the topology's addresses, UDP and TCP only."""
    return [
        binary, "-n", "--no-cli",
        f"--listening-ip={LISTEN_IP}", f"--listening-port={LISTEN_PORT}",
        "--no-tls", "--no-dtls",
        f"--relay-ip={RELAY_IP}", f"--min-port={RELAY_PORTS[0]}", f"--max-port={RELAY_PORTS[1]}",
        "--use-auth-secret", f"--static-auth-secret={SECRET}", f"--realm={REALM}",
        "--user-quota=0", "--total-quota=0", "--max-bps=0",
        "--relay-threads=0",
        "--log-file=/dev/null", "--simple-log", "--no-stdout-log",
        f"--pidfile={tmp / 'coturn.pid'}", f"--userdb={tmp / 'coturn.sqlite'}",
    ]


class Server:
    def __init__(self, ctx: "Context", kind: str):
        self.ctx = ctx
        self.kind = kind
        ctx.counter += 1
        self.log_path = ctx.tmp / f"{kind}-{ctx.counter}.log"
        if kind in ("ternd", "ternd-fast"):
            conf = ctx.tmp / f"{kind}-{ctx.counter}.yaml"
            conf.write_text(ternd_config(kind == "ternd-fast"))
            cmd = [str(ctx.ternd), "--config", str(conf)]
        elif kind == "forwarder":
            cmd = [str(ctx.ternbench), "forward", "--listen", f"{LISTEN_IP}:{LISTEN_PORT}"]
        elif kind == "coturn":
            if ctx.coturn is None:
                raise BenchError("coturn (turnserver) is not installed: apt install coturn")
            cmd = coturn_command(ctx.coturn, ctx.tmp)
        else:
            raise BenchError(f"unknown server {kind}")
        # ip netns exec and taskset exec what follows: the pid is the server's own.
        cmd = ["ip", "netns", "exec", NS_SERVER, "taskset", "-c", str(ctx.server_cpu)] + cmd
        self.proc, self.log_file = launch(cmd, self.log_path, kind)
        self.pid = self.proc.pid
        self.napi: list[int] = []
        self.generator_napi: list[int] = []

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _ready(self) -> bool:
        if self.kind == "forwarder":
            return "forwarder listening on" in self.output()
        if self.kind.startswith("ternd") and "is listening on" not in self.output():
            return False
        return self._listening()

    def _listening(self) -> bool:
        out = sh(["ip", "netns", "exec", NS_SERVER, "ss", "-Hlun", "sport", "=",
                  f":{LISTEN_PORT}"], check=False)
        return bool(out.strip())

    def wait_ready(self) -> None:
        wait_started(self.proc, self.kind, self.output, self._ready, lines=8)
        exe = os.path.basename(os.readlink(f"/proc/{self.pid}/exe"))
        if exe in ("ip", "taskset"):
            raise BenchError(f"pid {self.pid} is {exe}, not the server")
        if self.kind == "ternd-fast":
            links = sh(["ip", "-n", NS_SERVER, "-d", "link", "show"], check=False)
            if "xdp" not in links:
                raise BenchError("ternd started but no XDP program is attached:\n"
                                    + tail(self.output(), 8))
            self.xdp_mode = "generic" if "xdpgeneric" in links else "native"
        time.sleep(0.2)  # XDP attach re-creates NAPI threads: pin what runs now
        self.napi, self.generator_napi = self.ctx.topology.pin()

    def metrics(self) -> dict[str, float]:
        """ternd's /metrics, fetched from inside the server's namespace."""
        if not self.kind.startswith("ternd"):
            return {}
        try:
            with in_netns(NS_SERVER):
                with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics",
                                            timeout=5) as r:
                    text = r.read().decode(errors="replace")
        except OSError as e:
            log(f"  (ternd /metrics: {e})")
            return {}
        out = {}
        for line in text.splitlines():
            if line.startswith("tern_relayed_packets_total") or \
                    line.startswith("tern_kernel_fast_path_"):
                name, _, value = line.rpartition(" ")
                try:
                    out[name] = float(value)
                except ValueError:
                    pass
        return out

    def stop(self) -> None:
        stop_process(self.proc, self.log_file, self.kind)


def metric_sum(m: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in m.items() if k.startswith(prefix))


# --------------------------------------------------------------------------------------------
# XDP program statistics


class BpfStats:
    """kernel.bpf_stats_enabled=1 while the report runs (restored after), and the fast path
    program's run_time_ns / run_cnt from bpftool."""

    def __init__(self):
        self.old: str | None = None

    def __enter__(self) -> "BpfStats":
        try:
            self.old = pathlib.Path("/proc/sys/kernel/bpf_stats_enabled").read_text().strip()
            pathlib.Path("/proc/sys/kernel/bpf_stats_enabled").write_text("1\n")
        except OSError as e:
            log(f"  (kernel.bpf_stats_enabled: {e}; the XDP program's run time is not measured)")
            self.old = None
        return self

    def __exit__(self, *exc) -> None:
        if self.old is not None:
            try:
                pathlib.Path("/proc/sys/kernel/bpf_stats_enabled").write_text(self.old + "\n")
            except OSError as e:
                log(f"  (could not restore kernel.bpf_stats_enabled={self.old}: {e})")

    @staticmethod
    def sample() -> tuple[int, int] | None:
        """(run_time_ns, run_cnt) summed over programs named tern_fast_path, or None."""
        try:
            r = subprocess.run(["bpftool", "-j", "prog", "show", "name", "tern_fast_path"],
                               capture_output=True, text=True, timeout=10)
            data = json.loads(r.stdout or "null")
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return None
        progs = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
        # bpftool leaves run_time_ns and run_cnt out until the program has run with stats on.
        progs = [p for p in progs if isinstance(p, dict) and p.get("name") == "tern_fast_path"]
        if not progs:
            return None
        return (sum(int(p.get("run_time_ns", 0)) for p in progs),
                sum(int(p.get("run_cnt", 0)) for p in progs))


# --------------------------------------------------------------------------------------------
# Runs


class Context:
    def __init__(self, ternd: pathlib.Path, ternbench: pathlib.Path, coturn: str | None,
                 tmp: pathlib.Path, budget: float, threaded: bool = True):
        self.ternd = ternd
        self.ternbench = ternbench
        self.coturn = coturn
        self.tmp = tmp
        self.budget = budget
        self.started = time.monotonic()
        self.counter = 0
        self.port = 20000
        cpus = sorted(os.sched_getaffinity(0))
        self.server_cpu, self.client_cpu = cpus[0], cpus[1]
        self.topology = Topology(self.server_cpu, self.client_cpu, threaded)

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.started)

    def fresh_ports(self) -> tuple[int, int]:
        """Client and peer ports of one generator run: each run's calls are new 5-tuples."""
        self.port += 1
        return self.port, self.port


def generator(ctx: Context, server: Server, args: list[str], timeout: float) -> list[dict]:
    client_port, peer_port = ctx.fresh_ports()
    cmd = ["taskset", "-c", str(ctx.client_cpu), str(ctx.ternbench), "calls",
           "--server", f"{LISTEN_IP}:{LISTEN_PORT}", "--secret", SECRET,
           "--client-netns", NS_CLIENT, "--peer-netns", NS_PEER,
           "--client-base", CLIENT_BLOCK.split("/")[0], "--peer-base", PEER_BLOCK.split("/")[0],
           "--client-port", str(client_port), "--peer-port", str(peer_port),
           "--server-pids", ",".join(str(p) for p in [server.pid] + server.napi),
           "--generator-pids", ",".join(str(p) for p in server.generator_napi)] + args
    if server.kind == "forwarder":
        cmd.append("--forwarder")
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise BenchError(f"ternbench calls timed out after {timeout:.0f} s:\n{tail(err, 8)}") from e
    if server.proc.poll() is not None:
        raise BenchError(f"{server.kind} died during the run (exit code "
                            f"{server.proc.returncode}):\n{tail(server.output(), 8)}")
    results = []
    for line in r.stdout.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            results.append(obj)
    if r.returncode not in (0, 4) or not results:
        raise BenchError(f"ternbench calls exited with code {r.returncode}:\n{tail(r.stderr, 8)}")
    return results


def with_server(ctx: Context, kind: str, body) -> dict:
    server = Server(ctx, kind)
    try:
        server.wait_ready()
        return body(server)
    finally:
        server.stop()


def flood_runs(ctx: Context, server: Server) -> dict:
    out = {}
    if server.kind == "ternd-fast":
        out["xdp_mode"] = server.xdp_mode
    for size in FLOOD_SIZES:
        best = None
        # A run that another process disturbed (more than NOISY of a core neither the server's
        # nor the generator's) is measured once more; the quieter of the two is kept.
        for attempt in (1, 2):
            m0, b0 = server.metrics(), BpfStats.sample()
            r = generator(ctx, server, ["--mode", "flood", "--calls", str(FLOOD_CALLS),
                                        "--window", str(FLOOD_WINDOW), "--size", str(size),
                                        "--warmup", f"{FLOOD_WARMUP:g}",
                                        "--duration", f"{FLOOD_DURATION:g}",
                                        "--quiet-wait", f"{FLOOD_QUIET_WAIT:g}"],
                          timeout=FLOOD_WARMUP + FLOOD_DURATION + FLOOD_QUIET_WAIT + 40)[-1]
            m1, b1 = server.metrics(), BpfStats.sample()
            add_kernel_figures(r, m0, m1, b0, b1)
            r["attempt"] = attempt
            if best is None or r.get("other_cpu_util", 0) < best.get("other_cpu_util", 0):
                best = r
            if r.get("other_cpu_util", 0) <= NOISY:
                break
            log(f"  {LABEL[server.kind]}, {size} B: {r['other_cpu_util']:.0%} of a core went to "
                "other processes; measuring again")
        r = best
        if r.get("cpu_us_per_relayed"):
            r["pps_per_core"] = 1e6 / r["cpu_us_per_relayed"]
        log(f"  {LABEL[server.kind]}, {size} B: {r['relayed_pps'] / 1e3:.1f}k relayed/s, "
            f"{r['cpu_us_per_relayed']:.2f} µs/pkt, server {r['server_cpu_util']:.0%}, "
            f"generator {r['generator_cpu_util']:.0%}")
        out[str(size)] = r
    return out


def add_kernel_figures(r: dict, m0: dict, m1: dict, b0, b1) -> None:
    """The share of relayed packets the kernel relayed (ternd's /metrics) and the XDP program's
    run time (bpf_stats), over a whole generator run (set-up and warm-up included)."""
    relayed = metric_sum(m1, "tern_relayed_packets_total") - \
        metric_sum(m0, "tern_relayed_packets_total")
    kernel = metric_sum(m1, "tern_kernel_fast_path_packets_total") - \
        metric_sum(m0, "tern_kernel_fast_path_packets_total")
    if relayed > 0 and any(k.startswith("tern_kernel_fast_path_packets_total") for k in m1):
        r["kernel_share"] = kernel / relayed
    if b0 is not None and b1 is not None and b1[1] > b0[1]:
        r["xdp_ns_per_run"] = (b1[0] - b0[0]) / (b1[1] - b0[1])
        r["xdp_runs"] = b1[1] - b0[1]
        if relayed > 0:
            r["xdp_ns_per_relayed"] = (b1[0] - b0[0]) / relayed


def search_run(ctx: Context, server: Server, budget: float) -> dict:
    m0, b0 = server.metrics(), BpfStats.sample()
    lines = generator(ctx, server, ["--mode", "search", "--min-calls", str(SEARCH_MIN_CALLS),
                                    "--max-calls", str(SEARCH_MAX_CALLS),
                                    "--budget", f"{budget:.0f}",
                                    "--warmup", f"{SEARCH_WARMUP:g}",
                                    "--duration", f"{SEARCH_DURATION:g}",
                                    "--max-loss", f"{MAX_LOSS:g}",
                                    "--max-p99-ms", f"{MAX_P99_MS:g}",
                                    "--quiet-wait", f"{SEARCH_QUIET_WAIT:g}"],
                      timeout=budget + 60)
    m1, b1 = server.metrics(), BpfStats.sample()
    final = lines[-1]
    if final.get("test") != "calls-search":
        raise BenchError("ternbench calls printed no search result")
    final["steps"] = [x for x in lines if x.get("test") == "calls"]
    add_kernel_figures(final, m0, m1, b0, b1)
    if server.kind == "ternd-fast":
        final["xdp_mode"] = server.xdp_mode
    at = final.get("at_max") or {}
    log(f"  {LABEL[server.kind]}: {final['max_calls']:.0f} calls "
        f"(first failing {final['first_failing']:.0f}, stopped by {final['stopped_by']}); "
        f"server {at.get('server_cpu_util', 0):.0%}, generator "
        f"{at.get('generator_cpu_util', 0):.0%} at the maximum")
    return final


def measure(ctx: Context) -> dict:
    raw: dict = {"flood": {}, "calls": {}, "errors": {}}
    ctx.topology.create()
    try:
        with BpfStats():
            for kind in FLOOD_SERVERS:
                log(f"capacity: measurement 1, {LABEL[kind]}")
                try:
                    raw["flood"][kind] = with_server(ctx, kind, lambda s: flood_runs(ctx, s))
                except BenchError as e:
                    log(f"  {LABEL[kind]}: FAIL: {e}")
                    raw["errors"][f"flood {kind}"] = str(e)
            for i, kind in enumerate(CALL_SERVERS):
                # What is left, shared by the searches still to run (set-up and stops aside).
                share = (ctx.left() - 8 * (len(CALL_SERVERS) - i)) / (len(CALL_SERVERS) - i)
                if share < 20:
                    log(f"capacity: measurement 2, {LABEL[kind]}: SKIPPED (time budget)")
                    raw["errors"][f"calls {kind}"] = "skipped: the report's time budget ran out"
                    continue
                log(f"capacity: measurement 2, {LABEL[kind]} (search within {share:.0f} s)")
                try:
                    raw["calls"][kind] = with_server(ctx, kind,
                                                     lambda s: search_run(ctx, s, share - 5))
                except BenchError as e:
                    log(f"  {LABEL[kind]}: FAIL: {e}")
                    raw["errors"][f"calls {kind}"] = str(e)
    finally:
        ctx.topology.destroy()
    return raw


# --------------------------------------------------------------------------------------------
# Report


def f_us(v: float) -> str:
    return f"{v:.2f} µs"


def f_ratio_of(a, b) -> str:
    return f_ratio(ratio(a, b))


def machine_lines(ctx: Context, load_before: str) -> list[str]:
    rev = sh(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=False).strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD"],
                           capture_output=True).returncode == 1
    model = "unknown CPU"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    coturn = "not installed"
    if ctx.coturn:
        first = sh([ctx.coturn, "--version"], check=False).strip().splitlines()
        coturn = first[0] if first else "unknown version"
    return [
        f"- machine: {os.cpu_count()} CPUs, {model}, Linux {platform.release()}; load average "
        f"before the run: {load_before}",
        f"- ternd {ctx.ternd} (commit {rev or 'unknown'}"
        f"{', with uncommitted changes' if dirty else ''}); Debian's coturn {coturn}",
        f"- veth topology (tcap-* namespaces: clients ↔ server ↔ peers over two veth pairs); "
        + (f"server pinned to CPU {ctx.server_cpu} with the server ends' NAPI threads, ternbench "
           f"to CPU {ctx.client_cpu} with the client and peer ends' NAPI threads"
           if ctx.topology.threaded else
           f"server pinned to CPU {ctx.server_cpu}, ternbench to CPU {ctx.client_cpu}; NAPI NOT "
           "threaded (--inline-napi): receive work runs in the sender's transmit, on its CPU"),
        "- server CPU = machine-wide busy time (/proc/stat) − the generator's (its utime + stime "
        "and its NAPI threads'), per relayed packet; \"server threads\" = ternd (or coturn, the "
        "forwarder) + the server ends' NAPI threads, from /proc/PID/stat",
    ]


def flood_table(raw: dict) -> list[str]:
    cols = FLOOD_SERVERS
    out = ["| payload | metric | " + " | ".join(LABEL[c] for c in cols)
           + " | fast ÷ user | target | met |",
           "| --- | --- | " + " | ".join("---:" for _ in cols) + " | ---: | --- | --- |"]
    marked = False

    def cell(kind: str, size: int, key: str, fmt) -> str:
        if kind not in raw["flood"]:
            return "fail" if f"flood {kind}" in raw["errors"] else "–"
        r = raw["flood"][kind].get(str(size), {})
        return fmt(r[key]) if isinstance(r.get(key), (int, float)) else ""

    def value(kind: str, size: int, key: str):
        r = raw["flood"].get(kind, {}).get(str(size), {})
        return r.get(key) if isinstance(r.get(key), (int, float)) else None

    for size in FLOOD_SIZES:
        rows = [
            ("relayed_pps", "relayed packets/s", f_pps, ("≥ 2× user space", ">=", 2.0)),
            ("cpu_us_per_relayed", "server CPU per relayed packet", f_us,
             ("≤ 0.3× user space", "<=", 0.3)),
            ("proc_cpu_us_per_relayed", "… server threads only", f_us, None),
            ("pps_per_core", "packets/s per server core at that cost (10⁶ ÷ µs per packet)",
             f_pps, None),
            ("xdp_ns_per_run", "XDP program run time (bpf_stats)", lambda v: f"{v:.0f} ns", None),
            ("kernel_share", "relayed in the kernel (/metrics)", lambda v: f"{v * 100:.1f} %",
             None),
            ("server_cpu_util", "server CPU (of one core)", f_pct, None),
            ("generator_cpu_util", "generator CPU (of one core)", f_pct, None),
            ("other_cpu_util", "other CPU (neither: the machine's noise)", f_pct, None),
            ("rtt_p50_us", "RTT p50", lambda v: f"{v:.0f} µs", None),
            ("loss", "loss", lambda v: f"{v * 100:.2f} %", None),
        ]
        for key, label, fmt, target in rows:
            cells = [cell(k, size, key, fmt) for k in cols]
            if key in ("xdp_ns_per_run", "kernel_share") and not any(cells):
                continue
            if key == "relayed_pps":
                for i, k in enumerate(cols):
                    if generator_bound(raw["flood"].get(k, {}).get(str(size), {})):
                        cells[i] += " †"
                        marked = True
            ratio = ""
            met = ""
            if key in ("relayed_pps", "cpu_us_per_relayed", "proc_cpu_us_per_relayed",
                       "pps_per_core", "rtt_p50_us"):
                ratio = f_ratio_of(value("ternd-fast", size, key), value("ternd", size, key))
            if target:
                a, b = value("ternd-fast", size, key), value("ternd", size, key)
                if a is not None and b:
                    ok = a / b >= target[2] if target[1] == ">=" else a / b <= target[2]
                    met = "✓" if ok else "✗"
            out.append(f"| {size} B | {label} | " + " | ".join(cells)
                       + f" | {ratio} | {target[0] if target else ''} | {met} |")
    if marked:
        out += ["", "† the generator's core was ≥ 90 % busy while the server's was < 85 %: the "
                "generator, not the server, limited this closed-loop run."]
    return out


def generator_bound(r: dict) -> bool:
    return r.get("generator_cpu_util", 0) >= 0.9 and r.get("server_cpu_util", 1) < 0.85


def calls_table(raw: dict) -> list[str]:
    cols = CALL_SERVERS
    out = ["| metric | " + " | ".join(LABEL[c] for c in cols) + " | fast ÷ user |",
           "| --- | " + " | ".join("---:" for _ in cols) + " | ---: |"]

    def at(kind: str) -> dict:
        return (raw["calls"].get(kind) or {}).get("at_max") or {}

    def top(kind: str, key: str):
        v = (raw["calls"].get(kind) or {}).get(key)
        return v if isinstance(v, (int, float)) else None

    def cells(get, fmt) -> list[str]:
        row = []
        for k in cols:
            if k not in raw["calls"]:
                err = raw["errors"].get(f"calls {k}")
                row.append("skipped" if err and err.startswith("skipped") else
                           "fail" if err else "–")
                continue
            v = get(k)
            row.append(fmt(v) if isinstance(v, (int, float)) else "")
        return row

    def ratio(get) -> str:
        return f_ratio_of(get("ternd-fast"), get("ternd"))

    def limit(kind: str) -> str:
        """What failed first: the generator (its core or pacing), datagrams dropped at the
        generator's or the server's receive rings and sockets, or the delay."""
        r = raw["calls"].get(kind)
        if r is None:
            return ""
        if r.get("stopped_by") == "max_calls":
            return "search ceiling"
        if not r.get("first_failing"):
            return "time budget"
        steps = [s for s in r.get("steps") or [] if s.get("calls") == r.get("first_failing")]
        if not steps:
            return ""
        s = steps[-1]
        if s.get("generator_saturated"):
            return "generator (CPU)"
        server = s.get("drops_server_ring", 0) + s.get("drops_server_socket", 0)
        gen = s.get("drops_generator_ring", 0) + s.get("drops_generator_socket", 0)
        if s.get("loss", 0) >= MAX_LOSS:
            return ("drops at the generator's receive" if gen > server else
                    "drops at the server's receive")
        return "p99 delay"

    def per_core(k: str):
        a = at(k)
        util = a.get("server_cpu_util")
        return a["calls"] / util if util and a.get("calls") else None

    rows = [
        ("calls (loss < 0.1 %, p99 < 5 ms)", lambda k: top(k, "max_calls"), lambda v: f"{v:,.0f}"),
        ("first failing step", lambda k: top(k, "first_failing"),
         lambda v: f"{v:,.0f}" if v else "none"),
        ("limited by", None, None),
        ("at the first failing step: loss, p99, drops at server : generator", None, None),
        ("relayed packets/s at the maximum", lambda k: at(k).get("relayed_pps"), f_pps),
        ("server CPU at the maximum (of one core)", lambda k: at(k).get("server_cpu_util"), f_pct),
        ("generator CPU at the maximum", lambda k: at(k).get("generator_cpu_util"), f_pct),
        ("other CPU at the maximum (the machine's noise)", lambda k: at(k).get("other_cpu_util"),
         f_pct),
        ("server CPU per relayed packet", lambda k: at(k).get("cpu_us_per_relayed"), f_us),
        ("… server threads only", lambda k: at(k).get("proc_cpu_us_per_relayed"), f_us),
        ("calls per core at that CPU cost (calls ÷ server CPU)", per_core, lambda v: f"{v:,.0f}"),
        ("one-way delay p50 / p99 at the maximum", None, None),
        ("loss at the maximum", lambda k: at(k).get("loss"), lambda v: f"{v * 100:.3f} %"),
        ("relayed in the kernel (/metrics)", lambda k: top(k, "kernel_share"),
         lambda v: f"{v * 100:.1f} %"),
        ("XDP program run time (bpf_stats)", lambda k: top(k, "xdp_ns_per_run"),
         lambda v: f"{v:.0f} ns"),
    ]
    for label, get, fmt in rows:
        if label == "limited by":
            out.append(f"| {label} | " + " | ".join(limit(k) for k in cols) + " | |")
            continue
        if label.startswith("at the first failing"):
            row = []
            for k in cols:
                r = raw["calls"].get(k) or {}
                f = [x for x in r.get("steps", []) if x.get("calls") == r.get("first_failing")]
                if not f:
                    row.append("")
                    continue
                f = f[-1]
                server = f.get("drops_server_ring", 0) + f.get("drops_server_socket", 0)
                gen = f.get("drops_generator_ring", 0) + f.get("drops_generator_socket", 0)
                row.append(f"{f.get('loss', 0) * 100:.2f} %, {f.get('delay_p99_ms', 0):.1f} ms, "
                           f"{server:.0f} : {gen:.0f}")
            out.append(f"| {label} | " + " | ".join(row) + " | |")
            continue
        if label.startswith("one-way delay"):
            row = []
            for k in cols:
                a = at(k)
                row.append(f"{a['delay_p50_ms']:.2f} / {a['delay_p99_ms']:.2f} ms"
                           if "delay_p99_ms" in a else "")
            out.append(f"| {label} | " + " | ".join(row) + " | |")
            continue
        row = cells(get, fmt)
        if label.startswith("relayed in the kernel") or label.startswith("XDP"):
            if not any(c not in ("", "–", "fail", "skipped") for c in row):
                continue
        r = ratio(get) if label.startswith(("calls (", "server CPU per", "… server",
                                            "calls per core", "relayed packets")) else ""
        out.append(f"| {label} | " + " | ".join(row) + f" | {r} |")
    return out


def search_lines(raw: dict) -> list[str]:
    out = []
    for kind in CALL_SERVERS:
        r = raw["calls"].get(kind)
        if not r:
            continue
        parts = []
        for s in r.get("steps", []):
            mark = ("✓" if s.get("pass") else "✗") + ("(gen)" if s.get("generator_limited") else "")
            if s.get("retry") and parts:
                parts[-1] += f" again {mark}"
            else:
                parts.append(f"{s['calls']:.0f} {mark}")
        steps = ", ".join(parts)
        out.append(f"- {LABEL[kind]}: {steps} ({r.get('search_seconds', 0):.0f} s, "
                   f"{r.get('setup_seconds', 0):.1f} s of it set-up; stopped by "
                   f"{r.get('stopped_by')})")
    return out


def render(ctx: Context, raw: dict, load_before: str, elapsed: float) -> str:
    started = datetime.datetime.now().astimezone()
    out = [f"## Capacity (kernel fast path, issue 20), {started:%Y-%m-%d %H:%M %Z}", ""]
    out += machine_lines(ctx, load_before)
    modes = {raw["flood"].get("ternd-fast", {}).get("xdp_mode"),
             (raw["calls"].get("ternd-fast") or {}).get("xdp_mode")} - {None}
    if modes:
        out.append(f"- fast path: XDP {', '.join(sorted(modes))} on {SERVER_CLIENT_DEV}, "
                   f"{SERVER_PEER_DEV}")
    out.append(f"- elapsed {elapsed:.0f} s (budget {ctx.budget:.0f} s)")
    out += ["", f"Relayed packets/s and server CPU per relayed packet: closed loop, "
            f"{FLOOD_CALLS} calls (allocations, each with a channel bound to a peer of its own), "
            f"{FLOOD_WINDOW} packets in flight per call, the peer echoing; warm-up "
            f"{FLOOD_WARMUP:g} s, {FLOOD_DURATION:g} s measured, one run each:", ""]
    out += flood_table(raw)
    out += ["", "Calls per core: calls of audio (50 packets/s of 160 B) and video (90/s of 960 B) "
            "both ways, 280 relayed packets/s per call; the largest number of calls with loss "
            f"< {MAX_LOSS * 100:g} % and p99 one-way delay < {MAX_P99_MS:g} ms (kernel receive "
            f"timestamps), by doubling from {SEARCH_MIN_CALLS} then bisection, each step "
            f"{SEARCH_WARMUP:g} s warm-up + {SEARCH_DURATION:g} s measured:", ""]
    out += calls_table(raw)
    steps = search_lines(raw)
    if steps:
        out += ["", "Search steps (calls, ✓ pass / ✗ fail, a failure measured again; (gen): "
                "generator-limited: its core ≥ 90 % busy, its paced sends > 5 ms late (p99), or "
                "more datagrams dropped at its receive rings and sockets than at the server's):",
                ""]
        out += steps
    if raw["errors"]:
        out += ["", "Failed or skipped:", ""]
        for what, why in raw["errors"].items():
            lines = [x.strip(" |") for x in why.splitlines() if x.strip(" |")]
            out.append(f"- {what}: {lines[0] if lines else why}"
                       + (f" … {lines[-1]}" if len(lines) > 1 else ""))
    return "\n".join(out) + "\n"


def run_report(ternd: pathlib.Path, ternbench: pathlib.Path, coturn: str | None,
               tmp: pathlib.Path, budget: float = BUDGET,
               threaded: bool = True) -> tuple[str, dict | None]:
    """The whole report: (markdown, raw results), or (a line saying why it was skipped, None)."""
    why = missing_requirement()
    if why:
        text = f"Capacity report (issue 20): SKIPPED, {why}.\n"
        log("capacity: " + text.strip())
        return text, None
    for p in (ternd, ternbench):
        if not os.access(p, os.X_OK):
            raise BenchError(f"not built: {p}")
    ctx = Context(ternd, ternbench, coturn, tmp, budget, threaded)
    load_before = " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])
    t0 = time.monotonic()
    raw = measure(ctx)
    return render(ctx, raw, load_before, time.monotonic() - t0), raw


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default=str(REPO / "build"),
                   help="build directory holding server/ternd and bench/ternbench/ternbench")
    p.add_argument("--ternd", help="the ternd binary (default BUILD/server/ternd)")
    p.add_argument("--ternbench", help="the ternbench binary (default BUILD/bench/ternbench/...)")
    p.add_argument("--budget", type=float, default=BUDGET, help="seconds for the whole report")
    p.add_argument("--out", help="also write the report here (raw results beside it as .json)")
    p.add_argument("--inline-napi", action="store_true",
                   help="leave veth's NAPI unthreaded (its default: receive work in the sender's "
                        "transmit, on the sender's CPU), to compare how the CPU is accounted")
    p.add_argument("--servers", help="only these servers (comma-separated: ternd-fast, ternd, "
                                     "forwarder, coturn), for debugging the harness")
    args = p.parse_args()
    if args.servers:
        keep = set(args.servers.split(","))
        FLOOD_SERVERS[:] = [s for s in FLOOD_SERVERS if s in keep]
        CALL_SERVERS[:] = [s for s in CALL_SERVERS if s in keep]
    build = pathlib.Path(args.build).resolve()
    ternd = pathlib.Path(args.ternd).resolve() if args.ternd else build / "server" / "ternd"
    ternbench = (pathlib.Path(args.ternbench).resolve() if args.ternbench
                 else build / "bench" / "ternbench" / "ternbench")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="tern-capacity-"))
    try:
        text, raw = run_report(ternd, ternbench, shutil.which("turnserver"), tmp, args.budget,
                               not args.inline_napi)
    except BenchError as e:
        log(f"capacity: {e}")
        return 1
    except KeyboardInterrupt:
        log("capacity: interrupted")
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(text, end="")
    if args.out and raw is not None:
        out = pathlib.Path(args.out)
        out.write_text(text)
        out.with_suffix(".json").write_text(json.dumps(raw, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
