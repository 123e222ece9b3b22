#!/usr/bin/env python3
"""fast_path_topology.py TERND TERNCTL [--no-fast-path-keys] [--keep-logs] [--only=0,1,...]

The kernel fast path test (issue 20, tests/fast_path/): ternd with relay.kernel_fast_path
relays ChannelData over UDP through its XDP program between a client and a peer, each in a
network namespace of its own that this test creates and removes:

    tfp-cli  eth0 10.220.1.2 fd20:220:1::2 --- to-cli  10.220.1.1 fd20:220:1::1 (listeners)
                                               tfp-srv: ternd, XDP on to-cli and to-peer
    tfp-peer eth0 10.220.2.2 fd20:220:2::2 --- to-peer 10.220.2.1 fd20:220:2::1 (relay addresses)

The client is tests/fleet/turn_agent.py, the peer tests/fast_path/peer_record.py (echoes and
records), checksums are checked on the wire by tests/fast_path/csum_capture.py. The client and
peer ends have tx checksum offload off and GRO on (SPEC.md: a remote sender's checksum is
complete; native XDP into a veth needs NAPI on the receiving end). The srv does not forward:
nothing reaches the peer unless ternd or its program relays it. Steps (each PASS or FAIL with
its timing):

  0 attach    ternd starts with kernel_fast_path: on; xdp on both srv ends (ip -d link), the
              program tern_fast_path in bpftool prog show, tern_kernel_fast_path_interfaces >= 2
  1 bytes     IPv4 and IPv6: ChannelData payloads of every size 1..64 and a spread up to the
              largest that fits the 1500 MTU (the exact maximum included), random bytes, come
              back from the echoing peer identical, and the peer received exactly them; the
              kernel counters grew by about the count both ways; UdpInCsumErrors and
              Udp6InCsumErrors stay 0 in tfp-cli and tfp-peer; captured relayed packets carry
              a right IPv4 header checksum and UDP checksum (checked here, in Python)
  2 off       restarted with kernel_fast_path: off: the same bytes delivered, fast path
              counters absent or 0, no xdp on the srv ends
  3 stop      within 1 s of (a) a Refresh with lifetime 0, (b) `ternctl revoke`, (b2) DELETE
              /v1/sessions/ID, no echo of a 200/s stream arrives; (c) a SIGHUP whose
              allow_peers no longer covers the peer takes tern_kernel_fast_path_channels to 0
  4 fallback  ternd as nobody: kernel_fast_path: auto starts, logs the one 'kernel fast path
              unavailable' line and relays in user space; on exits non-zero naming
              relay.kernel_fast_path on stderr
  5 sigkill   kill -9 ternd: within 2 s no xdp on the srv ends, its programs gone from bpftool
              prog show, nothing named tern under /sys/fs/bpf

Exit 0 when every step passed, 1 when one failed, 77 (skip) without root or ip netns.
--no-fast-path-keys leaves the relay.kernel_fast_path* keys out of the configurations (for a
ternd without the fast path: the topology, the agent and user-space relaying are exercised, the
fast path checks are expected to fail); --only=1,3 runs just those steps (ternd is started by
the first step that runs), --keep-logs keeps the logs of a passing run.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fleet"))
# tests/fleet/netns_harness.py and tests/fleet/turn_agent.py
from netns_harness import (PROCS, Agent, Cleanup, Namespaces, StepFailed, Steps,  # noqa: E402
                           Ternds, check, delete_namespaces, log, only_steps, preflight,
                           rest_credential, run, stale_namespaces, verdict)
from turn_agent import fast_payload  # noqa: E402

NS = {"srv": "tfp-srv", "cli": "tfp-cli", "peer": "tfp-peer"}
SRV_IF = {"cli": "to-cli", "peer": "to-peer"}  # the srv ends; the other end is eth0
SRV_IP = {("cli", 4): "10.220.1.1", ("cli", 6): "fd20:220:1::1",
          ("peer", 4): "10.220.2.1", ("peer", 6): "fd20:220:2::1"}
END_IP = {("cli", 4): "10.220.1.2", ("cli", 6): "fd20:220:1::2",
          ("peer", 4): "10.220.2.2", ("peer", 6): "fd20:220:2::2"}
PEER_NETS = ["10.220.2.0/24", "fd20:220:2::/64"]
OTHER_NETS = ["10.220.99.0/24", "fd20:220:99::/64"]  # step 3c: allow_peers without the peer
TURN_PORT = 3478
PEER_PORT = 40000
METRICS_PORT = 9641
REALM = "fastpath.test"
MTU = 1500
# The largest ChannelData payload whose datagram fits the MTU: IP + UDP + 4-byte header.
MAX_PAYLOAD = {4: MTU - 20 - 8 - 4, 6: MTU - 40 - 8 - 4}
# The first datagrams of a flow may go through user space until the program has learned both
# neighbours; after the warm-up echo they should not, but the count may be short by this many.
SLACK = 5


def host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def sizes_for(family: int) -> list[int]:
    """1..64 all, then a spread up to the maximum: every 5th size, the powers of two and their
    neighbours, and the last 8 sizes up to the exact maximum."""
    top = MAX_PAYLOAD[family]
    sizes = set(range(1, 65)) | set(range(65, top, 5)) | set(range(top - 7, top + 1))
    for p in (128, 256, 512, 1024):
        sizes |= {p - 1, p, p + 1}
    return sorted(n for n in sizes if 1 <= n <= top)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- processes

class LineProc:
    """A helper process spoken to in lines; its output lines are read by a thread, so that every
    wait for one has a deadline."""

    def __init__(self, cmd: list[str], stderr_path: str) -> None:
        self.stderr = open(stderr_path, "w")
        self.p = PROCS.start(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=self.stderr, text=True, bufsize=1)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def readline(self, timeout: float, what: str) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise StepFailed(f"{what}: no answer in {timeout} s") from None
        if line is None:
            raise StepFailed(f"{what}: the process exited ({self.p.poll()})")
        return line

    def send(self, line: str) -> None:
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def stop(self) -> None:
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(timeout=3)


# --------------------------------------------------------------------------- topology

class Topology(Namespaces):
    def __init__(self) -> None:
        super().__init__(NS)

    def create(self) -> None:
        super().create()
        srv = NS["srv"]
        for role in ("cli", "peer"):
            ns = NS[role]
            run(["ip", "link", "add", "name", SRV_IF[role], "netns", srv, "mtu", str(MTU),
                 "type", "veth", "peer", "name", "eth0", "netns", ns, "mtu", str(MTU)])
            for fam, plen in ((4, 24), (6, 64)):
                extra = ["nodad"] if fam == 6 else []
                run(["ip", "-n", srv, "addr", "add", f"{SRV_IP[role, fam]}/{plen}",
                     "dev", SRV_IF[role], *extra])
                run(["ip", "-n", ns, "addr", "add", f"{END_IP[role, fam]}/{plen}",
                     "dev", "eth0", *extra])
            run(["ip", "-n", srv, "link", "set", SRV_IF[role], "up"])
            run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            run(["ip", "-n", ns, "route", "add", "default", "via", SRV_IP[role, 4]])
            run(["ip", "-n", ns, "-6", "route", "add", "default", "via", SRV_IP[role, 6]])
            # SPEC.md: complete checksums from the client and peer, NAPI on their receive side.
            self.sh(role, "ethtool", "-K", "eth0", "tx", "off")
            self.sh(role, "ethtool", "-K", "eth0", "gro", "on")
        # No forwarding on the srv: only ternd and its program carry anything across.
        self.sh("srv", "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
        self.sh("srv", "sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=0")

    # ---- observations
    def xdp(self, ifname: str) -> dict:
        """{"attached": bool, "mode": "xdp"|"xdpgeneric"|..., "prog_id": int|None, "line"}
        from `ip -d link show` in tfp-srv."""
        out = self.sh("srv", "ip", "-d", "link", "show", "dev", ifname).stdout
        first = out.splitlines()[0] if out else ""
        m = re.search(r"\b(xdp|xdpgeneric|xdpdrv|xdpoffload|xdpmulti)\b", first)
        pid = re.search(r"prog/xdp id (\d+)", out)
        return {"attached": bool(m), "mode": m.group(1) if m else None,
                "prog_id": int(pid.group(1)) if pid else None, "line": first.strip()}

    def udp_csum_errors(self, role: str) -> dict:
        """UdpInCsumErrors and Udp6InCsumErrors (and the InErrors beside them) of a namespace,
        from /proc/net/snmp and /proc/net/snmp6 read inside it."""
        out = {}
        snmp = self.sh(role, "cat", "/proc/net/snmp").stdout.splitlines()
        udp = [line.split()[1:] for line in snmp if line.startswith("Udp:")]
        if len(udp) >= 2:
            table = dict(zip(udp[0], udp[1]))
            out["UdpInCsumErrors"] = int(table.get("InCsumErrors", -1))
            out["UdpInErrors"] = int(table.get("InErrors", -1))
        for line in self.sh(role, "cat", "/proc/net/snmp6").stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in ("Udp6InCsumErrors", "Udp6InErrors"):
                out[parts[0]] = int(parts[1])
        return out


def bpftool_progs() -> list[dict]:
    p = run(["bpftool", "-j", "prog", "show"], check_rc=False)
    try:
        return json.loads(p.stdout or "[]")
    except json.JSONDecodeError:
        return []


def bpftool_prog(prog_id: int) -> dict | None:
    p = run(["bpftool", "-j", "prog", "show", "id", str(prog_id)], check_rc=False)
    if p.returncode != 0:
        return None
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        return None


def bpffs_tern_entries(topo: Topology) -> list[str]:
    """Anything named *tern* under /sys/fs/bpf, seen from the host and from tfp-srv."""
    found = [path for path in glob.glob("/sys/fs/bpf/**", recursive=True)
             if "tern" in os.path.basename(path)]
    p = topo.sh("srv", "sh", "-c", "find /sys/fs/bpf -iname '*tern*' 2>/dev/null", check_rc=False)
    found += [f"tfp-srv:{line}" for line in p.stdout.split()]
    return found


# --------------------------------------------------------------------------- ternd

def parse_metrics(text: str) -> dict[str, float]:
    """'name{labels}' (or 'name') -> value."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            pass
    return out


