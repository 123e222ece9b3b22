#!/usr/bin/env python3
"""tern benchmark runner: ternd against coturn and the bare UDP forwarder, side by side.

`make bench` calls this script. For every case it starts one server at a time (ternd, Debian's
coturn 4.6.1, coturn 4.17 with and without its fast path, or `ternbench forward`) on loopback,
pinned to one CPU, runs `ternbench` pinned to another CPU against it, and stops the server again.
Rounds are interleaved (round 1 runs every case on every server, then round 2, ...) and the order
of servers rotates from round to round, so slow drift of a shared machine spreads over all
servers instead of hitting the one that always goes last. The table reports the median over
rounds, the spread (min-max) of the headline figures, the ratios of ternd to the others, and the
targets of issue 15.

UDP relaying runs in two topologies (ternbench --topology): `pairs`, 50 allocations relaying to
each other in pairs through the same server, and `peers`, 50 allocations each with its own echo
peer on its own address. Relayed packets/s = 2 x packets received by clients, in both.

The shared port (ternd's `edge`: TURN over TLS beside a website on one port) has two cases of its
own, in the full run only (not --quick, not --smoke): `web-100m` downloads a 100 MB file over
HTTPS from nginx with curl, directly, through HAProxy splicing TCP (the reference), and through
ternd's shared port (which passes it to nginx undecrypted); `tls-shared` runs tls-cd-100's
TURN-over-TLS load against ternd with and without `edge`. They need nginx, haproxy and curl.

The fleet (issue 19) has four cases of its own, in the full run (not --quick unless --only names
them): the same ternd without a `fleet` section and with one pointing at a redis-server this
script starts on loopback (Debian's /usr/bin/redis-server, a password, no persistence, pinned to
ternbench's CPU unless --redis-cpu says otherwise, emptied before each fleet measurement and
stopped at the end). `fleet-setup` and `fleet-setup-8` are the set-up load with 64 and 8
clients (Allocate set-ups/s, the authenticated Allocate's latency p50/p99 and the whole
set-up's, server and Redis CPU per set-up, the share of Allocates Redis leased, from the node's
/metrics);
`fleet-rate-80k` and `fleet-peers-100` are udp-rate-80k's and peers-100's relay loads (CPU per
relayed packet). `--only fleet` runs them alone; --smoke adds a short fleet check when
redis-server is installed.

    python3 bench/run.py --build build            # full run (3 rounds, <= 15 min)
    python3 bench/run.py --build build --quick    # 1 short round (<= 3 min)
    python3 bench/run.py --build build --only peers-100 --rounds 1
    python3 bench/run.py --build build --loops    # forwarder loop candidates only
    python3 bench/run.py --build build --only fleet   # fleet store on against off (~2 min)
    python3 bench/run.py --build build --smoke    # `make test`: ternd only, a few seconds
    python3 bench/run.py --build build --only capacity   # issue 20's capacity report (~6 min)

The full run ends with the capacity report of the kernel fast path (bench/capacity.py: a veth
topology in network namespaces; root, ip netns, ethtool and bpftool, else skipped with a note).

coturn 4.17 comes from bench/build-coturn.sh (BUILD/coturn-4.17/bin/turnserver, or --coturn417);
without it those columns are left empty and the table says why.

Standard library only (Python 3.11; Debian 12's /usr/bin/python3 is enough).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import platform
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.dont_write_bytecode = True  # no bench/__pycache__ from the imports below

from bench_support import (READY_TIMEOUT, RELAY_PORTS, REALM, SECRET, STOP_TIMEOUT,  # noqa: E402
                           TERND_LIMITS, BenchError, f_pct, f_pps, f_ratio, launch, log,
                           ratio, stop_process, tail, wait_started)

REPO = pathlib.Path(__file__).resolve().parent.parent
# Listening and peer ports come from PORT_POOL; relay ports from RELAY_PORTS. Both lie below the
# kernel's ephemeral range (32768-60999 by default), so they never collide with the generator's
# client sockets. Only one server runs at a time, so ternd and coturn share the relay range.
PORT_POOL = (10000, 11999)
# The shared port (ternd's edge): the TURN name in edge.turn_names, and the website's name, whose
# TLS connections ternd passes to nginx (edge.fallback). web-100m downloads WEB_FILE_BYTES from
# nginx WEB_DOWNLOADS times per measurement.
TURN_NAME = "turn.bench.tern"
WEB_NAME = "www.bench.tern"
WEB_FILE_BYTES = 100_000_000
WEB_DOWNLOADS = 3
WEB_DOWNLOAD_TIMEOUT = 60.0
# The fleet cases' Redis: Debian's redis-server (the path when it is not on PATH), and the
# node_id of the measured ternd.
REDIS_SERVER = "/usr/bin/redis-server"
FLEET_NODE = "bench"

SERVER_LABEL = {
    "forwarder": "forwarder",
    "ternd": "ternd",
    "coturn": "coturn 4.6.1",
    "coturn417": "coturn 4.17",
    "coturn417-fast": "coturn 4.17 fast path",
    "forwarder-uring": "forwarder, io_uring loop",
    "forwarder-busypoll": "forwarder, busy-poll 50 µs",
    "forwarder-uring-busypoll": "forwarder, io_uring + busy-poll 50 µs",
    "forwarder-spin": "forwarder, spinning epoll",
    "forwarder-uring-spin": "forwarder, spinning io_uring",
    "ternd-t1": "ternd threads: 1",
    "ternd-t2": "ternd threads: 2",
    "ternd-nogso": "ternd, UDP GSO off",
    "ternd-edge": "ternd, shared port",
    "ternd-fleet": "ternd, fleet on",
    "nginx": "nginx",
    "haproxy": "HAProxy",
}


# --------------------------------------------------------------------------------------------
# Cases


@dataclasses.dataclass
class Case:
    name: str
    kind: str  # throughput | rate | setup | idle
    servers: list[str]
    transport: str = "udp"
    size: int = 100
    clients: int = 50
    window: int | None = 8
    rate: int | None = None  # own packets per second of all clients (open loop)
    indications: bool = False
    pinned: bool = True
    topology: str = "peers"  # ternbench --topology: peers | pairs | single
    full_only: bool = False  # left out of --quick
    sni: str | None = None  # ternbench --sni: the server name in each TLS ClientHello


FLEET = ["ternd", "ternd-fleet"]


# The main table's server columns, in order.
MAIN_SERVERS = ["forwarder", "ternd", "coturn", "coturn417", "coturn417-fast"]
LOOP_SERVERS = ["forwarder", "forwarder-uring", "forwarder-busypoll", "forwarder-uring-busypoll",
                "forwarder-spin", "forwarder-uring-spin"]


def all_cases() -> list[Case]:
    # coturn 4.17's fast path (--multiplex-peer) shares one relay socket among all allocations
    # and refuses a peer address another allocation already uses, so it cannot relay between two
    # allocations of the same server: it runs in the peers topology only.
    pairs = ["forwarder", "ternd", "coturn", "coturn417"]
    peers = MAIN_SERVERS
    two = ["ternd", "coturn"]
    return [
        Case("pairs-100", "throughput", pairs, size=100, topology="pairs"),
        Case("pairs-1200", "throughput", pairs, size=1200, topology="pairs"),
        Case("peers-100", "throughput", peers, size=100),
        Case("peers-1200", "throughput", peers, size=1200),
        # 40k own packets/s, each crossing the server twice: 80k relayed packets/s.
        Case("udp-rate-80k", "rate", peers, rate=40000, window=None),
        # 10k own packets/s (20k relayed/s): latency at a moderate load.
        Case("udp-rtt-10k", "rate", peers, rate=10000, window=None),
        Case("udp-ind-100", "throughput", two, indications=True),
        Case("tcp-cd-100", "throughput", two, transport="tcp"),
        Case("tls-cd-100", "throughput", two, transport="tls"),
        Case("setup", "setup", two, clients=64, window=None),
        Case("idle", "idle", two, window=None),
        # Multi-core: neither server nor generator pinned; more clients to feed two workers.
        Case("scale", "throughput", ["ternd-t1", "ternd-t2"], clients=64, pinned=False,
             full_only=True),
        # What segmentation offload on sends to clients gains (TERN_UDP_GSO=0 turns it off).
        Case("gso", "throughput", ["ternd", "ternd-nogso"], size=100, full_only=True),
        # The shared port: a website's bytes through it (nginx directly, then through ternd), and
        # TURN over TLS on it against a plain tls:// listener (tls-cd-100's load, with SNI).
        Case("web-100m", "web", ["nginx", "haproxy", "ternd-edge"], transport="tls",
             window=None, full_only=True),
        Case("tls-shared", "throughput", ["ternd", "ternd-edge"], transport="tls",
             sni=TURN_NAME, full_only=True),
        # The fleet store (issue 19), off and on: set-up through Redis, and the relay path,
        # which must not notice it (udp-rate-80k's and peers-100's loads).
        Case("fleet-setup", "setup", FLEET, clients=64, window=None, full_only=True),
        # 8 clients: a set-up rate the store keeps up with, so every Allocate holds a lease.
        Case("fleet-setup-8", "setup", FLEET, clients=8, window=None, full_only=True),
        Case("fleet-rate-80k", "rate", FLEET, rate=40000, window=None, full_only=True),
        Case("fleet-peers-100", "throughput", FLEET, size=100, full_only=True),
    ]


def loop_cases() -> list[Case]:
    """--loops: the forwarder's event-loop candidates against each other (issue 15)."""
    return [
        Case("loop-pairs-100", "throughput", LOOP_SERVERS, size=100, topology="pairs"),
        Case("loop-peers-100", "throughput", LOOP_SERVERS, size=100),
        Case("loop-peers-1200", "throughput", LOOP_SERVERS, size=1200),
        Case("loop-rate-80k", "rate", LOOP_SERVERS, rate=40000, window=None),
    ]


