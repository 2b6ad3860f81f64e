"""The benchmark's protocol, pure: which samples were taken on a quiet machine, and which rows may be read.

A sample is *loaded* when the machine was busy with other work as it started: more than ``BUSY_LIMIT`` of
all cores busy in the second before it (``measure`` waits up to half a minute for the machine to settle,
the bench's own hosts idle). The 1-minute load average just before and after is recorded beside it, and is
the rule only where that share was not read: on this lab the fleet's hosts share the controller's cores,
so every sample's own work raises the load average, which then takes minutes to decay (an N=100 sample
left it near 10, marking the next sample of every tool for a load that was the bench's own). With the
share read, the tools never share the CPUs with work outside the bench, and their times say about them. `invoke bench` marks such samples (or, with ``refuse``, does
not count them); RESULTS.md and the manual quote only runs without any. A row that counted no sample at
all stops the benchmark with the reason: a table of ``nan`` is not a result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LOAD_LIMIT = 1.5   # × the core count: the rule when the busy share was not read
BUSY_LIMIT = 0.25  # share of all cores busy with other work in the second before a sample


@dataclass(frozen=True)
class Load:
    """The 1-minute load average just before and just after one sample, and (when read) the share of all
    cores that was busy in the second before it, with the bench idle."""

    before: float
    after: float
    busy: float | None = None

    def above(self, cores: int) -> bool:
        """Taken on a busy machine: other work on more than BUSY_LIMIT of the cores as it started (else,
        unread, either load average above LOAD_LIMIT × cores)."""
        if self.busy is not None:
            return self.busy > BUSY_LIMIT
        return max(self.before, self.after) > LOAD_LIMIT * cores

    def __str__(self) -> str:
        busy = "" if self.busy is None else f", {self.busy:.0%} busy before"
        return f"load {self.before:.1f}->{self.after:.1f}{busy}"


def busy_share(first: tuple[int, int], second: tuple[int, int]) -> float:
    """The share of CPU time that was busy between two (busy, total) readings of /proc/stat."""
    total = second[1] - first[1]
    return (second[0] - first[0]) / total if total > 0 else 0.0


def cpu_times(stat_line: str) -> tuple[int, int]:
    """(busy, total) jiffies from /proc/stat's first line; idle and iowait are not busy."""
    fields = [int(x) for x in stat_line.split()[1:9]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def verdict(loads: list[Load], cores: int) -> str:
    """The run's one-line load verdict, the first line of its report."""
    if not loads:
        return "load: no sample taken"
    busy = [x for x in loads if x.above(cores)]
    peak = max(max(x.before, x.after) for x in loads)
    shares = [x.busy for x in loads if x.busy is not None]
    if len(shares) == len(loads):
        limit = f"{BUSY_LIMIT:.0%} of {cores} cores busy before a sample"
        seen = f"highest {max(shares):.0%} busy before a sample; 1-minute load up to {peak:.1f} with the bench's own hosts"
    else:
        limit = f"{LOAD_LIMIT:g} x {cores} cores = {LOAD_LIMIT * cores:g}"
        seen = f"highest 1-minute load {peak:.1f}"
    if not busy:
        return f"load: QUIET run ({seen}, limit {limit})"
    return (f"load: LOADED run, {len(busy)} of {len(loads)} samples taken above {limit} ({seen}): "
            f"figures not for RESULTS.md")


class NoSample(SystemExit):
    """A tool's row counted no sample: the benchmark stops (exit status 1) and says why."""


def why_not_counted(tool: str, n: int, reasons: list[str], output: str) -> str:
    """The stop message: the tool, the fleet size, each sample's reason and the last output's end."""
    tail = "\n".join(output.rstrip().split("\n")[-12:])
    said = "; ".join(reasons) or "no sample was taken"
    return f"{tool} at N={n} counted no sample ({said}). Its last output ended:\n{tail}"


# What a tool prints when it lacks a plugin or collection it was told to use: a hint for the stop message.
MISSING_PLUGIN = re.compile(r"Could not load '[^']+' callback plugin|couldn't resolve module/action|"
                            r"No module named \S+|command not found")


def hint(output: str) -> str:
    """A short reason read from a refused run's output, '' when none is recognised."""
    m = MISSING_PLUGIN.search(output)
    return f"it said: {m.group(0)!r} (pip install -e '.[bench]')" if m else ""


VERSION = re.compile(r"\b\d+\.\d+")


def started(kind: str, output: str) -> bool:
    """A start-up sample counts if the tool really started: ``--version`` printed a version, and the
    empty-inventory run ended without a Python traceback (every tool exits as it likes on no hosts)."""
    if kind == "version":
        return VERSION.search(output) is not None
    return "Traceback (most recent call last)" not in output and not MISSING_PLUGIN.search(output)
