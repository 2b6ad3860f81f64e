"""Measuring one run of a tool: wall time, the controller's CPU, peak memory of its process tree, and the
load average around it (``protocol.Load``). Used by ``bench`` (the fleet rows) and ``startup`` (N=0)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.benchmarks import protocol
from tests.benchmarks.protocol import Load

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Sample:
    tool: str
    n: int
    wall: float
    cpu: float
    peak_mb: float
    exit_code: int
    output: str = ""
    load: Load = Load(0.0, 0.0)


def _tree_rss_mb(root: int) -> float:
    """RSS of a process and all its descendants, from /proc (MB)."""
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            continue
    return total / 2**20


def _stat() -> tuple[int, int]:
    with open("/proc/stat") as fh:
        return protocol.cpu_times(fh.readline())


def settle(window: float = 1.0, patience: float = 30.0) -> float:
    """The share of all cores busy over the last ``window`` seconds, read again (up to ``patience`` seconds)
    until it is within ``protocol.BUSY_LIMIT``: the previous sample's hosts and sessions wind down first."""
    deadline = time.monotonic() + patience
    while True:
        first = _stat()
        time.sleep(window)
        share = protocol.busy_share(first, _stat())
        if share <= protocol.BUSY_LIMIT or time.monotonic() >= deadline:
            return share


def measure(tool: str, n: int, argv: list[str], env: dict[str, str] | None = None) -> Sample:
    """Wall, CPU (the child and everything it waited for), sampled peak RSS of the whole tree, the share of
    the cores busy just before (``settle``) and the 1-minute load average just before and just after
    (``protocol``: a sample on a busy machine is marked)."""
    busy = settle()
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss_mb(proc.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Sample(tool, n, wall, usage.ru_utime + usage.ru_stime, peak[0], proc.returncode,
                  out.decode(errors="replace"), Load(load_before, os.getloadavg()[0], busy))


def tool_env(**extra: str) -> dict[str, str]:
    """The environment every measured tool runs in.

    Installed tools run from bytecode (pip compiles ansible's and pyinfra's at install time); an
    editable hostprep writes its own on the warm-up run, unless the environment forbids it. This
    sandbox sets PYTHONDONTWRITEBYTECODE, which made every hostprep run compile its source again.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **extra}