# --------------------------------------------------------------------------------------------
# Environment


class Env:
    def __init__(self, args: argparse.Namespace, tmp: pathlib.Path):
        build = pathlib.Path(args.build).resolve()
        self.ternd = pathlib.Path(args.ternd).resolve() if args.ternd else build / "server" / "ternd"
        self.ternbench = build / "bench" / "ternbench" / "ternbench"
        self.coturn = shutil.which("turnserver")
        self.coturn417 = find_coturn417(args, build)
        self.tmp = tmp
        self.cert = tmp / "cert.pem"
        self.key = tmp / "key.pem"
        self.counter = 0
        self.next_port = random.randint(PORT_POOL[0], PORT_POOL[1])
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) >= 2:
            self.server_cpu, self.client_cpu = cpus[0], cpus[1]
        else:
            self.server_cpu = self.client_cpu = None
        self.warmup = args.warmup
        self.duration = args.duration
        self.redis: Redis | None = None  # started by the first fleet measurement
        self.redis_where = args.redis_cpu
        self.idle_allocations = args.idle_allocations
        self.wait_idle = args.wait_idle

    def can_pin(self) -> bool:
        return self.server_cpu is not None

    def redis_cpu(self) -> int | None:
        """--redis-cpu: where the fleet's Redis runs (None: not pinned)."""
        if not self.can_pin() or self.redis_where == "none":
            return None
        return self.client_cpu if self.redis_where == "client" else self.server_cpu

    def fleet_redis(self) -> "Redis":
        """The run's Redis, started on first use, emptied: each fleet measurement starts from
        the same empty store."""
        if self.redis is not None and self.redis.proc.poll() is not None:
            raise BenchError(f"redis-server exited with code {self.redis.proc.returncode}:\n"
                             f"{tail(self.redis.output())}")
        if self.redis is None:
            self.redis = Redis(self)
            self.redis.wait_ready()
        self.redis.call("FLUSHALL")
        return self.redis

    def fresh_port(self) -> int:
        """A port free on 127.0.0.1 for both UDP and TCP, not handed out recently."""
        span = PORT_POOL[1] - PORT_POOL[0] + 1
        for _ in range(span):
            port = self.next_port
            self.next_port = PORT_POOL[0] + (port - PORT_POOL[0] + 1) % span
            if port_free(port):
                return port
        raise BenchError(f"no free port in {PORT_POOL[0]}-{PORT_POOL[1]}")

    def make_cert(self) -> None:
        cmd = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
               "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=bench.tern",
               "-keyout", str(self.key), "-out", str(self.cert)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError("openssl failed:\n" + tail(r.stderr))


def find_coturn417(args: argparse.Namespace, build: pathlib.Path) -> str | None:
    """coturn 4.17 built by bench/build-coturn.sh: --coturn417, else BUILD/coturn-4.17 or
    build-bench/coturn-4.17 of this repo."""
    if args.coturn417:
        path = pathlib.Path(args.coturn417).resolve()
        if not os.access(path, os.X_OK):
            sys.exit(f"bench/run.py: --coturn417 {path}: not an executable")
        return str(path)
    for d in (build / "coturn-4.17", REPO / "build-bench" / "coturn-4.17"):
        candidate = d / "bin" / "turnserver"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def port_free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


# --------------------------------------------------------------------------------------------
# Servers


def ternd_config(env: Env, port: int, tls_port: int, threads: int,
                 fallback: str | None = None, redis: "Redis | None" = None,
                 metrics_port: int | None = None) -> str:
    """With `fallback` (ip:port), the tls:// listener is a shared port (edge); with `redis`,
    a fleet node (everything else as without: max_allocations_per_user stays far above what
    the loads hold, so the fleet-wide count never refuses); with `metrics_port`, /metrics there
    (a fleet node's lease outcomes)."""
    edge = ""
    if fallback is not None:
        edge = (f'edge: {{ fallback: "{fallback}", turn_names: [ {TURN_NAME} ], '
                "fallback_proxy_protocol: off }\n")
    if redis is not None:
        edge += (f'fleet: {{ redis: "redis://:{redis.password}@127.0.0.1:{redis.port}/0", '
                 f"node_id: {FLEET_NODE} }}\n")
    if metrics_port is not None:
        edge += f'metrics: {{ listen: "127.0.0.1:{metrics_port}" }}\n'
    return edge + (
        f"realm: {REALM}\n"
        f'listen: [ "udp://127.0.0.1:{port}", "tcp://127.0.0.1:{port}", '
        f'"tls://127.0.0.1:{tls_port}" ]\n'
        f"tls: {{ certificate: {env.cert}, private_key: {env.key} }}\n"
        f'auth: {{ secrets: [ "{SECRET}" ] }}\n'
        f"relay: {{ addresses: [ 127.0.0.1 ], ports: {RELAY_PORTS[0]}-{RELAY_PORTS[1]}, "
        f"allow_peers: [ 127.0.0.0/8 ] }}\n"
        + TERND_LIMITS +
        f"threads: {threads}\n"
        "log: { level: warn }\n"
    )


def coturn_command(env: Env, binary: str, port: int, tls_port: int, tag: str) -> list[str]:
    return [
        binary,
        "-n",                                   # no configuration file: only these flags
        "--no-cli",                             # no telnet admin CLI
        "--listening-ip=127.0.0.1",
        f"--listening-port={port}",             # UDP and TCP
        f"--tls-listening-port={tls_port}",
        "--no-dtls",                            # ternd has no DTLS listener either
        "--relay-ip=127.0.0.1",
        f"--min-port={RELAY_PORTS[0]}",
        f"--max-port={RELAY_PORTS[1]}",
        "--use-auth-secret",                    # TURN REST API credentials ...
        f"--static-auth-secret={SECRET}",       # ... with the same secret as ternd
        f"--realm={REALM}",
        "--allow-loopback-peers",               # the generator's peer is on 127.0.0.1
        f"--cert={env.cert}",
        f"--pkey={env.key}",
        "--user-quota=0",                       # no allocation quotas ...
        "--total-quota=0",
        "--max-bps=0",                          # ... and no bandwidth cap, as in ternd's config
        "--relay-threads=0",                    # single-threaded mode: one event loop, like
                                                # ternd's one worker; -m 1 adds a listener and
                                                # an auth thread that hand work across threads
                                                # on the one pinned core (measured slower)
        "--log-file=/dev/null",                 # coturn logs every session; keep that cheap
        "--simple-log",                         # (use the name as given, no pid/date suffix)
        "--no-stdout-log",
        f"--pidfile={env.tmp / (tag + '.pid')}",
        f"--userdb={env.tmp / (tag + '.sqlite')}",  # not the system's /var/lib/turn/turndb
    ]


def stun_binding_probe(port: int, timeout: float = 0.2) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(b"\x00\x01\x00\x00\x21\x12\xa4\x42" + os.urandom(12), ("127.0.0.1", port))
        data = s.recv(2048)
        return len(data) >= 20
    except OSError:
        return False
    finally:
        s.close()


def tcp_probe(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Server:
    def __init__(self, env: Env, kind: str, pinned: bool, peer_port: int,
                 fallback: str | None = None):
        """`fallback`: ternd-edge's edge.fallback (default: a free port nothing listens on, for
        TURN-only loads, which never reach it)."""
        self.env = env
        self.kind = kind
        env.counter += 1
        self.tag = f"{kind}-{env.counter}"
        self.port = env.fresh_port()
        self.tls_port = env.fresh_port() if not kind.startswith("forwarder") else None
        self.log_path = env.tmp / (self.tag + ".log")
        self.redis: Redis | None = None  # ternd-fleet's store ...
        self.metrics_port: int | None = None  # ... and its /metrics
        if kind.startswith("forwarder"):
            cmd = [str(env.ternbench), "forward", "--listen", f"127.0.0.1:{self.port}"]
            if "uring" in kind:
                cmd += ["--loop", "uring"]
            if "busypoll" in kind:
                cmd += ["--busy-poll", "50"]
            if "spin" in kind:
                cmd.append("--spin")
            self.binary = env.ternbench
        elif kind.startswith("ternd"):
            threads = 2 if kind == "ternd-t2" else 1
            if kind == "ternd-edge" and fallback is None:
                fallback = f"127.0.0.1:{env.fresh_port()}"
            conf = env.tmp / (self.tag + ".yaml")
            if kind == "ternd-fleet":
                self.redis = env.fleet_redis()
                self.metrics_port = env.fresh_port()
            conf.write_text(ternd_config(env, self.port, self.tls_port, threads,
                                         fallback if kind == "ternd-edge" else None, self.redis,
                                         self.metrics_port))
            cmd = [str(env.ternd), "--config", str(conf)]
            self.binary = env.ternd
        elif kind == "coturn":
            if env.coturn is None:
                raise BenchError("coturn (turnserver) is not installed: apt install coturn")
            cmd = coturn_command(env, env.coturn, self.port, self.tls_port, self.tag)
            self.binary = pathlib.Path(env.coturn)
        elif kind in ("coturn417", "coturn417-fast"):
            if env.coturn417 is None:
                raise BenchError("coturn 4.17 is not built: bench/build-coturn.sh SOURCE")
            cmd = coturn_command(env, env.coturn417, self.port, self.tls_port, self.tag)
            if kind == "coturn417-fast":
                # The opt-in fast path: one relay socket per thread shared by every allocation
                # (demultiplexed by peer address), sendmmsg batches, and UDP GSO on them. Its
                # port comes from the pool like every other.
                cmd += ["--multiplex-peer", f"--multiplex-peer-port={env.fresh_port()}",
                        "--udp-gso"]
            self.binary = pathlib.Path(env.coturn417)
        else:
            raise BenchError(f"unknown server {kind}")
        if pinned and env.can_pin():
            # taskset execs the server, so Popen.pid is the server's own pid.
            cmd = ["taskset", "-c", str(env.server_cpu)] + cmd
        child_env = dict(os.environ)
        if kind == "ternd-nogso":
            child_env["TERN_UDP_GSO"] = "0"
        self.proc, self.log_file = launch(cmd, self.log_path, kind, child_env)
        self.pid = self.proc.pid

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, transport: str) -> None:
        wait_started(self.proc, self.kind, self.output, lambda: self._ready(transport))
        self._check_pid()

    def _ready(self, transport: str) -> bool:
        if self.kind.startswith("forwarder"):
            return "forwarder listening on" in self.output()
        if self.kind.startswith("ternd") and "is listening on" not in self.output():
            return False
        # A fleet node measures only once it has registered in Redis (its store is up).
        if self.kind == "ternd-fleet" and not self.redis.call("EXISTS", f"tern:node:{FLEET_NODE}"):
            return False
        if not stun_binding_probe(self.port):
            return False
        if transport == "tcp":
            return tcp_probe(self.port)
        if transport == "tls":
            return tcp_probe(self.tls_port)
        return True

    def _check_pid(self) -> None:
        """--pid must name the server itself, not a taskset wrapper."""
        try:
            exe = os.readlink(f"/proc/{self.pid}/exe")
        except OSError as e:
            raise BenchError(f"cannot inspect /proc/{self.pid}/exe: {e}") from e
        if os.path.basename(exe).startswith("taskset"):
            raise BenchError(f"pid {self.pid} is taskset, not the server")

    def stop(self) -> None:
        # coturn 4.17 in single-threaded mode notices SIGTERM only after about 5 s; how a server
        # exits is not measured, so it gets 1 s before SIGKILL instead of stalling every run.
        patient = not self.kind.startswith("coturn417")
        stop_process(self.proc, self.log_file, self.kind, STOP_TIMEOUT if patient else 1.0,
                     quiet=not patient)