def metric(values: dict[str, float], name: str, **labels: str) -> float | None:
    """The sum of the series of `name` whose labels include `labels`; None when absent."""
    total = None
    for key, value in values.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total = (total or 0.0) + value
    return total


class Ternd(Ternds):
    def __init__(self, topo: Topology, tmp: str, ternd: str, ternctl: str,
                 fast_path_keys: bool) -> None:
        super().__init__(topo, tmp, ternd, ternctl)
        self.fast_path_keys = fast_path_keys
        self.static_password = secrets.token_hex(12)
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.http: LineProc | None = None

    # ---- configuration
    def write_config(self, name: str, mode: str, peers: list[str] | None = None,
                     unprivileged: bool = False) -> str:
        """mode: on, auto or off. unprivileged: static user instead of the REST secret (whose
        file is root's), no admin API; the file readable by everyone."""
        peers = PEER_NETS if peers is None else peers
        fast = ""
        if self.fast_path_keys:
            fast = f"  kernel_fast_path: {mode}\n"
            if mode != "off":
                fast += f"  kernel_fast_path_interfaces: [ {SRV_IF['cli']}, {SRV_IF['peer']} ]\n"
        if unprivileged:
            auth = f"  users: {{ fpuser: {{ password: \"{self.static_password}\" }} }}\n"
            admin = ""
        else:
            auth = f"  secrets_file: {self.tmp}/secrets\n"
            admin = (f"admin:\n  token_file: {self.tmp}/admin-token\n"
                     f"  revocations_file: {self.tmp}/revocations\n")
        text = f"""# written by tests/fast_path/fast_path_topology.py
realm: {REALM}
listen: [ "udp://{SRV_IP['cli', 4]}:{TURN_PORT}", "udp://[{SRV_IP['cli', 6]}]:{TURN_PORT}" ]
software: "tern-fast-path-test"
threads: 1
auth:
{auth}relay:
  addresses: [ {SRV_IP['peer', 4]}, "{SRV_IP['peer', 6]}" ]
  ports: 50000-50199
  allow_peers: [ {", ".join(f'"{p}"' for p in peers)} ]
{fast}limits: {{ shutdown_grace: 1 }}
log: {{ level: info }}
metrics: {{ listen: "127.0.0.1:{METRICS_PORT}" }}
{admin}"""
        path = os.path.join(self.tmp, name)
        with open(path + ".new", "w") as f:
            f.write(text)
        os.chmod(path + ".new", 0o644 if unprivileged else 0o600)
        os.replace(path + ".new", path)
        return path

    # ---- the process
    def start(self, config: str, as_nobody: bool = False) -> subprocess.Popen:
        self.starts += 1
        self.out_path = os.path.join(self.tmp, f"ternd.{self.starts}.out")
        self.err_path = os.path.join(self.tmp, f"ternd.{self.starts}.err")
        self.config = config
        prefix = []
        if as_nobody:
            prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                      "--inh-caps=-all", "--bounding-set=-all"]
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = PROCS.start(self.topo.exec("srv", *prefix, self.ternd,
                                                   "--config", config),
                                    stdout=out, stderr=err)
        log(f"ternd start {self.starts} (pid {self.proc.pid}{', as nobody' if as_nobody else ''})"
            f" with {os.path.basename(config)}")
        return self.proc

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self, lines: int = 40) -> str:
        text = ""
        for path in (getattr(self, "out_path", None), getattr(self, "err_path", None)):
            if path and os.path.exists(path):
                with open(path, errors="replace") as f:
                    text += "".join(f.readlines()[-lines:])
        return text

    def stderr_text(self) -> str:
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def all_output(self) -> str:
        return self.output(100000)

    def stop(self) -> None:
        """SIGINT (a shutdown without a drain), SIGKILL after 10 s."""
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log("ternd did not stop 10 s after SIGINT; SIGKILL")
            self.proc.kill()
            self.proc.wait(timeout=5)

    def wait_ready(self, agent: Agent, timeout: float = 15) -> float:
        """Until a Binding is answered on the IPv4 and the IPv6 listener; returns the time."""
        start = time.monotonic()
        deadline = start + timeout
        pending = [f"{host(SRV_IP['cli', 4])}:{TURN_PORT}", f"{host(SRV_IP['cli', 6])}:{TURN_PORT}"]
        while pending:
            if not self.alive():
                raise StepFailed(f"ternd exited {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise StepFailed(f"ternd did not answer a Binding on {pending} in {timeout} s:\n"
                                 f"{self.output()}")
            r = agent.call("probe", server=pending[0])
            if r.get("code") == 200:
                pending.pop(0)
            else:
                time.sleep(0.1)
        return time.monotonic() - start

    # ---- the metrics and admin endpoint, through one helper in tfp-srv
    def request(self, method: str, path: str, body: str = "", token: bool = True
                ) -> tuple[int, dict | str]:
        if self.http is None or self.http.p.poll() is not None:
            self.http = LineProc(self.topo.exec("srv", sys.executable,
                                                os.path.join(HERE, "ns_http.py")),
                                 os.path.join(self.tmp, "ns_http.stderr"))
        self.http.send(json.dumps({"method": method, "port": METRICS_PORT, "path": path,
                                   "token": self.token if token else "", "body": body}))
        out = json.loads(self.http.readline(8, f"{method} {path}"))
        if "error" in out:
            raise StepFailed(f"{method} {path}: {out['error']}")
        try:
            return out["status"], json.loads(out["body"])
        except json.JSONDecodeError:
            return out["status"], out["body"]

    def metrics(self) -> dict[str, float]:
        status, body = self.request("GET", "/metrics", token=False)
        if status != 200 or not isinstance(body, str):
            raise StepFailed(f"GET /metrics answered {status}")
        return parse_metrics(body)

    def ternctl_cmd(self, *args: str) -> subprocess.CompletedProcess:
        return run(self.topo.exec("srv", self.ternctl, *args, "--config", self.config),
                   check_rc=False)


