#!/usr/bin/env python3
"""fleet_topology.py TERND TERNCTL [--no-fleet] [--keep-logs] [--only=0,1,...]

The fleet topology test (issue 19): three ternd nodes sharing quotas, revocations, sessions and
nonces through one Redis, behind a load balancer that spreads UDP and TCP to a virtual address
over them the way kube-proxy's nftables mode does (jhash of the client's address and port into a
map of node addresses). Everything runs in network namespaces this test creates and removes:

    client 10.219.1.2 --+                      +-- node1 10.219.11.2  ternd node1
                        |                      |
    peer   10.219.2.2 --+-- lb (router) -------+-- node2 10.219.12.2  ternd node2
                            VIP 10.219.100.1   |
                            redis-server       +-- node3 10.219.13.2  ternd node3

The client is tests/fleet/turn_agent.py (its own STUN/TURN code), the peer tests/fleet/peer_echo.py.
Each node's SOFTWARE attribute names it ("tern-node1"), so the agent can pick a source port whose
hash lands on a given node. Steps (each reported PASS or FAIL with its timing):

  0 smoke     each node answers a Binding; UDP and TCP through the VIP; a relay echo
  1 quota     max_allocations_per_user 3 holds across nodes (486 on every node for the 4th);
              the leases and the node registry are in Redis as SPEC.md says
  2 revoke    GET /v1/sessions on node2 lists every node's sessions with "node" and W-N@NODE
              ids; `ternctl revoke` on node1 ends the user's allocations on node2 and node3
              within 1 s (a ChannelData stream through node3 stops); after an unrevoke on node2
              their Refresh gets 437
  2b kill     DELETE /v1/sessions/W-N@node2 on node1 ends that allocation within 1 s
  3 nonce     a nonce minted by node1 is accepted by node2
  4 drain     node2 taken out of the balancer's map and drained: its live allocation still
              relays, new allocations land on node1/node3, a direct Allocate to node2 gets a
              signed 300 naming node1 or node3, which the agent follows
  5 kill      node3 SIGKILLed: the user's quota heals within lease_seconds + 2 s
  6 redis     Redis stopped (SIGTERM), restarted empty, frozen (SIGSTOP): a ChannelData stream
              shows no loss and no gap over 250 ms; Allocates succeed (on_store_failure: local);
              tern_fleet_store_up goes 0 and back to 1; node1 registers its leases again
  6b refuse   after SIGHUP to on_store_failure: refuse, an Allocate gets 508 while Redis is down

Exit 0 when every step passed, 1 when one failed, 77 (skip) without root, ip netns, nft or
redis-server. --no-fleet runs the same topology without the fleet section (for a ternd without
fleet support: the non-fleet checks pass, the fleet ones are expected to fail); --only=3,6b runs
just those steps (by number), --keep-logs keeps the logs of a passing run.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
from netns_harness import (PROCS, Agent, Cleanup, Namespaces, StepFailed, Steps,  # noqa: E402
                           Ternds, check, delete_namespaces, log, only_steps, preflight,
                           rest_credential, run, stale_namespaces, verdict)

NET = "10.219"
CLIENT_IP = f"{NET}.1.2"
PEER_IP = f"{NET}.2.2"
PEER_PORT = 40000
VIP = f"{NET}.100.1"
TURN_PORT = 3478
NODES = ["node1", "node2", "node3"]
NODE_IP = {n: f"{NET}.{11 + i}.2" for i, n in enumerate(NODES)}
GW_IP = {n: f"{NET}.{11 + i}.1" for i, n in enumerate(NODES)}
METRICS_PORT = 9641
REDIS_PORT = 6391
REALM = "fleet.test"
LEASE_SECONDS = 3
MAX_PER_USER = 3
NFT_TABLE = "tfleet"
NS_PREFIX = "tfl"  # namespaces tfl<PID>-<role>, so that runs of dead PIDs can be told apart


# --------------------------------------------------------------------------- topology

class Topology(Namespaces):
    def __init__(self, suffix: str) -> None:
        super().__init__({role: f"{NS_PREFIX}{suffix}-{role}"
                          for role in ["lb", "client", "peer"] + NODES})

    def create(self) -> None:
        super().create()
        lb = self.ns["lb"]
        links = [("client", f"{NET}.1"), ("peer", f"{NET}.2")] + \
                [(n, f"{NET}.{11 + i}") for i, n in enumerate(NODES)]
        for role, net in links:
            # The LB end is named after its neighbour; the other end is eth0 in its namespace.
            run(["ip", "link", "add", "name", f"to-{role}", "netns", lb, "type", "veth",
                 "peer", "name", "eth0", "netns", self.ns[role]])
            run(["ip", "-n", lb, "addr", "add", f"{net}.1/24", "dev", f"to-{role}"])
            run(["ip", "-n", lb, "link", "set", f"to-{role}", "up"])
            run(["ip", "-n", self.ns[role], "addr", "add", f"{net}.2/24", "dev", "eth0"])
            run(["ip", "-n", self.ns[role], "link", "set", "eth0", "up"])
            run(["ip", "-n", self.ns[role], "route", "add", "default", "via", f"{net}.1"])
        run(["ip", "-n", lb, "addr", "add", f"{VIP}/32", "dev", "lo"])
        self.sh("lb", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        run(self.exec("lb", "nft", "-f", "-"), input_text=f"""
