"""The benchmark's protocol, pure: which samples were taken on a quiet machine, and which rows may be read.

A sample is *loaded* when the 1-minute load average, read just before or just after it, is above
``LOAD_LIMIT`` times the machine's cores: the tools then shared the CPUs with other work, and their times
say more about the machine than about them. `invoke bench` marks such samples (or, with ``refuse``, does
not count them); RESULTS.md and the manual quote only runs without any. A row that counted no sample at
all stops the benchmark with the reason: a table of ``nan`` is not a result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LOAD_LIMIT = 1.5   # × the core count


@dataclass(frozen=True)
class Load:
    """The 1-minute load average just before and just after one sample."""

    before: float
    after: float

    def above(self, cores: int) -> bool:
        """Taken on a busy machine: either reading above LOAD_LIMIT × cores."""
        return max(self.before, self.after) > LOAD_LIMIT * cores

    def __str__(self) -> str:
        return f"load {self.before:.1f}->{self.after:.1f}"


def verdict(loads: list[Load], cores: int) -> str:
    """The run's one-line load verdict, the first line of its report."""
    if not loads:
        return "load: no sample taken"
    busy = [x for x in loads if x.above(cores)]
    peak = max(max(x.before, x.after) for x in loads)
    limit = f"{LOAD_LIMIT:g} x {cores} cores = {LOAD_LIMIT * cores:g}"
    if not busy:
        return f"load: QUIET run (highest 1-minute load {peak:.1f}, limit {limit})"
    return (f"load: LOADED run, {len(busy)} of {len(loads)} samples taken above {limit} (highest {peak:.1f}): "
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