# --------------------------------------------------------------------------- the steps

FP_PEER = "tern_kernel_fast_path_packets_total"


class Run(Steps):
    def __init__(self, topo: Topology, t: Ternd, agent: Agent, peer: LineProc, tmp: str,
                 only: list[str] | None) -> None:
        super().__init__(agent, only)
        self.topo = topo
        self.t = t
        self.peer = peer
        self.tmp = tmp
        self.mode: str | None = None  # the mode of the running root ternd
        self.captures = 0

    # -- helpers
    def server(self, family: int) -> str:
        return f"{host(SRV_IP['cli', family])}:{TURN_PORT}"

    def peer_addr(self, family: int) -> str:
        return f"{host(END_IP['peer', family])}:{PEER_PORT}"

    def cred(self, user: str) -> tuple[str, str]:
        return rest_credential(self.t.secret, user)

    def allocate(self, family: int, cred: tuple[str, str]) -> dict:
        r = self.a.call("allocate_af", server=self.server(family), username=cred[0],
                        password=cred[1])
        check(r["code"] == 200, f"IPv{family} Allocate got {r['code']} {r.get('reason')}")
        check((r.get("relayed") or "").rpartition(":")[0] == SRV_IP["peer", family],
              f"IPv{family} relayed address {r.get('relayed')}, expected one on "
              f"{SRV_IP['peer', family]}")
        self.open_allocs.add(r["alloc"])
        return r

    def bind(self, alloc: str, family: int, channel: int) -> None:
        r = self.a.call("channel_bind", alloc=alloc, peer=self.peer_addr(family),
                        channel=channel)
        check(r["code"] == 200, f"IPv{family} ChannelBind got {r['code']} {r.get('reason')}")

    def warm_up(self, alloc: str, channel: int, family: int) -> None:
        e = self.a.call("echo", alloc=alloc, channel=channel, count=5, timeout=2)
        check(e["received"] == e["sent"], f"IPv{family} warm-up echo: {e['received']}/"
              f"{e['sent']} came back")

    def restart(self, mode: str) -> str:
        self.t.stop()
        self.t.start(self.t.write_config(f"ternd-{mode}.yaml", mode))
        took = self.t.wait_ready(self.a)
        self.mode = mode
        return f"ternd ({mode}) answered on both listeners in {took:.2f} s"

    def ensure(self, mode: str) -> None:
        if self.mode != mode or not self.t.alive():
            self.restart(mode)

    def metrics_settled(self) -> dict[str, float]:
        """The metrics once the kernel counters are read back (each sweep, <= 1 s late)."""
        time.sleep(1.2)
        return self.t.metrics()

    def wait_metric(self, name: str, pred, timeout: float, **labels) -> tuple[float | None, float]:
        """Polls until pred(value) holds; returns (value, seconds waited)."""
        start = time.monotonic()
        while True:
            value = metric(self.t.metrics(), name, **labels)
            waited = time.monotonic() - start
            if pred(value) or waited > timeout:
                return value, waited
            time.sleep(0.05)

    def start_capture(self, role: str, *args: str) -> LineProc:
        self.captures += 1
        c = LineProc(self.topo.exec(role, sys.executable, os.path.join(HERE, "csum_capture.py"),
                                    "eth0", *args),
                     os.path.join(self.tmp, f"capture.{self.captures}.stderr"))
        line = c.readline(5, f"the packet capture in {NS[role]}")
        check(line == "ready", f"the packet capture in {NS[role]} said {line!r}")
        return c

    @staticmethod
    def end_capture(c: LineProc) -> dict:
        c.send("stop")
        out = json.loads(c.readline(5, "the packet capture's summary"))
        c.stop()
        return out

    def peer_records(self) -> list[list]:
        self.peer.send("dump")
        return json.loads(self.peer.readline(5, "the peer's records"))["records"]

    def xdp_both(self) -> dict[str, dict]:
        return {ifname: self.topo.xdp(ifname) for ifname in SRV_IF.values()}

    # -- 0: the program is attached
    def step_attach(self) -> str:
        self.t.stop()
        self.t.start(self.t.write_config("ternd-on.yaml", "on"))
        took = self.t.wait_ready(self.a)
        self.mode = "on"
        fails, notes = [], [f"ternd answered on both listeners in {took:.2f} s"]
        xdp = self.xdp_both()
        for ifname, x in xdp.items():
            notes.append(f"{ifname}: {x['mode'] or 'no xdp'} prog {x['prog_id']}")
            if not x["attached"]:
                fails.append(f"`ip -d link show dev {ifname}` in tfp-srv shows no xdp: "
                             f"{x['line']}")
        progs = [p for p in bpftool_progs() if p.get("name") == "tern_fast_path"]
        ours = [p for p in progs if p.get("id") in {x["prog_id"] for x in xdp.values()}]
        notes.append(f"bpftool prog show: {len(progs)} tern_fast_path "
                     f"(ids {[p.get('id') for p in progs]}), {len(ours)} of them on the srv ends")
        if not ours:
            fails.append("bpftool prog show lists no tern_fast_path program attached to the srv "
                         f"ends (tern_fast_path ids: {[p.get('id') for p in progs]})")
        status, text = self.t.request("GET", "/metrics", token=False)
        with open(os.path.join(self.tmp, "metrics.step0.txt"), "w") as f:
            f.write(text if isinstance(text, str) else json.dumps(text))
        ifaces = metric(parse_metrics(text if isinstance(text, str) else ""),
                        "tern_kernel_fast_path_interfaces")
        notes.append(f"tern_kernel_fast_path_interfaces {ifaces}")
        if ifaces is None or ifaces < 2:
            fails.append(f"tern_kernel_fast_path_interfaces is {ifaces}, expected >= 2")
        line = [ln for ln in self.t.all_output().splitlines() if "kernel fast path" in ln]
        notes.append(f"log: {line[0].strip() if line else '(no kernel fast path line)'}")
        return verdict(fails, notes)

    # -- 1 and 2: every payload size, both families
    def bytes_round(self, family: int, kernel: bool) -> tuple[list[str], list[str]]:
        fails, notes = [], []
        tag = f"IPv{family}"
        sizes = sizes_for(family)
        seed = f"fast-path-bytes-v{family}"  # the same bytes in step 1 and step 2
        r = self.allocate(family, self.cred(f"bytes{family}"))
        alloc = r["alloc"]
        channel = 0x4000 + family
        self.bind(alloc, family, channel)
        self.warm_up(alloc, channel, family)
        if kernel:
            chans, waited = self.wait_metric("tern_kernel_fast_path_channels",
                                             lambda v: v is not None and v >= 1, 2.0)
            notes.append(f"{tag}: tern_kernel_fast_path_channels {chans} after the bind")
            if chans is None or chans < 1:
                fails.append(f"{tag}: tern_kernel_fast_path_channels is {chans} with a channel "
                             "bound")
        before = self.metrics_settled()
        csum_before = {role: self.topo.udp_csum_errors(role) for role in ("cli", "peer")}
        self.peer_records()  # forget the warm-up
        cap_peer = self.start_capture("peer", "--dport", str(PEER_PORT), "--max", "2000",
                                      "--seconds", "30")
        cap_cli = self.start_capture("cli", "--sport", str(TURN_PORT), "--channeldata",
                                     "--max", "2000", "--seconds", "30")
        t = time.monotonic()
        p = self.a.call("payloads", wait_s=30, alloc=alloc, channel=channel, sizes=sizes,
                        seed=seed, gap_ms=1, timeout=5)
        took = time.monotonic() - t
        n = len(sizes)
        notes.append(f"{tag}: {p['identical']}/{n} payloads of 1..{MAX_PAYLOAD[family]} bytes "
                     f"echoed identical in {took:.2f} s")
        if p["identical"] != n or p["corrupt"] or p["wrong_channel"] or p["send_errors"]:
            fails.append(f"{tag}: {p['identical']}/{n} echoed identical; missing sizes "
                         f"{p['missing'][:30]}, corrupt {p['corrupt'][:5]}, wrong channel "
                         f"{p['wrong_channel']}, send errors {p['send_errors']}")
        if p["duplicates"]:
            fails.append(f"{tag}: {p['duplicates']} echoes arrived twice")
        # What reached the peer: exactly the payloads sent, each once.
        records = self.peer_records()
        want = sorted(sha(fast_payload(seed, size)) for size in sizes)
        got = sorted(rec[2] for rec in records if rec[0] == family)
        if got != want:
            wrong = [rec[1] for rec in records if rec[2] not in set(want)]
            fails.append(f"{tag}: the peer received {len(got)} datagrams for {n} sent; "
                         f"{len(set(want) - set(got))} payloads never arrived intact, "
                         f"{len(wrong)} datagrams matched no payload (lengths {wrong[:10]})")
        else:
            notes.append(f"{tag}: the peer received each payload once, byte for byte")
        caps = {"peer": self.end_capture(cap_peer), "cli": self.end_capture(cap_cli)}
        after = self.metrics_settled()
        # Receivers checked every checksum: no UDP checksum error in either namespace.
        for role in ("cli", "peer"):
            now = self.topo.udp_csum_errors(role)
            bad = {k: v for k, v in now.items() if v != 0}
            if bad:
                fails.append(f"{tag}: {NS[role]} counts UDP receive errors {bad} (before "
                             f"{csum_before[role]})")
        notes.append(f"{tag}: UdpInCsumErrors/Udp6InCsumErrors 0 in tfp-cli and tfp-peer")
        # The checksums on the wire, checked here.
        for role, c in caps.items():
            where = "peer (to_peer)" if role == "peer" else "client (to_client)"
            notes.append(f"{tag} capture at the {where}: {c['captured']} captured, "
                         f"{c['verified']} verified, {c['partial']} deferred-checksum, "
                         f"{c['bad_count']} bad")
            if c["bad_count"]:
                fails.append(f"{tag}: captured datagrams to the {where} with wrong checksums or "
                             f"lengths: {c['bad'][:5]}")
            if kernel:
                # Relayed by the program = a complete checksum on the wire (user space's leave
                # the srv with a deferred one). After the warm-up every size should be, the
                # largest that fits the MTU included.
                top = MAX_PAYLOAD[family] + (4 if role == "cli" else 0)
                user = sorted(c["partial_sizes"])
                if user:
                    notes.append(f"{tag}: sizes relayed by user space to the {where}: "
                                 f"{user[:20]}")
                if top not in c["sizes"]:
                    fails.append(f"{tag}: the largest datagram to the {where} (payload {top}) "
                                 f"was not relayed by the kernel (user space took sizes "
                                 f"{user[:20]})")
            if kernel and c["verified"] < min(20, n):
                fails.append(f"{tag}: only {c['verified']} of {c['captured']} datagrams captured "
                             f"at the {where} carried a complete checksum to verify "
                             f"({c['partial']} deferred: relayed by user space)")
        # The kernel counters.
        grew = {d: (metric(after, FP_PEER, direction=d) or 0) -
                (metric(before, FP_PEER, direction=d) or 0) for d in ("to_peer", "to_client")}
        passed = {reason: (metric(after, "tern_kernel_fast_path_passed_total", reason=reason)
                           or 0) - (metric(before, "tern_kernel_fast_path_passed_total",
                                           reason=reason) or 0)
                  for reason in ("no_entry", "no_neighbor", "other")}
        relayed = (metric(after, "tern_relayed_packets_total") or 0) - \
            (metric(before, "tern_relayed_packets_total") or 0)
        notes.append(f"{tag}: kernel packets to_peer +{grew['to_peer']:.0f}, to_client "
                     f"+{grew['to_client']:.0f} for {n}; passed {passed}; "
                     f"tern_relayed_packets_total +{relayed:.0f}")
        if kernel:
            for d, g in grew.items():
                if not n - SLACK <= g <= n:
                    fails.append(f"{tag}: {FP_PEER}{{direction=\"{d}\"}} grew by {g:.0f} for "
                                 f"{n} datagrams (expected {n - SLACK}..{n}); passed {passed}")
            if relayed < 2 * n - 2 * SLACK:
                fails.append(f"{tag}: tern_relayed_packets_total grew by only {relayed:.0f} for "
                             f"{2 * n} relayed datagrams (the kernel's are to be included)")
        else:
            for d in ("to_peer", "to_client"):
                v = metric(after, FP_PEER, direction=d)
                if v not in (None, 0.0):
                    fails.append(f"{tag}: with kernel_fast_path off {FP_PEER}{{direction=\"{d}\"}}"
                                 f" is {v}")
        self.release(alloc)
        return fails, notes

    def bytes_rounds(self, kernel: bool, fails: list[str], notes: list[str]) -> str:
        """bytes_round for IPv4 and IPv6, after what the step found so far; the step's detail."""
        for family in (4, 6):
            f, n = self.bytes_round(family, kernel)
            fails += f
            notes += n
        return verdict(fails, notes)

    def step_bytes(self) -> str:
        self.ensure("on")
        return self.bytes_rounds(True, [], [])

    def step_off(self) -> str:
        notes = [self.restart("off")]
        fails = []
        for ifname, x in self.xdp_both().items():
            if x["attached"]:
                fails.append(f"kernel_fast_path off, yet {ifname} has {x['mode']} prog "
                             f"{x['prog_id']}")
        m = self.t.metrics()
        fp = {k: v for k, v in m.items() if k.startswith("tern_kernel_fast_path") and v != 0}
        if fp:
            fails.append(f"kernel_fast_path off, yet fast path metrics are non-zero: {fp}")
        return self.bytes_rounds(False, fails, notes)

    # -- 3: the kernel stops within a second
    def stream_then(self, family: int, user: str, action, what: str) -> str:
        """A 200/s stream through a fresh allocation; after 1 s, action(alloc, r) ends it
        (returns a note). No echo may arrive more than 1 s after the action answered, and the
        kernel's channel entries are gone."""
        problems = []
        r = self.allocate(family, self.cred(user))
        alloc = r["alloc"]
        channel = 0x4100 + family
        self.bind(alloc, family, channel)
        self.warm_up(alloc, channel, family)
        chans, _ = self.wait_metric("tern_kernel_fast_path_channels",
                                    lambda v: v is not None and v >= 1, 2.0)
        if chans is None or chans < 1:
            problems.append(f"tern_kernel_fast_path_channels is {chans} with a channel bound")
        before = metric(self.t.metrics(), FP_PEER, direction="to_peer") or 0
        seconds = 3.5
        sid = self.a.send("stream", alloc=alloc, channel=channel, rate=200, seconds=seconds,
                          tail=0.3)
        time.sleep(1.0)
        t_ask = time.monotonic()
        note = action(alloc, r)
        t_done = time.monotonic()
        s = self.a.wait(sid, timeout=seconds + 10)
        self.close(alloc)
        after_fp = metric(self.metrics_settled(), FP_PEER, direction="to_peer") or 0
        last = s.get("last_echo")
        late = (last - t_done) if last is not None else None
        detail = (f"{what}: {note} in {(t_done - t_ask) * 1000:.0f} ms; stream {s['received']}/"
                  f"{s['sent']} echoes, the last {late * 1000:.0f} ms after the answer"
                  if late is not None else f"{what}: {note}; no echo at all")
        detail += f"; kernel to_peer +{after_fp - before:.0f} during the stream"
        if last is None or s["first_echo"] is None or s["first_echo"] >= t_ask:
            problems.append("no echo before the action: nothing to stop")
        if after_fp - before < 100:
            problems.append("the stream did not go through the kernel (the check proves "
                            "nothing about it)")
        if late is not None and late > 1.0:
            problems.append("echoes went on more than 1 s after the answer")
        chans, waited = self.wait_metric("tern_kernel_fast_path_channels",
                                         lambda v: v is not None and v == 0, 2.0)
        detail += f"; tern_kernel_fast_path_channels {chans} {waited * 1000:.0f} ms later"
        if chans != 0:
            problems.append(f"tern_kernel_fast_path_channels still {chans}")
        check(not problems, f"{detail}: {'; '.join(problems)}")
        return detail

    def step_stop(self) -> str:
        self.ensure("on")
        notes, fails = [], []

        def refresh0(alloc: str, _r: dict) -> str:
            r = self.a.call("refresh", alloc=alloc, lifetime=0)
            check(r["code"] == 200, f"Refresh lifetime 0 got {r['code']} {r.get('reason')}")
            return "Refresh 0 answered 200"

        def revoke(_alloc: str, _r: dict) -> str:
            p = self.t.ternctl_cmd("revoke", "stopper-revoke")
            check(p.returncode == 0, f"ternctl revoke exited {p.returncode}: {p.stdout}{p.stderr}")
            return f"ternctl revoke: {p.stdout.strip()[:120]}"

        def kill(_alloc: str, r: dict) -> str:
            status, body = self.t.request("GET", "/v1/sessions?user=stopper-kill")
            check(status == 200 and isinstance(body, dict) and body.get("count") == 1,
                  f"GET /v1/sessions?user=stopper-kill answered {status} {body}")
            sid = body["sessions"][0]["id"]
            status, body = self.t.request("DELETE", f"/v1/sessions/{sid}")
            check(status == 200, f"DELETE /v1/sessions/{sid} answered {status} {body}")
            return f"DELETE /v1/sessions/{sid} answered {status}"

        for name, family, user, action in (("(a) Refresh 0", 4, "stopper-refresh", refresh0),
                                           ("(b) revoke", 6, "stopper-revoke", revoke),
                                           ("(b2) kill", 4, "stopper-kill", kill)):
            try:
                notes.append(self.stream_then(family, user, action, f"{name} IPv{family}"))
            except StepFailed as e:
                fails.append(str(e))
        try:
            notes.append(self.sighup_refuses())
        except StepFailed as e:
            fails.append(str(e))
        return verdict(fails, notes)

    def entry_maps(self) -> dict[str, int]:
        """The program's channel and peer maps (name -> map id), found through bpftool from the
        program attached to the srv ends."""
        found = {}
        ids = {x["prog_id"] for x in self.xdp_both().values() if x["prog_id"]}
        for pid in ids:
            for mid in (bpftool_prog(pid) or {}).get("map_ids", []):
                p = run(["bpftool", "-j", "map", "show", "id", str(mid)], check_rc=False)
                try:
                    name = json.loads(p.stdout).get("name", "")
                except json.JSONDecodeError:
                    continue
                if "chan" in name or "peer" in name:
                    found[name] = mid
        return found

    @staticmethod
    def map_entries(mid: int) -> int | None:
        p = run(["bpftool", "-j", "map", "dump", "id", str(mid)], check_rc=False)
        try:
            return len(json.loads(p.stdout))
        except json.JSONDecodeError:
            return None

    def sighup_refuses(self) -> str:
        """(c): with allow_peers no longer covering the peer, the kernel entries go within 1 s
        of the SIGHUP: the gauge and, through bpftool, the maps themselves. User space may go on
        relaying the existing permissions (documented), so the echoes are not judged."""
        what = "(c) SIGHUP refusing the peer"
        allocs = []
        for family in (4, 6):
            r = self.allocate(family, self.cred(f"hup{family}"))
            self.bind(r["alloc"], family, 0x4200 + family)
            self.warm_up(r["alloc"], 0x4200 + family, family)
            allocs.append(r["alloc"])
        chans, _ = self.wait_metric("tern_kernel_fast_path_channels",
                                    lambda v: v is not None and v >= 2, 2.0)
        problems = []
        if chans is None or chans < 2:
            problems.append(f"tern_kernel_fast_path_channels is {chans} with two channels "
                            "bound: nothing to take out")
        maps = self.entry_maps()
        before = {name: self.map_entries(mid) for name, mid in maps.items()}
        if not maps:
            problems.append("no channel or peer map found beside the program (bpftool)")
        self.t.write_config("ternd-on.yaml", "on", peers=OTHER_NETS)
        # Each look takes some milliseconds, so each is bracketed: an entry seen is known to be
        # there at the look's start (`seen`, the last such time), a 0 is known by its end
        # (`gone`). Late means seen more than 1 s after the SIGHUP.
        names = ["gauge", *maps]
        gone: dict[str, float] = {}
        seen: dict[str, float] = {}

        def look(name: str) -> None:
            t = time.monotonic() - t_hup
            value = (metric(self.t.metrics(), "tern_kernel_fast_path_channels")
                     if name == "gauge" else self.map_entries(maps[name]))
            if value == 0:
                gone[name] = time.monotonic() - t_hup
            else:
                seen[name] = t

        try:
            t_hup = time.monotonic()
            self.t.proc.send_signal(signal.SIGHUP)
            while len(gone) < len(names) and time.monotonic() - t_hup < 3.0:
                for name in names:
                    if name not in gone:
                        look(name)
                time.sleep(0.005)
        finally:
            self.t.write_config("ternd-on.yaml", "on")
            self.t.proc.send_signal(signal.SIGHUP)
        reload_lines = [ln.strip() for ln in self.t.all_output().splitlines()
                        if "SIGHUP" in ln and " warning " not in ln][-2:]
        timing = ", ".join(f"{name} {before.get(name, chans)} -> 0 between "
                           f"{seen.get(name, 0) * 1000:.0f} and {gone[name] * 1000:.0f} ms"
                           if name in gone else
                           f"{name} {before.get(name, chans)} -> not 0 in 3 s"
                           for name in names)
        detail = (f"{what}: {timing} after the SIGHUP (gauge: tern_kernel_fast_path_channels);"
                  f" log: {reload_lines[:1]}")
        late = [name for name in names if name not in gone or seen.get(name, 0) > 1.0]
        if late:
            problems.append(f"{', '.join(late)} still there more than 1 s after the SIGHUP")
        check(not problems, f"{detail}: {'; '.join(problems)}")
        time.sleep(0.3)  # the restoring SIGHUP
        for alloc in allocs:
            self.release(alloc)
        return detail

    # -- 4: no privileges
    def step_fallback(self) -> str:
        self.t.stop()
        self.mode = None
        os.chmod(self.tmp, 0o755)
        fails, notes = [], []
        self.t.start(self.t.write_config("ternd-auto-nobody.yaml", "auto", unprivileged=True),
                     as_nobody=True)
        took = self.t.wait_ready(self.a)
        notes.append(f"auto as nobody answered in {took:.2f} s")
        deadline = time.monotonic() + 3
        while True:
            lines = [ln.strip() for ln in self.t.all_output().splitlines()
                     if "kernel fast path unavailable" in ln]
            if lines or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if len(lines) != 1:
            fails.append(f"expected one 'kernel fast path unavailable' line, found {len(lines)}: "
                         f"{lines[:3]}; output:\n{self.t.output(15)}")
        else:
            notes.append(f"log: {lines[0]}")
            if "relaying in user space" not in lines[0]:
                fails.append(f"the unavailable line lacks 'relaying in user space': {lines[0]}")
        r = self.a.call("allocate_af", server=self.server(4), username="fpuser",
                        password=self.t.static_password)
        check(r["code"] == 200, f"Allocate (static user) got {r['code']} {r.get('reason')}")
        self.open_allocs.add(r["alloc"])
        self.bind(r["alloc"], 4, 0x4300)
        e = self.a.call("echo", alloc=r["alloc"], channel=0x4300, count=5, timeout=2)
        notes.append(f"user-space echo {e['received']}/{e['sent']}")
        if e["received"] != e["sent"]:
            fails.append(f"the echo through ternd (auto, no privileges) got {e}")
        m = self.t.metrics()
        ifaces = metric(m, "tern_kernel_fast_path_interfaces")
        notes.append(f"tern_kernel_fast_path_interfaces {ifaces}")
        if ifaces not in (None, 0.0):
            fails.append(f"tern_kernel_fast_path_interfaces is {ifaces} without privileges")
        for ifname, x in self.xdp_both().items():
            if x["attached"]:
                fails.append(f"{ifname} has {x['mode']} without privileges")
        self.release(r["alloc"])
        self.t.stop()
        # on, same user: the start fails.
        proc = self.t.start(self.t.write_config("ternd-on-nobody.yaml", "on", unprivileged=True),
                            as_nobody=True)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.t.stop()
            rc = None
        err = self.t.stderr_text()
        named = [ln.strip() for ln in err.splitlines() if "relay.kernel_fast_path" in ln]
        notes.append(f"on as nobody: exit {rc}; stderr: {named[0] if named else err.strip()[:200]}")
        if rc is None:
            fails.append("with kernel_fast_path: on and no privileges ternd was still running "
                         "after 10 s")
        elif rc == 0:
            fails.append("with kernel_fast_path: on and no privileges ternd exited 0")
        if not named:
            fails.append(f"stderr does not name relay.kernel_fast_path: {err.strip()[-300:]!r}")
        return verdict(fails, notes)

    # -- 5: SIGKILL leaves nothing behind
    def step_sigkill(self) -> str:
        self.t.stop()
        self.mode = None
        baseline = {p.get("id") for p in bpftool_progs() if p.get("name") == "tern_fast_path"}
        self.t.start(self.t.write_config("ternd-on.yaml", "on"))
        self.t.wait_ready(self.a)
        self.mode = "on"
        r = self.allocate(4, self.cred("sigkill"))
        self.bind(r["alloc"], 4, 0x4400)
        self.warm_up(r["alloc"], 0x4400, 4)
        xdp = self.xdp_both()
        ids = {x["prog_id"] for x in xdp.values() if x["prog_id"]}
        check(all(x["attached"] for x in xdp.values()) and ids,
              f"before the kill the srv ends have no xdp: {xdp}")
        loaded = {p.get("id") for p in bpftool_progs() if p.get("name") == "tern_fast_path"}
        ternds = loaded - baseline  # every tern_fast_path this ternd loaded
        pinned_before = bpffs_tern_entries(self.topo)
        self.t.proc.send_signal(signal.SIGKILL)
        t_kill = time.monotonic()
        self.t.proc.wait(timeout=5)
        self.mode = None
        self.close(r["alloc"])
        while True:
            xdp = self.xdp_both()
            left_xdp = [f"{i} {x['mode']}" for i, x in xdp.items() if x["attached"]]
            left_ids = sorted(i for i in ids | ternds if bpftool_prog(i) is not None)
            named = sorted(p.get("id") for p in bpftool_progs()
                           if p.get("name") == "tern_fast_path" and p.get("id") not in baseline)
            pinned = bpffs_tern_entries(self.topo)
            waited = time.monotonic() - t_kill
            if (not left_xdp and not left_ids and not named and not pinned) or waited > 4:
                break
            time.sleep(0.05)
        detail = (f"prog ids {sorted(ids | ternds)}; {waited * 1000:.0f} ms after SIGKILL: xdp "
                  f"on {left_xdp or 'no interface'}, programs left {left_ids or 'none'}, "
                  f"tern_fast_path in bpftool prog show {named or 'none'}"
                  f"{f' (others present before the start: {sorted(baseline)})' if baseline else ''}"
                  f", /sys/fs/bpf *tern* {pinned or 'none'} (before the kill "
                  f"{pinned_before or 'none'})")
        check(not left_xdp and not left_ids and not named and not pinned and waited <= 2.0,
              detail + ": not clean within 2 s")
        return detail