table ip {NFT_TABLE} {{
  chain svc_turn {{
  }}
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr {VIP} jump svc_turn
  }}
}}
""")
        self.set_backends(NODES)

    def set_backends(self, nodes: list[str]) -> None:
        """Replaces the service's endpoint map in one nft transaction, as kube-proxy does: new
        flows hash over `nodes`; conntrack keeps every flow already translated where it was."""
        elems = ", ".join(f"{i} : {NODE_IP[n]}" for i, n in enumerate(nodes))
        rules = [f"add rule ip {NFT_TABLE} svc_turn {l4} dport {TURN_PORT} dnat to "
                 f"jhash ip saddr . {l4} sport mod {len(nodes)} map {{ {elems} }}"
                 for l4 in ("udp", "tcp")]
        run(self.exec("lb", "nft", "-f", "-"),
            input_text="\n".join([f"flush chain ip {NFT_TABLE} svc_turn", *rules, ""]))


def left_by_a_dead_run(name: str) -> bool:
    """A namespace of an earlier run of this test whose process is gone."""
    m = re.match(rf"{NS_PREFIX}(\d+)-\S", name)
    return m is not None and not os.path.exists(f"/proc/{m.group(1)}")


# --------------------------------------------------------------------------- the fleet

ADMIN_HTTP = r"""
import http.client, json, sys
method, port, path, token, body = sys.argv[1:6]
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=5)
headers = {"Authorization": "Bearer " + token} if token else {}
if body:
    headers["Content-Type"] = "application/json"
c.request(method, path, body=body or None, headers=headers)
r = c.getresponse()
print(json.dumps({"status": r.status, "body": r.read().decode(errors="replace")}))
"""


class Fleet(Ternds):
    def __init__(self, topo: Topology, tmp: str, ternd: str, ternctl: str, fleet: bool) -> None:
        super().__init__(topo, tmp, ternd, ternctl)
        self.fleet = fleet
        self.nonce_secret = secrets.token_hex(24)
        self.redis_pw = secrets.token_hex(12)
        self.procs: dict[str, subprocess.Popen] = {}
        self.redis: subprocess.Popen | None = None
        self.redis_starts = 0

    # ---- redis
    def start_redis(self) -> None:
        self.redis_starts += 1
        logf = os.path.join(self.tmp, f"redis.{self.redis_starts}.log")
        binds = [GW_IP[n] for n in NODES]
        self.redis = PROCS.start(
            self.topo.exec("lb", "/usr/bin/redis-server", "--port", str(REDIS_PORT),
                           "--bind", *binds, "--requirepass", self.redis_pw, "--save", "",
                           "--appendonly", "no", "--logfile", logf),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.path.exists(logf) and "Ready to accept connections" in open(logf).read():
                return
            if self.redis.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start; see {logf}")

    def stop_redis(self) -> None:
        if self.redis and self.redis.poll() is None:
            self.redis.send_signal(signal.SIGTERM)
            self.redis.wait(timeout=10)

    def redis_cli(self, *args: str) -> str:
        if not shutil.which("redis-cli"):
            return "(no redis-cli)"
        p = run(self.topo.exec("lb", "redis-cli", "-h", GW_IP["node1"], "-p", str(REDIS_PORT),
                               "--no-auth-warning", "-a", self.redis_pw, *args), check_rc=False)
        return (p.stdout + p.stderr).strip()

    # ---- nodes
    def config_path(self, node: str) -> str:
        return os.path.join(self.tmp, f"{node}.yaml")

    def write_config(self, node: str, on_store_failure: str = "local") -> None:
        fleet = ""
        if self.fleet:
            fleet = f"""fleet:
  redis: "redis://:{self.redis_pw}@{GW_IP[node]}:{REDIS_PORT}"
  node_id: {node}
  advertise: [ "{NODE_IP[node]}:{TURN_PORT}" ]
  lease_seconds: {LEASE_SECONDS}
  on_store_failure: {on_store_failure}
"""
        ports = {"node1": "50000-50063", "node2": "50100-50163", "node3": "50200-50263"}[node]
        text = f"""# written by tests/fleet/fleet_topology.py
realm: {REALM}
listen: [ "udp://0.0.0.0:{TURN_PORT}", "tcp://0.0.0.0:{TURN_PORT}" ]
software: "tern-{node}"
threads: 2
auth:
  secrets_file: {self.tmp}/secrets
  nonce_secret: "{self.nonce_secret}"
relay:
  addresses: [ {NODE_IP[node]} ]
  ports: {ports}
  allow_peers: [ {NET}.2.0/24 ]
limits:
  max_allocations_per_user: {MAX_PER_USER}
  shutdown_grace: 60
