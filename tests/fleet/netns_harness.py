"""The harness shared by the network namespace tests, tests/fleet/fleet_topology.py and
tests/fast_path/fast_path_topology.py, standard library only: the processes a test starts and
ends, its namespaces, the TURN agent (tests/fleet/turn_agent.py) it drives, its steps and their
report, the checks before it starts and the cleanup that always runs after it.

Each test names its own namespaces (a role -> name map) and the steps to run; what it does in
them stays in the test.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Callable, Iterable

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 77
TOTAL_LIMIT = 240  # seconds; ctest's TIMEOUT is 300, so the cleanup always gets to run

T0 = time.monotonic()


def log(text: str) -> None:
    print(f"[{time.monotonic() - T0:7.2f}s] {text}", flush=True)


class StepFailed(Exception):
    pass


def check(cond: bool, message: str) -> None:
    if not cond:
        raise StepFailed(message)


def verdict(fails: list[str], notes: list[str]) -> str:
    """A step's detail: its notes, or StepFailed with the failures before the notes."""
    check(not fails, "; ".join(fails) + " | " + "; ".join(notes))
    return "; ".join(notes)


def run(cmd: list[str], check_rc: bool = True, timeout: float = 15,
        input_text: str | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input_text)
    if check_rc and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()}")
    return p


def rest_credential(secret: str, user: str, ttl: int = 3600) -> tuple[str, str]:
    username = f"{int(time.time()) + ttl}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


# --------------------------------------------------------------------------- processes

class Procs:
    """Every process this test starts, so that cleanup ends exactly those, by PID."""

    def __init__(self) -> None:
        self.items: list[subprocess.Popen] = []

    def start(self, cmd: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(cmd, **kw)
        self.items.append(p)
        return p

    def kill_all(self) -> None:
        for p in self.items:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.items:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


PROCS = Procs()


# --------------------------------------------------------------------------- namespaces

class Namespaces:
    """The test's network namespaces, by role; create() makes each with its loopback up, the
    links between them are the test's."""

    def __init__(self, names: dict[str, str]) -> None:
        self.ns = names
        self.created: list[str] = []

    def exec(self, role: str, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns[role], *cmd]

    def sh(self, role: str, *cmd: str, check_rc: bool = True,
           timeout: float = 15) -> subprocess.CompletedProcess:
        return run(self.exec(role, *cmd), check_rc=check_rc, timeout=timeout)

    def create(self) -> None:
        for name in self.ns.values():
            run(["ip", "netns", "add", name])
            self.created.append(name)
            run(["ip", "-n", name, "link", "set", "lo", "up"])

    def destroy(self) -> None:
        delete_namespaces(reversed(self.created))
        self.created.clear()


def delete_namespaces(names: Iterable[str]) -> None:
    for name in names:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def stale_namespaces(ours: Callable[[str], bool]) -> tuple[list[str], list[str]]:
    """(the namespaces `ours` claims, left by an earlier run, that hold no process; those that
    still hold one)."""
    p = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    free, busy = [], []
    for name in [line.split()[0] for line in p.stdout.splitlines() if line.strip()]:
        if not ours(name):
            continue
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                              text=True).stdout.split()
        (busy if pids else free).append(name)
    return free, busy


# --------------------------------------------------------------------------- the agent

class Agent:
    """tests/fleet/turn_agent.py running in one of the test's namespaces."""

    def __init__(self, topo: Namespaces, role: str, logdir: str) -> None:
        self.stderr = open(os.path.join(logdir, "turn_agent.stderr"), "w")
        self.p = PROCS.start(topo.exec(role, sys.executable, os.path.join(HERE, "turn_agent.py")),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=self.stderr, text=True, bufsize=1)
        self.results: dict[int, dict] = {}
        self.cond = threading.Condition()
        self.next_id = 1
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.p.stdout:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            with self.cond:
                self.results[obj.get("id")] = obj
                self.cond.notify_all()

    def send(self, cmd: str, **kw) -> int:
        with self.cond:
            cid = self.next_id
            self.next_id += 1
        self.p.stdin.write(json.dumps({"id": cid, "cmd": cmd, **kw}) + "\n")
        self.p.stdin.flush()
        return cid

    def wait(self, cid: int, timeout: float = 15) -> dict:
        deadline = time.monotonic() + timeout
        with self.cond:
            while cid not in self.results:
                left = deadline - time.monotonic()
                if left <= 0 or self.p.poll() is not None:
                    raise StepFailed(f"the TURN agent did not answer command {cid} in {timeout} s")
                self.cond.wait(min(left, 0.5))
            out = self.results.pop(cid)
        if not out.get("ok"):
            raise StepFailed(f"the TURN agent failed: {out.get('error')}\n{out.get('trace', '')}")
        return out

    def call(self, cmd: str, wait_s: float = 15, **kw) -> dict:
        """Sends a command and waits wait_s for its answer (a "timeout" in kw is the agent's)."""
        return self.wait(self.send(cmd, **kw), wait_s)

    def quit(self) -> None:
        try:
            self.send("quit")
            self.p.stdin.close()
            self.p.wait(timeout=3)
        except Exception:
            pass


# --------------------------------------------------------------------------- ternd