def sbin(name: str) -> str:
    """A daemon Debian installs in /usr/sbin, which not every PATH holds."""
    return shutil.which(name) or f"/usr/sbin/{name}"


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far, from /proc/PID/stat."""
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; field 3 is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Nginx:
    """Debian's nginx for web-100m: in the foreground (its master is our child), one worker, with
    its config, pid file, logs and temporary files in the run's temp dir, serving `root` over
    HTTPS (HTTP/1.1, `sendfile on`) on 127.0.0.1:`port` with the run's certificate. Pinned to the
    server CPU: the website and the proxy in front of it share one machine's CPU, as ternd and
    the web server on port 443 do."""

    def __init__(self, env: Env, root: pathlib.Path):
        self.env = env
        env.counter += 1
        self.dir = env.tmp / f"nginx-{env.counter}"
        (self.dir / "tmp").mkdir(parents=True)
        self.port = env.fresh_port()
        d = self.dir
        conf = d / "nginx.conf"
        conf.write_text("\n".join([
            "daemon off;",
            "worker_processes 1;",
            "user root;  # the temp dir is private to root (mkdtemp: 0700)",
            f"pid {d / 'nginx.pid'};",
            f"error_log {d / 'error.log'} warn;",
            "events { worker_connections 64; }",
            "http {",
            "  access_log off;",
            "  sendfile on;",
            "  tcp_nopush on;",
            "  types { } default_type application/octet-stream;",
            *[f"  {t}_temp_path {d / 'tmp' / t};"
              for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")],
            "  server {",
            f"    listen 127.0.0.1:{self.port} ssl;",
            f"    server_name {WEB_NAME};",
            f"    ssl_certificate {env.cert};",
            f"    ssl_certificate_key {env.key};",
            f"    root {root};",
            "  }",
            "}",
            ""]))
        cmd = [sbin("nginx"), "-p", str(d), "-c", str(conf), "-e", str(d / "error.log")]
        if env.can_pin():
            cmd = ["taskset", "-c", str(env.server_cpu)] + cmd
        self.proc, self.log_file = launch(cmd, d / "stdout.log", "nginx: apt install nginx")
        self.pid = self.proc.pid

    def output(self) -> str:
        text = ""
        for name in ("stdout.log", "error.log"):
            try:
                text += (self.dir / name).read_text(errors="replace")
            except OSError:
                pass
        return text

    def wait_ready(self) -> None:
        # nginx writes its pid file once its listening socket is open.
        deadline = time.monotonic() + READY_TIMEOUT
        while not (self.dir / "nginx.pid").exists():
            if self.proc.poll() is not None:
                raise BenchError(f"nginx exited with code {self.proc.returncode} while starting:"
                                 f"\n{tail(self.output())}")
            if time.monotonic() > deadline:
                raise BenchError(f"nginx not ready after {READY_TIMEOUT:.0f} s:\n"
                                 f"{tail(self.output())}")
            time.sleep(0.05)

    def workers(self) -> list[int]:
        try:
            text = pathlib.Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return []
        return [int(x) for x in text.split()]

    def cpu_seconds(self) -> float:
        return sum(proc_cpu_seconds(p) for p in [self.pid] + self.workers())

    def stop(self) -> None:
        # SIGTERM is nginx's fast shutdown: the master ends its worker.
        stop_process(self.proc, self.log_file, "nginx", also_kill=self.workers())


class HAProxy:
    """web-100m's reference proxy: Debian's HAProxy as a plain TCP proxy to nginx (`mode tcp`,
    splicing both ways as ternd's fallback does: `splice-request` and `splice-response`, since
    `splice-auto` copies through user space on loopback), in the foreground, pinned to the server
    CPU like ternd."""

    def __init__(self, env: Env, upstream: int):
        self.env = env
        env.counter += 1
        self.dir = env.tmp / f"haproxy-{env.counter}"
        self.dir.mkdir()
        self.port = env.fresh_port()
        conf = self.dir / "haproxy.cfg"
        conf.write_text("\n".join([
            "global",
            "  maxconn 100",
            "  nbthread 1",
            "defaults",
            "  mode tcp",
            "  option splice-request",
            "  option splice-response",
            "  timeout connect 5s",
            "  timeout client 60s",
            "  timeout server 60s",
            "listen web",
            f"  bind 127.0.0.1:{self.port}",
            f"  server nginx 127.0.0.1:{upstream}",
            ""]))
        cmd = [sbin("haproxy"), "-db", "-f", str(conf)]
        if env.can_pin():
            cmd = ["taskset", "-c", str(env.server_cpu)] + cmd
        self.log_path = self.dir / "haproxy.log"
        self.proc, self.log_file = launch(cmd, self.log_path, "haproxy: apt install haproxy")
        self.pid = self.proc.pid

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not tcp_probe(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError("haproxy did not start:\n"
                                 + tail(self.log_path.read_text(errors="replace")))
            time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.proc, self.log_file, "haproxy", quiet=True)


class Redis:
    """The fleet cases' store: Debian's redis-server in the foreground on a free loopback port,
    with a password of this run, no persistence (`--save ''`, `--appendonly no`) and its working
    directory in the run's temp dir. Pinned by --redis-cpu: by default to the generator's CPU, so
    the server's core carries ternd alone, as on a node whose Redis runs on another host (the
    generator pays for Redis instead); its CPU is reported on its own. Stopped by its PID."""

    def __init__(self, env: Env):
        binary = shutil.which("redis-server") or REDIS_SERVER
        if not os.access(binary, os.X_OK):
            raise BenchError("redis-server is not installed: apt install redis-server")
        env.counter += 1
        self.dir = env.tmp / f"redis-{env.counter}"
        self.dir.mkdir()
        self.port = env.fresh_port()
        self.password = secrets.token_hex(16)
        self.binary = binary
        cmd = [binary, "--bind", "127.0.0.1", "--port", str(self.port),
               "--requirepass", self.password, "--save", "", "--appendonly", "no",
               "--dir", str(self.dir), "--daemonize", "no", "--logfile", "",
               "--databases", "1"]
        cpu = env.redis_cpu()
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu)] + cmd
        self.log_path = self.dir / "redis.log"
        self.proc, self.log_file = launch(cmd, self.log_path, "redis-server")
        self.pid = self.proc.pid

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def call(self, *args: str, timeout: float = 2.0):
        """One command (after AUTH) on a connection of its own; its reply (str, int, bytes,
        list or None). A Redis error reply raises BenchError."""
        payload = b""
        for command in (("AUTH", self.password), args):
            payload += f"*{len(command)}\r\n".encode()
            for a in command:
                b = a.encode()
                payload += f"${len(b)}\r\n".encode() + b + b"\r\n"
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
                s.sendall(payload)
                f = s.makefile("rb")
                resp_read(f)  # AUTH's +OK
                return resp_read(f)
        except OSError as e:
            raise BenchError(f"redis-server on port {self.port}: {e}") from e

    def version(self) -> str:
        text = command_output([self.binary, "--version"])
        word = [w for w in text.split() if w.startswith("v=")]
        return word[0][2:] if word else "unknown version"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"redis-server exited with code {self.proc.returncode} while "
                                 f"starting:\n{tail(self.output())}")
            try:
                if self.call("PING", timeout=0.2) == "PONG":
                    return
            except BenchError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"redis-server not ready after {READY_TIMEOUT:.0f} s:\n"
                                 f"{tail(self.output())}")
            time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.proc, self.log_file, "redis-server")


def resp_read(f):
    """One RESP2 reply from the file object `f`."""
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise BenchError(f"redis-server: truncated reply {line!r}")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        raise BenchError(f"redis-server: {body.decode(errors='replace')}")
    if kind == b":":
        return int(body)
    if kind == b"$":
        n = int(body)
        return None if n < 0 else f.read(n + 2)[:-2]
    if kind == b"*":
        n = int(body)
        return None if n < 0 else [resp_read(f) for _ in range(n)]
    raise BenchError(f"redis-server: unexpected reply {line!r}")


def web_root(env: Env) -> pathlib.Path:
    """The site web-100m downloads from: one file of WEB_FILE_BYTES random bytes (made once)."""
    root = env.tmp / "www"
    path = root / "100m.bin"
    if not path.exists():
        root.mkdir(exist_ok=True)
        block = os.urandom(1_000_000)
        with open(path, "wb") as f:
            for _ in range(WEB_FILE_BYTES // len(block)):
                f.write(block)
    return root


def curl_download(env: Env, port: int) -> tuple[float, float]:
    """One HTTPS download of the web-100m file from 127.0.0.1:`port`, with SNI WEB_NAME and
    HTTP/1.1, to /dev/null; curl pinned to the generator's CPU. Returns (bytes, seconds)."""
    cmd = ["curl", "--silent", "--show-error", "--http1.1", "--insecure",
           "--resolve", f"{WEB_NAME}:{port}:127.0.0.1", "--max-time", f"{WEB_DOWNLOAD_TIMEOUT:g}",
           "--output", "/dev/null", "--write-out", "%{http_code} %{size_download} %{time_total}",
           f"https://{WEB_NAME}:{port}/100m.bin"]
    if env.can_pin():
        cmd = ["taskset", "-c", str(env.client_cpu)] + cmd
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=WEB_DOWNLOAD_TIMEOUT + 10)
    except FileNotFoundError as e:
        raise BenchError("curl is not installed: apt install curl") from e
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"curl did not finish in {WEB_DOWNLOAD_TIMEOUT + 10:.0f} s") from e
    try:
        code, size, seconds = r.stdout.split()
        size_f, seconds_f = float(size), float(seconds)
    except ValueError as e:
        raise BenchError(f"curl exited {r.returncode}: {r.stdout.strip()} {r.stderr.strip()}") from e
    if r.returncode != 0 or code != "200" or size_f != WEB_FILE_BYTES or seconds_f <= 0:
        raise BenchError(f"curl exited {r.returncode}, HTTP {code}, {size_f:.0f} of "
                         f"{WEB_FILE_BYTES} bytes: {r.stderr.strip()}")
    return size_f, seconds_f