log: {{ level: info }}
metrics: {{ listen: "127.0.0.1:{METRICS_PORT}" }}
admin:
  token_file: {self.tmp}/admin-token
  revocations_file: {self.tmp}/{node}.revocations
{fleet}"""
        tmp = self.config_path(node) + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path(node))

    def check_config(self, node: str) -> None:
        p = run([self.ternd, "--check-config", self.config_path(node)], check_rc=False)
        if p.returncode != 0:
            raise RuntimeError(f"ternd --check-config {self.config_path(node)} refused it "
                               f"(exit {p.returncode}):\n{p.stdout}{p.stderr}")

    def start_node(self, node: str) -> None:
        logf = open(os.path.join(self.tmp, f"{node}.log"), "a")
        self.procs[node] = PROCS.start(
            self.topo.exec(node, self.ternd, "--config", self.config_path(node)),
            stdout=logf, stderr=subprocess.STDOUT)

    def node_log(self, node: str, lines: int = 30) -> str:
        try:
            with open(os.path.join(self.tmp, f"{node}.log")) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def alive(self, node: str) -> bool:
        p = self.procs.get(node)
        return p is not None and p.poll() is None

    def admin(self, node: str, method: str, path: str, body: str = "",
              token: bool = True) -> tuple[int, dict | str]:
        p = run(self.topo.exec(node, sys.executable, "-c", ADMIN_HTTP, method,
                               str(METRICS_PORT), path, self.token if token else "", body),
                check_rc=False)
        if p.returncode != 0:
            raise StepFailed(f"{method} {path} on {node} failed: {p.stderr.strip()[-300:]}")
        out = json.loads(p.stdout)
        try:
            return out["status"], json.loads(out["body"])
        except json.JSONDecodeError:
            return out["status"], out["body"]

    def metric(self, node: str, name: str) -> str:
        try:
            status, body = self.admin(node, "GET", "/metrics", token=False)
        except StepFailed:
            return "?"
        if not isinstance(body, str):
            return "?"
        vals = [line.split()[-1] for line in body.splitlines()
                if line.startswith(name + " ") or line.startswith(name + "{")]
        return ",".join(vals) if vals else "absent"

    def ternctl_cmd(self, node: str, *args: str) -> subprocess.CompletedProcess:
        return run(self.topo.exec(node, self.ternctl, *args), check_rc=False)


def addr(node: str) -> str:
    return f"{NODE_IP[node]}:{TURN_PORT}"


def node_of(relayed: str | None) -> str | None:
    if not relayed:
        return None
    ip = relayed.rpartition(":")[0]
    return next((n for n, a in NODE_IP.items() if a == ip), None)


# --------------------------------------------------------------------------- the steps

class Run(Steps):
    def __init__(self, fleet: Fleet, agent: Agent, only: list[str] | None) -> None:
        super().__init__(agent, only)
        self.f = fleet
        self.state: dict = {}

    def leftovers(self) -> set[str]:
        # A drain waits for every allocation, a quota counts them; but the quota user's
        # allocations are kept on purpose for step 5.
        keep = set(self.state.get("quota_held", {}).values()) if self.state.get("quota_ok") \
            else set()
        return self.open_allocs - keep

    # -- helpers
    def lease_key(self, username: str) -> str:
        return self.f.redis_cli("ZRANGE", "tern:lease:" + username, "0", "-1", "WITHSCORES")

    def cred(self, user: str) -> tuple[str, str]:
        return rest_credential(self.f.secret, user)

    def allocate(self, server: str, cred: tuple[str, str], **kw) -> dict:
        r = self.a.call("allocate", server=server, username=cred[0], password=cred[1], **kw)
        if r.get("alloc"):
            self.open_allocs.add(r["alloc"])
        return r

    def relay_ready(self, alloc: str, channel: int) -> None:
        r = self.a.call("create_permission", alloc=alloc, peer=f"{PEER_IP}:{PEER_PORT}")
        check(r["code"] == 200, f"CreatePermission got {r['code']} {r.get('reason')}")
        r = self.a.call("channel_bind", alloc=alloc, peer=f"{PEER_IP}:{PEER_PORT}",
                        channel=channel)
        check(r["code"] == 200, f"ChannelBind got {r['code']} {r.get('reason')}")

    def echo(self, alloc: str, channel: int, count: int = 5) -> dict:
        return self.a.call("echo", alloc=alloc, channel=channel, count=count, wait_s=2)

    # -- 0: the topology relays at all
    def step_smoke(self) -> str:
        seen = {}
        for node in NODES:
            r = self.a.call("probe", server=addr(node))
            check(r.get("software") == f"tern-{node}",
                  f"Binding to {addr(node)} answered {r}")
            seen[node] = r["software"]
        tcp = set()
        for _ in range(6):  # fresh source ports: the balancer spreads TCP too
            t = self.a.call("probe", server=f"{VIP}:{TURN_PORT}", transport="tcp")
            check(t.get("code") == 200, f"Binding over TCP through the VIP answered {t}")
            tcp.add(t["software"])
        r = self.allocate(f"{VIP}:{TURN_PORT}", self.cred("smoke"))
        check(r["code"] == 200, f"Allocate through the VIP got {r['code']} {r.get('reason')}")
        check(r.get("mi_ok") is True, "the Allocate success answer's MESSAGE-INTEGRITY did not "
              "verify with the agent's key (the agent's 300 check would be meaningless)")
        self.relay_ready(r["alloc"], 0x4000)
        e = self.echo(r["alloc"], 0x4000)
        check(e["received"] == e["sent"], f"relay echo through {r['software']}: {e}")
        self.release(r["alloc"])
        return (f"Binding answered by {', '.join(seen.values())}; over TCP through the VIP by "
                f"{', '.join(sorted(tcp))}; allocation through the VIP on "
                f"{node_of(r['relayed'])} relayed {e['received']}/{e['sent']} echoes")

    # -- 1: quota across nodes
    def step_quota(self) -> str:
        cred = self.cred("quota")
        self.state["quota_cred"] = cred
        held = {}
        for node in NODES:
            r = self.allocate(f"{VIP}:{TURN_PORT}", cred, prefer_software=f"tern-{node}")
            check(r["code"] == 200, f"allocation {len(held) + 1} of 3 via the VIP (aimed at "
                  f"{node}) got {r['code']} {r.get('reason')}")
            check(node_of(r["relayed"]) == node,
                  f"aimed at {node} but relayed on {r['relayed']}")
            held[node] = r["alloc"]
        self.state["quota_held"] = held
        redis_note = ""
        if self.f.fleet and shutil.which("redis-cli"):
            # The Redis keys of SPEC.md: a lease per allocation, NODE/TOKEN; the node registry.
            members = self.f.redis_cli("ZRANGE", "tern:lease:" + cred[0], "0", "-1").split()
            check(sorted(m.split("/")[0] for m in members) == NODES,
                  f"tern:lease:{cred[0]} holds {members}, expected one node1/, node2/ and "
                  "node3/ member")
            registry = sorted(self.f.redis_cli("ZRANGE", "tern:nodes", "0", "-1").split())
            check(registry == NODES, f"tern:nodes holds {registry}")
            adv = self.f.redis_cli("HGET", "tern:node:node1", "advertise")
            check(adv == addr("node1"), f"tern:node:node1 advertise is {adv!r}")
            redis_note = "; Redis holds 3 leases node1/ node2/ node3/ and the 3 nodes"
        refused = []
        r = self.allocate(f"{VIP}:{TURN_PORT}", cred)
        refused.append(("VIP", r))
        for node in NODES:
            refused.append((node, self.allocate(addr(node), cred)))
        bad = [f"{where}: {r['code']} {r.get('reason', '')} (on {r.get('software')})"
               for where, r in refused if r["code"] != 486]
        for where, r in refused:
            if r["code"] == 200:  # keep the count honest for the later steps
                self.release(r["alloc"])
        check(not bad, "the 4th allocation of one user was not refused 486 everywhere: "
              + "; ".join(bad) + f"; lease key: {self.lease_key(cred[0])}")
        # Free the one on node2 (node2 is drained in step 4) and take one more on node1: the
        # user then holds node1 x2 + node3 x1 for step 5.
        r = self.release(held.pop("node2"))
        check(r["code"] == 200, f"Refresh lifetime 0 on node2 got {r['code']}")
        t_freed = time.monotonic()
        deadline = t_freed + 3
        while True:
            r = self.allocate(addr("node1"), cred)
            if r["code"] == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        check(r["code"] == 200, f"after deleting the node2 allocation, a new one on node1 still "
              f"got {r['code']} {r.get('reason')} for 3 s")
        held["node1b"] = r["alloc"]
        self.state["quota_ok"] = True
        return ("3 allocations on node1/node2/node3; the 4th got 486 via the VIP and on each "
                f"node directly; {time.monotonic() - t_freed:.2f} s after a delete on node2 a "
                f"new one on node1 got 200{redis_note}")

    # -- 2: revoke fans out; sessions list every node
    def step_revoke(self) -> str:
        user = "revokee"
        cred = self.cred(user)
        held = {}
        for node in ("node3", "node2"):
            r = self.allocate(f"{VIP}:{TURN_PORT}", cred, prefer_software=f"tern-{node}")
            check(r["code"] == 200 and node_of(r["relayed"]) == node,
                  f"allocation for {user} aimed at {node} got {r['code']} on {r.get('relayed')}")
            held[node] = r["alloc"]
        alloc = held["node3"]
        self.relay_ready(alloc, 0x4001)
        # GET /v1/sessions on node2 lists every node's sessions, each with "node" (node1 and
        # node3 hold the quota user's, node2 and node3 this user's).
        deadline = time.monotonic() + 3
        listing, status = None, 0
        while time.monotonic() < deadline:
            status, listing = self.f.admin("node2", "GET", "/v1/sessions")
            # Each node rewrites its share every second: wait for this user's two sessions and
            # for node1's (made in step 1, maybe after node1's last snapshot).
            listed = listing.get("sessions", []) if isinstance(listing, dict) else []
            if status == 200 and {"node2", "node3"} <= {
                    s.get("node") for s in listed if s.get("user") == cred[0]} and \
                    set(NODES) <= {s.get("node") for s in listed}:
                break
            time.sleep(0.2)
        check(status == 200 and isinstance(listing, dict),
              f"GET /v1/sessions on node2: {status} {listing}")
        sessions = listing.get("sessions", [])
        mine = {s.get("node"): s for s in sessions if s.get("user") == cred[0]}
        nodes_seen = sorted({s.get("node") for s in sessions if s.get("node")})
        check(all("node" in s for s in sessions),
              f"sessions without a \"node\" field on node2: {sessions}")
        check(set(mine) == {"node2", "node3"},
              f"node2's /v1/sessions lists {cred[0]}'s sessions on {sorted(mine, key=str)}, "
              f"expected node2 and node3: {sessions}")
        for node, sess in mine.items():
            check(re.fullmatch(r"\d+-\d+@" + node, sess.get("id", "")) is not None,
                  f"session id {sess.get('id')!r} on {node} is not W-N@{node}")
        check(nodes_seen == NODES, f"node2's /v1/sessions shows nodes {nodes_seen}, expected "
              f"all three (GET on node2 after 3 s: {len(sessions)} sessions)")
        check(listing.get("count") == len(sessions),
              f"count {listing.get('count')} but {len(sessions)} sessions listed")
        fleet_nodes = self.f.metric("node2", "tern_fleet_nodes")
        check(fleet_nodes == "3", f"node2's tern_fleet_nodes is {fleet_nodes}, expected 3")
        # The stream runs while node1 revokes; its echoes must stop within 1 s.
        sid = self.a.send("stream", alloc=alloc, channel=0x4001, rate=100, seconds=3.0)
        time.sleep(1.0)
        t_revoke = time.monotonic()
        p = self.f.ternctl_cmd("node1", "revoke", user, "--config", self.f.config_path("node1"))
        t_answer = time.monotonic()
        check(p.returncode == 0, f"ternctl revoke on node1 exited {p.returncode}: "
              f"{p.stdout}{p.stderr}")
        s = self.a.wait(sid, timeout=10)
        check(s["received"] > 50, f"the stream through node3 got only {s['received']} echoes "
              f"before the revoke: {s}")
        check(s["last_echo"] is not None, "no echo at all")
        stop = s["last_echo"] - t_revoke
        check(stop <= 1.0, f"node3 kept relaying {stop:.3f} s after the revoke on node1 "
              f"(ternctl answered after {t_answer - t_revoke:.3f} s): {s}")
        # No node lists the user's sessions any more.
        for node in ("node2", "node3"):
            status, listing = self.f.admin(node, "GET", "/v1/sessions?user=" + user)
            check(status == 200 and isinstance(listing, dict) and not listing.get("sessions"),
                  f"{node} still lists {user}'s sessions 2 s after the revoke: {listing}")
        # Lifted on node2; then node2 and node3 answer the old allocations' Refresh with 437.
        status, body = self.f.admin("node2", "DELETE", f"/v1/users/{user}/revoke")
        check(status == 200, f"DELETE /v1/users/{user}/revoke on node2: {status} {body}")
        codes = {}
        for node, a in sorted(held.items()):
            deadline = time.monotonic() + 3
            while True:
                r = self.a.call("refresh", alloc=a)
                if r["code"] != 401 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            codes[node] = r["code"]
            self.close(a)
        check(set(codes.values()) == {437}, f"Refresh of the revoked allocations after the "
              f"unrevoke got {codes}, expected 437 on both")
        return (f"node2 listed sessions of {nodes_seen} with \"node\" and W-N@NODE ids; "
                f"tern_fleet_nodes 3; ternctl revoke on node1 took {t_answer - t_revoke:.3f} s; "
                f"node3's last echo {stop * 1000:.0f} ms after the revoke ({s['received']}/"
                f"{s['sent']} echoes); after an unrevoke on node2, Refresh got {codes}")

    # -- 2b: a session killed by id on another node
    def step_kill_session(self) -> str:
        user = "killee"
        cred = self.cred(user)
        r = self.allocate(f"{VIP}:{TURN_PORT}", cred, prefer_software="tern-node2")
        check(r["code"] == 200 and node_of(r["relayed"]) == "node2",
              f"allocation for {user} aimed at node2 got {r['code']} on {r.get('relayed')}")
        alloc = r["alloc"]
        self.relay_ready(alloc, 0x4005)
        deadline = time.monotonic() + 3
        sess = []
        while time.monotonic() < deadline:
            status, listing = self.f.admin("node1", "GET", "/v1/sessions?user=" + user)
            sess = listing.get("sessions", []) if isinstance(listing, dict) else []
            if sess:
                break
            time.sleep(0.2)
        check(len(sess) == 1 and sess[0].get("id", "").endswith("@node2"),
              f"node1's /v1/sessions?user={user} lists {sess}, expected one session @node2")
        sid = sess[0]["id"]
        stream = self.a.send("stream", alloc=alloc, channel=0x4005, rate=100, seconds=2.5)
        time.sleep(0.8)
        t_kill = time.monotonic()
        status, body = self.f.admin("node1", "DELETE", "/v1/sessions/" + sid)
        # 200 when the node holds it; for another node's session 202 (sent to the fleet) is fine
        check(status in (200, 202), f"DELETE /v1/sessions/{sid} on node1: {status} {body}")
        s = self.a.wait(stream, timeout=10)
        check(s["last_echo"] is not None and s["received"] > 30,
              f"the stream through node2 got too few echoes before the kill: {s}")
        stop = s["last_echo"] - t_kill
        check(stop <= 1.0, f"node2 kept relaying {stop:.3f} s after DELETE /v1/sessions/{sid} "
              f"on node1 (answer {body})")
        r = self.a.call("refresh", alloc=alloc)
        self.close(alloc)
        check(r["code"] == 437, f"Refresh of the killed allocation on node2 got {r['code']}")
        return (f"DELETE /v1/sessions/{sid} on node1 answered {status} {body}; node2's last echo "
                f"{stop * 1000:.0f} ms after it; Refresh then 437")

    # -- 3: nonce from node1 accepted by node2
    def step_nonce(self) -> str:
        cred = self.cred("noncer")
        n = self.a.call("nonce", server=addr("node1"))
        check(n["code"] == 401 and n.get("nonce"), f"unauthenticated Allocate to node1: {n}")
        bad_nonce = n["nonce"][:-1] + ("A" if n["nonce"][-1] != "A" else "B")
        def raw(nonce: str) -> dict:
            out = self.a.call("raw_allocate", server=addr("node2"), username=cred[0],
                              password=cred[1], realm=n["realm"], nonce=nonce)
            if out.get("alloc"):
                self.open_allocs.add(out["alloc"])  # released at the step's end
            return out

        r = raw(n["nonce"])
        check(r["code"] == 200, f"node2 answered an Allocate with node1's nonce {r['code']} "
              f"{r.get('reason')} (software {r.get('software')})")
        self.release(r["alloc"])
        t = raw(bad_nonce)
        check(t["code"] in (438, 401), f"a tampered nonce got {t['code']} on node2, "
              "expected 438 (the nonce check must be real)")
        return f"node1's nonce -> 200 on node2; a tampered one -> {t['code']}"

    # -- 4: drain node2
    def step_drain(self) -> str:
        cred = self.cred("drainlive")
        r = self.allocate(f"{VIP}:{TURN_PORT}", cred, prefer_software="tern-node2")
        check(r["code"] == 200 and node_of(r["relayed"]) == "node2",
              f"allocation aimed at node2 got {r['code']} on {r.get('relayed')}")
        live = r["alloc"]
        self.relay_ready(live, 0x4002)
        e = self.echo(live, 0x4002)
        check(e["received"] == e["sent"], f"echo through node2 before the drain: {e}")
        self.f.topo.set_backends(["node1", "node3"])
        p = self.f.ternctl_cmd("node2", "drain", "--endpoint", f"127.0.0.1:{METRICS_PORT}")
        check(p.returncode == 0, f"ternctl drain on node2 exited {p.returncode}: "
              f"{p.stdout}{p.stderr}")
        time.sleep(0.2)
        e = self.echo(live, 0x4002)
        check(e["received"] == e["sent"], f"node2's live allocation stopped relaying after the "
              f"drain: {e['received']}/{e['sent']} echoes")
        landed = []
        for i in range(4):
            r = self.allocate(f"{VIP}:{TURN_PORT}", self.cred(f"drainnew{i}"))
            check(r["code"] == 200, f"new allocation {i + 1} via the VIP after the drain got "
                  f"{r['code']} {r.get('reason')} ({r.get('software')})")
            landed.append(node_of(r["relayed"]))
            self.release(r["alloc"])
        check(set(landed) <= {"node1", "node3"}, f"new allocations landed on {landed}")
        r = self.allocate(addr("node2"), self.cred("drainredirect"))
        hops = r.get("redirects", [])
        check(hops, f"a direct Allocate to the draining node2 got {r['code']} "
              f"{r.get('reason')}, no 300")
        alt = hops[0].get("alternate")
        check(hops[0]["mi_ok"], f"node2's 300 has no valid MESSAGE-INTEGRITY: {hops[0]}")
        check(alt in (addr("node1"), addr("node3")),
              f"node2's 300 names ALTERNATE-SERVER {alt}, expected node1 or node3")
        check(r["code"] == 200, f"following the 300 to {alt} got {r['code']} {r.get('reason')}")
        redirects = self.f.metric("node2", "tern_fleet_redirects_total")
        check(redirects not in ("absent", "?") and float(redirects) >= 1,
              f"node2's tern_fleet_redirects_total is {redirects} after a 300")
        check(r.get("server") == alt and NODE_IP.get(node_of(r.get("relayed"))) ==
              alt.rpartition(":")[0], f"the followed allocation ended on {r.get('server')} "
              f"relaying on {r.get('relayed')}, expected {alt}")
        self.release(r["alloc"])
        e = self.echo(live, 0x4002)
        check(e["received"] == e["sent"], f"node2's live allocation stopped relaying during the "
              f"drain: {e}")
        q = self.release(live)
        check(q["code"] == 200, f"Refresh lifetime 0 on node2 got {q['code']}")
        exited = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if not self.f.alive("node2"):
                exited = self.f.procs["node2"].returncode
                break
            time.sleep(0.1)
        check(exited is not None, "node2 was still running 5 s after its last allocation ended "
              f"in a drain (allocations: {self.f.metric('node2', 'tern_allocations_active')})")
        return (f"live allocation echoed during the drain; new ones landed on {landed}; node2's "
                f"300 named {alt} (MESSAGE-INTEGRITY valid, FINGERPRINT "
                f"{hops[0].get('fingerprint_ok')}) and the agent got 200 there; "
                f"tern_fleet_redirects_total {redirects}; node2 exited {exited} after its last "
                "allocation ended")

    # -- 5: kill node3; the quota heals
    def step_kill(self) -> str:
        cred = self.state.get("quota_cred")
        check(cred is not None and self.state.get("quota_ok"),
              "step 1 failed, so the user holds no known set of allocations to heal from")
        r = self.allocate(addr("node1"), cred)
        if r["code"] == 200:
            self.release(r["alloc"])
        check(r["code"] == 486, f"before the kill the user should be at its quota (node1 x2, "
              f"node3 x1) but node1 answered {r['code']}")
        self.f.procs["node3"].send_signal(signal.SIGKILL)
        t_kill = time.monotonic()
        self.f.procs["node3"].wait(timeout=5)
        limit = LEASE_SECONDS + 2
        tries = 0
        while True:
            tries += 1
            r = self.allocate(addr("node1"), cred)
            healed = time.monotonic() - t_kill
            if r["code"] == 200 or healed > limit + 3:
                break
            time.sleep(0.2)
        check(r["code"] == 200, f"the quota did not heal: node1 still answered {r['code']} "
              f"{healed:.1f} s after node3 was killed; lease key: {self.lease_key(cred[0])}")
        self.state["quota_held"]["node1c"] = r["alloc"]
        check(healed <= limit, f"the quota healed only {healed:.2f} s after the kill "
              f"(limit lease_seconds + 2 = {limit} s)")
        return f"healed {healed:.2f} s after SIGKILL (limit {limit} s, {tries} Allocates)"

    # -- 6: Redis stopped and frozen under a live stream
    def step_redis(self) -> str:
        cred = self.cred("streamer")
        r = self.allocate(addr("node1"), cred)
        check(r["code"] == 200, f"allocation on node1 got {r['code']} {r.get('reason')}")
        alloc = r["alloc"]
        self.relay_ready(alloc, 0x4003)
        self.state["stream_alloc"] = alloc
        seconds = 9.0
        sid = self.a.send("stream", alloc=alloc, channel=0x4003, rate=50, seconds=seconds,
                          tail=0.5)
        start = time.monotonic()
        notes = []
        fails = []

        def at(t: float) -> None:
            delay = start + t - time.monotonic()
            if delay > 0:
                time.sleep(delay)

        at(1.0)
        self.f.stop_redis()
        notes.append(f"Redis SIGTERMed at {time.monotonic() - start:.2f} s")
        at(1.6)
        kept = None  # one allocation admitted locally stays, to see its lease re-registered
        for i in range(2):
            local_cred = self.cred(f"localadmit{i}")
            r = self.allocate(addr("node1"), local_cred)
            notes.append(f"Allocate while down: {r['code']} in {r['elapsed_ms']:.0f} ms")
            if r["code"] != 200:
                fails.append(f"Allocate on node1 while Redis was down got {r['code']} "
                             f"{r.get('reason')} (on_store_failure: local)")
                continue
            if r["elapsed_ms"] > 500:
                fails.append(f"Allocate on node1 while Redis was down took "
                             f"{r['elapsed_ms']:.0f} ms (allocate_wait_ms is 50)")
            if kept is None:
                kept = (local_cred, r["alloc"])
            else:
                self.release(r["alloc"])
        store_up_down = self.f.metric("node1", "tern_fleet_store_up")
        at(3.0)
        self.f.start_redis()
        notes.append(f"Redis restarted at {time.monotonic() - start:.2f} s")
        at(4.5)
        self.f.redis.send_signal(signal.SIGSTOP)
        notes.append(f"Redis SIGSTOPped at {time.monotonic() - start:.2f} s")
        try:
            at(5.0)
            for i in range(2):
                r = self.allocate(addr("node1"), self.cred(f"frozenadmit{i}"))
                notes.append(f"Allocate while frozen: {r['code']} in {r['elapsed_ms']:.0f} ms")
                if r["code"] != 200:
                    fails.append(f"Allocate on node1 while Redis was SIGSTOPped got {r['code']} "
                                 f"{r.get('reason')}")
                elif r["elapsed_ms"] > 500:
                    fails.append(f"Allocate on node1 while Redis was SIGSTOPped took "
                                 f"{r['elapsed_ms']:.0f} ms (allocate_wait_ms is 50)")
                else:
                    self.release(r["alloc"])
            at(7.0)
        finally:
            self.f.redis.send_signal(signal.SIGCONT)
        notes.append(f"Redis SIGCONTed at {time.monotonic() - start:.2f} s")
        s = self.a.wait(sid, timeout=seconds + 10)
        # A gap the agent made itself (a pause between two of its sends on a busy machine) is
        # not the relay's: only the part of the longest gap beyond the agent's own longest pause
        # counts, and the echo latency shows a relay that held datagrams back.
        relay_gap = s["max_gap_ms"] - max(0.0, s["max_send_gap_ms"] - s["interval_ms"])
        notes.append(f"stream {s['received']}/{s['sent']} echoes at 50/s, longest gap "
                     f"{s['max_gap_ms']:.0f} ms (agent's own longest send pause "
                     f"{s['max_send_gap_ms']:.0f} ms), longest echo latency "
                     f"{s['max_latency_ms']} ms; tern_fleet_store_up while down: {store_up_down}")
        if store_up_down != "0":
            fails.append(f"node1's tern_fleet_store_up was {store_up_down} while Redis was down")
        deadline = time.monotonic() + 7
        while True:
            store_up = self.f.metric("node1", "tern_fleet_store_up")
            if store_up == "1" or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        notes.append(f"tern_fleet_store_up back to {store_up}, failures_total "
                     f"{self.f.metric('node1', 'tern_fleet_store_failures_total')}")
        if store_up != "1":
            fails.append(f"node1's tern_fleet_store_up still {store_up} 7 s after Redis resumed")
        if self.f.fleet and shutil.which("redis-cli"):
            # Redis came back empty (--save ''): node1 re-registered every live allocation's
            # lease, the one admitted while Redis was down included.
            quota = self.state.get("quota_cred")
            want = {"tern:lease:" + cred[0]: 1}
            if kept:
                want["tern:lease:" + kept[0][0]] = 1
            if quota and len(self.state.get("quota_held", {})) == 4:
                want["tern:lease:" + quota[0]] = 3  # node1, node1b, node1c
            deadline = time.monotonic() + 3
            while True:
                got = {k: self.f.redis_cli("ZRANGE", k, "0", "-1").split() for k in want}
                good = all(len(got[k]) == n and all(m.startswith("node1/") for m in got[k])
                           for k, n in want.items())
                if good or time.monotonic() > deadline:
                    break
                time.sleep(0.25)
            if good:
                notes.append(f"leases re-registered after the restart: "
                             f"{', '.join(str(len(v)) for v in got.values())} node1/ members")
            else:
                fails.append(f"after Redis restarted empty the leases were not re-registered: "
                             f"expected {want}, Redis holds {got}")
        if kept:
            self.release(kept[1])
        if s["lost"] != 0:
            fails.append(f"the stream lost {s['lost']} of {s['sent']} datagrams")
        if relay_gap > 250 or (s["max_latency_ms"] or 0) > 250:
            fails.append(f"the stream had a gap of {s['max_gap_ms']:.0f} ms, echo latency up to "
                         f"{s['max_latency_ms']} ms (> 250)")
        return verdict(fails, notes)

    # -- 6b: on_store_failure: refuse after SIGHUP
    def step_refuse(self) -> str:
        self.f.write_config("node1", on_store_failure="refuse")
        self.f.procs["node1"].send_signal(signal.SIGHUP)
        time.sleep(1.0)
        reload_line = [line for line in self.f.node_log("node1", 40).splitlines()
                       if "SIGHUP" in line][-1:]
        self.f.stop_redis()
        try:
            time.sleep(0.3)
            r = self.allocate(addr("node1"), self.cred("refused"))
            if r["code"] == 200:
                self.release(r["alloc"])
            check(r["code"] == 508, f"with on_store_failure: refuse and Redis down, an Allocate "
                  f"on node1 got {r['code']} {r.get('reason')}, expected 508; reload log: "
                  f"{reload_line}")
        finally:
            self.f.start_redis()
        # Back to normal once Redis answers again (reconnect backoff is at most 5 s).
        deadline = time.monotonic() + 8
        t_up = time.monotonic()
        while True:
            r = self.allocate(addr("node1"), self.cred("afterrefuse"))
            if r["code"] == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        check(r["code"] == 200, f"after Redis came back, node1 still answered {r['code']} for 8 s")
        self.release(r["alloc"])
        return (f"508 while Redis was down; 200 again {time.monotonic() - t_up:.2f} s after it "
                f"restarted")


# --------------------------------------------------------------------------- main

def main(argv: list[str]) -> int:
    redis_server = "/usr/bin/redis-server"
    ready = preflight(argv, __doc__, "needs root (network namespaces, nftables)",
                      [("ip", shutil.which("ip")), ("nft", shutil.which("nft")),
                       ("redis-server",
                        redis_server if os.access(redis_server, os.X_OK) else None)],
                      f"{NS_PREFIX}{os.getpid()}-probe")
    if isinstance(ready, int):
        return ready
    (ternd, ternctl), flags = ready

    delete_namespaces(stale_namespaces(left_by_a_dead_run)[0])
    tmp = tempfile.mkdtemp(prefix=f"tern-fleet-{os.getpid()}-")
    topo = Topology(str(os.getpid()))
    cleanup = Cleanup(topo, tmp, keep_logs="--keep-logs" in flags)

    try:
        log(f"topology {NS_PREFIX}{os.getpid()}-*, ternd {ternd}, ternctl {ternctl}, "
            f"fleet {'on' if '--no-fleet' not in flags else 'off'}, logs in {tmp}")
        topo.create()
        peer_log = open(os.path.join(tmp, "peer.log"), "w")
        peer = PROCS.start(topo.exec("peer", sys.executable, os.path.join(HERE, "peer_echo.py"),
                                     PEER_IP, str(PEER_PORT)),
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=peer_log,
                           text=True)
        if peer.stdout.readline().strip() != "ready":
            raise RuntimeError("the peer echo agent did not start")
        fleet = Fleet(topo, tmp, ternd, ternctl, fleet="--no-fleet" not in flags)
        if fleet.fleet or "--only=" in " ".join(flags):
            fleet.start_redis()
        for node in NODES:
            fleet.write_config(node)
            fleet.check_config(node)
        for node in NODES:
            fleet.start_node(node)
        agent = Agent(topo, "client", tmp)
        # Wait for every node to answer a Binding on its own address.
        deadline = time.monotonic() + 15
        pending = list(NODES)
        while pending and time.monotonic() < deadline:
            for node in list(pending):
                if not fleet.alive(node):
                    raise RuntimeError(f"ternd {node} exited {fleet.procs[node].returncode}:\n"
                                       + fleet.node_log(node))
                r = agent.call("probe", server=addr(node))
                if r.get("software") == f"tern-{node}":
                    pending.remove(node)
            time.sleep(0.1)
        if pending:
            raise RuntimeError(f"ternd {pending} did not answer a Binding in 15 s")
        log("topology up: 3 nodes answer, peer echo and Redis running")

        only = only_steps(flags)
        r = Run(fleet, agent, only)
        r.step("0 smoke: Binding on each node, relay echo through the VIP", r.step_smoke)
        r.step("1 quota: 3 per user across nodes, the 4th refused 486 everywhere", r.step_quota)
        r.step("2 revoke: node1's revoke ends the user's allocations on node2 and node3 "
               "within 1 s; node2 lists every node's sessions", r.step_revoke)
        r.step("2b kill: DELETE /v1/sessions/W-N@node2 on node1 ends it within 1 s",
               r.step_kill_session)
        r.step("3 nonce: node1's nonce accepted by node2", r.step_nonce)
        r.step("4 drain: node2 out of the map and drained", r.step_drain)
        r.step("5 kill: node3 SIGKILLed, the quota heals within lease_seconds + 2 s",
               r.step_kill)
        if fleet.fleet or only:
            r.step("6 redis: SIGTERM/restart/SIGSTOP under a live stream; local admission",
                   r.step_redis)
            r.step("6b refuse: SIGHUP to on_store_failure: refuse -> 508 while Redis is down",
                   r.step_refuse)
        agent.quit()
        failed = r.summary("fleet_topology")
        if failed:
            for node in NODES:
                print(f"---- tail of {node}'s log", flush=True)
                print(fleet.node_log(node, 15), flush=True)
        cleanup.passed = not failed
        return 0 if not failed else 1
    except Exception as e:
        log(f"FAIL: the topology could not be set up: {type(e).__name__}: {e}")
        return 1
    finally:
        cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