class Ternds:
    """What the test's ternd processes have in common: the namespaces they run in, the folder
    of their configurations and logs, the binaries, and a REST secret and an admin token in
    files only root reads."""

    def __init__(self, topo: Namespaces, tmp: str, ternd: str, ternctl: str) -> None:
        self.topo = topo
        self.tmp = tmp
        self.ternd = ternd
        self.ternctl = ternctl
        self.secret = secrets.token_hex(24)
        self.token = secrets.token_hex(24)
        for name, text in (("secrets", self.secret), ("admin-token", self.token)):
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text + "\n")
            os.chmod(os.path.join(tmp, name), 0o600)


# --------------------------------------------------------------------------- the steps

class Steps:
    """Runs the test's steps, each reported PASS or FAIL with its timing; a test subclasses it
    with its step_* methods."""

    def __init__(self, agent: Agent, only: list[str] | None) -> None:
        self.a = agent
        self.only = only
        self.results: list[tuple[str, bool, float, str]] = []
        self.open_allocs: set[str] = set()  # made by the steps and not yet released

    def step(self, name: str, fn) -> None:
        if self.only is not None and name.split()[0] not in self.only:
            return
        log(f"--- step {name}")
        start = time.monotonic()
        try:
            detail = fn() or ""
            ok = True
        except StepFailed as e:
            detail = str(e)
            ok = False
        except Exception as e:  # a broken topology or agent: report it as this step's failure
            detail = f"{type(e).__name__}: {e}"
            ok = False
        took = time.monotonic() - start
        # A step that failed half-way leaves allocations behind; end them so that the next
        # steps start from a known state.
        for alloc in sorted(self.leftovers()):
            try:
                self.release(alloc)
            except Exception:
                pass
        self.results.append((name, ok, took, detail))
        log(f"{'PASS' if ok else 'FAIL'} {name} ({took:.2f} s): {detail}")

    def leftovers(self) -> set[str]:
        """The allocations to end after a step."""
        return self.open_allocs

    def close(self, alloc: str) -> None:
        self.a.call("close", alloc=alloc)
        self.open_allocs.discard(alloc)

    def release(self, alloc: str) -> dict:
        try:
            return self.a.call("refresh", alloc=alloc, lifetime=0)
        finally:
            self.close(alloc)

    def summary(self, title: str) -> list[str]:
        """Prints every step's result; returns the names of the steps that failed."""
        total = time.monotonic() - T0
        print(f"\n==== {title} summary ====", flush=True)
        for name, ok, took, detail in self.results:
            print(f"{'PASS' if ok else 'FAIL'}  {took:6.2f} s  {name}\n        {detail}",
                  flush=True)
        failed = [name for name, ok, _, _ in self.results if not ok]
        print(f"total {total:.1f} s; {len(self.results) - len(failed)} passed, "
              f"{len(failed)} failed", flush=True)
        return failed


# --------------------------------------------------------------------------- main

def skip(reason: str) -> int:
    print(f"SKIP: {reason}", flush=True)
    return SKIP


def preflight(argv: list[str], usage: str, why_root: str,
              tools: list[tuple[str, str | None]],
              probe_ns: str) -> tuple[list[str], set[str]] | int:
    """The test's TERND and TERNCTL (absolute) and its --flags, or the exit code when it cannot
    run: 2 for a wrong command line, SKIP without root, one of `tools` (name, path or None) or
    network namespaces, 1 when a binary is not executable."""
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = {a for a in argv[1:] if a.startswith("--")}
    if len(args) != 2:
        print(usage.split("\n")[0], file=sys.stderr)
        return 2
    binaries = [os.path.abspath(a) for a in args]
    if os.geteuid() != 0:
        return skip(why_root)
    for tool, path in tools:
        if not path:
            return skip(f"{tool} not found")
    if subprocess.run(["ip", "netns", "add", probe_ns], capture_output=True).returncode != 0:
        return skip("cannot create a network namespace (ip netns add)")
    delete_namespaces([probe_ns])
    for path in binaries:
        if not os.access(path, os.X_OK):
            print(f"FAIL: {path} is not an executable", flush=True)
            return 1
    return binaries, flags


def only_steps(flags: set[str]) -> list[str] | None:
    """The step numbers of --only=3,6b, or None to run every step."""
    return next((f.split("=", 1)[1].split(",") for f in flags if f.startswith("--only=")), None)


class Cleanup:
    """Ends every process the test started and deletes its namespaces, once, whichever comes
    first: the end of main, the interpreter's exit, a signal or TOTAL_LIMIT. The logs go too
    when the run passed and --keep-logs was not given."""

    def __init__(self, topo: Namespaces, tmp: str, keep_logs: bool) -> None:
        self.topo = topo
        self.tmp = tmp
        self.keep_logs = keep_logs
        self.passed = False
        self.done = False
        atexit.register(self)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
            signal.signal(sig, self._on_signal)
        signal.alarm(TOTAL_LIMIT)

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        PROCS.kill_all()
        self.topo.destroy()
        if self.passed and not self.keep_logs:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print(f"logs kept in {self.tmp}", flush=True)

    def _on_signal(self, signum, _frame) -> None:
        log(f"signal {signum}: cleaning up")
        self()
        os._exit(1)