def measure_web(env: Env, case: Case, server_kind: str) -> dict:
    """web-100m: WEB_DOWNLOADS downloads from nginx, directly (`nginx`), through HAProxy
    (`haproxy`) or through ternd's shared port (`ternd-edge`, edge.fallback = nginx). MB/s over
    all of them; CPU seconds of nginx and of the proxy per MB moved, from /proc/PID/stat."""
    nginx = Nginx(env, web_root(env))
    proxy: Server | HAProxy | None = None
    try:
        nginx.wait_ready()
        port = nginx.port
        if server_kind == "ternd-edge":
            proxy = Server(env, "ternd-edge", case.pinned, env.fresh_port(),
                           fallback=f"127.0.0.1:{nginx.port}")
            proxy.wait_ready("udp")
            port = proxy.tls_port
        elif server_kind == "haproxy":
            proxy = HAProxy(env, nginx.port)
            proxy.wait_ready()
            port = proxy.port
        elif server_kind != "nginx":
            raise BenchError(f"web-100m has no server {server_kind}")
        nginx0 = nginx.cpu_seconds()
        proxy0 = proc_cpu_seconds(proxy.pid) if proxy else 0.0
        total_bytes = total_seconds = 0.0
        for _ in range(WEB_DOWNLOADS):
            size, seconds = curl_download(env, port)
            total_bytes += size
            total_seconds += seconds
        mb = total_bytes / 1e6
        result = {"test": "web", "downloads": WEB_DOWNLOADS, "bytes": total_bytes,
                  "seconds": total_seconds, "mb_per_s": mb / total_seconds,
                  "nginx_cpu_ms_per_mb": (nginx.cpu_seconds() - nginx0) * 1e3 / mb}
        if proxy is not None:
            if proxy.proc.poll() is not None:
                raise BenchError(f"{server_kind} died during the run (exit code "
                                 f"{proxy.proc.returncode})")
            result["proxy_cpu_ms_per_mb"] = (proc_cpu_seconds(proxy.pid) - proxy0) * 1e3 / mb
        return result
    finally:
        if proxy is not None:
            proxy.stop()
        nginx.stop()


# --------------------------------------------------------------------------------------------
# One measurement


def ternbench_command(env: Env, case: Case, server: Server, peer_port: int, pinned: bool,
                      warmup: float, duration: float) -> list[str]:
    port = server.tls_port if case.transport == "tls" else server.port
    cmd = [str(env.ternbench), case.kind, "--server", f"127.0.0.1:{port}",
           "--transport", case.transport, "--secret", SECRET, "--pid", str(server.pid)]
    if case.kind in ("throughput", "rate"):
        cmd += ["--peer", f"127.0.0.1:{peer_port}", "--topology", case.topology,
                "--clients", str(case.clients), "--size", str(case.size),
                "--warmup", f"{warmup:g}", "--duration", f"{duration:g}"]
        if case.window is not None:
            cmd += ["--window", str(case.window)]
        if case.rate is not None:
            cmd += ["--rate", str(case.rate)]
        if case.indications:
            cmd.append("--indications")
        if case.sni:
            cmd += ["--sni", case.sni]
        if server.kind.startswith("forwarder"):
            cmd.append("--forwarder")
    elif case.kind == "setup":
        cmd += ["--peer", f"127.0.0.1:{peer_port}", "--clients", str(case.clients), "--warmup", f"{warmup:g}",
                "--duration", f"{duration:g}"]
        if server.redis is not None:
            cmd += ["--store-pid", str(server.redis.pid)]
    elif case.kind == "idle":
        cmd += ["--peer", f"127.0.0.1:{peer_port}", "--allocations", str(env.idle_allocations)]
    if pinned and env.can_pin():
        cmd = ["taskset", "-c", str(env.client_cpu)] + cmd
    return cmd


def estimate_seconds(env: Env, case: Case) -> float:
    if case.kind == "idle":
        return 4.0 + env.idle_allocations / 1500.0
    if case.kind == "web":
        return 2.0 + WEB_DOWNLOADS * 1.0
    return env.warmup + env.duration + 1.5


def ternbench_timeout(env: Env, case: Case, warmup: float, duration: float) -> float:
    if case.kind == "idle":
        return 60.0 + env.idle_allocations / 100.0
    return warmup + duration + 30.0


def run_ternbench(cmd: list[str], timeout: float, server: Server) -> dict:
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise BenchError(f"ternbench timed out after {timeout:.0f} s:\n{tail(err)}") from e
    if server.proc.poll() is not None:
        raise BenchError(f"{server.kind} died during the run (exit code "
                         f"{server.proc.returncode}):\n{tail(server.output())}\n"
                         f"  ternbench stderr:\n{tail(r.stderr)}")
    if r.returncode != 0:
        raise BenchError(f"ternbench exited with code {r.returncode}:\n{tail(r.stderr)}")
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1])
        if not isinstance(result, dict):
            raise ValueError("not a JSON object")
    except (IndexError, ValueError) as e:
        raise BenchError(f"ternbench printed no JSON object ({e}); stdout:\n{tail(r.stdout)}\n"
                         f"  stderr:\n{tail(r.stderr)}") from e
    return result


