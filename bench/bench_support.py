"""Helpers bench/run.py and bench/capacity.py share: the servers' common settings, the error
they raise, logging, starting and stopping background processes, and table formatting.

Standard library only (Python 3.11). The scripts set `sys.dont_write_bytecode` before importing
it, so no __pycache__ lands in bench/.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Callable

SECRET = "tern-bench-secret-7f3a9c2e51d04b86"
REALM = "bench.tern"
RELAY_PORTS = (12000, 31999)
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0

# ternd's limits in every benchmark configuration: nothing refuses or caps the load.
TERND_LIMITS = (
    "limits: { max_allocations: 1000000, max_allocations_per_user: 1000000,\n"
    "          allocation_bandwidth: 0, user_bandwidth: 0, unauthenticated_rate: 0,\n"
    "          max_connections: 100000, max_connections_per_ip: 100000, shutdown_grace: 0 }\n"
)


class BenchError(Exception):
    """A measurement failed; the message says why (and may carry a log tail)."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def tail(text: str, lines: int = 15) -> str:
    rows = [r for r in text.splitlines() if r.strip()]
    return "\n".join("    | " + r for r in rows[-lines:])


def launch(cmd: list[str], log_path: pathlib.Path, what: str,
           env: dict | None = None) -> tuple[subprocess.Popen, object]:
    """Starts a background process of this run with its output in `log_path`, in a session of
    its own; `what` names it in the error ("haproxy: apt install haproxy")."""
    log_file = open(log_path, "wb")
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_file,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)
    except OSError as e:
        log_file.close()
        raise BenchError(f"cannot start {what} ({e})") from e
    return proc, log_file


def wait_started(proc: subprocess.Popen, what: str, output: Callable[[], str],
                 ready: Callable[[], bool], lines: int = 15) -> None:
    """Polls `ready` until it holds; raises BenchError (with the last `lines` of `output`) when
    the process exits first or READY_TIMEOUT passes."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with code {proc.returncode} while "
                             f"starting:\n{tail(output(), lines)}")
        if ready():
            return
        if time.monotonic() > deadline:
            raise BenchError(f"{what} not ready after {READY_TIMEOUT:.0f} s:\n"
                             f"{tail(output(), lines)}")
        time.sleep(0.05)


def stop_process(proc: subprocess.Popen, log_file, name: str, timeout: float = 0.0,
                 quiet: bool = False, also_kill: list[int] | None = None) -> None:
    """SIGTERM by PID, then SIGKILL (to `also_kill` too) after `timeout` (STOP_TIMEOUT when 0);
    closes the log."""
    timeout = timeout or STOP_TIMEOUT
    try:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                if not quiet:
                    log(f"  {name} (pid {proc.pid}) ignored SIGTERM for {timeout:.0f} s; SIGKILL")
                for pid in also_kill or []:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
    except ProcessLookupError:
        pass
    finally:
        log_file.close()


def f_pps(v: float) -> str:
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.1f}k"


def f_pct(v: float) -> str:
    return f"{v * 100:.0f} %"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def f_ratio(r: float | None) -> str:
    return "–" if r is None else f"{r:.2f}×"