# --------------------------------------------------------------------------- main

def main(argv: list[str]) -> int:
    ready = preflight(argv, __doc__, "needs root (network namespaces, XDP)",
                      [(tool, shutil.which(tool))
                       for tool in ("ip", "ethtool", "bpftool", "setpriv")],
                      f"tfp{os.getpid()}-probe")
    if isinstance(ready, int):
        return ready
    (ternd, ternctl), flags = ready
    # The names are fixed: namespaces of another run still in use are not ours to delete.
    free, busy = stale_namespaces(lambda name: name in NS.values())
    if busy:
        print(f"FAIL: namespaces {busy} exist and hold processes (another run of this test, or "
              f"one killed before its cleanup: see `ip netns pids`)", flush=True)
        return 1
    delete_namespaces(free)

    tmp = tempfile.mkdtemp(prefix=f"tern-fast-path-{os.getpid()}-")
    topo = Topology()
    cleanup = Cleanup(topo, tmp, keep_logs="--keep-logs" in flags)

    t = None
    try:
        keys = "--no-fast-path-keys" not in flags
        log(f"topology {', '.join(NS.values())}, ternd {ternd}, ternctl {ternctl}, "
            f"kernel_fast_path keys {'in' if keys else 'left out of'} the config, logs in {tmp}")
        topo.create()
        peer = LineProc(topo.exec("peer", sys.executable,
                                  os.path.join(HERE, "peer_record.py"), END_IP["peer", 4],
                                  END_IP["peer", 6], str(PEER_PORT)),
                        os.path.join(tmp, "peer.stderr"))
        if peer.readline(10, "the peer") != "ready":
            raise RuntimeError("the peer did not start")
        agent = Agent(topo, "cli", tmp)
        t = Ternd(topo, tmp, ternd, ternctl, fast_path_keys=keys)
        log("topology up: tfp-cli, tfp-srv, tfp-peer; the peer echoes")

        r = Run(topo, t, agent, peer, tmp, only_steps(flags))
        r.step("0 attach: ternd starts with kernel_fast_path on; xdp on both srv ends, "
               "tern_fast_path loaded, tern_kernel_fast_path_interfaces >= 2", r.step_attach)
        r.step("1 bytes: IPv4 and IPv6 payloads of 1..MTU bytes relayed intact by the kernel, "
               "checksums right", r.step_bytes)
        r.step("2 off: kernel_fast_path off delivers the same bytes, fast path counters 0",
               r.step_off)
        r.step("3 stop: Refresh 0, revoke, kill and a refusing SIGHUP take the kernel entries "
               "out within 1 s", r.step_stop)
        r.step("4 fallback: as nobody, auto relays in user space, on exits naming "
               "relay.kernel_fast_path", r.step_fallback)
        r.step("5 sigkill: kill -9 leaves no xdp, no program, no pin within 2 s",
               r.step_sigkill)
        agent.quit()
        t.stop()
        failed = r.summary("fast_path_topology")
        if failed:
            print("---- tail of the last ternd's output", flush=True)
            print(t.output(20), flush=True)
        cleanup.passed = not failed and bool(r.results)
        return 0 if cleanup.passed else 1
    except Exception as e:
        log(f"FAIL: the topology could not be set up: {type(e).__name__}: {e}")
        if t is not None:
            print(t.output(20), flush=True)
        return 1
    finally:
        cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