def cpu_busy_fraction(interval: float = 0.5) -> float:
    """How busy the machine's CPUs were over `interval` seconds (0..1), from /proc/stat."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in pathlib.Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return idle, sum(fields)
    idle0, total0 = sample()
    time.sleep(interval)
    idle1, total1 = sample()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def wait_idle(env: Env) -> None:
    """--wait-idle: on a shared machine, hold each measurement until nothing else runs (under 10 %
    of the CPUs busy), for at most env.wait_idle seconds."""
    if env.wait_idle <= 0:
        return
    deadline = time.monotonic() + env.wait_idle
    waited = False
    while (busy := cpu_busy_fraction()) > 0.10 and time.monotonic() < deadline:
        waited = True
    if waited:
        log(f"  (waited for an idle machine; now {busy:.0%} busy)")


LEASE_OUTCOMES = ("granted", "quota_full", "timeout", "store_down")


def fleet_counters(server: Server) -> dict[str, float]:
    """A fleet node's tern_fleet_* samples from its /metrics (name{labels} -> value)."""
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode(errors="replace")
    except OSError as e:
        raise BenchError(f"{url}: {e}") from e
    out = {}
    for line in text.splitlines():
        if line.startswith("tern_fleet_"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def lease_figures(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What became of the Allocates' lease requests over a measurement (warm-up included):
    counts per outcome, the share Redis granted, and whether the store was up at the end."""
    out = {}
    for o in LEASE_OUTCOMES:
        key = f'tern_fleet_lease_requests_total{{outcome="{o}"}}'
        out[f"leases_{o}"] = after.get(key, 0.0) - before.get(key, 0.0)
    total = sum(out.values())
    if total > 0:
        out["leased_share"] = out["leases_granted"] / total
    out["store_up_after"] = after.get("tern_fleet_store_up", 0.0)
    return out


def measure(env: Env, case: Case, server_kind: str) -> dict:
    wait_idle(env)
    if case.kind == "web":
        return measure_web(env, case, server_kind)
    pinned = case.pinned
    peer_port = env.fresh_port()
    server = Server(env, server_kind, pinned, peer_port)
    try:
        server.wait_ready(case.transport)
        cmd = ternbench_command(env, case, server, peer_port, pinned, env.warmup, env.duration)
        before = fleet_counters(server) if server.metrics_port else None
        result = run_ternbench(cmd, ternbench_timeout(env, case, env.warmup, env.duration), server)
        if before is not None:
            result.update(lease_figures(before, fleet_counters(server)))
        return result
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------
# Formatting


def f_us(v: float) -> str:
    return f"{v:.2f} µs" if v < 100 else f"{v:.0f} µs"


def f_rtt(v: float) -> str:
    return f"{v:.0f} µs"


def f_loss(v: float) -> str:
    return f"{v * 100:.2f} %" if v < 0.1 else f"{v * 100:.1f} %"


def f_int(v: float) -> str:
    return f"{v:,.0f}"


def f_mib(v: float) -> str:
    return f"{v / 1024:.1f} MiB"


def f_bytes(v: float) -> str:
    return f"{v:,.0f} B"


def f_fds(v: float) -> str:
    return f"{v:.2f}"


@dataclasses.dataclass
class Metric:
    key: str
    label: str
    fmt: object
    headline: bool = False  # show the spread (min-max) over rounds
    only_nonzero: bool = False  # leave the row out when every value is zero
    ratios: bool = True  # fill the ratio columns


PPS = Metric("relayed_pps", "relayed packets/s", f_pps, headline=True)
CPU_PKT = Metric("cpu_us_per_relayed", "server CPU per relayed packet", f_us, headline=True)
CPU_UTIL = Metric("server_cpu_util", "server CPU (of one core)", f_pct, ratios=False)
P50 = Metric("rtt_p50_us", "RTT p50", f_rtt)
P99 = Metric("rtt_p99_us", "RTT p99", f_rtt)
LOSS = Metric("loss", "loss", f_loss, only_nonzero=True, ratios=False)
DROPS = Metric("kernel_udp_drops", "kernel UDP drops (system-wide)", f_int, only_nonzero=True,
               ratios=False)
ERRORS = Metric("errors", "errors (failed requests)", f_int, only_nonzero=True, ratios=False)

METRICS = {
    "throughput": [PPS, CPU_PKT, CPU_UTIL, P50, LOSS, DROPS],
    "udp-rate-80k": [PPS, CPU_PKT, CPU_UTIL, Metric("loss", "loss", f_loss, headline=True, ratios=False), DROPS],
    "udp-rtt-10k": [Metric("rtt_p50_us", "RTT p50", f_rtt, headline=True),
                    Metric("rtt_p99_us", "RTT p99", f_rtt, headline=True),
                    PPS, CPU_PKT, LOSS, DROPS],
    "setup": [Metric("setups_per_s", "allocation setups/s", f_int, headline=True),
              Metric("cpu_us_per_setup", "server CPU per setup", f_us), CPU_UTIL, ERRORS],
    "idle": [Metric("rss_kib", "server RSS", f_mib, ratios=False),
             Metric("bytes_per_allocation", "RSS per idle allocation", f_bytes, headline=True),
             Metric("fds_per_allocation", "fds per idle allocation", f_fds),
             Metric("setup_seconds", "time to set them up", lambda v: f"{v:.1f} s",
                    ratios=False),
             Metric("idle_cpu_util", "server CPU while they sit idle", f_pct, ratios=False),
             ERRORS],
}


METRICS["loop-rate-80k"] = METRICS["udp-rate-80k"]
METRICS["fleet-setup"] = [
    Metric("setups_per_s", "allocation setups/s", f_int, headline=True),
    Metric("allocate_p50_us", "Allocate latency p50", f_us, headline=True),
    Metric("allocate_p99_us", "Allocate latency p99", f_us, headline=True),
    Metric("setup_p50_us", "set-up latency p50", f_us),
    Metric("setup_p99_us", "set-up latency p99", f_us),
    Metric("cpu_us_per_setup", "server CPU per setup", f_us, headline=True),
    Metric("store_cpu_us_per_setup", "Redis CPU per setup", f_us, ratios=False),
    Metric("leased_share", "Allocates leased in Redis (not timeout/store down)",
           lambda v: f"{v * 100:.1f} %", headline=True, ratios=False),
    CPU_UTIL, ERRORS]
METRICS["fleet-setup-8"] = METRICS["fleet-setup"]
METRICS["fleet-rate-80k"] = [PPS, CPU_PKT, CPU_UTIL, LOSS, DROPS]
METRICS["fleet-peers-100"] = [PPS, CPU_PKT, CPU_UTIL, P50, LOSS, DROPS]
METRICS["web"] = [
    Metric("mb_per_s", "download rate", lambda v: f"{v:.0f} MB/s", headline=True),
    Metric("proxy_cpu_ms_per_mb", "proxy CPU per MB", lambda v: f"{v:.3f} ms", headline=True),
    Metric("nginx_cpu_ms_per_mb", "nginx CPU per MB", lambda v: f"{v:.3f} ms")]


def metrics_for(case: Case) -> list[Metric]:
    return METRICS.get(case.name) or METRICS[case.kind]


# A target: (description, numerator server, denominator server or None for an absolute bound,
# comparison, bound). The numerator/denominator are medians of the metric in this case, except
# where "ref_case" names another case for the denominator.
@dataclasses.dataclass
class Target:
    text: str
    num: str
    den: str | None
    op: str  # ">=" or "<="
    bound: float
    ref_case: str | None = None


TARGETS: dict[tuple[str, str], list[Target]] = {}
for _c in ("pairs-100", "pairs-1200"):
    TARGETS[(_c, "relayed_pps")] = [Target("≥ 0.9× fwd", "ternd", "forwarder", ">=", 0.9)]
for _c in ("peers-100", "peers-1200"):
    TARGETS[(_c, "relayed_pps")] = [
        Target("≥ 0.9× fwd", "ternd", "forwarder", ">=", 0.9),
        Target("≥ 1.0× 4.17 fast", "ternd", "coturn417-fast", ">=", 1.0)]
TARGETS[("udp-rate-80k", "cpu_us_per_relayed")] = [
    Target("≤ 1.1× fwd", "ternd", "forwarder", "<=", 1.1),
    Target("≤ 0.8× 4.6.1", "ternd", "coturn", "<=", 0.8),
    Target("≤ 0.8× 4.17", "ternd", "coturn417", "<=", 0.8),
    Target("≤ 0.8× 4.17 fast", "ternd", "coturn417-fast", "<=", 0.8)]
TARGETS[("udp-rtt-10k", "rtt_p99_us")] = [
    Target("≤ 4.6.1", "ternd", "coturn", "<=", 1.0),
    Target("≤ 4.17", "ternd", "coturn417", "<=", 1.0),
    Target("≤ 4.17 fast", "ternd", "coturn417-fast", "<=", 1.0)]
TARGETS[("setup", "setups_per_s")] = [Target("≥ 3× coturn", "ternd", "coturn", ">=", 3.0)]
TARGETS[("idle", "bytes_per_allocation")] = [Target("≤ 1024 B", "ternd", None, "<=", 1024)]
TARGETS[("idle", "fds_per_allocation")] = [Target("≤ 1", "ternd", None, "<=", 1.0)]
TARGETS[("udp-ind-100", "cpu_us_per_relayed")] = [
    Target("≤ 1.2× peers-100", "ternd", "ternd", "<=", 1.2, ref_case="peers-100")]
TARGETS[("tcp-cd-100", "relayed_pps")] = [Target("report vs coturn", "ternd", "coturn", "", 0)]
TARGETS[("tls-cd-100", "relayed_pps")] = [Target("report vs coturn", "ternd", "coturn", "", 0)]
TARGETS[("web-100m", "mb_per_s")] = [Target("≥ 0.9× direct", "ternd-edge", "nginx", ">=", 0.9)]
TARGETS[("tls-shared", "relayed_pps")] = [
    Target("≥ 0.95× plain", "ternd-edge", "ternd", ">=", 0.95)]


class Results:
    def __init__(self) -> None:
        # (case, server) -> list of dicts (a measurement) or strings ("fail", "skipped")
        self.runs: dict[tuple[str, str], list] = {}

    def add(self, case: str, server: str, value) -> None:
        self.runs.setdefault((case, server), []).append(value)

    def values(self, case: str, server: str, key: str) -> list[float]:
        out = []
        for r in self.runs.get((case, server), []):
            if isinstance(r, dict) and isinstance(r.get(key), (int, float)):
                out.append(float(r[key]))
        return out

    def ran(self, case: str, server: str) -> bool:
        return bool(self.runs.get((case, server)))

    def median(self, case: str, server: str, key: str) -> float | None:
        v = self.values(case, server, key)
        return statistics.median(v) if v else None

    def cell(self, case: str, server: str, m: Metric) -> str:
        runs = self.runs.get((case, server), [])
        if not runs:
            return "–"
        v = self.values(case, server, m.key)
        fails = sum(1 for r in runs if r == "fail")
        skipped = sum(1 for r in runs if r == "skipped")
        if not v:
            if fails:
                return "fail"
            if skipped:
                return "skipped"
            return "n/a"
        text = m.fmt(statistics.median(v))
        if m.headline and len(v) > 1:
            lo, hi = m.fmt(min(v)).split(" ")[0], m.fmt(max(v)).split(" ")[0]
            text += f" ({lo}–{hi})"
        notes = []
        if fails:
            notes.append(f"{fails} fail")
        if skipped:
            notes.append(f"{skipped} skipped")
        if notes:
            text += " [" + ", ".join(notes) + "]"
        return text


def judge(res: Results, case: str, key: str) -> tuple[str, str]:
    targets = TARGETS.get((case, key))
    if not targets:
        return "", ""
    texts, marks = [], []
    for t in targets:
        texts.append(t.text)
        num = res.median(case, t.num, key)
        if t.op == "":
            continue
        if t.den is None:
            value = num
            shown = ""
        elif not res.ran(t.ref_case or case, t.den):
            marks.append("–")  # that server was not measured (not built, or not in this run)
            continue
        else:
            value = ratio(num, res.median(t.ref_case or case, t.den, key))
            shown = f" {f_ratio(value)}" if t.ref_case else ""
        if value is None:
            marks.append("?")
            continue
        ok = value >= t.bound if t.op == ">=" else value <= t.bound
        marks.append(("✓" if ok else "✗") + shown)
    return ", ".join(texts), " / ".join(marks)


GENERATOR_BOUND = 0.85


def generator_bound(res: Results, case: str, server: str) -> bool:
    util = res.median(case, server, "server_cpu_util")
    return util is not None and util < GENERATOR_BOUND


SHORT_LABEL = {"forwarder": "fwd", "ternd": "ternd", "coturn": "4.6.1", "coturn417": "4.17",
               "coturn417-fast": "4.17 fast", "forwarder-uring": "uring",
               "forwarder-busypoll": "busy-poll", "forwarder-uring-busypoll": "uring+busy-poll",
               "forwarder-spin": "spin", "forwarder-uring-spin": "uring spin"}


def server_table(res: Results, cases: list[Case], columns: list[str],
                 ratio_pairs: list[tuple[str, str]], with_targets: bool) -> tuple[list[str], bool]:
    """One table: a column per server, then one per (numerator, denominator) ratio, then the
    targets."""
    out = ["| case | metric | " + " | ".join(SERVER_LABEL[s] for s in columns) + " | "
           + " | ".join(f"{SHORT_LABEL[n]}÷{SHORT_LABEL[d]}" for n, d in ratio_pairs)
           + (" | target | met |" if with_targets else " |"),
           "| --- | --- | " + " | ".join("---:" for _ in columns + ratio_pairs)
           + (" | --- | --- |" if with_targets else " |")]
    marked = False
    for c in cases:
        for m in metrics_for(c):
            if m.only_nonzero and not any(
                    v != 0 for s in c.servers for v in res.values(c.name, s, m.key)):
                continue
            cells = [res.cell(c.name, s, m) if s in c.servers else "" for s in columns]
            if m.key == "relayed_pps" and c.kind == "throughput":
                for i, s in enumerate(columns):
                    if s in c.servers and generator_bound(res, c.name, s):
                        cells[i] += " †"
                        marked = True
            rs = [f_ratio(ratio(res.median(c.name, n, m.key), res.median(c.name, d, m.key)))
                  if n in c.servers and d in c.servers and m.ratios else ""
                  for n, d in ratio_pairs]
            row = f"| {c.name} | {m.label} | " + " | ".join(cells) + " | " + " | ".join(rs)
            if with_targets:
                target, met = judge(res, c.name, m.key)
                row += f" | {target} | {met}"
            out.append(row + " |")
    return out, marked


# Cases with a table of their own: (caption, [(server, column label)], [(numerator,
# denominator, ratio label)]); the target column is judged as in the main table.
SIDE_TABLES = {
    "web-100m": (
        f"HTTPS download of a 100 MB file from nginx (`sendfile on`, HTTP/1.1) with curl, "
        f"{WEB_DOWNLOADS} downloads per run, rate over all of them: directly; through HAProxy 2.6 "
        "(`mode tcp`, splicing both ways: a plain TCP proxy built like ternd's fallback, for "
        "reference); and "
        f"through ternd's shared port (SNI {WEB_NAME}, not a turn name: passed to nginx undecrypted, "
        "no PROXY header). nginx and the proxy share the server CPU, curl has the generator's; "
        "CPU from /proc/PID/stat:",
        [("nginx", "nginx direct"), ("haproxy", "through HAProxy"),
         ("ternd-edge", "through ternd")],
        [("ternd-edge", "nginx", "ternd÷direct"), ("haproxy", "nginx", "HAProxy÷direct"),
         ("ternd-edge", "haproxy", "ternd÷HAProxy")]),
    "tls-shared": (
        "TURN over TLS on a shared port: tls-cd-100's load (peers topology, 50 clients, 100 B "
        f"ChannelData, window 8) with SNI {TURN_NAME} in every ClientHello, against ternd with a "
        "plain tls:// listener and with the same listener a shared port (edge.fallback set, "
        "unused):",
        [("ternd", "plain tls://"), ("ternd-edge", "shared port")],
        [("ternd-edge", "ternd", "shared÷plain")]),
}


def side_table(res: Results, c: Case) -> list[str]:
    caption, columns, ratios = SIDE_TABLES[c.name]
    columns = [(srv, label) for srv, label in columns if srv in c.servers]
    ratios = [(n, d, label) for n, d, label in ratios if n in c.servers and d in c.servers]
    out = ["", caption, "",
           "| metric | " + " | ".join(label for _, label in columns) + " | "
           + " | ".join(label for _, _, label in ratios) + " | target | met |",
           "| --- | " + " | ".join("---:" for _ in columns + ratios) + " | --- | --- |"]
    marked = False
    for m in metrics_for(c):
        if m.only_nonzero and not any(
                v != 0 for srv in c.servers for v in res.values(c.name, srv, m.key)):
            continue
        # A figure a server does not have (a proxy's CPU, for nginx direct) stays empty.
        cells = ["" if x == "n/a" else x for x in (res.cell(c.name, srv, m) for srv, _ in columns)]
        if m.key == "relayed_pps" and c.kind == "throughput":
            for i, (srv, _) in enumerate(columns):
                if generator_bound(res, c.name, srv):
                    cells[i] += " †"
                    marked = True
        absent = {srv for srv, _ in columns if res.cell(c.name, srv, m) == "n/a"}
        rs = [f_ratio(ratio(res.median(c.name, n, m.key), res.median(c.name, d, m.key)))
              if m.ratios and not {n, d} & absent else "" for n, d, _ in ratios]
        target, met = judge(res, c.name, m.key)
        out.append(f"| {m.label} | " + " | ".join(cells) + " | " + " | ".join(rs)
                   + f" | {target} | {met} |")
    if marked:
        out += ["", f"† the server used less than {GENERATOR_BOUND:.0%} of its core: the generator "
                "(or a busy machine), not the server, limited this run."]
    return out


def fleet_table(res: Results, cases: list[Case]) -> list[str]:
    """The fleet cases in one table: the same ternd with the fleet store off and on."""
    out = ["",
           "Fleet store (issue 19): the same ternd without a `fleet` section and with one "
           f"(`fleet.redis` = a local redis-server, `node_id: {FLEET_NODE}`, defaults otherwise), "
           "in the same run. Redis runs where the header says (--redis-cpu); its CPU is not in "
           "the server CPU rows. fleet-setup: 64 clients cycling Allocate (401), Allocate, "
           "CreatePermission, ChannelBind, Refresh 0, one user each (fleet-setup-8: 8 clients); "
           "Allocate latency = the "
           "authenticated Allocate sent to its success response; set-up latency = the first "
           "Allocate sent to the ChannelBind's success. fleet-rate-80k and fleet-peers-100: "
           "udp-rate-80k's and peers-100's relay loads:",
           "",
           "| case | metric | fleet off | fleet on | on÷off |",
           "| --- | --- | ---: | ---: | ---: |"]
    marked = False
    for c in cases:
        for m in metrics_for(c):
            if m.only_nonzero and not any(
                    v != 0 for s in c.servers for v in res.values(c.name, s, m.key)):
                continue
            cells = ["" if x == "n/a" else x
                     for x in (res.cell(c.name, "ternd", m), res.cell(c.name, "ternd-fleet", m))]
            if m.key == "relayed_pps" and c.kind == "throughput":
                for i, srv in enumerate(FLEET):
                    if generator_bound(res, c.name, srv):
                        cells[i] += " †"
                        marked = True
            r = ratio(res.median(c.name, "ternd-fleet", m.key), res.median(c.name, "ternd", m.key))
            out.append(f"| {c.name} | {m.label} | {cells[0]} | {cells[1]} | "
                       f"{f_ratio(r) if m.ratios else ''} |")
    if marked:
        out += ["", f"† the server used less than {GENERATOR_BOUND:.0%} of its core: the generator "
                "(or a busy machine), not the server, limited this run."]
    for c in cases:
        share = res.median(c.name, "ternd-fleet", "leased_share")
        if c.kind == "setup" and share is not None and share < 0.99:
            out += ["", f"Note: in {c.name}, Redis leased only {share:.1%} (median) of the fleet "
                    "node's Allocates; the others were admitted on local quotas after "
                    "fleet.allocate_wait_ms or while the store was marked down "
                    "(tern_fleet_lease_requests_total), so its fleet-on column is not "
                    "Redis-backed admission."]
    return out


def render_table(res: Results, cases: list[Case], header: list[str]) -> str:
    out = list(header)
    main = [c for c in cases if c.name not in ("scale", "gso") and c.name not in SIDE_TABLES
            and not c.name.startswith("loop-") and not c.name.startswith("fleet-")]
    loops = [c for c in cases if c.name.startswith("loop-")]
    marked = False
    if main:
        rows, marked = server_table(res, main, MAIN_SERVERS,
                                    [("ternd", d) for d in MAIN_SERVERS if d != "ternd"], True)
        out += [""] + rows
    if loops:
        rows, loop_marked = server_table(res, loops, LOOP_SERVERS,
                                         [(n, "forwarder") for n in LOOP_SERVERS[1:]], False)
        out += ["", "Forwarder loop candidates (the same forwarding work under each event loop; "
                "`forwarder` is the epoll loop):", ""] + rows
        marked = marked or loop_marked
    if marked:
        out += ["", f"† the server used less than {GENERATOR_BOUND:.0%} of its core in this "
                "closed-loop run: the generator (or a busy machine), not the server, limited it."]
    scale = [c for c in cases if c.name == "scale"]
    if scale:
        c = scale[0]
        out += ["",
                "Multi-core (peers topology, 100 B, 64 clients; neither server nor generator pinned):",
                "",
                "| metric | ternd threads: 1 | ternd threads: 2 | 2÷1 |",
                "| --- | ---: | ---: | ---: |"]
        for m in (PPS, CPU_PKT, Metric("server_cpu_util", "server CPU (cores)",
                                       lambda v: f"{v:.2f}", ratios=False), LOSS, DROPS):
            if m.only_nonzero and not any(
                    v != 0 for s in c.servers for v in res.values(c.name, s, m.key)):
                continue
            r = ratio(res.median(c.name, "ternd-t2", m.key), res.median(c.name, "ternd-t1", m.key))
            out.append(f"| {m.label} | {res.cell(c.name, 'ternd-t1', m)} | "
                       f"{res.cell(c.name, 'ternd-t2', m)} | {f_ratio(r) if m.ratios else ''} |")
    gso = [c for c in cases if c.name == "gso"]
    if gso:
        c = gso[0]
        out += ["",
                "UDP GSO on sends to clients (peers topology, 100 B, pinned as above):",
                "",
                "| metric | GSO on | GSO off | on÷off |",
                "| --- | ---: | ---: | ---: |"]
        for m in (PPS, CPU_PKT, P50):
            r = ratio(res.median(c.name, "ternd", m.key), res.median(c.name, "ternd-nogso", m.key))
            out.append(f"| {m.label} | {res.cell(c.name, 'ternd', m)} | "
                       f"{res.cell(c.name, 'ternd-nogso', m)} | {f_ratio(r) if m.ratios else ''} |")
    for c in cases:
        if c.name in SIDE_TABLES:
            out += side_table(res, c)
    fleet = [c for c in cases if c.name.startswith("fleet-")]
    if fleet:
        out += fleet_table(res, fleet)
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# Header


def command_output(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def header_lines(env: Env, args: argparse.Namespace, started: datetime.datetime) -> list[str]:
    rev = command_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]) or "unknown"
    if rev != "unknown" and subprocess.run(
            ["git", "-C", str(REPO), "diff", "--quiet", "HEAD"],
            capture_output=True).returncode == 1:
        rev += " (with uncommitted changes)"
    coturn = "not installed"
    if env.coturn:
        coturn = command_output([env.coturn, "--version"]).splitlines()[0:1]
        coturn = coturn[0] if coturn else "unknown version"
    coturn417 = ("not built (bench/build-coturn.sh SOURCE): its columns are empty"
                 if env.coturn417 is None else coturn417_version(env.coturn417))
    ternd = rev if args.ternd is None else f"{env.ternd} (--ternd)"
    pin = (f"server pinned to CPU {env.server_cpu}, ternbench to CPU {env.client_cpu}"
           if env.can_pin() else "NOT pinned (fewer than 2 CPUs available)")
    return [
        f"## tern benchmark, {started:%Y-%m-%d %H:%M %Z}".rstrip(),
        "",
        f"- machine: {os.cpu_count()} CPUs (nproc {command_output(['nproc']) or '?'}), "
        f"{cpu_model()}, Linux {platform.release()}",
        f"- ternd {ternd}; ternbench {rev}; Debian's coturn {coturn}; coturn 4.17: {coturn417}",
        f"- {args.rounds} round(s) interleaved, server order rotated per round; warmup "
        f"{env.warmup:g} s, duration {env.duration:g} s; {pin}; loopback",
        "- cells: median over rounds, (min–max) for headline figures; ratios of medians",
        "- pairs: 50 allocations relaying to each other in pairs (A → relay A → relay B → B and "
        "back); peers: 50 allocations, each with its own echo peer on its own address "
        "(127.20.0.x); closed loop: window 8 own packets per client (scale: 64 clients)",
        "- relayed packets/s = 2 × packets received by clients (each crossed the server twice: "
        "client → peer on one allocation, peer → client on the same or, in pairs, the partner's)",
        "- udp-rate-80k, udp-rtt-10k (peers topology): 40k and 10k own packets/s = 80k and 20k "
        "relayed/s",
        "- coturn 4.17 fast path = `--multiplex-peer --udp-gso` (one shared relay socket per "
        "thread); it cannot relay between two allocations of the same server, so not in pairs",
        f"- idle: {env.idle_allocations} allocations, each with one permission and one channel",
    ]


# --------------------------------------------------------------------------------------------
# Modes


def coturn417_version(binary: str) -> str:
    version = pathlib.Path(binary).parent.parent / "version"
    commit = pathlib.Path(binary).parent.parent / "commit"
    text = version.read_text().strip() if version.exists() else "4.17 (version unknown)"
    if commit.exists():
        text += f" (commit {commit.read_text().strip()[:10]})"
    return f"{text}, {binary}"


def check_binaries(env: Env, need_coturn: bool) -> None:
    missing = [str(p) for p in (env.ternd, env.ternbench) if not os.access(p, os.X_OK)]
    if missing:
        sys.exit("bench/run.py: not built: " + ", ".join(missing) + " (run `make bench`, or pass "
                 "--build DIR)")
    if need_coturn and env.coturn is None:
        log("warning: coturn (turnserver) is not installed; its cells will read 'fail' "
            "(apt install coturn)")
    if need_coturn and env.coturn417 is None:
        log("note: coturn 4.17 is not built, so its columns stay empty; build it with "
            "bench/build-coturn.sh SOURCE (a coturn source tree or git mirror), or pass "
            "--coturn417 PATH")


def redis_commands(redis: "Redis") -> int:
    """Commands Redis has processed since it started (INFO stats)."""
    info = redis.call("INFO", "stats")
    for line in (info or b"").decode(errors="replace").splitlines():
        if line.startswith("total_commands_processed:"):
            return int(line.split(":", 1)[1])
    raise BenchError("redis-server: INFO stats has no total_commands_processed")


def smoke(env: Env) -> int:
    """`make test`: ternbench against one ternd: UDP throughput with 8 peers 2 s, in pairs 1 s,
    and setup 1 s; then, when redis-server is installed, against a fleet node: setup 1 s (every
    set-up through Redis) and UDP throughput 1 s."""
    plans = [("ternd", [(Case("smoke-udp", "throughput", ["ternd"], clients=8),
                         "relayed_pps", 2.0),
                        (Case("smoke-pairs", "throughput", ["ternd"], clients=8,
                              topology="pairs"), "relayed_pps", 1.0),
                        (Case("smoke-setup", "setup", ["ternd"], clients=8,
                              window=None), "setups_per_s", 1.0)])]
    if shutil.which("redis-server") or os.access(REDIS_SERVER, os.X_OK):
        plans.append(("ternd-fleet", [(Case("smoke-fleet-setup", "setup", ["ternd-fleet"],
                                            clients=8, window=None), "setups_per_s", 1.0),
                                      (Case("smoke-fleet-udp", "throughput", ["ternd-fleet"],
                                            clients=8), "relayed_pps", 1.0)]))
    else:
        log("smoke: fleet part left out: redis-server is not installed (apt install redis-server)")
    failures = 0
    for kind, cases in plans:
        failures += smoke_server(env, kind, cases)
    log("smoke: " + ("OK" if failures == 0 else f"{failures} failure(s)"))
    return 0 if failures == 0 else 1


def smoke_server(env: Env, kind: str, cases: list) -> int:
    failures = 0
    server = None
    try:
        peer_port = env.fresh_port()
        server = Server(env, kind, False, peer_port)
        server.wait_ready("udp")
        for case, key, duration in cases:
            cmd = ternbench_command(env, case, server, peer_port, False, 0.5, duration)
            commands = redis_commands(server.redis) if server.redis else 0
            counters = fleet_counters(server) if server.metrics_port else None
            try:
                result = run_ternbench(cmd, duration + 8.0, server)
            except BenchError as e:
                log(f"{case.name}: FAIL: {e}")
                failures += 1
                continue
            if counters is not None:
                result.update(lease_figures(counters, fleet_counters(server)))
            print(json.dumps(result), flush=True)
            if not result.get(key):
                log(f"{case.name}: FAIL: {key} is {result.get(key)!r}")
                failures += 1
            if result.get("errors"):
                log(f"{case.name}: FAIL: {result['errors']} error response(s)")
                failures += 1
            if case.kind == "setup" and server.redis is not None:
                # Every Allocate asked Redis (a lease): at least a command per set-up measured.
                setups = result.get("setups_per_s", 0) * duration
                sent = redis_commands(server.redis) - commands
                if sent < setups:
                    log(f"{case.name}: FAIL: {sent} Redis commands for {setups:.0f} set-ups")
                    failures += 1
                if not result.get("leases_granted"):
                    log(f"{case.name}: FAIL: Redis granted no lease")
                    failures += 1
    except BenchError as e:
        log(f"smoke ({SERVER_LABEL[kind]}): FAIL: {e}")
        failures += 1
    finally:
        if server is not None:
            server.stop()
    return failures


def capacity_report(env: Env) -> tuple[str, dict | None]:
    """The capacity report of issue 20 (bench/capacity.py): markdown and raw results (None when
    it was skipped or failed; the markdown says why)."""
    import capacity  # bench/, beside this script
    try:
        return capacity.run_report(env.ternd, env.ternbench, env.coturn, env.tmp)
    except BenchError as e:
        log(f"capacity: FAIL: {e}")
        return f"Capacity report (issue 20): FAIL: {e}\n", None


def capacity_only(env: Env, args: argparse.Namespace) -> int:
    """--only capacity: the capacity report alone."""
    text, raw = capacity_report(env)
    print()
    print(text, end="", flush=True)
    if args.out and raw is not None:
        out = pathlib.Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(raw, indent=1) + "\n")
        out.write_text(text)
        log(f"\nwritten: {out} and {out.with_suffix('.json')}")
    return 0


def bench(env: Env, args: argparse.Namespace) -> int:
    if args.only == "capacity":
        return capacity_only(env, args)
    started_wall = datetime.datetime.now().astimezone()
    t0 = time.monotonic()
    # --quick leaves out the full-only cases, unless --only names them.
    cases = [c for c in (loop_cases() if args.loops else all_cases())
             if (args.only is None or args.only in c.name)
             and not (args.quick and c.full_only and args.only is None)]
    if not cases:
        sys.exit(f"bench/run.py: no case name contains {args.only!r}")
    # coturn 4.17 is optional (built from source by bench/build-coturn.sh); without it its
    # columns stay empty rather than reading "fail".
    absent = {"coturn417", "coturn417-fast"} if env.coturn417 is None else set()
    for c in cases:
        c.servers = [s for s in c.servers if s not in absent]
    if not env.can_pin():
        log("warning: fewer than 2 CPUs available; nothing is pinned, figures are not comparable")
    header = header_lines(env, args, started_wall)
    res = Results()
    raw = []
    skipped = 0
    total = sum(len(c.servers) for c in cases) * args.rounds
    done = 0
    for rnd in range(args.rounds):
        for case in cases:
            k = rnd % len(case.servers)
            order = case.servers[k:] + case.servers[:k]
            for server_kind in order:
                done += 1
                where = f"[{done}/{total}] round {rnd + 1} {case.name} {SERVER_LABEL[server_kind]}"
                elapsed = time.monotonic() - t0
                if elapsed + estimate_seconds(env, case) > args.budget:
                    skipped += 1
                    log(f"{where}: SKIPPED, time budget of {args.budget:.0f} s would be exceeded "
                        f"({elapsed:.0f} s elapsed)")
                    res.add(case.name, server_kind, "skipped")
                    continue
                t = time.monotonic()
                try:
                    result = measure(env, case, server_kind)
                except BenchError as e:
                    log(f"{where}: FAIL: {e}")
                    res.add(case.name, server_kind, "fail")
                    raw.append({"round": rnd + 1, "case": case.name, "server": server_kind,
                                "error": str(e)})
                    continue
                res.add(case.name, server_kind, result)
                raw.append({"round": rnd + 1, "case": case.name, "server": server_kind,
                            "result": result})
                log(f"{where}: {summary(case, result)} ({time.monotonic() - t:.1f} s)")
    elapsed = time.monotonic() - t0
    if env.redis is not None:
        cpu = env.redis_cpu()
        where = ("not pinned" if cpu is None else
                 f"pinned to CPU {cpu} with " + ("the server" if cpu == env.server_cpu
                                                 else "ternbench"))
        header.append(f"- fleet: Debian's redis-server {env.redis.version()} on 127.0.0.1 "
                      f"(password, no persistence), {where}, emptied before each fleet-on "
                      "measurement")
    header.append(f"- total elapsed {elapsed:.0f} s (budget {args.budget:.0f} s)"
                  + (f"; {skipped} measurement(s) SKIPPED for time" if skipped else ""))
    capacity_text = ""
    if args.only is None and not args.quick and not args.loops:
        # The capacity report (issue 20) has a time bound of its own, outside the budget.
        capacity_text, capacity_raw = capacity_report(env)
        if capacity_raw is not None:
            raw.append({"case": "capacity", "result": capacity_raw})
    if args.out:
        # The raw results first: a table that fails to render must not lose the measurements.
        out = pathlib.Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(raw, indent=1) + "\n")
    table = render_table(res, cases, header)
    failed = [r for r in raw if "error" in r]
    if failed:
        table += "\nFailed measurements (their cells read 'fail'):\n\n"
        for r in failed:
            lines = [x.strip(" |") for x in r["error"].splitlines() if x.strip(" |")]
            why = lines[0] + (f" … {lines[-1]}" if len(lines) > 1 else "")
            table += f"- round {r['round']} {r['case']} {SERVER_LABEL[r['server']]}: {why}\n"
    if capacity_text:
        table += "\n" + capacity_text
    print()
    print(table, end="", flush=True)
    if args.out:
        out = pathlib.Path(args.out)
        out.write_text(table)
        log(f"\nwritten: {out} and {out.with_suffix('.json')}")
    log(f"total elapsed: {elapsed:.0f} s")
    if failed:
        log(f"{len(failed)} measurement(s) failed; see above")
    return 0


def summary(case: Case, r: dict) -> str:
    parts = []
    for key, fmt in (("relayed_pps", lambda v: f_pps(v) + " relayed/s"),
                     ("cpu_us_per_relayed", lambda v: f_us(v) + "/pkt"),
                     ("rtt_p50_us", lambda v: "p50 " + f_rtt(v)),
                     ("rtt_p99_us", lambda v: "p99 " + f_rtt(v)),
                     ("loss", lambda v: "loss " + f_loss(v)),
                     ("setups_per_s", lambda v: f_int(v) + " setups/s"),
                     ("allocate_p50_us", lambda v: "Allocate p50 " + f_us(v)),
                     ("allocate_p99_us", lambda v: "p99 " + f_us(v)),
                     ("cpu_us_per_setup", lambda v: f_us(v) + "/setup"),
                     ("store_cpu_us_per_setup", lambda v: "Redis " + f_us(v) + "/setup"),
                     ("leased_share", lambda v: f_pct(v) + " leased"),
                     ("bytes_per_allocation", lambda v: f_bytes(v) + "/alloc"),
                     ("fds_per_allocation", lambda v: f_fds(v) + " fd/alloc"),
                     ("mb_per_s", lambda v: f"{v:.0f} MB/s"),
                     ("proxy_cpu_ms_per_mb", lambda v: f"proxy {v:.3f} ms/MB"),
                     ("nginx_cpu_ms_per_mb", lambda v: f"nginx {v:.3f} ms/MB")):
        if isinstance(r.get(key), (int, float)):
            parts.append(fmt(r[key]))
    return ", ".join(parts) or json.dumps(r)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=str(REPO / "build"),
                   help="build directory holding server/ternd and bench/ternbench/ternbench")
    p.add_argument("--quick", action="store_true", help="1 short round (<= 3 min)")
    p.add_argument("--smoke", action="store_true",
                   help="make test: ternd only, UDP throughput 2 s + setup 1 s; fails on 0")
    p.add_argument("--rounds", type=int, help="rounds (default 3, quick 1)")
    p.add_argument("--duration", type=float, help="seconds measured per run (default 3, quick 2)")
    p.add_argument("--warmup", type=float, help="seconds before measuring (default 1, quick 0.5)")
    p.add_argument("--idle-allocations", type=int,
                   help="allocations in the idle case (default 10000, quick 2000)")
    p.add_argument("--budget", type=float,
                   help="seconds; measurements that would end later are skipped "
                        "(default 900, quick 175)")
    p.add_argument("--only", metavar="SUBSTRING",
                   help="run only cases whose name contains this (with --quick, full-run-only "
                        "cases too; e.g. --only fleet)")
    p.add_argument("--loops", action="store_true",
                   help="only the forwarder's loop candidates (epoll, io_uring, busy-poll)")
    p.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                   help="before each measurement, wait up to this long for the machine to be "
                        "idle (a shared machine; default 0: do not wait)")
    p.add_argument("--redis-cpu", choices=("client", "server", "none"), default="client",
                   help="fleet cases: pin Redis to ternbench's CPU (default: the server's core "
                        "carries ternd alone, as with a Redis on another host), the server's, "
                        "or not at all")
    p.add_argument("--ternd", help="the ternd binary to measure (default BUILD/server/ternd)")
    p.add_argument("--coturn417", metavar="PATH",
                   help="coturn 4.17's turnserver (default: BUILD/coturn-4.17/bin/turnserver or "
                        "build-bench/coturn-4.17/bin/turnserver, as bench/build-coturn.sh builds)")
    p.add_argument("--out", help="also write the table here (default BUILD/bench-results.md; "
                                 "raw results beside it as .json)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, logs)")
    args = p.parse_args()
    q = args.quick
    args.rounds = args.rounds or (1 if q else 3)
    # 3 s per run keeps the full table (5 servers in the UDP cases) inside 15 minutes.
    args.duration = args.duration or (2.0 if q else 3.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if q else 1.0)
    args.idle_allocations = args.idle_allocations or (2000 if q else 10000)
    args.budget = args.budget or (175.0 if q else 900.0)
    if args.out is None and not args.smoke:
        args.out = str(pathlib.Path(args.build) / "bench-results.md")

    # SIGTERM (e.g. from make or a CI timeout) unwinds like Ctrl-C, so servers are stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="tern-bench-"))
    env = None
    try:
        env = Env(args, tmp)
        check_binaries(env, need_coturn=not args.smoke)
        env.make_cert()
        if args.smoke:
            return smoke(env)
        return bench(env, args)
    except BenchError as e:
        log(f"bench/run.py: {e}")
        return 1
    except KeyboardInterrupt:
        log("bench/run.py: interrupted")
        return 130
    finally:
        if env is not None and env.redis is not None:
            env.redis.stop()
        if args.keep_tmp:
            log(f"temp dir kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
